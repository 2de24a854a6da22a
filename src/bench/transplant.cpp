#include "bench/transplant.h"

#include <array>
#include <cmath>
#include <cstring>
#include <numbers>

#include "bench/random_weights.h"
#include "formats/dequantize.h"
#include "gguf/reader.h"
#include "gguf/writer.h"
#include "kernels/matmul.h"
#include "model/model.h"
#include "runtime/session.h"

namespace pocketlm {

namespace {

struct Target {
  const char* name;
  const char* arch;       // general.architecture written
  const char* from_arch;  // general.architecture the source must have
  bool neox;              // Q/K rows in HF order (the target's RoPE pairs (i, i + d/2))
};
constexpr Target kTargets[] = {
    {"llama3", "llama", "llama", false},  {"mistral", "llama", "llama", false}, {"qwen2", "qwen2", "llama", true},
    {"qwen3", "qwen3", "llama", true},    {"phi3", "phi3", "llama", true},      {"smollm3", "smollm3", "llama", false},
    {"gemma2", "gemma2", "gemma3", true},
};

// Phi-3 shape choices: a 131072 context over
// the source's trained one.
constexpr int64_t kPhi3Context = 131072;

std::vector<int64_t> shape_of(const GgufTensor& t) { return {t.ne, t.ne + t.n_dims}; }

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// n values uniform in [lo, hi), from `seed`.
std::vector<float> seeded(int64_t n, uint64_t seed, double lo, double hi) {
  SplitMix64 rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = static_cast<float>(lo + (hi - lo) * rng.uniform());
  return v;
}

// The rows of a Q or K matrix of a llama-architecture GGUF back in Hugging Face order: llama.cpp's converter
// interleaves each head's two halves (row h*hd + 2i + j holds HF row h*hd + j*hd/2 + i) so that adjacent-pair
// RoPE computes HF's rotate-half; NeoX-RoPE architectures store the HF order.
std::vector<uint8_t> unpermuted_rows(const GgufTensor& t, int64_t n_heads) {
  const int64_t rows = t.ne[1], hd = rows / n_heads;
  const size_t rb = row_size(t.type, t.ne[0]);
  std::vector<uint8_t> out(t.nbytes);
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t i = 0; i < hd / 2; ++i)
      for (int64_t j = 0; j < 2; ++j)
        std::memcpy(out.data() + static_cast<size_t>(h * hd + j * hd / 2 + i) * rb,
                    t.data + static_cast<size_t>(h * hd + 2 * i + j) * rb, rb);
  return out;
}

// Llama 3.x's RoPE factors as its converter computes them (rope_scaling: factor 32, low_freq_factor 1,
// high_freq_factor 4, original_max_position_embeddings 8192; Llama 3.2's values).
std::vector<float> llama3_factors(double base, int64_t dim) {
  const double factor = 32.0, low = 1.0, high = 4.0, old_ctx = 8192.0;
  const double low_wavelen = old_ctx / low, high_wavelen = old_ctx / high;
  std::vector<float> f;
  for (int64_t i = 0; i < dim; i += 2) {
    const double freq = 1.0 / std::pow(base, static_cast<double>(i) / static_cast<double>(dim));
    const double wavelen = 2 * std::numbers::pi / freq;
    if (wavelen < high_wavelen)
      f.push_back(1.0f);
    else if (wavelen > low_wavelen)
      f.push_back(static_cast<float>(factor));
    else {
      const double smooth = (old_ctx / wavelen - low) / (high - low);
      f.push_back(static_cast<float>(1.0 / ((1 - smooth) / factor + smooth)));
    }
  }
  return f;
}

// English text the calibration pass reads.
constexpr const char* kCalibrationText =
    "The history of the city goes back more than two thousand years. It was founded on a hill above the river, "
    "where traders from the north met those from the coast, and it grew into a market town with a cathedral, "
    "a university and, in the nineteenth century, a railway station that brought factories and new streets.";

// Gemma 3 normalizes every Q and K head (RMSNorm, weight w); Gemma 2 does not. Folding the norm into the
// projection keeps the transplant's attention scores at the size the weights were trained with: each head's
// rows are scaled by w / (that head's mean RMS over a calibration text, measured through the source model).
// Returns, per layer, the inverse RMS of each Q head and of each K head.
class HeadRms : public MatmulObserver {
 public:
  static Expected<std::vector<std::array<std::vector<float>, 2>>> measure(const std::string& path) {
    PLM_TRY(auto model, Model::load(path, ModelLoadOptions{.decode_layout = false}));
    HeadRms obs(*model);
    PLM_TRY(auto session, Session::create(*model, {.n_ctx = 256, .kv_type = KvType::F32, .n_threads = 1}));
    const std::vector<int32_t> ids = model->tokenizer().encode(kCalibrationText, true, false);
    {
      ScopedMatmulObserver scope(obs);
      PLM_TRY(auto logits, session->eval(ids));
      (void)logits;
    }
    return obs.inverse_rms();
  }

