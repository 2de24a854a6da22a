#include "model/config.h"

#include <cmath>
#include <cstdio>

namespace pocketlm {

namespace {
// The one table of architectures pocketlm runs: per GGUF general.architecture, the RoPE pair ordering, the
// forward pass and the structural flags of ModelConfig (what each reads is in docs/architectures.md).
struct ArchInfo {
  const char* name;
  RopeType rope;
  ArchBlock block;
  bool qk_norm = false, post_norms = false, fused_gate_up = false;
};
constexpr ArchInfo kArchs[] = {
    {"llama", RopeType::Normal, ArchBlock::Llama},                   // Llama 1-3.x, SmolLM2, Mistral (v0.x)
    {"qwen2", RopeType::NeoX, ArchBlock::Llama},                     // Q/K/V biases (optional tensors)
    {"qwen3", RopeType::NeoX, ArchBlock::Llama, true},               // per-head Q/K RMSNorm
    {"phi3", RopeType::NeoX, ArchBlock::Llama, false, false, true},  // fused QKV and gate/up, LongRoPE
    {"smollm3", RopeType::Normal, ArchBlock::Llama},                 // no RoPE on every 4th layer
    {"gemma2", RopeType::NeoX, ArchBlock::Gemma, false, true},       // soft-capping, alternating windows
    {"gemma3", RopeType::NeoX, ArchBlock::Gemma, true, true},
};

// The sliding-window layout of a Gemma model, as its GGUF files describe it: attention.sliding_window (W,
// default `default_window`) and, when present, attention.sliding_window_pattern, either one flag per layer or
// a period N (layer il is global when il % N == N - 1); without it `default_period` (gemma2: 2, every other
// layer local; gemma3: 6, five local layers then one global). Local layers use rope.freq_base_swa (default
// `default_base_swa`).
Status read_gemma_windows(const GgufFile& f, ModelConfig& c, int64_t default_window, int64_t default_period,
                          double default_base_swa) {
  const std::string p = c.arch + ".";
  auto bad = [&](const std::string& key, const std::string& why) {
    return Error(f.path() + ": metadata '" + p + key + "': " + why);
  };
  PLM_TRY(c.sliding_window, f.get_int_or(p + "attention.sliding_window", default_window));
  if (c.sliding_window < 0) return bad("attention.sliding_window", "negative: " + std::to_string(c.sliding_window));
  if (c.sliding_window == 0) return {};
  c.layer_is_local.assign(static_cast<size_t>(c.n_layer), 0);
  const GgufValue* pat = f.find(p + "attention.sliding_window_pattern");
  if (pat && pat->type == GgufType::ARRAY) {
    if (pat->arr.size() != static_cast<size_t>(c.n_layer))
      return bad("attention.sliding_window_pattern",
                 std::to_string(pat->arr.size()) + " flags for " + std::to_string(c.n_layer) + " layers");
    for (size_t il = 0; il < pat->arr.size(); ++il) {
      const GgufValue& v = pat->arr[il];
      if (v.type != GgufType::BOOL && !v.is_integer())
        return bad("attention.sliding_window_pattern", "element " + std::to_string(il) + " is not a flag");
      c.layer_is_local[il] = (v.type == GgufType::BOOL ? v.u != 0 : v.as_int() != 0) ? 1 : 0;
    }
  } else {
    PLM_TRY(int64_t period, f.get_int_or(p + "attention.sliding_window_pattern", default_period));
    if (period < 0) return bad("attention.sliding_window_pattern", "negative period: " + std::to_string(period));
    for (int64_t il = 0; il < c.n_layer; ++il)
      c.layer_is_local[static_cast<size_t>(il)] = period == 0 || il % period < period - 1 ? 1 : 0;
  }
  PLM_TRY(double base_local, f.get_float_or(p + "rope.freq_base_swa", default_base_swa));
  if (!(base_local > 0)) return bad("rope.freq_base_swa", "must be positive");
  c.rope_freq_base_local = static_cast<float>(base_local);
  return {};
}

// Gemma 2 and 3: windows, sqrt(n_embd) embedding scale, the query scale and soft-caps.
Status read_gemma(const GgufFile& f, ModelConfig& c) {
  const std::string p = c.arch + ".";
  auto bad = [&](const std::string& key, const std::string& why) {
    return Error(f.path() + ": metadata '" + p + key + "': " + why);
  };
  const bool g2 = c.arch == "gemma2";
  // Gemma 2 files may omit the window (the published 4096) and base (the global one); Gemma 3's local base is 10000.
  if (auto st = read_gemma_windows(f, c, g2 ? 4096 : 0, g2 ? 2 : 6, g2 ? c.rope_freq_base : 10000.0); !st) return st;
  c.embed_scale = std::sqrt(static_cast<float>(c.n_embd));
  // query_pre_attn_scalar of the published configs: n_embd / n_head for the 27B models (Gemma 2: 46 layers,
  // Gemma 3: 62), the head size for every other size.
  const bool is_27b = c.n_layer == (g2 ? 46 : 62);
  c.query_scale = 1.0f / std::sqrt(static_cast<float>(is_27b ? c.n_embd / c.n_head : c.head_dim));
  PLM_TRY(double softcap, f.get_float_or(p + "final_logit_softcapping", g2 ? 30.0 : 0.0));
  if (!(softcap >= 0)) return bad("final_logit_softcapping", "must be >= 0");
  c.final_logit_softcap = static_cast<float>(softcap);
  if (g2) {
    PLM_TRY(double attn_cap, f.get_float_or(p + "attn_logit_softcapping", 50.0));
    if (!(attn_cap > 0)) return bad("attn_logit_softcapping", "must be positive");
    c.attn_softcap = static_cast<float>(attn_cap);
  }
  return {};
}

// Llama-block models: Mistral-style windows (attention.sliding_window on every layer, when a llama file sets
// it), SmolLM3's RoPE-less layers, Phi-3's pre-scaled queries.
Status read_llama_block(const GgufFile& f, ModelConfig& c) {
  const std::string p = c.arch + ".";
  if (c.arch == "llama") {
    PLM_TRY(c.sliding_window, f.get_int_or(p + "attention.sliding_window", 0));
    if (c.sliding_window < 0)
      return Error(f.path() + ": metadata '" + p +
                   "attention.sliding_window': negative: " + std::to_string(c.sliding_window));
    if (c.sliding_window > 0) c.layer_is_local.assign(static_cast<size_t>(c.n_layer), 1);
    c.rope_freq_base_local = c.rope_freq_base;
    c.rope_freq_scale_local = c.rope_freq_scale;
  }
  // Phi-3's attention.sliding_window is not applied: llama.cpp disables it for phi3 (its files do not say which
  // layers use it), and pocketlm follows the reference implementation it is judged against.
  if (c.arch == "smollm3") c.no_rope_period = 4;  // SmolLM3-3B's no_rope_layers, as llama.cpp fixes it
  if (c.arch == "phi3") c.query_scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  return {};
}
}  // namespace

std::string ModelConfig::supported_architectures() {
  std::string known;
  for (const auto& a : kArchs) known += (known.empty() ? "" : ", ") + std::string(a.name);
  return known;
}

Expected<ModelConfig> ModelConfig::from_gguf(const GgufFile& f) {
  ModelConfig c;
  PLM_TRY(c.arch, f.get_string("general.architecture"));
  const ArchInfo* info = nullptr;
  for (const auto& a : kArchs)
    if (c.arch == a.name) info = &a;
  if (!info)
    return Error(f.path() + ": metadata 'general.architecture': unsupported architecture '" + c.arch +
                 "' (supported: " + supported_architectures() + ")");
  c.rope_type = info->rope;
  c.block = info->block;
  c.qk_norm = info->qk_norm;
  c.post_norms = info->post_norms;
  c.fused_gate_up = info->fused_gate_up;
  PLM_TRY(c.name, f.get_string_or("general.name", c.arch));
  const std::string p = c.arch + ".";
  PLM_TRY(c.n_embd, f.get_int(p + "embedding_length"));
  PLM_TRY(c.n_layer, f.get_int(p + "block_count"));
  PLM_TRY(c.n_head, f.get_int(p + "attention.head_count"));
  PLM_TRY(c.n_head_kv, f.get_int_or(p + "attention.head_count_kv", c.n_head));
  PLM_TRY(c.n_ff, f.get_int(p + "feed_forward_length"));
  PLM_TRY(c.n_ctx_train, f.get_int_or(p + "context_length", 2048));
  auto bad = [&](const std::string& key, const std::string& why) {
    return Error(f.path() + ": metadata '" + p + key + "': " + why);
  };
  if (c.n_embd <= 0 || c.n_embd > (1 << 16))
    return bad("embedding_length", "out of range: " + std::to_string(c.n_embd));
  if (c.n_layer <= 0 || c.n_layer > 512) return bad("block_count", "out of range: " + std::to_string(c.n_layer));
  if (c.n_head <= 0 || c.n_head > 1024) return bad("attention.head_count", "out of range: " + std::to_string(c.n_head));
  if (c.n_head_kv <= 0 || c.n_head % c.n_head_kv != 0)
    return bad("attention.head_count_kv",
               std::to_string(c.n_head_kv) + " does not divide head_count " + std::to_string(c.n_head));
  if (c.n_ff <= 0 || c.n_ff > (1 << 20)) return bad("feed_forward_length", "out of range: " + std::to_string(c.n_ff));
  if (c.n_ctx_train <= 0) return bad("context_length", "must be positive");
  PLM_TRY(c.head_dim, f.get_int_or(p + "attention.key_length", c.n_embd / c.n_head));
  PLM_TRY(c.head_dim_v, f.get_int_or(p + "attention.value_length", c.head_dim));
  if (c.head_dim <= 0 || c.head_dim > 1024 || c.head_dim % 2 != 0)
    return bad("attention.key_length", "invalid head size " + std::to_string(c.head_dim));
  if (c.head_dim_v != c.head_dim) return bad("attention.value_length", "differs from key_length (not supported)");
  PLM_TRY(double eps, f.get_float_or(p + "attention.layer_norm_rms_epsilon", 1e-5));
  if (!(eps > 0 && eps < 1)) return bad("attention.layer_norm_rms_epsilon", "out of range");
  c.norm_eps = static_cast<float>(eps);
  PLM_TRY(double base, f.get_float_or(p + "rope.freq_base", 10000.0));
  if (!(base > 0)) return bad("rope.freq_base", "must be positive");
  c.rope_freq_base = static_cast<float>(base);
  PLM_TRY(std::string scaling, f.get_string_or(p + "rope.scaling.type", "none"));
  PLM_TRY(double factor, f.get_float_or(p + "rope.scaling.factor", 0.0));
  if (scaling == "linear" && factor > 0)
    c.rope_freq_scale = static_cast<float>(1.0 / factor);
  else if (scaling != "none" && scaling != "linear" && scaling != "longrope" && factor > 1.0)
    return bad("rope.scaling.type", "RoPE scaling '" + scaling +
                                        "' is not supported (none, linear, longrope; Llama 3's "
                                        "scaling comes as the rope_freqs.weight tensor)");
  PLM_TRY(double attn_factor, f.get_float_or(p + "rope.scaling.attn_factor", 1.0));
  if (!(attn_factor > 0 && attn_factor < 16)) return bad("rope.scaling.attn_factor", "out of range");
  c.rope_attn_factor = static_cast<float>(attn_factor);
  PLM_TRY(c.n_ctx_orig, f.get_int_or(p + "rope.scaling.original_context_length", c.n_ctx_train));
  if (c.n_ctx_orig <= 0) return bad("rope.scaling.original_context_length", "must be positive");
  PLM_TRY(c.rope_dim, f.get_int_or(p + "rope.dimension_count", c.head_dim));
  if (c.rope_dim <= 0 || c.rope_dim > c.head_dim || c.rope_dim % 2 != 0)
    return bad("rope.dimension_count", "invalid: " + std::to_string(c.rope_dim));
  c.tied_embeddings = f.tensor("output.weight") == nullptr;
  // n_vocab from the embedding matrix (authoritative), cross-checked later with the tokenizer.
  if (const GgufTensor* emb = f.tensor("token_embd.weight")) c.n_vocab = emb->ne[1];
  if (auto st = c.block == ArchBlock::Gemma ? read_gemma(f, c) : read_llama_block(f, c); !st) return st.error();
  return c;
}

std::string ModelConfig::summary() const {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "arch=%s n_vocab=%lld n_embd=%lld n_layer=%lld n_head=%lld n_head_kv=%lld head_dim=%lld n_ff=%lld "
                "rope_base=%g rope_dim=%lld ctx_train=%lld tied_head=%s",
                arch.c_str(), static_cast<long long>(n_vocab), static_cast<long long>(n_embd),
                static_cast<long long>(n_layer), static_cast<long long>(n_head), static_cast<long long>(n_head_kv),
                static_cast<long long>(head_dim), static_cast<long long>(n_ff), static_cast<double>(rope_freq_base),
                static_cast<long long>(rope_dim), static_cast<long long>(n_ctx_train), tied_embeddings ? "yes" : "no");
  std::string out = buf;
  if (sliding_window > 0) {
    int64_t n_local = 0;
    for (uint8_t l : layer_is_local) n_local += l;
    std::snprintf(buf, sizeof buf, " window=%lld local_layers=%lld/%lld rope_base_local=%g",
                  static_cast<long long>(sliding_window), static_cast<long long>(n_local),
                  static_cast<long long>(n_layer), static_cast<double>(rope_freq_base_local));
    out += buf;
  }
  return out;
}

}  // namespace pocketlm
