#include "e2e/process_runner.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace pocketlm::test {
namespace {
std::string slurp_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

CliResult run_process(const std::vector<std::string>& args) {
  static std::atomic<int> counter{0};
  const std::string base = "/tmp/plm_proc_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
  const std::string out_path = base + ".out", err_path = base + ".err";
  CliResult r;
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (!std::freopen(out_path.c_str(), "w", stdout) || !std::freopen(err_path.c_str(), "w", stderr)) _exit(127);
    if (!std::freopen("/dev/null", "r", stdin)) _exit(127);
    std::vector<std::string> full = args;
    std::vector<char*> argv;
    for (auto& a : full) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp_file(out_path);
  r.err = slurp_file(err_path);
  std::remove(out_path.c_str());
  std::remove(err_path.c_str());
  return r;
}

CliResult run_peer_tool(const std::vector<std::string>& argv, const std::string& last_line, int tries) {
  CliResult r;
  for (int i = 0; i < tries; ++i) {
    r = run_process(argv);
    if (r.exit_code != 0) return r;
    if (r.out.find(last_line) != std::string::npos || r.err.find(last_line) != std::string::npos) return r;
  }
  return r;
}

}  // namespace pocketlm::test
