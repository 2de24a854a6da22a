#pragma once
// Runs any program (the llama.cpp peer's tools, e.g. llama-perplexity) in tests and captures its output.
#include <string>
#include <vector>

#include "e2e/cli_runner.h"

namespace pocketlm::test {
// argv[0] is the program's path. stdin is /dev/null.
CliResult run_process(const std::vector<std::string>& argv);
}  // namespace pocketlm::test
