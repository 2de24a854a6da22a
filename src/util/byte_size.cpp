#include "util/byte_size.h"

#include <cstdio>

namespace pocketlm {

std::string human_bytes(double b) {
  constexpr double kKiB = 1024.0, kMiB = kKiB * 1024.0, kGiB = kMiB * 1024.0;
  char buf[48];
  if (b >= kGiB)
    std::snprintf(buf, sizeof buf, "%.2f GiB", b / kGiB);
  else if (b >= kMiB)
    std::snprintf(buf, sizeof buf, "%.1f MiB", b / kMiB);
  else if (b >= kKiB)
    std::snprintf(buf, sizeof buf, "%.1f KiB", b / kKiB);
  else
    std::snprintf(buf, sizeof buf, "%.0f B", b);
  return buf;
}

std::string format_mib(double bytes, int decimals) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f MiB", decimals, bytes / (1024.0 * 1024.0));
  return buf;
}

}  // namespace pocketlm
