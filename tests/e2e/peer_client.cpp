#include "e2e/peer_client.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>

extern char** environ;

#ifndef POCKETLM_PEER_BIN  // set by bench/peer/CMakeLists.txt
#define POCKETLM_PEER_BIN ""
#endif
#ifndef POCKETLM_PEER_QUANTIZE_BIN
#define POCKETLM_PEER_QUANTIZE_BIN ""
#endif

namespace pocketlm::test {
namespace {

std::string read_fd(int fd) {
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      throw std::runtime_error(std::string("reading from pocketlm-peer: ") + std::strerror(errno));
    }
  }
  return out;
}

std::string command_line(const std::filesystem::path& bin, const std::vector<std::string>& args) {
  std::string s = bin.string();
  for (const auto& a : args) {
    std::string shown = a.size() > 80 ? a.substr(0, 77) + "..." : a;
    s += " '" + shown + "'";
  }
  return s;
}

}  // namespace

std::optional<std::filesystem::path> peer_binary() {
  const char* env = std::getenv("POCKETLM_PEER_BIN");
  const std::filesystem::path p = (env && *env) ? env : POCKETLM_PEER_BIN;
  std::error_code ec;
  if (p.empty() || !std::filesystem::is_regular_file(p, ec)) return std::nullopt;
  return p;
}

std::filesystem::path peer_quantize_binary() {
  if (const char* env = std::getenv("POCKETLM_PEER_QUANTIZE_BIN"); env && *env) return env;
  return POCKETLM_PEER_QUANTIZE_BIN;
}

std::string peer_missing_message() {
  const char* env = std::getenv("POCKETLM_PEER_BIN");
  std::string where = (env && *env) ? env : POCKETLM_PEER_BIN;
  if (where.empty()) where = "<build>/bin/pocketlm-peer";
  return "llama.cpp peer not built (" + where +
         " missing): run scripts/build-peer.sh, then re-run cmake and build pocketlm-peer";
}

nlohmann::json run_peer(const std::vector<std::string>& args) {
  const auto bin = peer_binary();
  if (!bin) throw std::runtime_error(peer_missing_message());

  int out_pipe[2];
  if (::pipe(out_pipe) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  char err_name[] = "/tmp/pocketlm-peer-stderr-XXXXXX";
  const int err_fd = ::mkstemp(err_name);
  if (err_fd < 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    throw std::runtime_error(std::string("mkstemp: ") + std::strerror(errno));
  }
  ::unlink(err_name);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_fd, STDERR_FILENO);
  posix_spawn_file_actions_addclose(&actions, out_pipe[0]);
  posix_spawn_file_actions_addclose(&actions, out_pipe[1]);
  posix_spawn_file_actions_addclose(&actions, err_fd);

  const std::string bin_str = bin->string();
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(bin_str.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, bin_str.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out_pipe[1]);
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_fd);
    throw std::runtime_error("cannot start " + bin_str + ": " + std::strerror(rc));
  }
  std::string out;
  std::string read_error;
  try {
    out = read_fd(out_pipe[0]);
  } catch (const std::exception& e) {
    read_error = e.what();
  }
  ::close(out_pipe[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  ::lseek(err_fd, 0, SEEK_SET);
  std::string err;
  try {
    err = read_fd(err_fd);
  } catch (const std::exception&) {
  }
  ::close(err_fd);

  const std::string cmd = command_line(*bin, args);
  if (!read_error.empty()) throw std::runtime_error(cmd + ": " + read_error);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    const std::string how = WIFEXITED(status) ? "exited with status " + std::to_string(WEXITSTATUS(status))
                                              : "killed by signal " + std::to_string(WTERMSIG(status));
    if (err.size() > 2000) err = "..." + err.substr(err.size() - 2000);
    throw std::runtime_error(cmd + " " + how + "; stderr:\n" + err);
  }
  try {
    return nlohmann::json::parse(out);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(cmd + ": output is not JSON (" + e.what() + "): " + out.substr(0, 200));
  }
}

std::vector<int32_t> json_ids(const nlohmann::json& array) {
  std::vector<int32_t> ids;
  ids.reserve(array.size());
  for (const auto& v : array) ids.push_back(v.get<int32_t>());
  return ids;
}

TempFile::TempFile(std::string_view content) {
  std::string name = (std::filesystem::temp_directory_path() / "pocketlm-peer-input-XXXXXX").string();
  const int fd = ::mkstemp(name.data());
  if (fd < 0) throw std::runtime_error(std::string("mkstemp: ") + std::strerror(errno));
  ::close(fd);
  path_ = name;
  std::ofstream f(path_, std::ios::binary | std::ios::trunc);
  f.write(content.data(), static_cast<std::streamsize>(content.size()));
  if (!f) throw std::runtime_error(path_.string() + ": cannot write");
}

TempFile::~TempFile() {
  std::error_code ec;
  std::filesystem::remove(path_, ec);
}

}  // namespace pocketlm::test
