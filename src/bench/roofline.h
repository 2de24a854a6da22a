#pragma once
// The decode roofline: a generated token must read every weight matrix once (the token embedding only
// for one row, unless it is also the output head) plus the KV cache of every earlier position, so decode
// can go no faster than  bandwidth ÷ bytes read per token.
#include <cstdint>
#include <optional>

#include "model/model.h"
#include "runtime/session.h"

namespace pocketlm {

struct DecodeBytes {
  uint64_t weights = 0;          // weight bytes read per generated token (norms included)
  uint64_t kv_per_position = 0;  // K and V bytes of one cached position, all layers
  // Bytes read for one token that attends over `context` cached positions.
  double per_token(double context) const {
    return static_cast<double>(weights) + static_cast<double>(kv_per_position) * context;
  }
};

DecodeBytes decode_bytes(const Model& model, KvType type_k, std::optional<KvType> type_v = {});

// Mean number of positions attended over by tg N from an empty cache: token i (0-based) sees i + 1.
// With `depth` positions already cached, each token also sees those.
inline double tg_mean_context(int64_t n_gen, int64_t depth = 0) {
  return static_cast<double>(depth) + (static_cast<double>(n_gen) + 1.0) / 2.0;
}

// Tokens/s at the roofline.
inline double roofline_tokens_per_s(double gb_per_s, double bytes_per_token) {
  return gb_per_s * 1e9 / bytes_per_token;
}

}  // namespace pocketlm
