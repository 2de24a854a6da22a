#pragma once
// A real model requantized to one type for every matrix (the head too), written to a temporary file that is
// removed with the object: end-to-end kernel tests use SmolLM2 as Q4_0 this way.
#include <filesystem>
#include <string>

namespace pocketlm::test {

class RequantizedModel {
 public:
  // Quantizes `source` to `type` (pure: every matrix), 2 threads; ok() is false (and error() says why) on
  // failure.
  RequantizedModel(const std::filesystem::path& source, const std::string& type);
  ~RequantizedModel();
  RequantizedModel(const RequantizedModel&) = delete;
  RequantizedModel& operator=(const RequantizedModel&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_, error_;
};

}  // namespace pocketlm::test