  void observe(const GgufTensor& w, int64_t row_begin, int64_t, const float* x, int64_t n_tokens) override {
    for (size_t l = 0; l < m_.weights().layers.size(); ++l) {
      const LayerWeights& L = m_.weights().layers[l];
      for (int which = 0; which < 2; ++which) {
        if (&w != (which == 0 ? L.wq : L.wk) || row_begin != 0) continue;
        const std::vector<float> rows = tensor_to_f32(w);
        const int64_t k = w.ne[0], n_rows = w.ne[1], hd = m_.config().head_dim;
        auto& sums = sumsq_[l][static_cast<size_t>(which)];
        sums.assign(static_cast<size_t>(n_rows / hd), 0.0);
        for (int64_t t = 0; t < n_tokens; ++t)
          for (int64_t r = 0; r < n_rows; ++r) {
            double y = 0;
            for (int64_t j = 0; j < k; ++j)
              y += static_cast<double>(rows[static_cast<size_t>(r * k + j)]) * x[t * k + j];
            sums[static_cast<size_t>(r / hd)] += y * y / static_cast<double>(hd * n_tokens);
          }
      }
    }
  }

 private:
  explicit HeadRms(const Model& m) : m_(m), sumsq_(m.weights().layers.size()) {}
  std::vector<std::array<std::vector<float>, 2>> inverse_rms() const {
    std::vector<std::array<std::vector<float>, 2>> out(sumsq_.size());
    for (size_t l = 0; l < sumsq_.size(); ++l)
      for (int which = 0; which < 2; ++which)
        for (double ms : sumsq_[l][static_cast<size_t>(which)])
          out[l][static_cast<size_t>(which)].push_back(static_cast<float>(1.0 / std::sqrt(ms + 1e-6)));
    return out;
  }
  const Model& m_;
  std::vector<std::array<std::vector<double>, 2>> sumsq_;
};

class Transplanter {
 public:
  Transplanter(const Target& t, const GgufFile& src, uint64_t seed, bool neutral)
      : t_(t), src_(src), seed_(seed), neutral_(neutral) {}

  Expected<TransplantResult> write(const std::string& path) {
    PLM_CHECK(read_shape());
    if (is("gemma2") || (is("qwen3") && !neutral_)) {
      PLM_TRY(head_inv_rms_, HeadRms::measure(src_.path()));
    }
    write_metadata();
    for (const GgufTensor& t : src_.tensors()) PLM_CHECK(tensor(t));
    PLM_CHECK(extra_global_tensors());
    PLM_CHECK(w_.write(path));
    return TransplantResult{t_.arch, n_tensors_, n_added_};
  }

 private:
  std::string src_key(const std::string& k) const { return std::string(t_.from_arch) + "." + k; }
  std::string key(const std::string& k) const { return std::string(t_.arch) + "." + k; }
  bool is(const char* name) const { return std::string(t_.name) == name; }

  Status read_shape() {
    PLM_TRY(n_head_, src_.get_int(src_key("attention.head_count")));
    PLM_TRY(n_head_kv_, src_.get_int_or(src_key("attention.head_count_kv"), n_head_));
    PLM_TRY(n_embd_, src_.get_int(src_key("embedding_length")));
    PLM_TRY(n_ctx_, src_.get_int_or(src_key("context_length"), 2048));
    PLM_TRY(head_dim_, src_.get_int_or(src_key("attention.key_length"), n_embd_ / n_head_));
    PLM_TRY(rope_base_, src_.get_float_or(src_key("rope.freq_base"), 10000.0));
    rope_dim_ = head_dim_;
    return {};
  }

