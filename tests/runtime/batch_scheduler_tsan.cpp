// The continuous-batching scheduler (runtime/batch_scheduler.h): greedy outputs equal the one generate loop's
// with requests joining between steps and prompts fed in chunks, prompt logprobs equal one eval's, a KV budget
// too small for all makes requests wait or fail alone, a cancelled request frees its blocks. Callbacks run on
// the scheduler's thread: built into pocketlm_concurrency_tests, which CI also runs under ThreadSanitizer.
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
#include "runtime/speculative/draft_setup.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

const Model* stories() {
  static auto m = Model::load(test::stories_path().string());
  return m.ok() ? m->get() : nullptr;
}

std::vector<int32_t> encode(const std::string& text) { return stories()->tokenizer().encode(text, true, false); }

const std::vector<std::string> kPrompts = {"Once upon a time", "Tom had a red ball. He",
                                           "The cat sat on the mat and looked at the big dog", "Lily"};

class BatchScheduling : public ::testing::Test {
 protected:
  void SetUp() override {
    if (stories() == nullptr) GTEST_SKIP() << test::stories_path() << " missing";
  }
};

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

TEST_F(BatchScheduling, SchedulerGreedyOutputsEqualTheGenerateLoop) {
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
  auto s = BatchScheduler::create(*stories(),
                                  {.parallel = 4, .session = {.n_ctx = 256, .n_threads = 2}, .prefill_chunk = 3});
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

TEST_F(BatchScheduling, PromptLogprobsMatchAllLogitsOfOneEval) {
  SeqRequest r;
  r.prompt = encode(kPrompts[2]);
  r.max_tokens = 0;
  r.prompt_logprobs = true;
  r.top_logprobs = 2;
  auto s = BatchScheduler::create(*stories(),
                                  {.parallel = 2, .session = {.n_ctx = 128, .n_threads = 2}, .prefill_chunk = 4});
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

TEST_F(BatchScheduling, SchedulerKvBudgetMakesRequestsWaitAndFailsOnlyWhatCannotGrow) {
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
    auto g = Generator(**session, stories()->tokenizer())
                 .generate(reqs[i].prompt, greedy, {.max_tokens = 40, .ignore_eos = true});
    ASSERT_TRUE(g.ok());
    EXPECT_EQ(c.tokens[i], g->tokens) << "request " << i;
  }
  EXPECT_GE(completed, 1);
  EXPECT_EQ((*s)->metrics().kv_bytes_used, 0u);
}

TEST_F(BatchScheduling, CancelledRequestFreesItsSequence) {
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

// With a draft (one slot), sequences advance by speculative rounds: at temperature 0 the same tokens as the plain
// generate loop, for a lookup draft and for a self-draft whose cache shares the target's KV pool; a request
// asking for logprobs decodes plainly. More than one slot with a draft is refused.
TEST_F(BatchScheduling, SpeculativeRoundsGiveThePlainGreedyTokens) {
  std::vector<SeqRequest> reqs;
  std::vector<GenerateResult> refs;
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    SeqRequest r;
    r.prompt = encode(kPrompts[i]);
    r.sampling = SamplerParams{.temp = 0.0f, .seed = 1};
    r.max_tokens = 48;
    r.top_logprobs = i == 3 ? 1 : -1;
    reqs.push_back(r);
    auto session = Session::create(*stories(), {.n_ctx = 256, .n_threads = 2});
    ASSERT_TRUE(session.ok());
    Sampler greedy(r.sampling);
    auto g = Generator(**session, stories()->tokenizer()).generate(r.prompt, greedy, {.max_tokens = r.max_tokens});
    ASSERT_TRUE(g.ok());
    refs.push_back(*g);
  }
  DraftConfig lookup;
  lookup.lookup = true;
  DraftConfig self;
  self.self_type = GgmlType::Q8_0;
  for (const DraftConfig& config : {lookup, self}) {
    SchedulerOptions o{.parallel = 1, .session = {.n_ctx = 256, .n_threads = 2}};
    auto draft = make_draft_source(*stories(), config, o.session);
    ASSERT_TRUE(draft.ok()) << draft.error().message();
    o.draft = std::move(*draft);
    o.draft_params.max = 6;
    auto s = BatchScheduler::create(*stories(), o);
    ASSERT_TRUE(s.ok()) << s.error().message();
    Collected c;
    run_all(**s, reqs, c);
    for (size_t i = 0; i < reqs.size(); ++i) {
      EXPECT_EQ(c.end[i].kind, SeqEvent::Kind::Done) << c.end[i].message;
      EXPECT_EQ(c.tokens[i], refs[i].tokens) << o.draft->name() << ", request " << i;
      EXPECT_EQ(c.text[i], refs[i].text) << o.draft->name() << ", request " << i;
      EXPECT_EQ(c.end[i].stop, refs[i].stats.stop);
    }
    const SchedulerMetrics m = (*s)->metrics();
    EXPECT_GT(m.draft_tokens, 0) << o.draft->name();
    EXPECT_GT(m.draft_accepted, 0) << o.draft->name();
    EXPECT_LT(m.steps, m.generated_tokens) << o.draft->name() << ": rounds kept drafted tokens";
    o.parallel = 2;
    auto two = BatchScheduler::create(*stories(), o);
    ASSERT_FALSE(two.ok());
    EXPECT_NE(two.error().message().find("--parallel 1"), std::string::npos) << two.error().message();
  }
}

}  // namespace
}  // namespace pocketlm
