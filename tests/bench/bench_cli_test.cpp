// pocketlm bench: the JSON it prints, its argument checks, the roofline arithmetic and the llama.cpp path.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "bench/child_process.h"
#include "bench/roofline.h"
#include "bench/speed_test.h"
#include "e2e/cli_runner.h"
#include "e2e/peer_client.h"
#include "model/model.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

using nlohmann::json;

#define REQUIRE_STORIES()                                                                     \
  do {                                                                                        \
    if (!std::filesystem::exists(test::stories_path()))                                       \
      GTEST_SKIP() << test::stories_path() << " absent (the shared data folder provides it)"; \
  } while (0)

void expect_stats(const json& r, size_t n) {
  ASSERT_TRUE(r.contains("samples_ts"));
  ASSERT_EQ(r.at("samples_ts").size(), n);
  std::vector<double> ts = r.at("samples_ts").get<std::vector<double>>();
  for (double v : ts) EXPECT_GT(v, 0);
  EXPECT_DOUBLE_EQ(r.at("median_ts").get<double>(), summarize(ts).median);
  EXPECT_LE(r.at("min_ts").get<double>(), r.at("median_ts").get<double>());
  EXPECT_GE(r.at("max_ts").get<double>(), r.at("median_ts").get<double>());
}

TEST(BenchCli, JsonHasOneObjectPerModelTestAndThreadCount) {
  REQUIRE_STORIES();
  const std::string m = test::stories_path().string();
  auto r = test::run_cli(
      {"bench", "-m", m, "-p", "32", "-n", "8", "-t", "1,2", "-r", "2", "-o", "json", "--bandwidth-mib", "32"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json rows = json::parse(r.out);
  ASSERT_TRUE(rows.is_array());
  ASSERT_EQ(rows.size(), 4u);  // (pp32, tg8) × (1, 2 threads)
  std::set<std::pair<std::string, int>> seen;
  for (const json& row : rows) {
    EXPECT_EQ(row.at("model").get<std::string>(), m);
    seen.insert({row.at("test").get<std::string>(), row.at("threads").get<int>()});
    expect_stats(row, 2);
    EXPECT_EQ(row.at("samples_ns").size(), 2u);
    EXPECT_FALSE(row.contains("peer"));
    const bool tg = row.at("test") == "tg8";
    EXPECT_EQ(row.contains("roofline_pct"), tg);
    if (tg) {
      EXPECT_GT(row.at("bandwidth_gbs").get<double>(), 0.1);
      EXPECT_DOUBLE_EQ(row.at("mean_context").get<double>(), 4.5);
      EXPECT_NEAR(row.at("roofline_ts").get<double>(),
                  row.at("bandwidth_gbs").get<double>() * 1e9 / row.at("bytes_per_token").get<double>(), 1e-6);
      EXPECT_NEAR(row.at("roofline_pct").get<double>(),
                  100 * row.at("median_ts").get<double>() / row.at("roofline_ts").get<double>(), 1e-9);
      EXPECT_NEAR(row.at("effective_gbs").get<double>(),
                  row.at("median_ts").get<double>() * row.at("bytes_per_token").get<double>() / 1e9, 1e-9);
    }
  }
  EXPECT_EQ(seen, (std::set<std::pair<std::string, int>>{{"pp32", 1}, {"pp32", 2}, {"tg8", 1}, {"tg8", 2}}));
  EXPECT_NE(r.err.find("read bandwidth"), std::string::npos);  // progress on stderr

  // -p 0 skips pp; the default output is a markdown table.
  r = test::run_cli({"bench", "-m", m, "-p", "0", "-n", "4", "-t", "1", "-r", "1", "--no-bandwidth"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| model | size | params | threads | KV | test | t/s | vs first KV |"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("| f16/f16 | tg4 |"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("pp"), std::string::npos) << r.out;
}

// -ctk/-ctv lists pair up by position and run in the same invocation; -d prefills a depth before each test.
TEST(BenchCli, KvTypeListsAndDepth) {
  REQUIRE_STORIES();
  const std::string m = test::stories_path().string();
  auto r = test::run_cli({"bench",          "-m",   m,        "-p",   "0",      "-n", "4",    "-t", "1",   "-r", "2",
                          "--no-bandwidth", "-ctk", "f16,q8", "-ctv", "f16,q8", "-d", "0,16", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto rows = nlohmann::json::parse(r.out);
  ASSERT_EQ(rows.size(), 4u);  // 2 KV pairs x 2 depths
  std::set<std::pair<std::string, int64_t>> seen;
  for (const auto& row : rows) {
    seen.insert({row.at("type_k").get<std::string>() + "/" + row.at("type_v").get<std::string>(),
                 row.at("n_depth").get<int64_t>()});
    EXPECT_EQ(row.at("samples_ns").size(), 2u);
    EXPECT_EQ(row.contains("ratio_to_first_kv"), row.at("type_k") == "q8");
  }
  EXPECT_EQ(seen,
            (std::set<std::pair<std::string, int64_t>>{{"f16/f16", 0}, {"q8/q8", 0}, {"f16/f16", 16}, {"q8/q8", 16}}));
  EXPECT_EQ(rows[2].at("test"), "tg4 @ d16");
}

TEST(BenchCli, ArgumentErrorsAreNamed) {
  REQUIRE_STORIES();
  const std::string m = test::stories_path().string();
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{"bench", "-m", m, "-p", "12x"}, "-p: '12x'"},
      {{"bench", "-m", m, "-n", "8,,9"}, "-n: ''"},
      {{"bench", "-m", m, "-t", "0"}, "-t: '0'"},
      {{"bench", "-m", m, "-p", "0", "-n", "0"}, "no tests"},
      {{"bench", "-m", m, "-ctk", "f16,q8", "-ctv", "f16,q8,f32"}, "-ctk has 2 types and -ctv 3"},
      {{"bench", "-m", m, "-ctk", "q9"}, "-ctk"},
      {{"bench", "-m", m, "-d", "-4"}, "-d"},
      {{"bench", "-m", m, "-r", "0"}, "-r"},
      {{"bench", "-m", m, "-o", "csv"}, "csv"},
      {{"bench", "-m", m + ".missing"}, "missing"},
      {{"bench", "-m", m, "--peer", "llamacpp", "--peer-bin", "/nonexistent/pocketlm-peer"},
       "/nonexistent/pocketlm-peer"},
      {{"bench", "-m", m, "--peer", "vllm"}, "vllm"},
  };
  for (const Case& c : cases) {
    auto r = test::run_cli(c.args);
    EXPECT_NE(r.exit_code, 0) << c.says;
    EXPECT_NE((r.err + r.out).find(c.says), std::string::npos) << c.says << "\n" << r.err;
  }
}

TEST(Roofline, BytesPerTokenOfStories260K) {
  REQUIRE_STORIES();
  auto m = Model::load(test::stories_path().string());
  ASSERT_TRUE(m.ok());
  const GgufFile& f = (*m)->gguf();
  const ModelConfig& c = (*m)->config();
  // Every tensor is read once per token, except the token embedding: one row, unless it is the head.
  uint64_t expect = 0;
  for (const GgufTensor& t : f.tensors()) expect += t.nbytes;
  const GgufTensor* emb = f.tensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  if (!c.tied_embeddings) expect = expect - emb->nbytes + static_cast<uint64_t>(emb->ne[0]) * 4;  // F32 row
  const DecodeBytes d = decode_bytes(**m, KvType::F16);
  EXPECT_EQ(d.weights, expect);
  EXPECT_EQ(d.kv_per_position, static_cast<uint64_t>(c.n_layer * c.n_head_kv * (c.head_dim + c.head_dim_v) * 2));
  EXPECT_EQ(decode_bytes(**m, KvType::F32).kv_per_position, 2 * d.kv_per_position);
  EXPECT_DOUBLE_EQ(tg_mean_context(128), 64.5);
  EXPECT_DOUBLE_EQ(d.per_token(64.5), static_cast<double>(expect) + 64.5 * static_cast<double>(d.kv_per_position));
  EXPECT_DOUBLE_EQ(roofline_tokens_per_s(10.0, 1e9), 10.0);
}

TEST(Roofline, SummaryStatistics) {
  const SampleStats s = summarize({4, 1, 3, 2});
  EXPECT_DOUBLE_EQ(s.median, 2.5);
  EXPECT_DOUBLE_EQ(s.min, 1);
  EXPECT_DOUBLE_EQ(s.max, 4);
  EXPECT_DOUBLE_EQ(s.mean, 2.5);
  EXPECT_NEAR(s.stdev, 1.2909944, 1e-6);
  EXPECT_DOUBLE_EQ(summarize({5, 1, 3}).median, 3);
}

TEST(ChildProcessTest, LinesGoBothWays) {
  auto c = ChildProcess::spawn({"/bin/cat"});
  ASSERT_TRUE(c.ok()) << c.error().message();
  ASSERT_TRUE((*c)->write_line("hello").ok());
  auto l = (*c)->read_line();
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(*l, "hello");
  EXPECT_EQ((*c)->finish(), 0);
  auto gone = ChildProcess::spawn({"/nonexistent/program"});
  EXPECT_FALSE(gone.ok());
  auto quiet = ChildProcess::spawn({"/bin/true"});
  ASSERT_TRUE(quiet.ok());
  EXPECT_FALSE((*quiet)->read_line().ok());
}

TEST(BenchCli, PeerRunsTheSameTestsInterleaved) {
  REQUIRE_STORIES();
  POCKETLM_REQUIRE_PEER();
  if (std::getenv("POCKETLM_SANITIZED"))
    GTEST_SKIP() << "timings under sanitizers mean nothing; the release job runs it";
  const std::string m = test::stories_path().string();
  auto r = test::run_cli({"bench", "-m", m, "-p", "16", "-n", "4", "-t", "1", "-r", "2", "-o", "json", "--peer",
                          "llamacpp", "--peer-bin", test::peer_binary()->string(), "--bandwidth-mib", "32"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json rows = json::parse(r.out);
  ASSERT_EQ(rows.size(), 2u);
  for (const json& row : rows) {
    ASSERT_TRUE(row.contains("peer")) << row.dump();
    const json& p = row.at("peer");
    expect_stats(p, 2);
    EXPECT_EQ(p.at("repack").get<bool>(), true);  // llama-bench's default
    EXPECT_EQ(p.at("flash_attn_asked").get<std::string>(), "auto");
    EXPECT_TRUE(p.at("flash_attn") == "enabled" || p.at("flash_attn") == "disabled") << p.dump();
    EXPECT_DOUBLE_EQ(row.at("ratio").get<double>(),
                     row.at("median_ts").get<double>() / p.at("median_ts").get<double>());
    EXPECT_EQ(p.at("n_ctx").get<int>() >= (row.at("test") == "pp16" ? 16 : 4), true);
  }
  EXPECT_TRUE(rows[1].at("peer").contains("roofline_pct"));
  EXPECT_NEAR(rows[1].at("peer").at("effective_gbs").get<double>(),
              rows[1].at("peer").at("median_ts").get<double>() * rows[1].at("bytes_per_token").get<double>() / 1e9,
              1e-9);
  // The table names the ratio column and what llama.cpp ran with.
  r = test::run_cli({"bench", "-m", m, "-p", "0", "-n", "2", "-t", "1", "-r", "1", "--no-bandwidth", "--peer",
                     "llamacpp", "--peer-bin", test::peer_binary()->string(), "--peer-fa", "off"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| ratio |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("flash attention disabled (asked: off)"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace pocketlm
