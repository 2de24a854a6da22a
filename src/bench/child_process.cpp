#include "bench/child_process.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace pocketlm {

Expected<std::unique_ptr<ChildProcess>> ChildProcess::spawn(const std::vector<std::string>& argv) {
  if (argv.empty()) return Error("no program to run");
  int to_child[2], from_child[2];
  if (pipe(to_child) != 0) return Error(std::string("pipe: ") + std::strerror(errno));
  if (pipe(from_child) != 0) {
    close(to_child[0]);
    close(to_child[1]);
    return Error(std::string("pipe: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, to_child[0], 0);
  posix_spawn_file_actions_adddup2(&fa, from_child[1], 1);
  for (int fd : {to_child[0], to_child[1], from_child[0], from_child[1]}) posix_spawn_file_actions_addclose(&fa, fd);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0].c_str(), &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(to_child[0]);
  close(from_child[1]);
  if (rc != 0) {
    close(to_child[1]);
    close(from_child[0]);
    return Error(argv[0] + ": cannot run: " + std::strerror(rc));
  }
  signal(SIGPIPE, SIG_IGN);  // a dead child shows as a write error, not as our death
  std::unique_ptr<ChildProcess> c(new ChildProcess());
  c->program_ = argv[0];
  c->pid_ = pid;
  c->in_fd_ = to_child[1];
  c->out_fd_ = from_child[0];
  return c;
}

Status ChildProcess::write_line(const std::string& line) {
  const std::string s = line + "\n";
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::write(in_fd_, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Error(program_ + ": cannot write to it (did it exit?): " + std::strerror(errno));
    off += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Expected<std::string> ChildProcess::read_line() {
  for (;;) {
    const size_t nl = buffered_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffered_.substr(0, nl);
      buffered_.erase(0, nl + 1);
      return line;
    }
    char buf[4096];
    const ssize_t n = ::read(out_fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int st = finish();
      return Error(program_ + " ended without answering (exit status " + std::to_string(st) + ")");
    }
    buffered_.append(buf, static_cast<size_t>(n));
  }
}

int ChildProcess::finish(const std::string& farewell) {
  if (pid_ < 0) return status_;
  if (!farewell.empty() && in_fd_ >= 0) (void)write_line(farewell);
  if (in_fd_ >= 0) close(in_fd_);
  in_fd_ = -1;
  int st = 0;
  while (waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
  }
  if (out_fd_ >= 0) close(out_fd_);
  out_fd_ = -1;
  pid_ = -1;
  status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  return status_;
}

ChildProcess::~ChildProcess() { finish("quit"); }

}  // namespace pocketlm
