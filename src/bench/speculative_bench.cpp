#include "bench/speculative_bench.h"

#include "bench/speed_test.h"
#include "runtime/speculative/draft_length.h"

namespace pocketlm {

double SpeculativeBenchResult::draft_cost() const {
  if (stats.drafted == 0 || plain_seconds_per_token <= 0) return 0;
  return stats.draft_seconds / static_cast<double>(stats.drafted) / plain_seconds_per_token;
}

double SpeculativeBenchResult::predicted_speedup() const {
  return pocketlm::predicted_speedup(acceptance(), draft_length(), draft_cost(), /*verify_cost_per_token=*/0.0);
}

Expected<SpeculativeBenchResult> bench_speculative(const Model& target, Session& session, DraftSource& draft,
                                                   const SpeculativeBenchOptions& o) {
  if (o.prompt.empty()) return Error("speculative bench: the prompt is empty");
  if (o.n_gen < 2 || o.reps < 1) return Error("speculative bench: needs at least 2 tokens and 1 repetition");
  SpeculativeBenchResult res;
  std::vector<double> plain_step;
  std::vector<int32_t> plain_tokens;
  auto run = [&](DraftSource* d, int n) -> Expected<GenerateResult> {
    session.reset();
    Sampler sampler(o.sampling);
    for (int32_t t : o.prompt) sampler.accept(t);
    GenerateOptions g{.max_tokens = n, .ignore_eos = true};
    g.draft = o.draft;
    return Generator(session, target.tokenizer(), d).generate(o.prompt, sampler, g);
  };
  for (DraftSource* warm : {static_cast<DraftSource*>(nullptr), &draft})
    if (auto w = run(warm, 4); !w) return w.error();
  for (int rep = 0; rep < o.reps; ++rep) {
    PLM_TRY(GenerateResult plain, run(nullptr, o.n_gen));
    PLM_TRY(GenerateResult spec, run(&draft, o.n_gen));
    res.plain_ts.push_back(plain.stats.tokens_per_second());
    res.spec_ts.push_back(spec.stats.tokens_per_second());
    if (plain.stats.decode_steps > 0)
      plain_step.push_back(plain.stats.decode_seconds / static_cast<double>(plain.stats.decode_steps));
    if (o.sampling.temp <= 0 && spec.tokens != plain.tokens) res.identical = false;
    const SpeculativeStats& s = spec.stats.speculative;
    res.stats.rounds += s.rounds;
    res.stats.drafted += s.drafted;
    res.stats.accepted += s.accepted;
    res.stats.draft_seconds += s.draft_seconds;
    res.stats.verify_seconds += s.verify_seconds;
  }
  res.plain_seconds_per_token = summarize(plain_step).median;
  return res;
}

}  // namespace pocketlm
