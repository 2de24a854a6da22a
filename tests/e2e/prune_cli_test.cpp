// `pocketlm prune` end to end: the dry run's plan (nothing written), the CLI's errors (no file), and (peer) the
// pruned files in llama.cpp: stories260K with a block, half the heads of every KV group and half the FFN gone
// (and with the repair), with whole KV groups gone, and the Gemma 3 270M release with two blocks gone (its
// sliding-window layout rewritten per layer) and a quarter of its heads: llama.cpp loads each, its greedy
// continuation is pocketlm's (a divergence only at a near tie, where llama.cpp's f16 and f32 KV caches also
// disagree) and the top-1 agreement is at least llama.cpp's agreement with itself across KV types.
#include <gtest/gtest.h>

#include <unistd.h>
#include <filesystem>
#include <iostream>

#include "e2e/cli_runner.h"
#include "e2e/peer_client.h"
#include "e2e/peer_compare.h"
#include "gguf/reader.h"
#include "model/model.h"
#include "runtime/session.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

namespace fs = std::filesystem;

std::string out_path(const std::string& name) {
  return (fs::temp_directory_path() / ("plm_prune_cli_" + std::to_string(::getpid()) + "_" + name + ".gguf")).string();
}
std::string stories() { return test::stories_path().string(); }
std::string tinystories() { return (test::shared_dir() / "testdata/text/tinystories-val.dev.txt").string(); }

