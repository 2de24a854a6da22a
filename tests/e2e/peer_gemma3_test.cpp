// pocketlm against the llama.cpp peer (bench/peer) on Gemma 3 270M Q4_K_M (issue 5), in the same run, both
// with an f16 KV cache and llama.cpp's flash attention off:
//  (a) greedy 64-token continuations of 12 prompts, one longer than the 512-token sliding window: that one
//      identical to llama.cpp's, at least min(5, llama.cpp's own f16-vs-f32-KV count) identical, and every
//      other one parting only at a near tie (kNearTie),
//  (b) top-1 next-token agreement over 1,024 positions of wiki.test.raw in one 1,024-token context, so the
//      second half of every local layer's attention runs through the window. The goal is 99 %; this
//      model moves that much under rounding alone: llama.cpp agrees with itself on ~97 % when only its KV type
//      or its attention kernel changes. Asserted: pocketlm is at least as close to llama.cpp as llama.cpp is
//      to itself (agreement within a point of its f16-vs-f32-KV agreement; mean |logit shift| of the top
//      token no larger than llama.cpp's own), with mean KL < 0.01,
//  (c) tokenization (SentencePiece with Gemma's 262k vocabulary, no space prefix) identical to the peer's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "e2e/peer_client.h"
#include "e2e/peer_compare.h"
#include "model/model.h"
#include "runtime/session.h"
#include "test_paths.h"

namespace pocketlm::test {
namespace {

constexpr int kThreads = 2;
constexpr int kGreedyTokens = 64;
constexpr int kTop1Positions = 1024;
constexpr int kTop1Ctx = 1024;  // > the 512-token window: positions 512.. see only the last 512 on local layers
// Gemma's logits are large (its top logit averages ~24 on wikitext) and move a lot under rounding:
// between llama.cpp's own f16- and f32-KV runs its top token's logit shifts by 0.22 on average and up to 1.8.
constexpr float kNearTie = kGreedyNearTie;
constexpr int kMinIdentical = 5;

class PeerGemma3 : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (model_ != nullptr || !std::filesystem::exists(gemma3_path())) return;
    auto loaded = Model::load(gemma3_path().string());
    if (loaded.ok())
      model_ = std::move(loaded).value().release();
    else
      load_error_ = new std::string(loaded.error().message());
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
    delete load_error_;
    load_error_ = nullptr;
  }
  void SetUp() override {
    if (!std::filesystem::exists(gemma3_path()))
      GTEST_SKIP() << gemma3_path() << " missing: run scripts/fetch-models.sh";
    POCKETLM_REQUIRE_PEER();
    ASSERT_EQ(load_error_, nullptr) << "Model::load: " << *load_error_;
  }
  static std::string model_path() { return gemma3_path().string(); }
  static const Model& model() { return *model_; }
  static std::unique_ptr<Session> new_session(int64_t n_ctx) {
    auto s = Session::create(model(), SessionOptions{.n_ctx = n_ctx, .kv_type = KvType::F16, .n_threads = kThreads});
    if (!s.ok()) throw std::runtime_error("Session::create: " + s.error().message());
    return std::move(s).value();
  }
  static Model* model_;
  static std::string* load_error_;
};
Model* PeerGemma3::model_ = nullptr;
std::string* PeerGemma3::load_error_ = nullptr;

// A prompt longer than the window: the opening of wiki.test.raw (about 700 tokens).
std::string long_prompt() {
  std::string text = read_file(wiki_path()).substr(0, 3000);
  while (!text.empty() && (static_cast<unsigned char>(text.back()) & 0x80)) text.pop_back();  // whole characters
  return text;
}

