#pragma once
// A child process spoken to line by line over pipes (its stdin and stdout; its stderr is ours), for
// harnesses such as `pocketlm-peer bench --serve`. The child is asked to quit, then reaped, on destruction.
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "util/error.h"

namespace pocketlm {

class ChildProcess {
 public:
  // argv[0] is the program path (not searched in PATH).
  static Expected<std::unique_ptr<ChildProcess>> spawn(const std::vector<std::string>& argv);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  Status write_line(const std::string& line);
  // The next line of the child's stdout, without the newline; an error at end of file (the child died).
  Expected<std::string> read_line();
  // Closes the child's stdin (after `farewell`, if not empty) and waits for it; returns its exit status.
  int finish(const std::string& farewell = "");

 private:
  ChildProcess() = default;
  std::string program_;
  pid_t pid_ = -1;
  int in_fd_ = -1;   // the child's stdin
  int out_fd_ = -1;  // the child's stdout
  std::string buffered_;
  int status_ = -1;
};

}  // namespace pocketlm
