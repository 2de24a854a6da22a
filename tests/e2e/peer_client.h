#pragma once
// Helpers for tests that compare against the llama.cpp peer (bench/peer, the `pocketlm-peer` harness).
// The harness exists only after scripts/build-peer.sh has built llama.cpp into .peer/ and cmake has been
// re-run; tests call POCKETLM_REQUIRE_PEER() to skip without it.
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pocketlm::test {

// The built harness (POCKETLM_PEER_BIN from bench/peer/CMakeLists.txt, i.e. <build>/bin/pocketlm-peer;
// env POCKETLM_PEER_BIN overrides), or nullopt when it is not there.
std::optional<std::filesystem::path> peer_binary();

// The built pocketlm-peer-quantize (llama.cpp's quantize functions on raw floats; env
// POCKETLM_PEER_QUANTIZE_BIN overrides); empty when the peer was not configured.
std::filesystem::path peer_quantize_binary();

// Why the peer is missing and which command provides it (for GTEST_SKIP).
std::string peer_missing_message();

// Runs `pocketlm-peer args...`, returns the JSON object it prints. Throws std::runtime_error (with the
// command line, the exit status and the tail of its stderr) when it cannot run or exits non-zero.
nlohmann::json run_peer(const std::vector<std::string>& args);

// A JSON array of integers as token ids.
std::vector<int32_t> json_ids(const nlohmann::json& array);

// A file in the temporary directory holding `content` byte for byte, removed when this object dies
// (for the peer's -f flag).
class TempFile {
 public:
  explicit TempFile(std::string_view content);
  ~TempFile();
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace pocketlm::test

// Skips the current test when the peer harness is not built.
#define POCKETLM_REQUIRE_PEER()                                 \
  do {                                                          \
    if (!::pocketlm::test::peer_binary()) {                     \
      GTEST_SKIP() << ::pocketlm::test::peer_missing_message(); \
    }                                                           \
  } while (0)
