// Multi-sequence forward steps (Session::eval_batch) and the continuous-batching scheduler over them: a
// batched step's logits equal each sequence run alone, greedy outputs equal the one generate loop's, a KV
// pool too small for one sequence fails that one only, a cancelled request frees its blocks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <mutex>

#include "model/model.h"
#include "runtime/batch_scheduler.h"
#include "runtime/generator.h"
#include "runtime/session.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

const Model* stories() {
  static auto m = Model::load(test::stories_path().string());
  return m.ok() ? m->get() : nullptr;
}

std::vector<int32_t> encode(const std::string& text) { return stories()->tokenizer().encode(text, true, false); }

float max_abs_diff(std::span<const float> a, std::span<const float> b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

const std::vector<std::string> kPrompts = {"Once upon a time", "Tom had a red ball. He",
                                           "The cat sat on the mat and looked at the big dog", "Lily"};

class BatchEval : public ::testing::Test {
 protected:
  void SetUp() override {
    if (stories() == nullptr) GTEST_SKIP() << test::stories_path() << " missing";
  }
};

TEST_F(BatchEval, OneStepOverSeveralSequencesGivesEachSequencesOwnLogits) {
  const SessionOptions o{.n_ctx = 256, .kv_type = KvType::F16, .n_threads = 2};
  std::vector<std::unique_ptr<Session>> batched, alone;
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    auto a = Session::create(*stories(), o), b = Session::create(*stories(), o);
    ASSERT_TRUE(a.ok() && b.ok());
    batched.push_back(std::move(*a));
    alone.push_back(std::move(*b));
  }
  // Different prompt lengths, so the sequences sit at different positions; the batch mixes one-token decode
  // items with a prompt chunk asking for every token's logits.
  std::vector<std::vector<int32_t>> ids;
  for (size_t i = 0; i < kPrompts.size(); ++i) ids.push_back(encode(kPrompts[i]));
  for (size_t i = 0; i + 1 < kPrompts.size(); ++i) ASSERT_TRUE(batched[i]->eval(ids[i]).ok());
  std::vector<BatchItem> items;
  const int32_t next[] = {42, 100, 7};
  for (size_t i = 0; i + 1 < kPrompts.size(); ++i) items.push_back({batched[i].get(), std::span<const int32_t>(&next[i], 1)});
  items.push_back({batched[3].get(), ids[3], true});
  std::vector<std::span<const float>> out;
  ASSERT_TRUE(Session::eval_batch(items, out).ok());
  ASSERT_EQ(out.size(), 4u);
  std::vector<std::vector<float>> got;
  for (auto& s : out) got.emplace_back(s.begin(), s.end());
  for (size_t i = 0; i + 1 < kPrompts.size(); ++i) {
    ASSERT_TRUE(alone[i]->eval(ids[i]).ok());
    auto ref = alone[i]->eval(std::span<const int32_t>(&next[i], 1));
    ASSERT_TRUE(ref.ok());
    EXPECT_LT(max_abs_diff(got[i], *ref), 1e-4f) << "sequence " << i;
    EXPECT_EQ(batched[i]->n_past(), alone[i]->n_past());
  }
  auto ref3 = alone[3]->eval(ids[3], true);
  ASSERT_TRUE(ref3.ok());
  EXPECT_EQ(got[3].size(), ids[3].size() * static_cast<size_t>(stories()->config().n_vocab));
  EXPECT_LT(max_abs_diff(got[3], *ref3), 1e-4f);
  // The caches hold the same K/V: the next single-token evals still agree.
  const int32_t t = 5;
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    auto a = batched[i]->eval(std::span<const int32_t>(&t, 1));
    ASSERT_TRUE(a.ok());
    std::vector<float> av(a->begin(), a->end());
    auto b = alone[i]->eval(std::span<const int32_t>(&t, 1));
    ASSERT_TRUE(b.ok());
    EXPECT_LT(max_abs_diff(av, *b), 1e-4f) << "sequence " << i;
  }
}

TEST_F(BatchEval, APoolTooSmallForOneItemChangesNoSession) {
  SessionOptions o{.n_ctx = 256, .kv_type = KvType::F16, .n_threads = 1, .kv_block = 16};
  const KvLayout layout = kv_layout_for(stories()->config(), o);
  auto pool = KvPool::create(layout.block_bytes(), layout.block_bytes() * static_cast<size_t>(layout.n_layer) * 3);
  ASSERT_TRUE(pool.ok());
  o.kv_pool = *pool;
  auto a = Session::create(*stories(), o), b = Session::create(*stories(), o);
  ASSERT_TRUE(a.ok() && b.ok());
  const auto ids = encode("Once upon a time there was a little girl who liked to play in the park with her dog");
  ASSERT_GT(ids.size(), 17u);
  ASSERT_TRUE((*a)->eval(std::span<const int32_t>(ids).first(16)).ok());  // 1 block per layer
  const size_t used = (*pool)->n_used();
  std::vector<BatchItem> items = {{a->get(), std::span<const int32_t>(ids).subspan(16, 1)},  // needs a 2nd block
                                  {b->get(), std::span<const int32_t>(ids).first(17)}};      // needs 2 blocks
  std::vector<std::span<const float>> out;
  const Status st = Session::eval_batch(items, out);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("KV budget exhausted"), std::string::npos) << st.error().message();
  EXPECT_EQ((*a)->n_past(), 16);
  EXPECT_EQ((*b)->n_past(), 0);
  EXPECT_EQ((*pool)->n_used(), used);
}

