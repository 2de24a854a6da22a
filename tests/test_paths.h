#pragma once
// Where the tests find shared data, fetched models and the llama.cpp peer. A test that needs something
// absent calls GTEST_SKIP() with a message saying which command provides it.
#include <filesystem>
#include <string>

namespace pocketlm::test {
std::filesystem::path shared_dir();  // ../shared (POCKETLM_SHARED_DIR, or env POCKETLM_SHARED_DIR)
std::filesystem::path models_dir();  // models/ (env POCKETLM_MODELS_DIR overrides)
std::filesystem::path peer_dir();    // .peer/ (env POCKETLM_PEER_DIR overrides)
std::filesystem::path source_dir();
std::filesystem::path cli_path();           // the built `pocketlm` binary
std::filesystem::path chat_example_path();  // the built examples/chat.c
std::filesystem::path smollm2_path();       // models/SmolLM2-135M-Instruct.Q4_1.gguf
std::filesystem::path gemma3_path();        // models/gemma-3-270m-q4_k_m.gguf
std::filesystem::path stories_path();       // shared/models/stories260K.gguf
}  // namespace pocketlm::test