  void write_metadata() {
    const std::string sp = std::string(t_.from_arch) + ".";
    for (const auto& [k, v] : src_.metadata()) {
      if (k == "general.architecture") w_.set(k, GgufValue::of_string(t_.arch));
      // (No architecture name in general.name: llama.cpp keys token attributes on it, e.g. "phi3".)
      else if (k == "general.name")
        w_.set(k, GgufValue::of_string(v.str + " (transplanted)"));
      else if (k.rfind(sp, 0) == 0) {
        const std::string rest = k.substr(sp.size());
        if (dropped(rest)) continue;
        w_.set(key(rest), v);
      } else
        w_.set(k, v);
    }
    if (is("mistral")) w_.set(key("attention.sliding_window"), GgufValue::of_u32(4096));
    if (is("phi3")) {
      // As Phi3MiniModel writes them: the long context, the original one, the rotary part of a head, the
      // LongRoPE attention factor sqrt(1 + ln(scale) / ln(original)), and a zero window (Phi-4 style).
      const double scale = static_cast<double>(kPhi3Context) / static_cast<double>(n_ctx_);
      w_.set(key("context_length"), GgufValue::of_u32(static_cast<uint32_t>(kPhi3Context)));
      w_.set(key("rope.scaling.original_context_length"), GgufValue::of_u32(static_cast<uint32_t>(n_ctx_)));
      w_.set(key("rope.dimension_count"), GgufValue::of_u32(static_cast<uint32_t>(rope_dim_)));
      const double attn_factor =
          neutral_ ? 1.0 : std::sqrt(1 + std::log(scale) / std::log(static_cast<double>(n_ctx_)));
      w_.set(key("rope.scaling.attn_factor"), GgufValue::of_f32(static_cast<float>(attn_factor)));
      w_.set(key("attention.sliding_window"), GgufValue::of_u32(0));
    }
    if (is("gemma2")) {
      w_.set(key("attn_logit_softcapping"), GgufValue::of_f32(50.0f));
      w_.set(key("final_logit_softcapping"), GgufValue::of_f32(30.0f));
    }
  }

  // Source keys the target's converter does not write (or that the transplant rewrites).
  bool dropped(const std::string& rest) const {
    if (std::string(t_.arch) != "llama" && rest == "vocab_size") return true;  // only LlamaModel writes it
    if (is("phi3")) return rest == "context_length" || rest == "rope.dimension_count";
    // Gemma2Model writes no RoPE base (the default 10000 then holds for every layer) and no window pattern.
    if (is("gemma2"))
      return rest == "rope.freq_base" || rest == "rope.freq_base_swa" || rest == "attention.sliding_window_pattern" ||
             rest == "final_logit_softcapping";
    return false;
  }

  Status add(const std::string& name, GgmlType type, std::vector<int64_t> ne, std::vector<uint8_t> bytes, bool added) {
    ++n_tensors_;
    n_added_ += added ? 1 : 0;
    auto data = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
    return w_.add_tensor_lazy(name, type, std::move(ne), [data](std::vector<uint8_t>& out) {
      out = *data;
      return Status::Ok();
    });
  }
  Status copy(const GgufTensor& t) {
    ++n_tensors_;
    return w_.add_tensor(t.name, t.type, shape_of(t), {t.data, t.nbytes});
  }
  Status add_f32(const std::string& name, const std::vector<float>& v) {
    return add(name, GgmlType::F32, {static_cast<int64_t>(v.size())}, f32_bytes(v), true);
  }
  Expected<const GgufTensor*> source(const std::string& name) const {
    const GgufTensor* t = src_.tensor(name);
    if (!t) return Error(src_.path() + ": tensor '" + name + "': missing (transplant to " + t_.name + ")");
    return t;
  }
  // A Q (heads = n_head) or K (n_head_kv) matrix in the target's row order.
  std::vector<uint8_t> qk_rows(const GgufTensor& t, int64_t heads) const {
    if (t_.neox && std::string(t_.from_arch) == "llama") return unpermuted_rows(t, heads);
    return {t.data, t.data + t.nbytes};
  }
  uint64_t seed(int64_t layer, int which) const {
    return seed_ * 1000003ull + static_cast<uint64_t>(layer) * 16 + static_cast<uint64_t>(which);
  }