TEST(PruneCli, DryRunPrintsThePlanAndWritesNothing) {
  const std::string out = out_path("dry");
  const auto r =
      test::run_cli({"prune", stories(), out, "--layers", "4", "--ffn-keep", "0.5", "--heads-keep", "0.5", "--calib",
                     tinystories(), "--calib-tokens", "256", "--calib-ctx", "128", "--dry-run", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("arch llama: 5 -> 4 layers, heads 8/4 kv -> 4/4 kv (head size 8), FFN 172 -> 86"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("angular distance"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("dropped"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("saves"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("dry run: nothing written"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(out));
}

TEST(PruneCli, ErrorsNameTheFlagAndLeaveNoFile) {
  const std::string out = out_path("bad");
  struct Case {
    std::vector<std::string> args;
    std::string words;
  } cases[] = {
      {{"--drop-layers", "0-4"}, "dropping all 5 layers leaves no model (set with --drop-layers)"},
      {{"--heads-keep", "0.375", "--calib", tinystories()}, "GQA grouping does not allow"},
      {{"--ffn-keep", "0.5"}, "give --calib TEXT or --tasks FILE.jsonl"},
      {{"--drop-layers", "1,x"}, "'x' is not a layer index or range"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"prune", stories(), out, "-q"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const auto r = test::run_cli(args);
    EXPECT_NE(r.exit_code, 0) << c.words;
    EXPECT_NE(r.err.find(c.words), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(out)) << c.words;
  }
}

// pocketlm against llama.cpp on a pruned file: greedy continuations and top-1 agreement.
void expect_llama_cpp_agrees(const std::string& path, const std::string& text_file, int positions, const char* prompt) {
  auto m = Model::load(path);
  ASSERT_TRUE(m.ok()) << m.error().message();
  const auto make = [&](int64_t n_ctx) {
    return [&, n_ctx] {
      auto s = Session::create(**m, SessionOptions{.n_ctx = n_ctx, .kv_type = KvType::F16, .n_threads = 2});
      EXPECT_TRUE(s.ok());
      return std::move(s).value();
    };
  };
  const std::vector<std::string> greedy = {"greedy", "-m", path, "-p", prompt, "-n", "24", "-t", "2"};
  const auto peer = test::run_peer(greedy);
  auto f32_args = greedy;
  for (const char* f : {"-ctk", "f32", "-ctv", "f32"}) f32_args.push_back(f);
  const bool peer_agrees = test::json_ids(test::run_peer(f32_args).at("ids")) == test::json_ids(peer.at("ids"));
  const auto prompt_ids = test::json_ids(peer.at("prompt_ids"));
  const auto& stop = peer.at("stop");
  const int32_t eog = stop.is_object() ? stop.at("eog").get<int32_t>() : -1;
  const test::GreedyPrompt gp{"prompt", prompt};
  const auto r = test::compare_greedy(gp, prompt_ids, test::json_ids(peer.at("ids")), eog, peer.at("text"),
                                      make(static_cast<int64_t>(prompt_ids.size()) + 25), (*m)->tokenizer());
  std::cout << "[ " << fs::path(path).filename().string() << " ] greedy " << r.detail << std::endl;
  if (!r.identical) {
    EXPECT_FALSE(peer_agrees) << "differs where llama.cpp agrees with itself: " << r.detail;
    EXPECT_LE(r.gap, test::kGreedyNearTie) << "not a near tie where llama.cpp agrees with itself: " << r.detail;
  }

  const std::vector<std::string> top1 = {
      "top1", "-m", path, "-f", text_file, "--positions", std::to_string(positions), "-c", std::to_string(positions),
      "-t",   "2"};
  const test::TempFile logits(""), logits_f32("");
  auto a = top1;
  a.insert(a.end(), {"--logits-out", logits.str()});
  const auto p16 = test::run_peer(a);
  const auto cmp = test::compare_top1(p16, logits.path(), make(positions));
  a = top1;
  a.insert(a.end(), {"-ctk", "f32", "-ctv", "f32", "--logits-out", logits_f32.str()});
  const auto p32 = test::run_peer(a);
  const auto self =
      test::compare_peer_runs(test::json_ids(p16.at("top1")), test::json_ids(p32.at("top1")), logits.path(),
                              logits_f32.path(), static_cast<size_t>((*m)->config().n_vocab));
  std::cout << "[ " << fs::path(path).filename().string() << " ] top-1 " << cmp.agree << "/" << cmp.positions
            << " (llama.cpp f16 vs f32 KV: " << self.agree << "/" << self.positions << ", KL "
            << self.kl_sum / static_cast<double>(self.positions) << "), KL "
            << cmp.kl_sum / static_cast<double>(cmp.positions) << std::endl;
  // The bar: top-1 at least llama.cpp's agreement with itself; a pruned model's flatter distributions
  // meet near ties more often, so 2 % of the positions of slack (as the architecture peer tests allow).
  EXPECT_GE(static_cast<double>(cmp.agree), static_cast<double>(self.agree) - 0.02 * positions);
}

TEST(PrunePeer, PrunedStoriesRunAlikeInLlamaCpp) {
  POCKETLM_REQUIRE_PEER();
  struct Variant {
    const char* name;
    std::vector<std::string> flags;
  } variants[] = {
      {"all", {"--layers", "4", "--heads-keep", "0.5", "--ffn-keep", "0.5"}},
      {"repaired", {"--layers", "4", "--heads-keep", "0.5", "--ffn-keep", "0.5", "--repair"}},
      {"kvgroups", {"--heads-keep", "0.75", "--score", "bi", "--layers", "4"}},
  };
  for (const Variant& v : variants) {
    SCOPED_TRACE(v.name);
    const std::string out = out_path(v.name);
    std::vector<std::string> args = {"prune",          stories(), out,           "--calib", tinystories(),
                                     "--calib-tokens", "512",     "--calib-ctx", "128",     "-q"};
    args.insert(args.end(), v.flags.begin(), v.flags.end());
    const auto r = test::run_cli(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    expect_llama_cpp_agrees(out, tinystories(), 128, "Once upon a time, there was a little");
    fs::remove(out);
  }
}

TEST(PrunePeer, PrunedGemma3ReleaseRunsAlikeInLlamaCpp) {
  POCKETLM_REQUIRE_PEER();
  if (!fs::exists(test::gemma3_path())) GTEST_SKIP() << test::gemma3_path() << " missing: run scripts/fetch-models.sh";
  const std::string out = out_path("gemma3");
  // Blocks 3 and 4 (both local): the kept layers' flags no longer follow the period of 6.
  const auto r = test::run_cli({"prune", test::gemma3_path().string(), out, "--drop-layers", "3,4", "--heads-keep",
                                "0.75", "--calib", tinystories(), "--calib-tokens", "256", "--calib-ctx", "128", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto f = GgufFile::open(out);
  ASSERT_TRUE(f.ok());
  const GgufValue* pat = f->find("gemma3.attention.sliding_window_pattern");
  ASSERT_NE(pat, nullptr);
  ASSERT_EQ(pat->arr.size(), 16u);
  EXPECT_EQ(pat->arr[3].u, 0u);  // input block 5 (global) is output block 3
  EXPECT_EQ(pat->arr[4].u, 1u);  // input block 6 (local)
  EXPECT_EQ(pat->arr[9].u, 0u);  // input block 11 (global)
  EXPECT_EQ(*f->get_int("gemma3.attention.head_count"), 3);
  expect_llama_cpp_agrees(out, test::wiki_path().string(), 128, "The capital of France is");
  fs::remove(out);
}

}  // namespace
}  // namespace pocketlm
