// pocketlm against the llama.cpp peer on every architecture of issue 21, each as a transplanted model
// (bench/transplant.h: SmolLM2-135M's weights as llama3, mistral, qwen2, qwen3, phi3 and smollm3; Gemma 3
// 270M's as gemma2), llama.cpp's flash attention off. The transplants are made from an f16 copy of the source
// (every matrix f16): with the quantized source (Q4_1, Q4_K_M) each matrix product first rounds its
// activations to 8 bits, a step function that turns any float-order difference into KL ~3.5e-3, a thousand
// times the f16 level. There, llama.cpp's f16-vs-f32 KV runs, pocketlm's AVX-512-vs-scalar paths and pocketlm
// vs llama.cpp all sit at that one noise floor, and the bar below would compare two samples of the same noise
// (docs/architectures.md, "Why f16 weights").
//  (a) next-token distributions over positions() positions of wiki.test.raw in one context, like for like:
//      pocketlm's f16 KV cache against llama.cpp's f16 run, and f32 against f32. Each: pocketlm's mean KL against
//      llama.cpp's logits no larger than llama.cpp's own between that run and its other KV type (or 1e-4,
//      whichever is larger); top-1 agreement at least llama.cpp's own across the two runs, a miss at a tie
//      (kTop1Tie) not counted. Both engines are deterministic: the same build gives the same bits run to run.
//  (b) greedy 64-token continuations of 5 prompts: wherever llama.cpp's two KV types give the same
//      continuation, pocketlm's is identical or parts from it only at a near tie (pocketlm's logits for its
//      pick and llama.cpp's within kNearTie).
// The figure is over 1,024 positions (docs/architectures.md); to keep the peer tier short the
// default is 256 positions, and 1,024 for gemma2 (so that the second half of its local layers runs through the
// 512-token window). POCKETLM_ARCH_POSITIONS=1024 gives the run for every architecture.
// POCKETLM_ARCH_MODELS=DIR runs the same checks on DIR/<target>.gguf (e.g. real checkpoints) instead.
#include <gtest/gtest.h>

#include <unistd.h>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <span>
#include <stdexcept>

#include "bench/transplant.h"
#include "e2e/peer_client.h"
#include "e2e/peer_compare.h"
#include "e2e/requantized_model.h"
#include "model/model.h"
#include "runtime/session.h"
#include "test_paths.h"

namespace pocketlm::test {
namespace {

namespace fs = std::filesystem;

constexpr int kThreads = 2;
constexpr int kGreedyTokens = 64;
// A divergence must be a near tie (in logits) where llama.cpp agrees with itself: the bound PeerGemma3 uses.
// Transplanted models are flatter than trained ones, so their greedy paths meet near ties often (seen: gaps of
// 0.06-0.26 where the KL and top-1 checks above are within llama.cpp's own f16/f32 spread).
constexpr float kNearTie = kGreedyNearTie;

int positions(const std::string& target) {
  const char* env = std::getenv("POCKETLM_ARCH_POSITIONS");
  return env ? std::max(16, std::atoi(env)) : target == "gemma2" ? 1024 : 256;
}

bool from_gemma(const std::string& target) { return target == "gemma2"; }

// The source with every matrix in f16 (norms stay f32), written once per source for the run (removed at exit).
const RequantizedModel& f16_source(const fs::path& source) {
  static std::map<std::string, std::unique_ptr<RequantizedModel>> cache;
  auto& slot = cache[source.string()];
  if (!slot) slot = std::make_unique<RequantizedModel>(source, "f16");
  return *slot;
}

// One transplanted model per target for the whole run (written on first use, removed at exit).
struct Transplanted {
  fs::path path;        // a transplant written for this run (removed at exit), or empty
  fs::path model_path;  // what the tests load
  std::unique_ptr<Model> model;
  std::string error;
  ~Transplanted() {
    model.reset();
    if (!path.empty()) fs::remove(path);
  }
};
Transplanted& transplanted(const std::string& target) {
  static std::map<std::string, std::unique_ptr<Transplanted>> cache;
  auto& slot = cache[target];
  if (slot) return *slot;
  slot = std::make_unique<Transplanted>();
  if (const char* dir = std::getenv("POCKETLM_ARCH_MODELS")) {
    slot->model_path = fs::path(dir) / (target + ".gguf");  // given files (real checkpoints), kept
  } else {
    slot->path = fs::temp_directory_path() / ("plm_peer_arch_" + std::to_string(::getpid()) + "_" + target + ".gguf");
    slot->model_path = slot->path;
    const RequantizedModel& from = f16_source(from_gemma(target) ? gemma3_path() : smollm2_path());
    if (!from.ok()) {
      slot->error = "f16 copy of the source: " + from.error();
      return *slot;
    }
    auto w = write_transplanted_model({.target = target, .from = from.path()}, slot->path.string());
    if (!w.ok()) {
      slot->error = "transplant: " + w.error().message();
      return *slot;
    }
  }
  auto m = Model::load(slot->model_path.string());
  if (m.ok())
    slot->model = std::move(m).value();
  else
    slot->error = "Model::load: " + m.error().message();
  return *slot;
}

class PeerArchs : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const fs::path from = from_gemma(GetParam()) ? gemma3_path() : smollm2_path();
    if (!std::getenv("POCKETLM_ARCH_MODELS") && !fs::exists(from))
      GTEST_SKIP() << from << " missing: run scripts/fetch-models.sh";
    POCKETLM_REQUIRE_PEER();
    if (std::getenv("POCKETLM_SANITIZED")) GTEST_SKIP() << "slow under sanitizers; the release job runs it";
    Transplanted& t = transplanted(GetParam());
    ASSERT_EQ(t.error, "");
    model_ = t.model.get();
    path_ = t.model_path.string();
  }
  std::unique_ptr<Session> new_session(int64_t n_ctx, KvType kv = KvType::F16) const {
    auto s = Session::create(*model_, SessionOptions{.n_ctx = n_ctx, .kv_type = kv, .n_threads = kThreads});
    if (!s.ok()) throw std::runtime_error("Session::create: " + s.error().message());
    return std::move(s).value();
  }
  const Model* model_ = nullptr;
  std::string path_;
};