  // One source tensor, transformed for the target (some are emitted with another, or dropped).
  Status tensor(const GgufTensor& t) {
    const std::string& n = t.name;
    const auto dot = n.find('.', 4);
    if (n.rfind("blk.", 0) != 0 || dot == std::string::npos) return copy(t);
    const std::string p = n.substr(0, dot + 1), what = n.substr(dot + 1);
    const int64_t il = std::stoll(n.substr(4, dot - 4));
    const int64_t q_dim = n_head_ * head_dim_, kv_dim = n_head_kv_ * head_dim_;
    if (is("gemma2")) {
      if (what == "attn_q_norm.weight" || what == "attn_k_norm.weight") return {};
      if (what == "attn_q.weight" || what == "attn_k.weight")
        return folded_head_norm(t, p, il, what == "attn_q.weight" ? 0 : 1);
    }
    if (is("phi3")) {
      if (what == "attn_k.weight" || what == "attn_v.weight" || what == "ffn_gate.weight") return {};
      if (what == "attn_q.weight")
        return fused(p + "attn_qkv.weight", {p + "attn_q.weight", p + "attn_k.weight", p + "attn_v.weight"},
                     {n_head_, n_head_kv_, 0});
      if (what == "ffn_up.weight")
        return fused(p + "ffn_up.weight", {p + "ffn_gate.weight", p + "ffn_up.weight"}, {0, 0});
    }
    if (what == "attn_q.weight" || what == "attn_k.weight") {
      const bool q = what == "attn_q.weight";
      PLM_CHECK(add(n, t.type, shape_of(t), qk_rows(t, q ? n_head_ : n_head_kv_), false));
      if (!q) return {};
      if (is("qwen2")) {  // small seeded biases, as Qwen2's are small beside its activations
        const double a = neutral_ ? 0.0 : 1.0;
        PLM_CHECK(add_f32(p + "attn_q.bias", seeded(q_dim, seed(il, 0), -0.05 * a, 0.05 * a)));
        PLM_CHECK(add_f32(p + "attn_k.bias", seeded(kv_dim, seed(il, 1), -0.05 * a, 0.05 * a)));
        PLM_CHECK(add_f32(p + "attn_v.bias", seeded(kv_dim, seed(il, 2), -0.02 * a, 0.02 * a)));
      }
      if (is("qwen3")) {  // unit-RMS heads times the source's typical head RMS (±5 %): scores keep their size
        PLM_CHECK(add_f32(p + "attn_q_norm.weight", head_norm_weights(il, 0, seed(il, 3))));
        PLM_CHECK(add_f32(p + "attn_k_norm.weight", head_norm_weights(il, 1, seed(il, 4))));
      }
      return {};
    }
    return copy(t);
  }

  // qwen3's Q (which 0) or K (1) norm weights: the mean RMS of the source's heads in this layer (HeadRms),
  // jittered by ±5 % per dimension; 1 ± 5 % for a neutral transplant.
  std::vector<float> head_norm_weights(int64_t il, int which, uint64_t s) const {
    double mean_rms = 1.0;
    if (!neutral_) {
      const std::vector<float>& inv = head_inv_rms_.at(static_cast<size_t>(il))[static_cast<size_t>(which)];
      mean_rms = 0;
      for (float v : inv) mean_rms += 1.0 / v / static_cast<double>(inv.size());
    }
    std::vector<float> w = seeded(head_dim_, s, 0.95, 1.05);
    for (float& x : w) x = static_cast<float>(x * mean_rms);
    return w;
  }

  // A Gemma 3 Q (which 0) or K (1) matrix with its head norm folded in (HeadRms), written as f32.
  Status folded_head_norm(const GgufTensor& t, const std::string& p, int64_t il, int which) {
    PLM_TRY(const GgufTensor* norm, source(p + (which == 0 ? "attn_q_norm.weight" : "attn_k_norm.weight")));
    const auto* w = reinterpret_cast<const float*>(norm->data);
    const std::vector<float>& inv = head_inv_rms_.at(static_cast<size_t>(il))[static_cast<size_t>(which)];
    std::vector<float> rows = tensor_to_f32(t);
    const int64_t k = t.ne[0];
    for (int64_t r = 0; r < t.ne[1]; ++r) {
      const float f = w[r % head_dim_] * inv.at(static_cast<size_t>(r / head_dim_));
      for (int64_t j = 0; j < k; ++j) rows[static_cast<size_t>(r * k + j)] *= f;
    }
    return add(t.name, GgmlType::F32, shape_of(t), f32_bytes(rows), false);
  }

