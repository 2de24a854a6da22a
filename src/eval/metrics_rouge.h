#pragma once
// ROUGE-1, ROUGE-2 and ROUGE-L as Google's rouge-score package (rouge_score.rouge_scorer.RougeScorer,
// version 0.1.2) computes them with its default tokenizer and use_stemmer=False: text lowercased (Python
// str.lower), every run of characters outside [a-z0-9] a separator, no stemming. Scores are fractions in
// [0, 1]. With several references the score of each type is the one of the reference with the highest
// F-measure (RougeScorer.score_multi; the first on ties). See docs/evaluation-tasks.md.
#include <string>
#include <string_view>
#include <vector>

namespace pocketlm {

struct RougeScore {
  double precision = 0, recall = 0, fmeasure = 0;
};
struct RougeScores {
  RougeScore rouge1, rouge2, rougeL;
};

std::vector<std::string> rouge_tokenize(std::string_view text);
RougeScores rouge(std::string_view reference, std::string_view prediction);
RougeScores rouge_multi(const std::vector<std::string>& references, std::string_view prediction);

}  // namespace pocketlm
