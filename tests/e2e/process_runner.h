#pragma once
// Runs any program in tests (the llama.cpp peer's tools, e.g. llama-perplexity; run_cli is this with the
// pocketlm CLI as argv[0]) and captures stdout, stderr and the exit code.
#include <string>
#include <vector>

#include "e2e/cli_runner.h"

namespace pocketlm::test {
// argv[0] is the program's path. stdin is /dev/null.
CliResult run_process(const std::vector<std::string>& argv);
}  // namespace pocketlm::test
