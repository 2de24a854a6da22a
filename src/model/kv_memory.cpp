#include "model/kv_memory.h"
#include "util/byte_size.h"

#include <cstdio>
#include <map>

namespace pocketlm {

namespace {

std::string mib(size_t b) { return format_mib(static_cast<double>(b), 2); }

double value_bytes(KvType t) {
  switch (t) {
    case KvType::F32: return 4;
    case KvType::F16: return 2;
    case KvType::Q8: return 1;
    case KvType::Q4: return 0.5;
  }
  return 0;
}

}  // namespace

KvMemoryReport kv_memory_report(const KvLayout& layout, int64_t n_ctx, int64_t max_batch) {
  KvMemoryReport r;
  r.layout = layout;
  r.n_ctx = n_ctx;
  std::map<int64_t, KvMemoryKind> by_window;
  const size_t token_bytes = layout.k_token_bytes() + layout.v_token_bytes();
  const size_t token_scales =
      static_cast<size_t>(layout.n_head_kv) * (kv_row_scale_bytes(layout.type_k) + kv_row_scale_bytes(layout.type_v));
  for (int64_t il = 0; il < layout.n_layer; ++il) {
    KvMemoryKind& k = by_window[layout.window(il)];
    k.window = layout.window(il);
    k.layers++;
    k.tokens = layout.max_blocks(il, n_ctx, max_batch) * layout.block_tokens;
    k.bytes += static_cast<size_t>(k.tokens) * token_bytes;
    k.scale_bytes += static_cast<size_t>(k.tokens) * token_scales;
  }
  const int64_t full = (n_ctx + layout.block_tokens - 1) / layout.block_tokens * layout.block_tokens;
  for (auto& [w, k] : by_window) {
    r.kinds.push_back(k);
    r.total += k.bytes;
    r.without_window += static_cast<size_t>(k.layers) * static_cast<size_t>(full) * token_bytes;
  }
  return r;
}

std::string format_kv_memory(const KvMemoryReport& r, size_t held, size_t peak) {
  const KvLayout& l = r.layout;
  std::string out;
  char buf[512];
  std::snprintf(
      buf, sizeof buf,
      "KV cache: -c %lld, K %s, V %s, %lld-token blocks of %zu bytes; K row %zu B + V row %zu B per token and "
      "KV head (head_dim %lld%s)\n",
      static_cast<long long>(r.n_ctx), kv_type_name(l.type_k), kv_type_name(l.type_v),
      static_cast<long long>(l.block_tokens), l.block_bytes(), l.k_head_bytes(), l.v_head_bytes(),
      static_cast<long long>(l.head_dim),
      kv_type_quantized(l.type_k) || kv_type_quantized(l.type_v) ? ", q8/q4 rows include a 2-byte scale" : "");
  out += buf;
  out += "| layers | count | tokens held | bytes | formula |\n|---|---:|---:|---:|---|\n";
  for (const KvMemoryKind& k : r.kinds) {
    std::string kind = k.window > 0 ? "window " + std::to_string(k.window) : "global";
    std::string formula;
    if (l.type_k == l.type_v) {
      std::snprintf(buf, sizeof buf, "2 x %lld x %lld x %lld x %lld x %g B", static_cast<long long>(k.layers),
                    static_cast<long long>(l.n_head_kv), static_cast<long long>(l.head_dim),
                    static_cast<long long>(k.tokens), value_bytes(l.type_k));
      formula = buf;
      if (kv_type_quantized(l.type_k)) {
        std::snprintf(buf, sizeof buf, " + scales 2 x %lld x %lld x %lld x 2 B", static_cast<long long>(k.layers),
                      static_cast<long long>(l.n_head_kv), static_cast<long long>(k.tokens));
        formula += buf;
      }
    } else {
      std::snprintf(buf, sizeof buf, "%lld x %lld x %lld x (%zu + %zu) B", static_cast<long long>(k.layers),
                    static_cast<long long>(l.n_head_kv), static_cast<long long>(k.tokens), l.k_head_bytes(),
                    l.v_head_bytes());
      formula = buf;
    }
    std::snprintf(buf, sizeof buf, "| %s | %lld | %lld | %s | %s |\n", kind.c_str(), static_cast<long long>(k.layers),
                  static_cast<long long>(k.tokens), mib(k.bytes).c_str(), formula.c_str());
    out += buf;
  }
  std::snprintf(buf, sizeof buf, "total: %s", mib(r.total).c_str());
  out += buf;
  if (r.without_window > r.total) {
    std::snprintf(buf, sizeof buf, " (without the sliding window: %s; the window saves %s, %.1f %%)",
                  mib(r.without_window).c_str(), mib(r.without_window - r.total).c_str(),
                  100.0 * static_cast<double>(r.without_window - r.total) / static_cast<double>(r.without_window));
    out += buf;
  }
  out += "\n";
  if (held > 0 || peak > 0) {
    std::snprintf(buf, sizeof buf, "measured: %s held now, %s at peak (blocks taken from the pool)\n",
                  mib(held).c_str(), mib(peak).c_str());
    out += buf;
  }
  return out;
}

}  // namespace pocketlm
