#pragma once
// Runs any program in tests (the llama.cpp peer's tools, e.g. llama-perplexity; run_cli is this with the
// pocketlm CLI as argv[0]) and captures stdout, stderr and the exit code.
#include <string>
#include <vector>

#include "e2e/cli_runner.h"

namespace pocketlm::test {
// argv[0] is the program's path. stdin is /dev/null.
CliResult run_process(const std::vector<std::string>& argv);

// For the llama.cpp peer's tools, whose logger is asynchronous and deliberately never flushed at exit
// (llama.cpp common/log.cpp, issue ggml-org/llama.cpp#22142): a run that exits 0 can lose its last lines,
// e.g. llama-perplexity's "Final estimate". Reruns (at most `tries` times in all) until stdout or stderr
// holds `last_line`; the result of the last run is returned either way.
CliResult run_peer_tool(const std::vector<std::string>& argv, const std::string& last_line, int tries = 8);
}  // namespace pocketlm::test
