#include "bench/speed_test.h"

#include <algorithm>
#include <cmath>

#include "util/stats.h"

namespace pocketlm {

Expected<double> time_speed_test(const Model& model, Session& s, const SpeedTest& t, bool warmup, std::mt19937& rng) {
  const Tokenizer& tok = model.tokenizer();
  const auto n_vocab = static_cast<uint32_t>(tok.n_vocab());
  auto random_token = [&] { return static_cast<int32_t>(rng() % n_vocab); };
  const int32_t first = tok.add_bos() && tok.bos() >= 0 ? tok.bos() : random_token();
  if (t.depth > 0 && s.n_past() >= t.depth && s.truncate(t.depth).ok()) {
    // the prefix from an earlier run is kept
  } else {
    s.reset();
    if (t.depth > 0) {
      std::vector<int32_t> prefix(static_cast<size_t>(t.depth));
      for (auto& id : prefix) id = random_token();
      prefix[0] = first;
      if (auto r = s.eval(prefix); !r) return r.error();
    }
  }
  if (t.kind == SpeedTest::Kind::Prompt) {
    std::vector<int32_t> ids(static_cast<size_t>(t.n));
    for (auto& id : ids) id = random_token();
    if (t.depth == 0) ids[0] = first;
    const double t0 = now_seconds();
    auto r = s.eval(ids);
    const double dt = now_seconds() - t0;
    if (!r) return r.error();
    return dt;
  }
  const int64_t n = warmup ? 1 : t.n;
  int32_t id = t.depth == 0 ? first : random_token();
  const double t0 = now_seconds();
  for (int64_t i = 0; i < n; ++i) {
    auto r = s.eval(std::span<const int32_t>(&id, 1));
    if (!r) return r.error();
    id = random_token();
  }
  return now_seconds() - t0;
}

SampleStats summarize(std::vector<double> v) {
  SampleStats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  s.median = percentile_sorted(std::span<const double>(v), 0.5);
  s.min = v.front();
  s.max = v.back();
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(n);
  double sq = 0;
  for (double x : v) sq += (x - s.mean) * (x - s.mean);
  s.stdev = n > 1 ? std::sqrt(sq / static_cast<double>(n - 1)) : 0.0;
  return s;
}

}  // namespace pocketlm