// One like-for-like comparison: pocketlm's cache type against llama.cpp's same type (`ours`, KL(llama.cpp ||
// pocketlm)), and llama.cpp's own spread from that reference to its other KV type (`self`).
void expect_within_own_spread(const std::string& arch, const char* kv, const Top1Comparison& ours,
                              const Top1Comparison& self) {
  const auto n = static_cast<double>(ours.positions);
  const double kl = ours.kl_sum / n, self_kl = self.kl_sum / n, bar = std::max(self_kl, 1e-4);
  std::cout << "[ " << arch << " ] " << kv << " KV, " << ours.positions << " positions: pocketlm vs llama.cpp KL " << kl
            << " (max " << ours.kl_max << "), top-1 " << ours.agree << "/" << ours.positions << " (" << ours.ties
            << " of the misses at ties); llama.cpp's own (" << kv << " vs the other KV type) KL " << self_kl << " (max "
            << self.kl_max << "), top-1 " << self.agree << " (" << self.ties
            << " at ties); next-token accuracy pocketlm " << 100.0 * static_cast<double>(ours.ours_correct) / n
            << " %, llama.cpp " << 100.0 * static_cast<double>(ours.peer_correct) / n << " %; strict bar: KL "
            << (kl <= bar ? "met" : "missed") << ", top-1 " << (ours.agree >= self.agree ? "met" : "missed") << "\n";
  ::testing::Test::RecordProperty(std::string("kl_") + kv, std::to_string(kl));
  ::testing::Test::RecordProperty(std::string("peer_self_kl_") + kv, std::to_string(self_kl));
  // The bar: KL <= max(llama.cpp's own, 1e-4).
  EXPECT_LE(kl, bar) << kv << " KV";
  // Top-1 at least llama.cpp's own, where a miss at a tie (llama.cpp's two best logits within kTop1Tie) is not
  // counted against pocketlm: such picks flip between llama.cpp's own two runs too.
  EXPECT_GE(ours.agree + ours.ties, self.agree) << kv << " KV";
  // A transplant must stay a language model, its distributions peaked: next-token accuracy far above chance
  // (1 / n_vocab). Measured by llama.cpp on 1,024 positions: 17 % (gemma2) to 52 % (qwen2, mistral).
  EXPECT_GT(static_cast<double>(ours.peer_correct) / n, 0.10);
}

