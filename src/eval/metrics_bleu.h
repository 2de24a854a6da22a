#pragma once
// BLEU as sacreBLEU computes it (sacrebleu 2.x: tokenizer "13a" — mteval-v13a's — case-sensitive, n-grams
// 1..4, the reference length closest to the hypothesis length (the shorter on ties), "exp" smoothing
// (mteval's NIST smoothing: the k-th order with no match gets precision 1 / (2^k · total))). Sentence BLEU
// uses the effective order (orders with no hypothesis n-gram are left out), as sacrebleu.sentence_bleu;
// corpus BLEU sums the statistics over segments and does not, as sacrebleu.corpus_bleu. Scores in [0, 100].
//
// Commit messages are scored with B-Norm BLEU (see nngen_bleu below and docs/evaluation-tasks.md).
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pocketlm {

inline constexpr int kBleuOrder = 4;

// mteval-v13a tokenization as sacrebleu's Tokenizer13a (the input is not lowercased).
std::string tokenize_13a(std::string_view line);

struct BleuStats {
  int64_t sys_len = 0, ref_len = 0;
  std::array<int64_t, kBleuOrder> correct{}, total{};
};
BleuStats bleu_stats(std::string_view hypothesis, const std::vector<std::string>& references);
double bleu_from_stats(const BleuStats& s, bool effective_order);
double sentence_bleu(std::string_view hypothesis, const std::vector<std::string>& references);
double corpus_bleu(const std::vector<std::string>& hypotheses, const std::vector<std::vector<std::string>>& references);

// B-Norm: the sentence-level BLEU that Tao et al. call B-Norm ("On the
// Evaluation of Commit Message Generation Models", ICSME 2021; the script descends from Moses' bleu.py by
// Hieu Hoang): hypothesis and references stripped, lowercased and split into runs of word characters and
// single other characters; then mteval-v11a-style normalization; n-grams 1..4 with clipped counts against
// all references; the *shortest* reference length; add-one smoothing on orders 2..4; brevity penalty
// min(0, 1 - (r+1)/(c+1)) in log space. Returns a score in [0, 100] (the script's mean over sentences is the
// mean of these). NNGen's own paper reports B-Moses (corpus multi-bleu.perl), which this is not; see
// docs/evaluation-tasks.md.
double nngen_bleu(std::string_view hypothesis, const std::vector<std::string>& references);

}  // namespace pocketlm
