#include "quant/model_agreement.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <vector>

#include "runtime/session.h"
#include "test_paths.h"

namespace pocketlm::test {

double top1_agreement(const Model& a, const Model& b, const std::string& text) {
  std::vector<int32_t> toks = a.tokenizer().encode(text, true, false);
  if (toks.size() > 250) toks.resize(250);
  auto sa = Session::create(a, SessionOptions{256, KvType::F32, 2});
  auto sb = Session::create(b, SessionOptions{256, KvType::F32, 2});
  EXPECT_TRUE(sa.ok() && sb.ok());
  if (!sa.ok() || !sb.ok()) return 0;
  auto la = (*sa)->eval(toks, true);
  auto lb = (*sb)->eval(toks, true);
  EXPECT_TRUE(la.ok() && lb.ok());
  if (!la.ok() || !lb.ok()) return 0;
  const size_t nv = static_cast<size_t>(a.tokenizer().n_vocab());
  size_t agree = 0;
  for (size_t i = 0; i < toks.size(); ++i) {
    auto ra = la->subspan(i * nv, nv), rb = lb->subspan(i * nv, nv);
    agree +=
        (std::max_element(ra.begin(), ra.end()) - ra.begin()) == (std::max_element(rb.begin(), rb.end()) - rb.begin());
  }
  return static_cast<double>(agree) / static_cast<double>(toks.size());
}

std::string tinystories_sample() {
  std::ifstream in(shared_dir() / "testdata" / "text" / "tinystories-val.dev.txt");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (s.size() > 1500) s.resize(1500);
  if (s.empty()) s = "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun.";
  return s;
}

std::vector<int32_t> greedy(const Model& m, const std::string& prompt, int n) {
  auto s = Session::create(m, SessionOptions{256, KvType::F32, 2});
  EXPECT_TRUE(s.ok());
  std::vector<int32_t> toks = m.tokenizer().encode(prompt, true, false), out;
  auto logits = (*s)->eval(toks);
  for (int i = 0; i < n && logits.ok(); ++i) {
    const auto& l = *logits;
    const int32_t next = static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
    out.push_back(next);
    const int32_t one[1] = {next};
    logits = (*s)->eval(one);
  }
  EXPECT_TRUE(logits.ok());
  return out;
}

}  // namespace pocketlm::test
