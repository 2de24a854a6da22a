#include "util/stats.h"

#include <chrono>
#include <fstream>
#include <string>

namespace pocketlm {
namespace {
size_t status_kb(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string key = std::string(field) + ":";
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::stoul(line.substr(key.size())) * 1024;
  return 0;
}
}  // namespace
size_t peak_rss_bytes() { return status_kb("VmHWM"); }
size_t current_rss_bytes() { return status_kb("VmRSS"); }
double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace pocketlm