// Runs requests through a scheduler and waits for all of them.
struct Collected {
  std::vector<std::vector<int32_t>> tokens;
  std::vector<std::string> text;
  std::vector<SeqEvent> end;
  std::mutex mu;
  std::condition_variable cv;
  size_t done = 0;
};

void run_all(BatchScheduler& s, const std::vector<SeqRequest>& reqs, Collected& c) {
  c.tokens.assign(reqs.size(), {});
  c.text.assign(reqs.size(), "");
  c.end.assign(reqs.size(), {});
  for (size_t i = 0; i < reqs.size(); ++i) {
    auto id = s.submit(reqs[i], [&c, i](const SeqEvent& ev) {
      std::lock_guard<std::mutex> lk(c.mu);
      if (ev.kind == SeqEvent::Kind::Token) {
        if (ev.token >= 0) c.tokens[i].push_back(ev.token);
        c.text[i] += ev.text;
      } else {
        c.end[i] = ev;
        c.end[i].text = {};
        ++c.done;
        c.cv.notify_all();
      }
      return true;
    });
    ASSERT_TRUE(id.ok()) << id.error().message();
  }
  std::unique_lock<std::mutex> lk(c.mu);
  c.cv.wait(lk, [&] { return c.done == reqs.size(); });
}

TEST_F(BatchEval, SchedulerGreedyOutputsEqualTheGenerateLoop) {
  std::vector<SeqRequest> reqs;
  std::vector<GenerateResult> refs;
  for (size_t i = 0; i < 6; ++i) {
    SeqRequest r;
    r.prompt = encode(kPrompts[i % kPrompts.size()] + (i >= 4 ? " and" : ""));
    r.sampling = SamplerParams{.temp = 0.0f, .seed = 1};
    r.max_tokens = 24 + static_cast<int64_t>(i) * 4;
    reqs.push_back(r);
    auto session = Session::create(*stories(), {.n_ctx = 256, .n_threads = 2});
    ASSERT_TRUE(session.ok());
    Sampler greedy(r.sampling);
    auto g = Generator(**session, stories()->tokenizer()).generate(r.prompt, greedy, {.max_tokens = r.max_tokens});
    ASSERT_TRUE(g.ok());
    refs.push_back(*g);
  }
  // 6 requests on 4 slots with 3-token prompt chunks: requests join as others end, prompts span steps.
  auto s = BatchScheduler::create(*stories(), {.parallel = 4, .session = {.n_ctx = 256, .n_threads = 2}, .prefill_chunk = 3});
  ASSERT_TRUE(s.ok()) << s.error().message();
  Collected c;
  run_all(**s, reqs, c);
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(c.end[i].kind, SeqEvent::Kind::Done) << c.end[i].message;
    EXPECT_EQ(c.tokens[i], refs[i].tokens) << "request " << i;
    EXPECT_EQ(c.text[i], refs[i].text) << "request " << i;
    EXPECT_EQ(c.end[i].stop, refs[i].stats.stop);
    EXPECT_EQ(c.end[i].prompt_tokens, static_cast<int64_t>(reqs[i].prompt.size()));
  }
  const SchedulerMetrics m = (*s)->metrics();
  EXPECT_EQ(m.requests_done, 6);
  EXPECT_EQ(m.kv_bytes_used, 0u);  // every sequence gave its blocks back
  // Batching happened: fewer steps than tokens fed.
  EXPECT_LT(m.steps, m.step_rows);
}

