// `this`: the machine the planner runs on, measured.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "bench/bandwidth.h"
#include "plan/device_profile.h"
#include "util/cpu_features.h"
#include "util/thread_pool.h"

namespace pocketlm {

namespace {

// A /proc/meminfo field in bytes (0 when absent).
double meminfo_bytes(const std::string& text, const std::string& key) {
  const size_t at = text.find(key + ":");
  if (at == std::string::npos) return 0;
  std::istringstream in(text.substr(at + key.size() + 1));
  double kib = 0;
  in >> kib;
  return kib * 1024.0;
}

// The clock the int8 estimate uses: the highest "cpu MHz" /proc/cpuinfo lists (GHz), 2.0 when none is listed.
double cpu_ghz() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  double best = 0;
  while (std::getline(in, line)) {
    if (line.rfind("cpu MHz", 0) != 0) continue;
    const size_t colon = line.find(':');
    if (colon != std::string::npos) best = std::max(best, std::stod(line.substr(colon + 1)) / 1000.0);
  }
  return best > 0 ? best : 2.0;
}

// int8 operations per cycle and core of the widest dot-product path the kernels use (a multiply-add is two):
// AVX-512 VNNI 2 x 64 MACs, AVX2 2 x 32 (vpmaddubsw), i8mm 2 x 32 (smmla), dotprod 2 x 16, NEON 2 x 8.
double int8_ops_per_cycle(const CpuFeatures& f) {
  if (f.avx512vnni) return 256;
  if (f.avx2) return 128;
  if (f.i8mm) return 128;
  if (f.dotprod) return 64;
  return 32;
}

}  // namespace

Expected<DeviceProfile> measure_this_device(int n_threads) {
  DeviceProfile p;
  p.name = "this";
  p.measured = true;
  p.cores = n_threads > 0 ? n_threads : physical_cores();
  std::ifstream in("/proc/meminfo");
  std::ostringstream ss;
  ss << in.rdbuf();
  const double total = meminfo_bytes(ss.str(), "MemTotal"), available = meminfo_bytes(ss.str(), "MemAvailable");
  if (total <= 0 || available <= 0)
    return Error("/proc/meminfo: no MemTotal / MemAvailable: cannot measure this machine's RAM");
  p.ram_gb = total / 1e9;
  p.app_share = std::min(1.0, available / total);  // what is free now is what a new process can take
  const Bandwidth bw = measure_read_bandwidth(p.cores);
  p.bandwidth_gbps = bw.gb_per_s;
  const CpuFeatures& f = cpu_features();
  p.cpu_int8_tops = p.cores * cpu_ghz() * int8_ops_per_cycle(f) / 1000.0;
  p.int8_tops = p.cpu_int8_tops;  // no accelerator is used
  p.power_w = 0;                  // not measurable here: no J/token
  char buf[256];
  std::snprintf(buf, sizeof buf, "this machine: %d threads, %.1f GB RAM (%.1f GB available), %.1f GB/s read, %s",
                p.cores, p.ram_gb, available / 1e9, p.bandwidth_gbps, f.describe().c_str());
  p.description = buf;
  p.source = "measured (bench/bandwidth probe, /proc/meminfo, /proc/cpuinfo)";
  return p;
}

}  // namespace pocketlm