TEST_P(PeerArchs, KlAndTop1WithinLlamaCppsOwnSpread) {
  const int n_pos = positions(GetParam());
  const std::vector<std::string> top1_args = {"top1",
                                              "-m",
                                              path_,
                                              "-f",
                                              wiki_path().string(),
                                              "--positions",
                                              std::to_string(n_pos),
                                              "-c",
                                              std::to_string(n_pos),
                                              "-t",
                                              std::to_string(kThreads)};
  const TempFile logits_f16(""), logits_f32("");
  auto args = top1_args;
  args.insert(args.end(), {"--logits-out", logits_f16.str()});
  const auto peer_f16 = run_peer(args);
  args = top1_args;
  args.insert(args.end(), {"-ctk", "f32", "-ctv", "f32", "--logits-out", logits_f32.str()});
  const auto peer_f32 = run_peer(args);
  const auto n_vocab = peer_f16.at("n_vocab").get<int64_t>();
  ASSERT_EQ(model_->config().n_vocab, n_vocab);
  ASSERT_EQ(peer_f16.at("chunks").size(), 1u);
  ASSERT_EQ(peer_f16.at("tokens"), peer_f32.at("tokens"));

  const auto top1_f16 = json_ids(peer_f16.at("top1")), top1_f32 = json_ids(peer_f32.at("top1"));
  const auto vocab = static_cast<size_t>(n_vocab);
  const Top1Comparison ours_f16 =
      compare_top1(peer_f16, logits_f16.path(), [&] { return new_session(n_pos, KvType::F16); });
  const Top1Comparison self_f16 = compare_peer_runs(top1_f16, top1_f32, logits_f16.path(), logits_f32.path(), vocab);
  ASSERT_EQ(ours_f16.positions, static_cast<size_t>(n_pos));
  ASSERT_EQ(self_f16.positions, ours_f16.positions);
  expect_within_own_spread(GetParam(), "f16", ours_f16, self_f16);

  const Top1Comparison ours_f32 =
      compare_top1(peer_f32, logits_f32.path(), [&] { return new_session(n_pos, KvType::F32); });
  const Top1Comparison self_f32 = compare_peer_runs(top1_f32, top1_f16, logits_f32.path(), logits_f16.path(), vocab);
  ASSERT_EQ(ours_f32.positions, static_cast<size_t>(n_pos));
  ASSERT_EQ(self_f32.positions, ours_f32.positions);
  expect_within_own_spread(GetParam(), "f32", ours_f32, self_f32);
}

TEST_P(PeerArchs, GreedyContinuationsMatchWhereLlamaCppAgreesWithItself) {
  const GreedyPrompt prompts[] = {
      {"story", "Once upon a time, in a small village by the sea, there lived an old fisherman who"},
      {"question", "Question: Why is the sky blue?\nAnswer: The sky is blue because"},
      {"code", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"},
      {"history", "The Roman Empire was one of the largest empires in history. It"},
      {"list", "Things to pack for a camping trip:\n1. Tent\n2."},
  };
  // CI runs the first prompt per architecture (each prompt is three 64-token runs, over a minute per architecture
  // on the 2-core machine); POCKETLM_SLOW_TESTS=1 runs all five, the check.
  const size_t n_prompts = std::getenv("POCKETLM_SLOW_TESTS") ? std::size(prompts) : 1;
  int identical = 0, stable = 0;
  for (const GreedyPrompt& p : std::span(prompts).first(n_prompts)) {
    const std::vector<std::string> args = {
        "greedy", "-m", path_, "-p", p.text, "-n", std::to_string(kGreedyTokens), "-t", std::to_string(kThreads)};
    const auto peer = run_peer(args);
    auto f32_args = args;
    for (const char* flag : {"-ctk", "f32", "-ctv", "f32"}) f32_args.push_back(flag);
    const bool peer_agrees = json_ids(run_peer(f32_args).at("ids")) == json_ids(peer.at("ids"));
    const auto prompt = json_ids(peer.at("prompt_ids"));
    const auto& stop = peer.at("stop");
    const int32_t eog = stop.is_object() ? stop.at("eog").get<int32_t>() : -1;
    EXPECT_EQ(model_->tokenizer().encode(p.text, true, false), prompt) << p.name << ": prompt tokenization";
    const int64_t n_ctx = static_cast<int64_t>(prompt.size()) + kGreedyTokens + 1;
    const auto r = compare_greedy(
        p, prompt, json_ids(peer.at("ids")), eog, peer.at("text"), [&] { return new_session(n_ctx); },
        model_->tokenizer());
    std::cout << "[ " << GetParam() << " ] greedy " << r.detail
              << " (llama.cpp f16 vs f32 KV: " << (peer_agrees ? "same" : "differ") << ")\n";
    identical += r.identical ? 1 : 0;
    stable += peer_agrees ? 1 : 0;
    if (peer_agrees && !r.identical) {
      EXPECT_LE(r.gap, kNearTie) << p.name << ": not a near tie where llama.cpp agrees with itself: " << r.detail;
    }
  }
  std::cout << "[ " << GetParam() << " ] greedy: " << identical << "/" << n_prompts
            << " identical to llama.cpp; llama.cpp f16 vs f32 KV agree on " << stable << "\n";
}

INSTANTIATE_TEST_SUITE_P(Transplants, PeerArchs, ::testing::ValuesIn(transplant_targets()),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

}  // namespace
}  // namespace pocketlm::test
