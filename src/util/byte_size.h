#pragma once
// Byte counts as people read them. One copy for the library, the CLI and the reports.
#include <string>

namespace pocketlm {
// "1.23 GiB", "456.7 MiB", "8.0 KiB" or "12 B": the largest unit the value reaches.
std::string human_bytes(double bytes);
// Always in MiB with `decimals` digits: "123.45 MiB" (tables that compare sizes row by row).
std::string format_mib(double bytes, int decimals = 2);
}  // namespace pocketlm
