// `pocketlm plan`: the JSON's stable fields, the table across devices, the lesson's exercise, bad input.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "e2e/cli_runner.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

namespace fs = std::filesystem;

TEST(PlanCli, JsonHasTheStableFields) {
  if (!fs::exists(test::smollm2_path())) GTEST_SKIP() << "run scripts/fetch-models.sh";
  auto r = test::run_cli(
      {"plan", "-m", test::smollm2_path().string(), "-c", "2048", "--device", "flagship-phone", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["devices"].size(), 1u);
  const auto& d = j["devices"][0];
  for (const char* k : {"weights_bytes", "kv_bytes", "scratch_bytes", "overhead_bytes", "peak_rss_bytes", "fits",
                        "max_context", "prefill_tps", "decode_tps", "joules_per_token"})
    EXPECT_TRUE(d.contains(k)) << k;
  EXPECT_EQ(d["device"], "flagship-phone");
  EXPECT_TRUE(d["fits"].get<bool>());
  EXPECT_EQ(d["max_context"].get<int64_t>(), j["model"]["n_ctx_train"].get<int64_t>());
  EXPECT_EQ(d["peak_rss_bytes"].get<uint64_t>(), d["weights_bytes"].get<uint64_t>() + d["kv_bytes"].get<uint64_t>() +
                                                     d["scratch_bytes"].get<uint64_t>() +
                                                     d["overhead_bytes"].get<uint64_t>());
  // 30 layers x 3 KV heads x 64 x 2048 x (2 + 2) bytes.
  EXPECT_EQ(d["kv_bytes"].get<uint64_t>(), 30ull * 3 * 64 * 2048 * 4);
  EXPECT_NEAR(d["joules_per_token"].get<double>(), 4.0 / d["decode_tps"].get<double>(), 1e-9);
}

TEST(PlanCli, AllDevicesTableAndRecipeBreakdown) {
  auto r = test::run_cli({"plan", "--shape", "llama-7b", "--recipe", "Q4_K_M", "-c", "4096", "--device", "all"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* name :
       {"budget-phone", "flagship-phone", "tablet", "edge-board", "snapdragon-8-gen-3", "jetson-agx-orin"})
    EXPECT_NE(r.out.find("| " + std::string(name) + " |"), std::string::npos) << name;
  auto b = test::run_cli({"plan", "--shape", "llama-7b", "--recipe", "Q4_K_M", "--device", "snapdragon-8-gen-3"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  for (const char* s : {"| weights q4_K |", "| weights q6_K |", "| **KV cache** |", "| **compute scratch** |",
                        "| **runtime overhead** |", "| **peak RSS** |", "decode (tg128):", "J/token"})
    EXPECT_NE(b.out.find(s), std::string::npos) << s << "\n" << b.out;
}

TEST(PlanCli, DraftModelAndRulesAreCounted) {
  if (!fs::exists(test::smollm2_path()) || !fs::exists(test::gemma3_path()))
    GTEST_SKIP() << "run scripts/fetch-models.sh";
  auto plain =
      test::run_cli({"plan", "-m", test::gemma3_path().string(), "-c", "2048", "--device", "tablet", "-o", "json"});
  auto draft = test::run_cli({"plan", "-m", test::gemma3_path().string(), "-c", "2048", "--device", "tablet", "--draft",
                              test::smollm2_path().string(), "-o", "json"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  ASSERT_EQ(draft.exit_code, 0) << draft.err;
  const auto p = nlohmann::json::parse(plain.out)["devices"][0], d = nlohmann::json::parse(draft.out)["devices"][0];
  EXPECT_EQ(p["draft_bytes"].get<uint64_t>(), 0u);
  // The draft's weights (92 MiB) and its KV at the same context (45 MiB) at least.
  EXPECT_GT(d["draft_bytes"].get<uint64_t>(), 96'000'000ull + 47'000'000ull);
  EXPECT_EQ(d["peak_rss_bytes"].get<uint64_t>(),
            p["peak_rss_bytes"].get<uint64_t>() + d["draft_bytes"].get<uint64_t>());

  const fs::path rules = fs::temp_directory_path() / ("plm_plan_rules_" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(rules) << "- pattern: ffn_(up|gate)\\.weight$\n  type: q8_0\n";
  auto r = test::run_cli(
      {"plan", "-m", test::smollm2_path().string(), "--rules", rules.string(), "--device", "tablet", "-o", "json"});
  fs::remove(rules);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out)["devices"][0];
  const auto base = nlohmann::json::parse(
      test::run_cli({"plan", "-m", test::smollm2_path().string(), "--device", "tablet", "-o", "json"})
          .out)["devices"][0];
  // q4_1 (20 B per 32) -> q8_0 (34 B per 32) on 2 x 30 layers x 576 x 1536 weights.
  EXPECT_EQ(j["weights_bytes"].get<uint64_t>() - base["weights_bytes"].get<uint64_t>(),
            2ull * 30 * 576 * 1536 / 32 * (34 - 20));
}

TEST(PlanCli, LessonExercise) {
  auto r = test::run_cli({"plan", "--shape", "layers=24,heads=16,head_dim=64,params=3B", "--recipe", "Q8_0", "-c",
                          "1024", "-ctk", "q8", "-ctv", "q8", "--device", "budget-phone", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto d = nlohmann::json::parse(r.out)["devices"][0];
  EXPECT_EQ(d["kv_formula_bytes"].get<uint64_t>(), 50331648u);  // 48 MiB
  EXPECT_FALSE(d["fits"].get<bool>());
}

// --check runs the file here and sets the measurement beside the prediction: the fields are there, the
// predictions are the plan's own, the errors and flags follow from the figures (timing itself is not asserted).
TEST(PlanCli, CheckBenchmarksTheFileOnThisMachine) {
  const std::string model = test::stories_path().string();
  auto r =
      test::run_cli({"plan", "-m", model, "--device", "this", "-t", "1", "--check", "--check-reps", "1", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto d = nlohmann::json::parse(r.out)["devices"][0];
  ASSERT_TRUE(d.contains("check")) << r.out;
  const auto& c = d["check"];
  EXPECT_EQ(c["threads"].get<int>(), 1);
  EXPECT_EQ(c["repetitions"].get<int>(), 1);
  EXPECT_DOUBLE_EQ(c["decode_predicted_tps"].get<double>(), d["decode_tps"].get<double>());
  EXPECT_DOUBLE_EQ(c["prefill_predicted_tps"].get<double>(), d["prefill_tps"].get<double>());
  EXPECT_DOUBLE_EQ(c["bandwidth_plan_gbps"].get<double>(), d["bandwidth_gbps"].get<double>());
  EXPECT_GT(c["bandwidth_after_gbps"].get<double>(), 0);
  for (const char* kind : {"prefill", "decode"}) {
    const std::string k = kind;
    const double measured = c[k + "_measured_tps"].get<double>(), predicted = c[k + "_predicted_tps"].get<double>();
    ASSERT_GT(measured, 0) << k;
    const double err = c[k + "_error_pct"].get<double>();
    EXPECT_NEAR(err, 100.0 * (predicted - measured) / measured, 1e-9) << k;
    EXPECT_EQ(c[k + "_within"].get<bool>(), std::fabs(err) <= (k == "prefill" ? 30.0 : 20.0)) << k;
  }
  auto md = test::run_cli({"plan", "-m", model, "--device", "this", "-t", "1", "--check", "--check-reps", "1"});
  ASSERT_EQ(md.exit_code, 0) << md.err;
  for (const char* s :
       {"check: pocketlm bench on this machine, -t 1, medians of 1", "| pp512 |", "| tg128 |", "read bandwidth:"})
    EXPECT_NE(md.out.find(s), std::string::npos) << s << "\n" << md.out;

  auto other = test::run_cli({"plan", "-m", model, "--device", "tablet", "--check"});
  EXPECT_NE(other.exit_code, 0);
  EXPECT_NE(other.err.find("give --device this (not 'tablet')"), std::string::npos) << other.err;
  auto recipe = test::run_cli({"plan", "-m", model, "--device", "this", "--recipe", "Q8_0", "--check"});
  EXPECT_NE(recipe.exit_code, 0);
  EXPECT_NE(recipe.err.find("--check runs the file as it is on disk"), std::string::npos) << recipe.err;
  auto shape = test::run_cli({"plan", "--shape", "llama-1b", "--recipe", "Q4_0", "--device", "this", "--check"});
  EXPECT_NE(shape.exit_code, 0);
  EXPECT_NE(shape.err.find("--check needs a model file (-m)"), std::string::npos) << shape.err;
}

TEST(PlanCli, BadInputIsAClearError) {
  auto unknown = test::run_cli({"plan", "--shape", "llama-1b", "--recipe", "Q4_K_M", "--device", "pixel-99"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("unknown device 'pixel-99'"), std::string::npos) << unknown.err;
  auto ctx = test::run_cli({"plan", "--shape", "llama-7b", "--recipe", "Q4_K_M", "-c", "100000", "--device", "tablet"});
  EXPECT_NE(ctx.exit_code, 0);
  EXPECT_NE(ctx.err.find("larger than the model's trained context of 4096"), std::string::npos) << ctx.err;
  const fs::path file = fs::temp_directory_path() / ("plm_plan_dev_" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(file) << "name: mine\nram_gb: 4\napp_share: 0.5\nbandwidth_gbps: -3\ncores: 4\nint8_tops: "
                         "1\ncpu_int8_tops: 1\npower_w: 2\n";
  auto neg = test::run_cli(
      {"plan", "--shape", "llama-1b", "--recipe", "Q4_K_M", "--devices", file.string(), "--device", "mine"});
  EXPECT_NE(neg.exit_code, 0);
  EXPECT_NE(neg.err.find(file.string() + ":4: device 'mine': field 'bandwidth_gbps' is -3: must be positive"),
            std::string::npos)
      << neg.err;
  std::ofstream(file)
      << "name: mine\nram_gb: 4\napp_share: 0.5\ncores: 4\nint8_tops: 1\ncpu_int8_tops: 1\npower_w: 2\n";
  auto miss = test::run_cli(
      {"plan", "--shape", "llama-1b", "--recipe", "Q4_K_M", "--devices", file.string(), "--device", "mine"});
  EXPECT_NE(miss.exit_code, 0);
  EXPECT_NE(miss.err.find("missing field 'bandwidth_gbps'"), std::string::npos) << miss.err;
  fs::remove(file);
  auto none = test::run_cli({"plan", "--device", "tablet"});
  EXPECT_NE(none.exit_code, 0);
  EXPECT_NE(none.err.find("give -m MODEL.gguf or --shape SPEC"), std::string::npos) << none.err;
}

}  // namespace
}  // namespace pocketlm
