#include "e2e/peer_compare.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "e2e/peer_client.h"
#include "test_paths.h"

namespace pocketlm::test {

int32_t argmax(std::span<const float> logits) {
  size_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return static_cast<int32_t>(best);
}

double kl_divergence(std::span<const float> p_logits, std::span<const float> q_logits) {
  const auto log_sum_exp = [](std::span<const float> x) {
    double m = x[0];
    for (const float v : x) m = std::max(m, static_cast<double>(v));
    double sum = 0.0;
    for (const float v : x) sum += std::exp(static_cast<double>(v) - m);
    return m + std::log(sum);
  };
  const double lp = log_sum_exp(p_logits);
  const double lq = log_sum_exp(q_logits);
  double kl = 0.0;
  for (size_t i = 0; i < p_logits.size(); ++i) {
    const double a = static_cast<double>(p_logits[i]) - lp;
    kl += std::exp(a) * (a - (static_cast<double>(q_logits[i]) - lq));
  }
  return kl;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return std::move(ss).str();
}

std::filesystem::path wiki_path() { return shared_dir() / "testdata" / "text" / "wiki.test.raw"; }

// "ids differ at index i: ... a b [c] d ..." around the first difference, for failure messages.
std::string first_difference(const std::vector<int32_t>& ours, const std::vector<int32_t>& peer) {
  size_t i = 0;
  while (i < ours.size() && i < peer.size() && ours[i] == peer[i]) ++i;
  if (i == ours.size() && i == peer.size()) return "identical";
  auto window = [i](const std::vector<int32_t>& v) {
    std::string s;
    const size_t lo = i >= 4 ? i - 4 : 0;
    for (size_t k = lo; k < std::min(v.size(), i + 5); ++k) {
      if (k == i) s += '[';
      s += std::to_string(v[k]);
      s += k == i ? "] " : " ";
    }
    return s;
  };
  return "first difference at index " + std::to_string(i) + " (pocketlm " + std::to_string(ours.size()) +
         " ids, peer " + std::to_string(peer.size()) + "): pocketlm ... " + window(ours) + "| peer ... " + window(peer);
}

GreedyOutcome compare_greedy(const GreedyPrompt& p, const std::vector<int32_t>& prompt,
                             const std::vector<int32_t>& want, int32_t eog, const nlohmann::json& peer_text,
                             const std::function<std::unique_ptr<Session>()>& make_session, const Tokenizer& tok) {
  GreedyOutcome out;
  auto session = make_session();
  auto logits = session->eval(prompt);
  if (!logits.ok()) return {false, 1e9f, logits.error().message()};
  std::vector<int32_t> got;
  for (size_t i = 0; i < want.size(); ++i) {
    const int32_t next = argmax(*logits);
    got.push_back(next);
    if (next != want[i] || i + 1 == want.size()) break;  // stop at the first divergence
    logits = session->eval(std::span<const int32_t>(&got.back(), 1));
    if (!logits.ok()) return {false, 1e9f, logits.error().message()};
  }
  if (got != want) {
    const auto& row = *logits;
    const int32_t theirs = want[got.size() - 1];
    out.matched = got.size() - 1;
    out.gap = row[static_cast<size_t>(got.back())] - row[static_cast<size_t>(theirs)];
    out.detail = std::string(p.name) + ": " + first_difference(got, want) + "; pocketlm's logit gap " +
                 std::to_string(out.gap) + "; peer continuation: " + peer_text.dump();
    return out;
  }
  std::string text;
  for (const int32_t id : got) text += tok.token_to_piece(id, /*render_special=*/true);
  const auto shown = [](const std::string& s) {
    return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  };
  if (shown(text) != shown(peer_text.get<std::string>()))
    return {false, 1e9f, std::string(p.name) + ": same ids, different text"};
  if (eog >= 0) {
    // The peer stopped early because its argmax was an end-of-generation token; ours must be it too.
    if (!want.empty()) logits = session->eval(std::span<const int32_t>(&got.back(), 1));
    if (!logits.ok() || argmax(*logits) != eog) return {false, 1e9f, std::string(p.name) + ": did not stop at EOG"};
  }
  out.identical = true;
  out.detail = std::string(p.name) + ": identical (" + std::to_string(got.size()) + " tokens)";
  return out;
}

namespace {
// Adds one position's distance between a reference row and another: the shift of the reference's top token
// and KL(reference || other).
void add_distance(Top1Comparison& r, size_t top, std::span<const float> ref, std::span<const float> other, bool agree) {
  if (!agree) {
    float second = -INFINITY;
    for (size_t i = 0; i < ref.size(); ++i)
      if (i != top && ref[i] > second) second = ref[i];
    r.ties += static_cast<double>(ref[top]) - second < kTop1Tie ? 1 : 0;
  }
  const double dtop = std::fabs(static_cast<double>(other[top]) - ref[top]);
  r.max_top_logit_diff = std::max(r.max_top_logit_diff, dtop);
  r.sum_top_logit_diff += dtop;
  const double kl = kl_divergence(ref, other);
  r.kl_sum += kl;
  r.kl_max = std::max(r.kl_max, kl);
}
}  // namespace

Top1Comparison compare_top1(const nlohmann::json& peer, const std::filesystem::path& peer_logits_path,
                            const std::function<std::unique_ptr<Session>()>& make_session) {
  Top1Comparison r;
  const auto tokens = json_ids(peer.at("tokens"));
  const auto targets = json_ids(peer.at("targets"));
  const auto peer_top1 = json_ids(peer.at("top1"));
  const auto n_vocab = static_cast<size_t>(peer.at("n_vocab").get<int64_t>());
  EXPECT_EQ(peer_top1.size(), tokens.size());
  EXPECT_EQ(targets.size(), tokens.size());
  std::ifstream peer_logits(peer_logits_path, std::ios::binary);
  std::vector<float> peer_row(n_vocab);
  size_t offset = 0;
  for (const auto& chunk : peer.at("chunks")) {
    const auto len = chunk.get<size_t>();
    if (offset + len > tokens.size()) {
      ADD_FAILURE() << "peer chunks exceed its tokens";
      return r;
    }
    auto session = make_session();  // each chunk in a fresh context, as the peer does
    const auto logits = session->eval(std::span<const int32_t>(tokens.data() + offset, len), /*all_logits=*/true);
    if (!logits.ok() || logits->size() != len * n_vocab) {
      ADD_FAILURE() << "eval: " << (logits.ok() ? "wrong logits size" : logits.error().message());
      return r;
    }
    for (size_t i = 0; i < len; ++i) {
      const auto row = logits->subspan(i * n_vocab, n_vocab);
      const int32_t ours = argmax(row);
      r.agree += ours == peer_top1[offset + i] ? 1 : 0;
      r.ours_correct += ours == targets[offset + i] ? 1 : 0;
      r.peer_correct += peer_top1[offset + i] == targets[offset + i] ? 1 : 0;
      peer_logits.read(reinterpret_cast<char*>(peer_row.data()), static_cast<std::streamsize>(n_vocab * sizeof(float)));
      if (!peer_logits) {
        ADD_FAILURE() << "peer logits file too short";
        return r;
      }
      add_distance(r, static_cast<size_t>(peer_top1[offset + i]), peer_row, row, ours == peer_top1[offset + i]);
    }
    offset += len;
  }
  EXPECT_EQ(offset, tokens.size());
  r.positions = offset;
  return r;
}

Top1Comparison compare_peer_runs(const std::vector<int32_t>& top1_a, const std::vector<int32_t>& top1_b,
                                 const std::filesystem::path& logits_a, const std::filesystem::path& logits_b,
                                 size_t n_vocab) {
  Top1Comparison r;
  std::ifstream fa(logits_a, std::ios::binary), fb(logits_b, std::ios::binary);
  std::vector<float> ra(n_vocab), rb(n_vocab);
  for (size_t i = 0; i < top1_a.size() && i < top1_b.size(); ++i) {
    fa.read(reinterpret_cast<char*>(ra.data()), static_cast<std::streamsize>(n_vocab * sizeof(float)));
    fb.read(reinterpret_cast<char*>(rb.data()), static_cast<std::streamsize>(n_vocab * sizeof(float)));
    if (!fa || !fb) {
      ADD_FAILURE() << "peer logits file too short";
      return r;
    }
    r.agree += top1_a[i] == top1_b[i] ? 1 : 0;
    add_distance(r, static_cast<size_t>(top1_a[i]), ra, rb, top1_a[i] == top1_b[i]);
    ++r.positions;
  }
  return r;
}

}  // namespace pocketlm::test
