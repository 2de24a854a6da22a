#pragma once
// Runs the built `pocketlm` CLI in tests and captures stdout, stderr and the exit code.
#include <string>
#include <vector>

namespace pocketlm::test {
struct CliResult {
  int exit_code = -1;
  std::string out, err;
};
CliResult run_cli(const std::vector<std::string>& args);
}  // namespace pocketlm::test
