#include "model/config.h"

#include <cstdio>

namespace pocketlm {

namespace {
// Architectures whose forward pass pocketlm implements, with the RoPE pair ordering each uses.
struct ArchInfo {
  const char* name;
  RopeType rope;
};
constexpr ArchInfo kArchs[] = {
    {"llama", RopeType::Normal},
};
}  // namespace

Expected<ModelConfig> ModelConfig::from_gguf(const GgufFile& f) {
  ModelConfig c;
  PLM_TRY(c.arch, f.get_string("general.architecture"));
  const ArchInfo* info = nullptr;
  for (const auto& a : kArchs)
    if (c.arch == a.name) info = &a;
  if (!info) {
    std::string known;
    for (const auto& a : kArchs) known += (known.empty() ? "" : ", ") + std::string(a.name);
    return Error(f.path() + ": metadata 'general.architecture': unsupported architecture '" + c.arch + "' (supported: " + known + ")");
  }
  c.rope_type = info->rope;
  PLM_TRY(c.name, f.get_string_or("general.name", c.arch));
  const std::string p = c.arch + ".";
  PLM_TRY(c.n_embd, f.get_int(p + "embedding_length"));
  PLM_TRY(c.n_layer, f.get_int(p + "block_count"));
  PLM_TRY(c.n_head, f.get_int(p + "attention.head_count"));
  PLM_TRY(c.n_head_kv, f.get_int_or(p + "attention.head_count_kv", c.n_head));
  PLM_TRY(c.n_ff, f.get_int(p + "feed_forward_length"));
  PLM_TRY(c.n_ctx_train, f.get_int_or(p + "context_length", 2048));
  auto bad = [&](const std::string& key, const std::string& why) { return Error(f.path() + ": metadata '" + p + key + "': " + why); };
  if (c.n_embd <= 0 || c.n_embd > (1 << 16)) return bad("embedding_length", "out of range: " + std::to_string(c.n_embd));
  if (c.n_layer <= 0 || c.n_layer > 512) return bad("block_count", "out of range: " + std::to_string(c.n_layer));
  if (c.n_head <= 0 || c.n_head > 1024) return bad("attention.head_count", "out of range: " + std::to_string(c.n_head));
  if (c.n_head_kv <= 0 || c.n_head % c.n_head_kv != 0)
    return bad("attention.head_count_kv", std::to_string(c.n_head_kv) + " does not divide head_count " + std::to_string(c.n_head));
  if (c.n_ff <= 0 || c.n_ff > (1 << 20)) return bad("feed_forward_length", "out of range: " + std::to_string(c.n_ff));
  if (c.n_ctx_train <= 0) return bad("context_length", "must be positive");
  PLM_TRY(c.head_dim, f.get_int_or(p + "attention.key_length", c.n_embd / c.n_head));
  PLM_TRY(c.head_dim_v, f.get_int_or(p + "attention.value_length", c.head_dim));
  if (c.head_dim <= 0 || c.head_dim > 1024 || c.head_dim % 2 != 0) return bad("attention.key_length", "invalid head size " + std::to_string(c.head_dim));
  if (c.head_dim_v != c.head_dim) return bad("attention.value_length", "differs from key_length (not supported)");
  PLM_TRY(double eps, f.get_float_or(p + "attention.layer_norm_rms_epsilon", 1e-5));
  if (!(eps > 0 && eps < 1)) return bad("attention.layer_norm_rms_epsilon", "out of range");
  c.norm_eps = static_cast<float>(eps);
  PLM_TRY(double base, f.get_float_or(p + "rope.freq_base", 10000.0));
  if (!(base > 0)) return bad("rope.freq_base", "must be positive");
  c.rope_freq_base = static_cast<float>(base);
  PLM_TRY(std::string scaling, f.get_string_or(p + "rope.scaling.type", "none"));
  PLM_TRY(double factor, f.get_float_or(p + "rope.scaling.factor", 0.0));
  if (scaling == "linear" && factor > 0) c.rope_freq_scale = static_cast<float>(1.0 / factor);
  else if (scaling != "none" && scaling != "linear" && factor > 1.0)
    return bad("rope.scaling.type", "RoPE scaling '" + scaling + "' is not supported");
  PLM_TRY(c.rope_dim, f.get_int_or(p + "rope.dimension_count", c.head_dim));
  if (c.rope_dim <= 0 || c.rope_dim > c.head_dim || c.rope_dim % 2 != 0) return bad("rope.dimension_count", "invalid: " + std::to_string(c.rope_dim));
  c.tied_embeddings = f.tensor("output.weight") == nullptr;
  // n_vocab from the embedding matrix (authoritative), cross-checked later with the tokenizer.
  if (const GgufTensor* emb = f.tensor("token_embd.weight")) c.n_vocab = emb->ne[1];
  return c;
}

std::string ModelConfig::summary() const {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "arch=%s n_vocab=%lld n_embd=%lld n_layer=%lld n_head=%lld n_head_kv=%lld head_dim=%lld n_ff=%lld "
                "rope_base=%g rope_dim=%lld ctx_train=%lld tied_head=%s",
                arch.c_str(), static_cast<long long>(n_vocab), static_cast<long long>(n_embd), static_cast<long long>(n_layer),
                static_cast<long long>(n_head), static_cast<long long>(n_head_kv), static_cast<long long>(head_dim),
                static_cast<long long>(n_ff), static_cast<double>(rope_freq_base), static_cast<long long>(rope_dim),
                static_cast<long long>(n_ctx_train), tied_embeddings ? "yes" : "no");
  return buf;
}

}  // namespace pocketlm
