#pragma once
// A Session is one sequence being decoded: its KV cache and position. eval() appends tokens, runs the
// forward pass and returns logits.
#include <cstdint>
#include <span>
#include <vector>

#include "model/model.h"
#include "runtime/kv_types.h"
#include "util/error.h"

namespace pocketlm {

struct SessionOptions {
  int64_t n_ctx = 0;            // 0: min(model's training context, 4096)
  KvType kv_type = KvType::F16;
  int n_threads = 0;            // 0: physical cores
};

class Session {
 public:
  static Expected<std::unique_ptr<Session>> create(const Model& model, SessionOptions opts = {});
  ~Session();

  // Appends `tokens` at the current position. Returns the logits of the last token (n_vocab floats), or,
  // with all_logits, of every token (tokens.size() × n_vocab). An error if the context would overflow.
  Expected<std::span<const float>> eval(std::span<const int32_t> tokens, bool all_logits = false);
  int64_t n_past() const { return n_past_; }
  int64_t n_ctx() const { return n_ctx_; }
  void reset() { n_past_ = 0; }
  // Forgets every token after the first n (their KV entries are overwritten by the next eval).
  void truncate(int64_t n) { n_past_ = n < n_past_ ? (n < 0 ? 0 : n) : n_past_; }
  size_t kv_bytes() const;

 private:
  struct State;
  Session() = default;
  const Model* model_ = nullptr;
  int64_t n_ctx_ = 0;
  int64_t n_past_ = 0;
  std::unique_ptr<State> st_;
};

}  // namespace pocketlm
