#pragma once
// Peak-RSS measurements in tests: a prompt that fills a context, and a command's peak RSS under GNU time.
#include <cstdint>
#include <string>
#include <vector>

namespace pocketlm::test {
// A prefix of the wiki text that the model's tokenizer makes n_tokens long (give or take 8); "" on failure.
std::string prompt_of_tokens(const std::string& model_path, int64_t n_tokens);
// Runs argv under GNU time (what /usr/bin/time -v reports as "Maximum resident set size"), returns the peak
// RSS in bytes (0 on failure). Not the child's ru_maxrss from wait4 directly: a child exec'd from a test
// process inherits the test's own high-water mark at exec (Linux keeps the larger), and the test may have
// mapped a model to tokenize the prompt; GNU time is exec'd first, so its child starts from a small process.
uint64_t peak_rss_of(const std::vector<std::string>& args);
}  // namespace pocketlm::test
