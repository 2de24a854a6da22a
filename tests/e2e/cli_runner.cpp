#include "e2e/cli_runner.h"

#include "e2e/process_runner.h"
#include "test_paths.h"

namespace pocketlm::test {

CliResult run_cli(const std::vector<std::string>& args) {
  std::vector<std::string> argv{cli_path().string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv);
}

}  // namespace pocketlm::test