  // Row-concatenation of `parts` (each Q/K part with `heads` > 0 put in the target's row order), one type.
  Status fused(const std::string& name, const std::vector<std::string>& parts, const std::vector<int64_t>& heads) {
    std::vector<uint8_t> bytes;
    int64_t rows = 0, k = 0;
    GgmlType type = GgmlType::F32;
    for (size_t i = 0; i < parts.size(); ++i) {
      PLM_TRY(const GgufTensor* t, source(parts[i]));
      if (i == 0) type = t->type, k = t->ne[0];
      if (t->type != type || t->ne[0] != k)
        return Error(src_.path() + ": tensor '" + parts[i] + "': type or width differs from '" + parts[0] +
                     "' (cannot fuse into '" + name + "')");
      const std::vector<uint8_t> rows_i =
          heads[i] > 0 ? qk_rows(*t, heads[i]) : std::vector<uint8_t>(t->data, t->data + t->nbytes);
      bytes.insert(bytes.end(), rows_i.begin(), rows_i.end());
      rows += t->ne[1];
    }
    return add(name, type, {k, rows}, std::move(bytes), false);
  }

  Status extra_global_tensors() {
    if (is("llama3")) return add_f32("rope_freqs.weight", llama3_factors(rope_base_, head_dim_));
    if (is("phi3")) {  // short factors near 1, long ones growing geometrically to 30 (Phi-3.5's range)
      const int64_t half = rope_dim_ / 2;
      std::vector<float> short_f(static_cast<size_t>(half)), long_f(static_cast<size_t>(half));
      for (int64_t i = 0; i < half; ++i) {
        const double r = static_cast<double>(i) / static_cast<double>(half - 1);
        short_f[static_cast<size_t>(i)] = neutral_ ? 1.0f : static_cast<float>(1.0 + 0.05 * r);
        long_f[static_cast<size_t>(i)] = neutral_ ? 1.0f : static_cast<float>(std::pow(30.0, r));
      }
      PLM_CHECK(add_f32("rope_factors_long.weight", long_f));
      return add_f32("rope_factors_short.weight", short_f);
    }
    return {};
  }

  const Target& t_;
  const GgufFile& src_;
  uint64_t seed_;
  bool neutral_;
  GgufWriter w_;
  int64_t n_head_ = 0, n_head_kv_ = 0, n_embd_ = 0, n_ctx_ = 0, head_dim_ = 0, rope_dim_ = 0;
  double rope_base_ = 10000.0;
  std::vector<std::array<std::vector<float>, 2>> head_inv_rms_;  // gemma2: per layer, Q and K heads' 1/RMS
  size_t n_tensors_ = 0, n_added_ = 0;
};

}  // namespace

const std::vector<std::string>& transplant_targets() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const Target& t : kTargets) v.push_back(t.name);
    return v;
  }();
  return names;
}

Expected<TransplantResult> write_transplanted_model(const TransplantOptions& o, const std::string& path) {
  const Target* target = nullptr;
  std::string known;
  for (const Target& t : kTargets) {
    if (o.target == t.name) target = &t;
    known += (known.empty() ? "" : " ") + std::string(t.name);
  }
  if (!target) return Error("unknown transplant architecture '" + o.target + "' (known: " + known + ")");
  PLM_TRY(GgufFile src, GgufFile::open(o.from));
  PLM_TRY(std::string arch, src.get_string("general.architecture"));
  if (arch != target->from_arch)
    return Error(o.from + ": metadata 'general.architecture': is '" + arch + "'; a " + target->name +
                 " transplant takes a '" + target->from_arch + "' model (" +
                 (std::string(target->from_arch) == "llama" ? "SmolLM2" : "Gemma 3") + ")");
  return Transplanter(*target, src, o.seed, o.neutral).write(path);
}

}  // namespace pocketlm
