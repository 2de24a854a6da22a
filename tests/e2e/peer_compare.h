#pragma once
// What the peer comparisons (pocketlm against llama.cpp through bench/peer) share: argmax and KL of logit
// rows, greedy continuations compared token by token, and top-1 agreement over the peer's `top1` output.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "runtime/session.h"
#include "tokenizer/tokenizer.h"

namespace pocketlm::test {

// Where a greedy continuation parts from llama.cpp's while llama.cpp agrees with itself (f16 vs f32 KV), the
// step must be a near tie: llama.cpp's two top logits at most this far apart in pocketlm's logits. The two
// engines sum floats in different orders and quantize activations differently; Gemma 3 and the transplanted
// architectures parted at gaps of 0.1-0.26.
inline constexpr float kGreedyNearTie = 0.5f;

int32_t argmax(std::span<const float> logits);
// KL(P || Q) of the softmaxes of two logit rows, in nats.
double kl_divergence(std::span<const float> p_logits, std::span<const float> q_logits);
std::string read_file(const std::filesystem::path& path);
std::filesystem::path wiki_path();  // shared/testdata/text/wiki.test.raw
// "first difference at index i: ... a b [c] d ..." for failure messages, or "identical".
std::string first_difference(const std::vector<int32_t>& ours, const std::vector<int32_t>& peer);

struct GreedyPrompt {
  const char* name;
  const char* text;
  bool parse_special = false;
};

struct GreedyOutcome {
  bool identical = false;
  float gap = 0.0f;  // at the first divergence: pocketlm's logit for its pick minus for the peer's
  std::string detail;
  size_t matched = 0;  // tokens equal before the first divergence
};

// Decodes greedily from `prompt` in a new session and compares with the peer's ids `want` (and its text,
// and, when the peer stopped at end-of-generation token `eog` >= 0, that pocketlm stops there too).
GreedyOutcome compare_greedy(const GreedyPrompt& p, const std::vector<int32_t>& prompt,
                             const std::vector<int32_t>& want, int32_t eog, const nlohmann::json& peer_text,
                             const std::function<std::unique_ptr<Session>()>& make_session, const Tokenizer& tok);

// A top-1 disagreement where the reference's two best logits are closer than this is a tie: float order alone
// flips such picks. On the f16 transplants (peer_archs_test.cpp) at 1,024 positions, every disagreement
// between llama.cpp's own f16-KV and f32-KV runs sat at a gap below 0.009.
inline constexpr double kTop1Tie = 0.01;

struct Top1Comparison {
  size_t positions = 0, agree = 0, ours_correct = 0, peer_correct = 0;
  size_t ties = 0;                    // disagreements at a tie (the reference's top two logits within kTop1Tie)
  double kl_sum = 0.0, kl_max = 0.0;  // KL(llama.cpp || pocketlm) per position
  // Largest |pocketlm - llama.cpp| of the logit of llama.cpp's top token (the scale of a "near tie").
  double max_top_logit_diff = 0.0, sum_top_logit_diff = 0.0;
};

// The same figures between two llama.cpp runs of one `top1` request (e.g. f16 vs f32 KV cache): how far
// llama.cpp moves from itself when only its own arithmetic changes. `top1_a` are run a's picks.
Top1Comparison compare_peer_runs(const std::vector<int32_t>& top1_a, const std::vector<int32_t>& top1_b,
                                 const std::filesystem::path& logits_a, const std::filesystem::path& logits_b,
                                 size_t n_vocab);

// Runs every chunk of the peer's `top1` answer (its "tokens" split by "chunks") through a fresh session and
// compares each position's argmax and distribution with the peer's (top1 ids; logits rows in the file the
// peer wrote with --logits-out). Fails the test (gtest assertions) on inconsistent peer output.
Top1Comparison compare_top1(const nlohmann::json& peer, const std::filesystem::path& peer_logits,
                            const std::function<std::unique_ptr<Session>()>& make_session);

}  // namespace pocketlm::test
