#pragma once
// Whether the client of a connection a cpp-httplib handler is serving has gone away. cpp-httplib 0.11 (Debian's)
// hands a handler no socket and has no Request::is_connection_closed (later versions do), so a handler that
// waits for a long non-streamed reply cannot otherwise notice a client that hung up. PeerWatch finds the
// connection's socket among the process's descriptors by the request's two addresses (a TCP connection's
// local and remote address and port are unique) and polls it: end of stream or an error means the peer left.
// A client that pipelines its next request is still there (its bytes are only peeked, never read).
#include <optional>
#include <string>

namespace pocketlm::server {

class PeerWatch {
 public:
  // The connected socket with these addresses (as cpp-httplib fills Request::local_addr/port and
  // remote_addr/port: numeric hosts), or none. The descriptor is the serving thread's until its handler
  // returns, so a PeerWatch must not outlive the handler that made it.
  static std::optional<PeerWatch> find(const std::string& local_addr, int local_port, const std::string& remote_addr,
                                       int remote_port);
  bool peer_gone() const;  // never blocks
  int fd() const { return fd_; }

 private:
  explicit PeerWatch(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace pocketlm::server
