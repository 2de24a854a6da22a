// run_bench, the library call behind `pocketlm bench`: rows for every test and KV configuration, medians
// inside the sample range, and its errors (no CLI involved; no timing is asserted).
#include "bench/bench_run.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "test_paths.h"

namespace pocketlm {
namespace {

BenchConfig small_config() {
  BenchConfig c;
  c.models = {test::stories_path().string()};
  c.n_prompt = {16};
  c.n_gen = {8};
  c.threads = {2};
  c.repetitions = 2;
  c.bandwidth = false;
  return c;
}

TEST(BenchRun, RowsForEveryTestAndKvConfiguration) {
  if (!std::filesystem::exists(test::stories_path())) GTEST_SKIP() << test::stories_path() << " missing";
  BenchConfig c = small_config();
  c.kv = {BenchKv{}, BenchKv{KvType::Q8, KvType::Q8}};
  int64_t total = 0, done = 0;
  BenchEvents ev;
  ev.start = [&](int64_t t) { total = t; };
  ev.run_done = [&] { ++done; };
  auto r = run_bench(c, ev);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(total, 2 * 2 * 2);  // 2 tests × 2 repetitions × 2 KV configurations
  EXPECT_EQ(done, total);
  ASSERT_EQ(r->rows.size(), 4u);
  for (const auto& row : r->rows) {
    const double med = row.at("median_ts").get<double>();
    EXPECT_GT(med, 0);
    EXPECT_LE(row.at("min_ts").get<double>(), med);
    EXPECT_GE(row.at("max_ts").get<double>(), med);
    EXPECT_EQ(row.at("samples_ns").size(), 2u);
    EXPECT_EQ(row.at("threads").get<int>(), 2);
  }
  EXPECT_EQ(r->rows[0].at("test"), "pp16");
  EXPECT_EQ(r->rows[1].at("type_k"), "q8");
  EXPECT_TRUE(r->rows[1].contains("ratio_to_first_kv"));
  EXPECT_EQ(r->rows[2].at("test"), "tg8");
  const std::string md = format_bench_markdown(*r);
  EXPECT_NE(md.find("| stories260K.gguf |"), std::string::npos) << md;
  EXPECT_NE(md.find("medians of 2 repetitions"), std::string::npos) << md;
}

TEST(BenchRun, BadConfigurationsAreErrors) {
  BenchConfig none = small_config();
  none.n_prompt = {0};
  none.n_gen = {0};
  auto r = run_bench(none);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("no tests"), std::string::npos);

  BenchConfig peer = small_config();
  peer.peer = BenchPeer{"/nonexistent/pocketlm-peer"};
  r = run_bench(peer);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().setting(), "peer");
  EXPECT_NE(r.error().message().find("/nonexistent/pocketlm-peer"), std::string::npos);

  BenchConfig missing = small_config();
  missing.models = {"/nonexistent/model.gguf"};
  r = run_bench(missing);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("/nonexistent/model.gguf"), std::string::npos) << r.error().message();
}

}  // namespace
}  // namespace pocketlm