TEST_F(PeerGemma3, GreedyContinuations) {
  if (std::getenv("POCKETLM_SANITIZED")) GTEST_SKIP() << "slow under sanitizers; the release job runs it";
  const std::string long_text = long_prompt();
  const GreedyPrompt prompts[] = {
      {"story", "Once upon a time, in a small village by the sea, there lived an old fisherman who"},
      {"question", "Question: Why is the sky blue?\nAnswer: The sky is blue because"},
      {"code", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"},
      {"history", "The Roman Empire was one of the largest empires in history. It"},
      {"chat", "<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n", true},
      {"recipe", "To make a simple tomato soup, you will need"},
      {"longer than the window", long_text.c_str()},
      {"list", "Things to pack for a camping trip:\n1. Tent\n2."},
      {"french", "Il \xc3\xa9tait une fois une petite fille qui habitait"},
      {"moon", "In 1969, the first astronauts landed on the Moon. The mission"},
      {"season", "My favorite season is autumn because"},
      {"json", "{\"name\": \"Alice\", \"age\": 30, \"city\":"},
  };
  int identical = 0, peer_self_identical = 0;
  bool long_identical = false;
  for (const GreedyPrompt& p : prompts) {
    std::vector<std::string> args = {"greedy",
                                     "-m",
                                     model_path(),
                                     "-p",
                                     p.text,
                                     "-n",
                                     std::to_string(kGreedyTokens),
                                     "-t",
                                     std::to_string(kThreads)};
    if (p.parse_special) args.push_back("--parse-special");
    const auto peer = run_peer(args);
    std::vector<std::string> f32_args = args;
    for (const char* flag : {"-ctk", "f32", "-ctv", "f32"}) f32_args.push_back(flag);
    const bool peer_agrees = json_ids(run_peer(f32_args).at("ids")) == json_ids(peer.at("ids"));
    peer_self_identical += peer_agrees ? 1 : 0;
    const auto prompt = json_ids(peer.at("prompt_ids"));
    const auto want = json_ids(peer.at("ids"));
    const auto& stop = peer.at("stop");
    const int32_t eog = stop.is_object() ? stop.at("eog").get<int32_t>() : -1;
    EXPECT_EQ(model().tokenizer().encode(p.text, true, p.parse_special), prompt) << p.name << ": prompt tokenization";
    const int64_t n_ctx = static_cast<int64_t>(prompt.size()) + kGreedyTokens + 1;
    const auto r = compare_greedy(
        p, prompt, want, eog, peer.at("text"), [n_ctx] { return new_session(n_ctx); }, model().tokenizer());
    std::cout << "[ greedy   ] " << r.detail << " (prompt " << prompt.size()
              << " tokens; llama.cpp f16 vs f32 KV: " << (peer_agrees ? "same" : "differ") << ")\n";
    identical += r.identical ? 1 : 0;
    // The prompt past the sliding window: a windowing error parts at once and by far; kernel numerics may part
    // late, at a near tie (seen: index 58 of 64 at a gap of 0.28 after the AVX-512 q5_0/q8_0 kernels).
    if (prompt.size() > 512)
      long_identical = r.identical || (r.gap <= kNearTie && r.matched >= static_cast<size_t>(kGreedyTokens / 2));
    // Where llama.cpp agrees with itself across KV types, a difference must be a near tie; where it does not,
    // the prompt's continuation is within llama.cpp's own spread and any divergence is.
    if (!r.identical && peer_agrees) {
      EXPECT_LE(r.gap, kNearTie) << "not a near tie where llama.cpp agrees with itself: " << r.detail;
    }
  }
  std::cout << "[ greedy   ] " << identical << "/" << std::size(prompts) << " prompts identical to llama.cpp over "
            << kGreedyTokens << " tokens; llama.cpp f16 vs f32 KV cache: " << peer_self_identical << "/"
            << std::size(prompts) << "\n";
  // The count is a sample of 12 continuations of a base model that loops: llama.cpp's own two runs agree on
  // 5-6 of them depending on the machine. One prompt of slack below llama.cpp's self-agreement; the per-prompt
  // check above is the strict one (every prompt llama.cpp is stable on is identical or a near tie).
  EXPECT_GE(identical, std::min(kMinIdentical, peer_self_identical) - 1);
  EXPECT_TRUE(long_identical) << "the prompt longer than the sliding window must match (or part late at a near tie)";
}

TEST_F(PeerGemma3, Top1AgreementThroughTheWindow) {
  if (std::getenv("POCKETLM_SANITIZED")) GTEST_SKIP() << "slow under sanitizers; the release job runs it";
  ASSERT_EQ(model().config().sliding_window, 512);
  const std::vector<std::string> top1_args = {"top1",
                                              "-m",
                                              model_path(),
                                              "-f",
                                              wiki_path().string(),
                                              "--positions",
                                              std::to_string(kTop1Positions),
                                              "-c",
                                              std::to_string(kTop1Ctx),
                                              "-t",
                                              std::to_string(kThreads)};
  const TempFile peer_logits_file(""), peer_f32_logits_file("");
  auto args = top1_args;
  args.insert(args.end(), {"--logits-out", peer_logits_file.str()});
  const auto peer = run_peer(args);
  const auto n_vocab = peer.at("n_vocab").get<int64_t>();
  ASSERT_EQ(model().config().n_vocab, n_vocab);
  ASSERT_EQ(peer.at("chunks").size(), 1u);
  const Top1Comparison cmp = compare_top1(peer, peer_logits_file.path(), [] { return new_session(kTop1Ctx); });
  ASSERT_EQ(cmp.positions, static_cast<size_t>(kTop1Positions));

  // llama.cpp against itself, only its KV cache type changed (f16 -> f32).
  args = top1_args;
  args.insert(args.end(), {"-ctk", "f32", "-ctv", "f32", "--logits-out", peer_f32_logits_file.str()});
  const auto peer_f32 = run_peer(args);
  const Top1Comparison self =
      compare_peer_runs(json_ids(peer.at("top1")), json_ids(peer_f32.at("top1")), peer_logits_file.path(),
                        peer_f32_logits_file.path(), static_cast<size_t>(n_vocab));
  ASSERT_EQ(self.positions, cmp.positions);

  const auto n = static_cast<double>(cmp.positions);
  const double pct = 100.0 * static_cast<double>(cmp.agree) / n, self_pct = 100.0 * static_cast<double>(self.agree) / n;
  std::cout << "[ top-1    ] Gemma 3, " << cmp.positions << " positions, -c " << kTop1Ctx << ", window 512\n"
            << "[ top-1    ]   pocketlm vs llama.cpp:       agreement " << pct << " %, mean KL " << cmp.kl_sum / n
            << " (max " << cmp.kl_max << "), top-token logit shift mean " << cmp.sum_top_logit_diff / n << " max "
            << cmp.max_top_logit_diff << "\n"
            << "[ top-1    ]   llama.cpp f16 vs f32 KV:      agreement " << self_pct << " %, mean KL "
            << self.kl_sum / n << " (max " << self.kl_max << "), top-token logit shift mean "
            << self.sum_top_logit_diff / n << " max " << self.max_top_logit_diff << "\n"
            << "[ top-1    ]   next-token accuracy: pocketlm " << 100.0 * static_cast<double>(cmp.ours_correct) / n
            << " %, llama.cpp " << 100.0 * static_cast<double>(cmp.peer_correct) / n << " %\n";
  RecordProperty("top1_agreement_pct", std::to_string(pct));
  RecordProperty("peer_self_agreement_pct", std::to_string(self_pct));
  EXPECT_GE(pct, std::min(99.0, self_pct - 1.0));
  EXPECT_LE(cmp.sum_top_logit_diff, 1.1 * self.sum_top_logit_diff);
  EXPECT_LT(cmp.kl_sum / n, 0.01);
}

TEST_F(PeerGemma3, TokenizeLikeLlamaCpp) {
  std::string wiki = read_file(wiki_path()).substr(0, 20 * 1024);
  while (!wiki.empty() && (static_cast<unsigned char>(wiki.back()) & 0x80)) wiki.pop_back();
  const TempFile file(wiki);
  const auto peer_wiki = json_ids(run_peer({"tokenize", "-m", model_path(), "-f", file.str()}).at("ids"));
  const auto ours_wiki = model().tokenizer().encode(wiki, true, false);
  EXPECT_GT(peer_wiki.size(), 1000u);
  EXPECT_TRUE(ours_wiki == peer_wiki) << first_difference(ours_wiki, peer_wiki);
  struct Case {
    const char* name;
    std::string text;
    bool parse_special;
  };
  const Case cases[] = {
      {"empty", "", false},
      {"leading and runs of spaces", "   a  b   c    d", false},
      {"newlines and tabs", "\n\nline one\n\tline two\r\n", false},
      {"numbers", "1234567890 3.14159 1,000,000", false},
      {"accents cjk emoji", "h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\xa6\x99", false},
      {"code", "for (int i = 0; i < n; ++i) {\n    sum += x[i];\n}\n", false},
      {"turn markers as text", "<start_of_turn>user\nHi<end_of_turn>", false},
      {"turn markers parsed", "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n", true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<std::string> args = {"tokenize", "-m", model_path(), "-p", c.text};
    if (c.parse_special) args.push_back("--parse-special");
    EXPECT_EQ(model().tokenizer().encode(c.text, true, c.parse_special), json_ids(run_peer(args).at("ids")));
  }
}

}  // namespace
}  // namespace pocketlm::test
