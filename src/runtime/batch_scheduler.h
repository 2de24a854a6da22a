#pragma once
// Continuous batching: up to `parallel` sequences of one model decode together, ONE multi-sequence forward
// step per iteration (Session::eval_batch: each weight matrix read once per step for all of them, which is
// what a memory-bound CPU needs), on one scheduler thread. Requests join between steps; a prompt is fed in
// chunks (prefill_chunk tokens per step) beside the others' decode tokens, so a long prompt does not stall
// them. Every sequence takes its KV blocks from one shared, budgeted pool: a request waits in the queue until
// its prompt's blocks are free, a sequence the pool cannot grow fails alone (KvExhausted) and no other
// sequence is touched. A cancelled request (a client gone) frees its sequence before the next step.
//
// Sampling, stop strings and end-of-generation follow the one generate loop (runtime/generator.h): with the
// same prompt and seed, a sequence's tokens are those Generator::generate gives, up to float rounding of
// the batched products (greedy: the same tokens except at near ties).
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "model/model.h"
#include "runtime/generator.h"
#include "runtime/sampler.h"
#include "runtime/session.h"
#include "runtime/speculative/speculative_decoder.h"
#include "runtime/token_logprobs.h"
#include "util/error.h"

namespace pocketlm {

struct SchedulerOptions {
  int parallel = 4;                 // sequences decoded together
  SessionOptions session;           // n_ctx per sequence, cache types, threads; kv_budget: the shared pool's bytes
                                    // (0: parallel x what n_ctx needs)
  int64_t prefill_chunk = 128;      // prompt tokens a sequence feeds per step
  int64_t step_tokens = kMaxBatch;  // tokens per forward step over all sequences
  size_t max_queue = 256;           // requests waiting beyond this are refused (Busy)
  // Speculative decoding (runtime/speculative/): with a draft source, parallel must be 1 and a decoding
  // sequence advances by SpeculativeDecoder rounds (same tokens as plain decoding at temperature 0, the same
  // distribution otherwise). A request that asks for logprobs decodes plainly. session.kv_pool may then be
  // the pool make_draft_source made for the target and the draft together.
  std::shared_ptr<DraftSource> draft;
  DraftParams draft_params;
};

struct SeqRequest {
  std::vector<int32_t> prompt;  // at least one token
  SamplerParams sampling;
  int64_t max_tokens = -1;  // < 0: until end of generation, a stop string or the context
  bool ignore_eos = false;
  std::vector<std::string> stop;
  int top_logprobs = -1;         // >= 0: each generated token's logprob and this many alternatives
  bool prompt_logprobs = false;  // the logprob of every prompt token after the first (scoring text)
};

// What a request's callback sees, on the scheduler thread. Token: one generated token and the text it
// releases (stop strings held back as the generate loop does). Done: the end (stop says why), once; when an
// end-of-generation token ended it, `token` is that token (not part of the text) and, with top_logprobs >= 0,
// `logprob` its logprob, so a scorer sees every sampled position. Failed: the end with an error, once.
struct SeqEvent {
  enum class Kind { Token, Done, Failed } kind = Kind::Token;
  int32_t token = -1;
  std::string_view text;
  const TokenLogprob* logprob = nullptr;                       // Token, with top_logprobs >= 0
  const std::vector<TokenLogprob>* prompt_logprobs = nullptr;  // Done, with prompt_logprobs
  StopReason stop = StopReason::MaxTokens;
  int64_t prompt_tokens = 0, completion_tokens = 0;
  double queue_seconds = 0, prompt_seconds = 0, decode_seconds = 0;
  enum class Error { None, KvExhausted, Internal, ShuttingDown } error = Error::None;
  std::string message;
};
// Return false to cancel the request (it ends with a Done event whose stop is Callback).
using SeqCallback = std::function<bool(const SeqEvent&)>;

struct SchedulerMetrics {
  int64_t requests_done = 0, requests_failed = 0, prompt_tokens = 0, generated_tokens = 0, steps = 0;
  int64_t requests_cancelled = 0;                // of requests_done: ended by cancel() or a callback (a client gone)
  int64_t draft_tokens = 0, draft_accepted = 0;  // speculative decoding: tokens drafted, and kept by the target
  int64_t step_rows = 0;                         // tokens through the forward steps (over all sequences)
  double busy_seconds = 0;                       // time inside forward steps
  int active = 0, queued = 0;
  size_t kv_bytes_used = 0, kv_bytes_capacity = 0, kv_peak_bytes = 0;
};

class BatchScheduler {
 public:
  static Expected<std::unique_ptr<BatchScheduler>> create(const Model& model, SchedulerOptions opts);
  ~BatchScheduler();  // fails what is queued or running (ShuttingDown) and stops the thread
  BatchScheduler(const BatchScheduler&) = delete;
  BatchScheduler& operator=(const BatchScheduler&) = delete;

  // Queues a request and returns its id; an error when the request is invalid (no prompt, longer than the
  // context, a prompt the whole budget cannot hold) or the queue is full. The callback runs on the
  // scheduler thread and must not block for long.
  Expected<uint64_t> submit(SeqRequest req, SeqCallback cb);
  // Ends a request (queued or running) before the next step; thread-safe, unknown ids are ignored.
  void cancel(uint64_t id);
  SchedulerMetrics metrics() const;
  const SchedulerOptions& options() const { return opts_; }
  int64_t n_ctx() const { return n_ctx_; }

 private:
  struct Slot;
  struct Pending;
  BatchScheduler(const Model& model, SchedulerOptions opts);
  void loop();
  bool admit_locked();  // moves queued requests into free slots whose prompt KV fits
  void step();          // one forward step over the active slots
  void finish(Slot& s, const SeqEvent& ev);
  // Emits sampled token t (logits: its distribution, for logprobs; may be empty) as the generate loop does;
  // n_past: the context position plain decoding would be at. True when the sequence ended (finished).
  bool emit(Slot& s, int32_t t, std::span<const float> logits, int64_t n_past);
  void speculative_round(Slot& s);

  const Model& model_;
  SchedulerOptions opts_;
  int64_t n_ctx_ = 0;
  KvLayout layout_;
  std::shared_ptr<KvPool> pool_;
  std::vector<std::unique_ptr<Slot>> slots_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Pending>> queue_;
  std::vector<uint64_t> cancelled_;
  uint64_t next_id_ = 1;
  bool stop_ = false;
  SchedulerMetrics m_;
  std::vector<int32_t> round_;  // a speculative round's tokens
  std::thread thread_;
};

}  // namespace pocketlm