TEST_F(BatchEval, PromptLogprobsMatchAllLogitsOfOneEval) {
  SeqRequest r;
  r.prompt = encode(kPrompts[2]);
  r.max_tokens = 0;
  r.prompt_logprobs = true;
  r.top_logprobs = 2;
  auto s = BatchScheduler::create(*stories(), {.parallel = 2, .session = {.n_ctx = 128, .n_threads = 2}, .prefill_chunk = 4});
  ASSERT_TRUE(s.ok());
  std::vector<TokenLogprob> got;
  Collected c;
  std::mutex mu;
  auto id = (*s)->submit(r, [&](const SeqEvent& ev) {
    if (ev.kind != SeqEvent::Kind::Token) {
      std::lock_guard<std::mutex> lk(c.mu);
      if (ev.prompt_logprobs) got = *ev.prompt_logprobs;
      c.done = 1;
      c.cv.notify_all();
    }
    return true;
  });
  ASSERT_TRUE(id.ok());
  {
    std::unique_lock<std::mutex> lk(c.mu);
    c.cv.wait(lk, [&] { return c.done == 1; });
  }
  ASSERT_EQ(got.size(), r.prompt.size() - 1);
  auto session = Session::create(*stories(), {.n_ctx = 128, .n_threads = 2});
  auto all = (*session)->eval(r.prompt, true);
  ASSERT_TRUE(all.ok());
  const size_t nv = static_cast<size_t>(stories()->config().n_vocab);
  for (size_t t = 0; t + 1 < r.prompt.size(); ++t) {
    const TokenLogprob ref = token_logprob(all->subspan(t * nv, nv), r.prompt[t + 1], 2);
    EXPECT_NEAR(got[t].logprob, ref.logprob, 1e-4f) << t;
    EXPECT_LE(got[t].logprob, 0.0f);
    ASSERT_EQ(got[t].top.size(), 2u);
    EXPECT_EQ(got[t].top[0].first, ref.top[0].first);
  }
}

TEST_F(BatchEval, SchedulerKvBudgetMakesRequestsWaitAndFailsOnlyWhatCannotGrow) {
  SessionOptions so{.n_ctx = 256, .kv_type = KvType::F16, .n_threads = 2, .kv_block = 16};
  const KvLayout layout = kv_layout_for(stories()->config(), so);
  so.kv_budget = layout.block_bytes() * static_cast<size_t>(layout.n_layer) * 4;  // 64 tokens in all
  auto s = BatchScheduler::create(*stories(), {.parallel = 4, .session = so, .prefill_chunk = 8});
  ASSERT_TRUE(s.ok());
  // A prompt the whole budget cannot hold is refused at once.
  SeqRequest huge;
  huge.prompt.assign(100, encode("Once")[0]);
  EXPECT_FALSE((*s)->submit(huge, [](const SeqEvent&) { return true; }).ok());
  // Four requests of 40 tokens each: they cannot all hold KV at once. Each either completes or fails with
  // KvExhausted; the ones that complete equal their single-sequence output.
  std::vector<SeqRequest> reqs;
  for (size_t i = 0; i < 4; ++i) {
    SeqRequest r;
    r.prompt = encode(kPrompts[i]);
    r.sampling = SamplerParams{.temp = 0.0f, .seed = 1};
    r.max_tokens = 40;
    r.ignore_eos = true;
    reqs.push_back(r);
  }
  Collected c;
  run_all(**s, reqs, c);
  int completed = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    if (c.end[i].kind == SeqEvent::Kind::Failed) {
      EXPECT_EQ(c.end[i].error, SeqEvent::Error::KvExhausted) << c.end[i].message;
      continue;
    }
    ++completed;
    auto session = Session::create(*stories(), {.n_ctx = 256, .n_threads = 2});
    Sampler greedy(reqs[i].sampling);
    auto g = Generator(**session, stories()->tokenizer()).generate(reqs[i].prompt, greedy, {.max_tokens = 40, .ignore_eos = true});
    ASSERT_TRUE(g.ok());
    EXPECT_EQ(c.tokens[i], g->tokens) << "request " << i;
  }
  EXPECT_GE(completed, 1);
  EXPECT_EQ((*s)->metrics().kv_bytes_used, 0u);
}

TEST_F(BatchEval, CancelledRequestFreesItsSequence) {
  auto s = BatchScheduler::create(*stories(), {.parallel = 1, .session = {.n_ctx = 256, .n_threads = 2}});
  ASSERT_TRUE(s.ok());
  SeqRequest r;
  r.prompt = encode(kPrompts[0]);
  r.ignore_eos = true;  // would run to the context's end
  Collected c;
  std::atomic<int> tokens{0};
  std::atomic<uint64_t> id{0};
  bool sent = false;
  auto sub = (*s)->submit(r, [&](const SeqEvent& ev) {
    if (ev.kind == SeqEvent::Kind::Token) {
      if (++tokens >= 5 && id != 0 && !sent) {
        (*s)->cancel(id);
        sent = true;
      }
      return true;
    }
    std::lock_guard<std::mutex> lk(c.mu);
    c.end.push_back(ev);
    c.cv.notify_all();
    return true;
  });
  ASSERT_TRUE(sub.ok());
  id = *sub;
  std::unique_lock<std::mutex> lk(c.mu);
  c.cv.wait(lk, [&] { return !c.end.empty(); });
  EXPECT_EQ(c.end[0].stop, StopReason::Callback);
  EXPECT_LT(tokens.load(), 200);  // far from the context's end
  EXPECT_EQ((*s)->metrics().kv_bytes_used, 0u);
}

}  // namespace
}  // namespace pocketlm
