#pragma once
// DeviceProfile: what the planner needs to know about a device class or a chip: RAM and the share of it an
// app can hold before the OS pages it out, memory read bandwidth, CPU cores, int8 compute and power. The
// built-in profiles (device classes from the on-device lesson, named chips from public figures) are cited in
// docs/plan.md; users add their own in YAML or JSON; `this` is the machine the planner runs on, measured.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.h"

namespace pocketlm {

struct DeviceProfile {
  std::string name;           // "flagship-phone", "snapdragon-8-gen-3", "this", ...
  std::string description;    // one line
  double ram_gb = 0;          // installed RAM, 1e9 bytes
  double app_share = 0;       // fraction of RAM one app can hold in the foreground, (0, 1]
  double bandwidth_gbps = 0;  // memory read bandwidth, 1e9 bytes/s
  int cores = 0;              // CPU cores the engine runs on
  double int8_tops = 0;       // the SoC's int8 compute as its vendor states it (NPU/GPU included), TOPS
  double cpu_int8_tops = 0;   // what a CPU engine can use: sum over cores of clock x int8 ops per cycle, TOPS
  double power_w = 0;         // power drawn while generating, W (0: unknown, no J/token)
  std::string source;         // where the figures come from (docs/plan.md has the full citations)
  bool measured = false;      // `this`: figures probed on the running machine

  uint64_t budget_bytes() const { return static_cast<uint64_t>(ram_gb * app_share * 1e9); }
};

// The device classes (budget-phone, flagship-phone, tablet, edge-board), then the named chips.
const std::vector<DeviceProfile>& builtin_device_profiles();

// Profiles from YAML or JSON text (JSON is read as YAML): one mapping, a list of mappings, or
// {devices: [...]}. Every field but description and source is required and must be positive (app_share at most 1,
// cores a whole number); errors name the file, the line, the device and the field.
Expected<std::vector<DeviceProfile>> parse_device_profiles(std::string_view text, const std::string& name);
Expected<std::vector<DeviceProfile>> read_device_profiles(const std::string& path);

// The machine this runs on: bandwidth probed with n_threads threads (0: physical cores), RAM and the
// available share from /proc/meminfo, int8 compute estimated from the ISA and clock. Power is unknown (0).
Expected<DeviceProfile> measure_this_device(int n_threads);

// `name` among `user` profiles first, then the built-ins; "this" is measured. An unknown name is an error
// listing the known ones.
Expected<DeviceProfile> find_device_profile(std::string_view name, const std::vector<DeviceProfile>& user,
                                            int n_threads);

}  // namespace pocketlm
