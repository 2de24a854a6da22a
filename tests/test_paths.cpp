#include "test_paths.h"

#include <cstdlib>

namespace pocketlm::test {
namespace {
std::filesystem::path from_env(const char* var, const char* fallback) {
  const char* v = std::getenv(var);
  return (v && *v) ? std::filesystem::path(v) : std::filesystem::path(fallback);
}
}  // namespace
std::filesystem::path shared_dir() { return from_env("POCKETLM_SHARED_DIR", POCKETLM_SHARED_DIR); }
std::filesystem::path models_dir() { return from_env("POCKETLM_MODELS_DIR", POCKETLM_MODELS_DIR); }
std::filesystem::path peer_dir() { return from_env("POCKETLM_PEER_DIR", POCKETLM_PEER_DIR); }
std::filesystem::path source_dir() { return POCKETLM_SOURCE_DIR; }
std::filesystem::path cli_path() { return POCKETLM_CLI; }
std::filesystem::path chat_example_path() { return POCKETLM_CHAT_EXAMPLE; }
std::filesystem::path smollm2_path() { return models_dir() / "SmolLM2-135M-Instruct.Q4_1.gguf"; }
std::filesystem::path gemma3_path() { return models_dir() / "gemma-3-270m-q4_k_m.gguf"; }
std::filesystem::path stories_path() { return shared_dir() / "models" / "stories260K.gguf"; }
}  // namespace pocketlm::test
