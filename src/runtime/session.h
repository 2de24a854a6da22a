#pragma once
// A Session is one sequence being decoded: its KV cache and position. eval() appends tokens, runs the
// forward pass and returns logits.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "formats/kv_types.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace pocketlm {

struct SessionOptions {
  int64_t n_ctx = 0;             // 0: min(model's training context, 4096)
  KvType kv_type = KvType::F16;  // K cache type, and V's unless kv_type_v is set
  int n_threads = 0;             // 0: physical cores (ignored when thread_pool is given)
  // The threads the forward pass runs on. Null: the process's shared pool of n_threads threads
  // (shared_thread_pool), so sessions decoding at the same time take turns on it rather than oversubscribe.
  std::shared_ptr<ThreadPool> thread_pool;
  std::optional<KvType> kv_type_v;
  size_t kv_budget = 0;   // bytes for the KV pool this session creates; 0: exactly what n_ctx needs
  int64_t kv_block = 32;  // tokens per KV block
  // A pool shared with other sessions (same model and cache types, block size kv_block); null: own pool.
  std::shared_ptr<KvPool> kv_pool;
};

// The KV layout a model and options give (what a shared pool must be created for).
KvLayout kv_layout_for(const ModelConfig& c, const SessionOptions& opts);
// Bytes a pool needs for one sequence of n_ctx tokens (window layers hold only their window).
size_t kv_bytes_for_context(const KvLayout& layout, int64_t n_ctx);
inline constexpr int64_t kMaxBatch = 512;  // prompt tokens per forward call

class Session;
// One sequence's share of a multi-sequence forward step (Session::eval_batch).
struct BatchItem {
  Session* session;
  std::span<const int32_t> tokens;  // appended at the session's position (at most kMaxBatch in all items)
  bool all_logits = false;          // logits of every token, else of the last
};

class Session {
 public:
  static Expected<std::unique_ptr<Session>> create(const Model& model, SessionOptions opts = {});
  ~Session();

  // Appends `tokens` at the current position. Returns the logits of the last token (n_vocab floats), or,
  // with all_logits, of every token (tokens.size() × n_vocab). An error if the context would overflow.
  Expected<std::span<const float>> eval(std::span<const int32_t> tokens, bool all_logits = false);
  // Several sessions (one model, one thread pool) advanced in ONE forward pass: the items' tokens go through
  // the matrix products together (each weight is read once for all of them), attention runs per session
  // over its own cache. out[i] gets item i's logits (last token's, or all: tokens × n_vocab), valid until
  // the next eval of the first item's session. Checks everything (context, token ids, KV blocks for every
  // item) before it writes anything: on error no session changes. The logits equal each session's own
  // eval() to float rounding (the rows of a product do not depend on the other rows).
  static Status eval_batch(std::span<const BatchItem> items, std::vector<std::span<const float>>& out);
  // Takes the KV blocks the next n tokens need now, all or nothing (an error when the pool is full).
  Status reserve(int64_t n);
  int64_t n_past() const { return n_past_; }
  // The tokens in the cache, in order (n_past() of them).
  std::span<const int32_t> tokens() const;
  int64_t n_ctx() const { return n_ctx_; }
  void reset();
  // Forgets every token after the first n; their blocks go back to the pool. An error (nothing changes)
  // when a sliding-window layer has already dropped what position n would see: then reset() and re-eval.
  Status truncate(int64_t n);
  size_t kv_bytes() const;  // bytes of the KV blocks this sequence holds now
  const KvCache& kv_cache() const;

 private:
  struct State;
  Session() = default;
  const Model* model_ = nullptr;
  int64_t n_ctx_ = 0;
  int64_t n_past_ = 0;
  std::unique_ptr<State> st_;
};

}  // namespace pocketlm
