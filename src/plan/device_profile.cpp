#include "plan/device_profile.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <fstream>
#include <sstream>

namespace pocketlm {

const std::vector<DeviceProfile>& builtin_device_profiles() {
  // Classes: the on-device lesson's ranges (RAM 2-4 / 8-12 / 8-16 / 4-16 GB, power 1-2 / 3-5 / 5-10 / 5-20 W,
  // int8 1-2 / 10-15 / 15-25 / 20-50 TOPS), taken at their midpoints; the app's share is the field guide's
  // 1.5-3 GB an app can borrow before the OS pages the foreground app out. Chips: vendors' public figures
  // (docs/plan.md cites each). cpu_int8_tops is sum(cores x GHz x int8 ops per cycle): 256 for a core with
  // four 128-bit i8mm pipes (Cortex-X, Apple P), 128 for two (Cortex-A7xx), 64 for an in-order or older core.
  static const std::vector<DeviceProfile> profiles = {
      {"budget-phone", "device class: 2-4 GB RAM, 1-2 W, 1-2 TOPS (LPDDR4X, 2 big + 6 little cores)", 3, 0.5, 17.1, 4,
       1.5, 0.6, 1.5, "on-device lesson (classes); LPDDR4X-4266 x 32 bit", false},
      {"flagship-phone", "device class: 8-12 GB RAM, 3-5 W, 10-15 TOPS (LPDDR5X, 64-bit bus)", 10, 0.3, 68.3, 6, 12.5,
       2.5, 4, "on-device lesson (classes); LPDDR5X-8533 x 64 bit", false},
      {"tablet", "device class: 8-16 GB RAM, 5-10 W, 15-25 TOPS", 12, 0.33, 51.2, 6, 20, 2.5, 7.5,
       "on-device lesson (classes); LPDDR5-6400 x 64 bit", false},
      {"edge-board", "device class: 4-16 GB RAM, 5-20 W, 20-50 TOPS (dedicated to the model)", 10, 0.8, 34.1, 6, 35,
       0.6, 12.5, "on-device lesson (classes); LPDDR4X-4266 x 64 bit", false},
      {"snapdragon-8-gen-3", "Qualcomm Snapdragon 8 Gen 3 (1 X4 + 5 A720 + 2 A520), 12 GB LPDDR5X-9600", 12, 0.25, 76.8,
       8, 45, 3.0, 5, "Qualcomm product brief; NPU TOPS as reported (not in the brief)", false},
      {"apple-a17-pro", "Apple A17 Pro (2 P + 4 E cores), iPhone 15 Pro 8 GB LPDDR5-6400", 8, 0.375, 51.2, 6, 35, 2.5,
       5, "Apple iPhone 15 Pro announcement (Neural Engine 35 TOPS)", false},
      {"dimensity-9300", "MediaTek Dimensity 9300 (4 X4 + 4 A720), 12 GB LPDDR5T-9600", 12, 0.25, 76.8, 8, 33, 4.0, 5,
       "MediaTek product page; APU TOPS not published (estimate)", false},
      {"tensor-g3", "Google Tensor G3 (1 X3 + 4 A715 + 4 A510), Pixel 8 8 GB LPDDR5X", 8, 0.375, 68.3, 9, 12.5, 2.4,
       4.5, "Google Pixel 8 tech specs; TPU TOPS not published (flagship class)", false},
      {"tensor-g4", "Google Tensor G4 (1 X4 + 3 A720 + 4 A520), Pixel 9 12 GB LPDDR5X", 12, 0.25, 68.3, 8, 12.5, 2.3,
       4.5, "Google Pixel 9 tech specs; TPU TOPS not published (flagship class)", false},
      {"jetson-orin-nano", "NVIDIA Jetson Orin Nano 8 GB (6 A78AE @ 1.5 GHz), LPDDR5 68 GB/s", 8, 0.8, 68, 6, 40, 0.58,
       15, "NVIDIA Jetson Orin Nano data sheet (40 sparse int8 TOPS, 7-15 W)", false},
      {"jetson-agx-orin", "NVIDIA Jetson AGX Orin 64 GB (12 A78AE @ 2.2 GHz), LPDDR5 204.8 GB/s", 64, 0.8, 204.8, 12,
       275, 1.69, 40, "NVIDIA Jetson AGX Orin data sheet (275 sparse int8 TOPS, 15-60 W)", false},
  };
  return profiles;
}

namespace {

std::string at(const std::string& name, const YAML::Mark& m) {
  return m.line >= 0 ? name + ":" + std::to_string(m.line + 1) : name;
}

constexpr const char* kFields = "name, ram_gb, app_share, bandwidth_gbps, cores, int8_tops, cpu_int8_tops, power_w";

Expected<DeviceProfile> parse_one(const YAML::Node& n, size_t index, const std::string& file) {
  const std::string where0 = at(file, n.Mark()) + ": device " + std::to_string(index + 1);
  if (!n.IsMap()) return Error(where0 + ": expected a mapping with " + kFields);
  for (const auto& kv : n) {
    const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string("?");
    static const char* known[] = {"name",           "description", "source",    "ram_gb",        "app_share",
                                  "bandwidth_gbps", "cores",       "int8_tops", "cpu_int8_tops", "power_w"};
    bool ok = false;
    for (const char* k : known) ok = ok || key == k;
    if (!ok)
      return Error(at(file, kv.first.Mark()) + ": device " + std::to_string(index + 1) + ": unknown field '" + key +
                   "' (expected " + kFields + ", description, source)");
  }
  DeviceProfile p;
  if (!n["name"] || !n["name"].IsScalar() || n["name"].Scalar().empty())
    return Error(where0 + ": missing field 'name'");
  p.name = n["name"].Scalar();
  const std::string where = at(file, n.Mark()) + ": device '" + p.name + "'";
  if (p.name == "this" || p.name == "all") return Error(where + ": the name '" + p.name + "' is reserved");
  auto number = [&](const char* key, double& out) -> Status {
    const YAML::Node v = n[key];
    if (!v) return Error(where + ": missing field '" + key + "'");
    const std::string w = at(file, v.Mark()) + ": device '" + p.name + "': field '" + key + "'";
    if (!v.IsScalar()) return Error(w + ": expected a number");
    try {
      out = v.as<double>();
    } catch (const YAML::Exception&) {
      return Error(w + ": '" + v.Scalar() + "' is not a number");
    }
    if (!std::isfinite(out) || out <= 0) return Error(w + " is " + v.Scalar() + ": must be positive");
    return Status::Ok();
  };
  double cores = 0;
  PLM_CHECK(number("ram_gb", p.ram_gb));
  PLM_CHECK(number("app_share", p.app_share));
  PLM_CHECK(number("bandwidth_gbps", p.bandwidth_gbps));
  PLM_CHECK(number("cores", cores));
  PLM_CHECK(number("int8_tops", p.int8_tops));
  PLM_CHECK(number("cpu_int8_tops", p.cpu_int8_tops));
  PLM_CHECK(number("power_w", p.power_w));
  if (p.app_share > 1)
    return Error(where + ": field 'app_share' is " + n["app_share"].Scalar() +
                 ": must be at most 1 (a fraction of ram_gb)");
  if (cores != std::floor(cores) || cores > 4096)
    return Error(where + ": field 'cores' is " + n["cores"].Scalar() + ": must be a whole number");
  p.cores = static_cast<int>(cores);
  if (n["description"] && n["description"].IsScalar()) p.description = n["description"].Scalar();
  if (n["source"] && n["source"].IsScalar()) p.source = n["source"].Scalar();
  return p;
}

}  // namespace

Expected<std::vector<DeviceProfile>> parse_device_profiles(std::string_view text, const std::string& name) {
  try {
    YAML::Node root = YAML::Load(std::string(text));
    if (root.IsMap() && root["devices"]) root = root["devices"];
    std::vector<DeviceProfile> out;
    if (root.IsMap()) {
      PLM_TRY(DeviceProfile p, parse_one(root, 0, name));
      out.push_back(std::move(p));
    } else if (root.IsSequence()) {
      for (size_t i = 0; i < root.size(); ++i) {
        PLM_TRY(DeviceProfile p, parse_one(root[i], i, name));
        for (const DeviceProfile& q : out)
          if (q.name == p.name) return Error(at(name, root[i].Mark()) + ": device '" + p.name + "' is defined twice");
        out.push_back(std::move(p));
      }
    }
    if (out.empty())
      return Error(name + ": no device profiles (expected a mapping with " + kFields + ", or a list of them)");
    return out;
  } catch (const YAML::Exception& e) {
    return Error(at(name, e.mark) + ":" + std::to_string(e.mark.column + 1) + ": not valid YAML or JSON: " + e.msg);
  }
}

Expected<std::vector<DeviceProfile>> read_device_profiles(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error(path + ": cannot open the device profile file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_device_profiles(ss.str(), path);
}

Expected<DeviceProfile> find_device_profile(std::string_view name, const std::vector<DeviceProfile>& user,
                                            int n_threads) {
  if (name == "this") return measure_this_device(n_threads);
  for (const DeviceProfile& p : user)
    if (p.name == name) return p;
  for (const DeviceProfile& p : builtin_device_profiles())
    if (p.name == name) return p;
  std::string known = "this";
  for (const DeviceProfile& p : user) known += ", " + p.name;
  for (const DeviceProfile& p : builtin_device_profiles()) known += ", " + p.name;
  return Error("unknown device '" + std::string(name) + "' (known: " + known + ", or all)");
}

}  // namespace pocketlm
