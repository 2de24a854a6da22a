// Device profiles: the built-ins, user files in YAML and JSON with clear errors, `this` measured.
#include <gtest/gtest.h>

#include "plan/device_profile.h"

namespace pocketlm {
namespace {

TEST(DeviceProfile, BuiltinsCoverTheClassesAndChipsWithPositiveFigures) {
  for (const char* name : {"budget-phone", "flagship-phone", "tablet", "edge-board", "snapdragon-8-gen-3",
                           "apple-a17-pro", "dimensity-9300", "tensor-g4", "jetson-orin-nano"}) {
    auto d = find_device_profile(name, {}, 0);
    ASSERT_TRUE(d.ok()) << name;
    EXPECT_GT(d->ram_gb, 0) << name;
    EXPECT_GT(d->app_share, 0) << name;
    EXPECT_LE(d->app_share, 1) << name;
    EXPECT_GT(d->bandwidth_gbps, 0) << name;
    EXPECT_GT(d->cores, 0) << name;
    EXPECT_GT(d->cpu_int8_tops, 0) << name;
    EXPECT_LE(d->cpu_int8_tops, d->int8_tops) << name;
    EXPECT_GT(d->power_w, 0) << name;
    EXPECT_FALSE(d->source.empty()) << name;
  }
  // The field guide: an app can borrow 1.5-3 GB on a phone.
  for (const char* name : {"budget-phone", "flagship-phone"}) {
    const double gb = static_cast<double>(find_device_profile(name, {}, 0)->budget_bytes()) / 1e9;
    EXPECT_GE(gb, 1.5) << name;
    EXPECT_LE(gb, 3.0) << name;
  }
}

TEST(DeviceProfile, UnknownDeviceListsTheKnownOnes) {
  auto d = find_device_profile("pixel-99", {}, 0);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message().find("unknown device 'pixel-99'"), std::string::npos);
  EXPECT_NE(d.error().message().find("flagship-phone"), std::string::npos);
}

constexpr const char* kYaml = R"(devices:
  - name: my-board
    description: a test board
    ram_gb: 4
    app_share: 0.75
    bandwidth_gbps: 17
    cores: 4
    int8_tops: 6
    cpu_int8_tops: 0.5
    power_w: 7
)";

TEST(DeviceProfile, ReadsYamlAndJson) {
  auto y = parse_device_profiles(kYaml, "boards.yaml");
  ASSERT_TRUE(y.ok()) << y.error().message();
  ASSERT_EQ(y->size(), 1u);
  EXPECT_EQ((*y)[0].name, "my-board");
  EXPECT_EQ((*y)[0].budget_bytes(), 3'000'000'000ull);
  auto found = find_device_profile("my-board", *y, 0);
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->cores, 4);
  auto j = parse_device_profiles(R"({"name": "j", "ram_gb": 8, "app_share": 0.5, "bandwidth_gbps": 40, "cores": 8,
    "int8_tops": 10, "cpu_int8_tops": 2, "power_w": 4})",
                                 "j.json");
  ASSERT_TRUE(j.ok()) << j.error().message();
  EXPECT_EQ((*j)[0].bandwidth_gbps, 40);
}

std::string error_of(const std::string& text) {
  auto r = parse_device_profiles(text, "dev.yaml");
  return r.ok() ? std::string("(no error)") : r.error().message();
}

TEST(DeviceProfile, MissingOrNegativeFieldsAreClearErrors) {
  std::string missing = kYaml;
  missing.erase(missing.find("    bandwidth_gbps: 17\n"), 22);
  EXPECT_EQ(error_of(missing), "dev.yaml:2: device 'my-board': missing field 'bandwidth_gbps'");
  std::string negative = kYaml;
  negative.replace(negative.find("ram_gb: 4"), 9, "ram_gb: -4");
  EXPECT_EQ(error_of(negative), "dev.yaml:4: device 'my-board': field 'ram_gb' is -4: must be positive");
  std::string text = kYaml;
  text.replace(text.find("cores: 4"), 8, "cores: many");
  EXPECT_EQ(error_of(text), "dev.yaml:7: device 'my-board': field 'cores': 'many' is not a number");
  std::string share = kYaml;
  share.replace(share.find("app_share: 0.75"), 15, "app_share: 2");
  EXPECT_NE(error_of(share).find("'app_share' is 2: must be at most 1"), std::string::npos);
  std::string unknown = kYaml;
  unknown.replace(unknown.find("power_w"), 7, "watts");
  EXPECT_NE(error_of(unknown).find("dev.yaml:10: device 1: unknown field 'watts'"), std::string::npos)
      << error_of(unknown);
  EXPECT_NE(error_of("- name: x\n  ram_gb: [1\n").find("dev.yaml:"), std::string::npos);
  EXPECT_NE(error_of("").find("no device profiles"), std::string::npos);
  EXPECT_NE(error_of("name: this\nram_gb: 1\n").find("reserved"), std::string::npos);
  auto file = read_device_profiles("/nonexistent/dev.yaml");
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.error().message().find("/nonexistent/dev.yaml"), std::string::npos);
}

TEST(DeviceProfile, ThisMachineIsMeasured) {
  auto d = find_device_profile("this", {}, 1);
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_TRUE(d->measured);
  EXPECT_EQ(d->cores, 1);
  EXPECT_GT(d->bandwidth_gbps, 0.5);
  EXPECT_GT(d->ram_gb, 0.1);
  EXPECT_GT(d->budget_bytes(), 0u);
  EXPECT_GT(d->cpu_int8_tops, 0);
  EXPECT_EQ(d->power_w, 0);
}

}  // namespace
}  // namespace pocketlm
