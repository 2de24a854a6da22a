#include "bench/synthetic_model.h"

#include <cstring>
#include <memory>

#include "bench/random_weights.h"
#include "gguf/reader.h"
#include "gguf/writer.h"
#include "util/progress.h"

namespace pocketlm {

const std::vector<SynthShape>& synth_shapes() {
  // Dimensions from each checkpoint's config.json; the vocabulary comes from --tokenizer-from.
  //                 name            reference              embd layers heads kv   ff     ctx     rope base  eps   tied
  //                 arch   head_dim llama3
  static const std::vector<SynthShape> kShapes = {
      {"llama-1b", "Llama-3.2-1B", 2048, 16, 32, 8, 8192, 131072, 500000.0, 1e-5, true},
      {"llama-3b", "Llama-3.2-3B", 3072, 28, 24, 8, 8192, 131072, 500000.0, 1e-5, true},
      {"llama-7b", "Llama-2-7B", 4096, 32, 32, 32, 11008, 4096, 10000.0, 1e-5, false},
      {"smollm2-135m", "SmolLM2-135M", 576, 30, 9, 3, 1536, 8192, 100000.0, 1e-5, true},
      {"llama-3.2-1b", "Llama-3.2-1B", 2048, 16, 32, 8, 8192, 131072, 500000.0, 1e-5, true, "llama", 0, true},
      {"llama-3.2-3b", "Llama-3.2-3B", 3072, 28, 24, 8, 8192, 131072, 500000.0, 1e-5, true, "llama", 0, true},
      {"qwen2.5-0.5b", "Qwen2.5-0.5B", 896, 24, 14, 2, 4864, 32768, 1000000.0, 1e-6, true, "qwen2"},
      {"qwen2.5-1.5b", "Qwen2.5-1.5B", 1536, 28, 12, 2, 8960, 32768, 1000000.0, 1e-6, true, "qwen2"},
      {"qwen3-0.6b", "Qwen3-0.6B", 1024, 28, 16, 8, 3072, 40960, 1000000.0, 1e-6, true, "qwen3", 128},
      {"qwen3-1.7b", "Qwen3-1.7B", 2048, 28, 16, 8, 6144, 40960, 1000000.0, 1e-6, true, "qwen3", 128},
      {"phi-3.5-mini", "Phi-3.5-mini-instruct", 3072, 32, 32, 32, 8192, 131072, 10000.0, 1e-5, false, "phi3"},
      {"gemma-2-2b", "gemma-2-2b", 2304, 26, 8, 4, 9216, 8192, 10000.0, 1e-6, true, "gemma2", 256},
  };
  return kShapes;
}

Expected<SynthShape> find_synth_shape(std::string_view name) {
  std::string known;
  for (const SynthShape& s : synth_shapes()) {
    if (s.name == name) return s;
    known += (known.empty() ? "" : " ") + s.name;
  }
  return Error("unknown shape '" + std::string(name) + "' (known: " + known + ")");
}

namespace {
int64_t head_dim_of(const SynthShape& s) { return s.head_dim > 0 ? s.head_dim : s.n_embd / s.n_head; }
}  // namespace

std::vector<RecipeTensor> synth_tensor_list(const SynthShape& s, int64_t n_vocab) {
  const int64_t hd = head_dim_of(s), q_dim = hd * s.n_head, kv_dim = hd * s.n_head_kv;
  const bool phi3 = s.arch == "phi3", gemma2 = s.arch == "gemma2";
  std::vector<RecipeTensor> t;
  auto add = [&](std::string name, std::vector<int64_t> ne) {
    t.push_back({std::move(name), std::move(ne), GgmlType::F32});
  };
  // llama.cpp's convert order: embedding, then per layer, then the final norm and head.
  add("token_embd.weight", {s.n_embd, n_vocab});
  if (s.llama3_rope) add("rope_freqs.weight", {hd / 2});
  if (phi3) {
    add("rope_factors_long.weight", {hd / 2});
    add("rope_factors_short.weight", {hd / 2});
  }
  for (int64_t i = 0; i < s.n_layer; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    add(b + "attn_norm.weight", {s.n_embd});
    if (phi3) {
      add(b + "attn_qkv.weight", {s.n_embd, q_dim + 2 * kv_dim});
    } else {
      add(b + "attn_q.weight", {s.n_embd, q_dim});
      add(b + "attn_k.weight", {s.n_embd, kv_dim});
      add(b + "attn_v.weight", {s.n_embd, kv_dim});
    }
    if (s.arch == "qwen2") {
      add(b + "attn_q.bias", {q_dim});
      add(b + "attn_k.bias", {kv_dim});
      add(b + "attn_v.bias", {kv_dim});
    }
    if (s.arch == "qwen3") {
      add(b + "attn_q_norm.weight", {hd});
      add(b + "attn_k_norm.weight", {hd});
    }
    add(b + "attn_output.weight", {q_dim, s.n_embd});
    if (gemma2) add(b + "post_attention_norm.weight", {s.n_embd});
    add(b + "ffn_norm.weight", {s.n_embd});
    if (!phi3) add(b + "ffn_gate.weight", {s.n_embd, s.n_ff});
    add(b + "ffn_up.weight", {s.n_embd, phi3 ? 2 * s.n_ff : s.n_ff});
    add(b + "ffn_down.weight", {s.n_ff, s.n_embd});
    if (gemma2) add(b + "post_ffw_norm.weight", {s.n_embd});
  }
  add("output_norm.weight", {s.n_embd});
  if (!s.tied_embeddings) add("output.weight", {s.n_embd, n_vocab});
  return t;
}

Expected<SynthResult> write_synthetic_model(const SynthOptions& o, const std::string& path) {
  const SynthShape& s = o.shape;
  if (s.n_embd <= 0 || s.n_layer <= 0 || s.n_head <= 0 || s.n_head_kv <= 0 || s.n_ff <= 0 ||
      (s.head_dim <= 0 && s.n_embd % s.n_head != 0) || s.n_head % s.n_head_kv != 0) {
    return Error("shape '" + s.name + "': inconsistent dimensions");
  }
  PLM_TRY(QuantRecipe recipe, find_recipe(o.recipe));
  PLM_TRY(GgufFile tok, GgufFile::open(o.tokenizer_from));

  GgufWriter w;
  const std::string a = s.arch + ".";
  w.set("general.architecture", GgufValue::of_string(s.arch));
  w.set("general.type", GgufValue::of_string("model"));
  w.set("general.name", GgufValue::of_string("synthetic " + s.name + " " + std::string(recipe.name) +
                                             " (random weights, " + s.reference + " dims)"));
  w.set("general.file_type", GgufValue::of_u32(recipe.ftype));
  w.set("general.quantization_version", GgufValue::of_u32(2));
  w.set(a + "context_length", GgufValue::of_u32(static_cast<uint32_t>(s.n_ctx_train)));
  w.set(a + "embedding_length", GgufValue::of_u32(static_cast<uint32_t>(s.n_embd)));
  w.set(a + "block_count", GgufValue::of_u32(static_cast<uint32_t>(s.n_layer)));
  w.set(a + "feed_forward_length", GgufValue::of_u32(static_cast<uint32_t>(s.n_ff)));
  w.set(a + "attention.head_count", GgufValue::of_u32(static_cast<uint32_t>(s.n_head)));
  w.set(a + "attention.head_count_kv", GgufValue::of_u32(static_cast<uint32_t>(s.n_head_kv)));
  w.set(a + "rope.freq_base", GgufValue::of_f32(static_cast<float>(s.rope_freq_base)));
  w.set(a + "rope.dimension_count", GgufValue::of_u32(static_cast<uint32_t>(head_dim_of(s))));
  if (s.head_dim > 0) {
    w.set(a + "attention.key_length", GgufValue::of_u32(static_cast<uint32_t>(s.head_dim)));
    w.set(a + "attention.value_length", GgufValue::of_u32(static_cast<uint32_t>(s.head_dim)));
  }
  if (s.arch == "phi3") {  // LongRoPE over a 4096-token original context, as Phi-3.5-mini
    w.set(a + "rope.scaling.original_context_length", GgufValue::of_u32(4096));
    w.set(a + "rope.scaling.attn_factor", GgufValue::of_f32(1.1902381f));
    w.set(a + "attention.sliding_window", GgufValue::of_u32(262144));
  }
  if (s.arch == "gemma2") {
    w.set(a + "attention.sliding_window", GgufValue::of_u32(4096));
    w.set(a + "attn_logit_softcapping", GgufValue::of_f32(50.0f));
    w.set(a + "final_logit_softcapping", GgufValue::of_f32(30.0f));
  }
  w.set(a + "attention.layer_norm_rms_epsilon", GgufValue::of_f32(static_cast<float>(s.rms_eps)));
  int64_t n_vocab = 0;
  for (const auto& [key, value] : tok.metadata()) {
    if (key.rfind("tokenizer.", 0) != 0) continue;
    if (key == "tokenizer.ggml.tokens") n_vocab = static_cast<int64_t>(value.arr.size());
    w.set(key, value);
  }
  if (n_vocab <= 0) return Error(o.tokenizer_from + ": no tokenizer.ggml.tokens array to copy a tokenizer from");
  w.set(a + "vocab_size", GgufValue::of_u32(static_cast<uint32_t>(n_vocab)));

  const std::vector<RecipeTensor> tensors = synth_tensor_list(s, n_vocab);
  RecipeModelInfo info;
  info.arch = s.arch;
  info.n_layer = s.n_layer;
  info.n_head = s.n_head;
  info.n_head_kv = s.n_head_kv;
  PLM_TRY(std::vector<TensorPlan> plan, plan_recipe(recipe, info, tensors));

  SynthResult res;
  res.n_vocab = n_vocab;
  uint64_t total = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    int64_t n = 1;
    for (int64_t d : tensors[i].ne) n *= d;
    res.n_params += n;
    total += row_size(plan[i].type, n);
  }
  const int64_t total_mib = static_cast<int64_t>((total + (1u << 20) - 1) >> 20);
  std::shared_ptr<Progress> progress;
  if (o.progress)
    progress = std::make_shared<Progress>("synth " + s.name + " " + std::string(recipe.name), total_mib, "MiB");

  for (size_t i = 0; i < tensors.size(); ++i) {
    const RecipeTensor& t = tensors[i];
    const GgmlType type = plan[i].type;
    int64_t n = 1;
    for (int64_t d : t.ne) n *= d;
    const bool is_norm = t.ne.size() == 1;
    const bool is_bias = t.name.size() > 5 && t.name.compare(t.name.size() - 5, 5, ".bias") == 0;
    const uint64_t seed = o.seed * 1000003ull + i;
    const size_t nbytes = row_size(type, n);
    auto produce = [type, n, seed, is_norm, is_bias, nbytes, progress](std::vector<uint8_t>& out) -> Status {
      out.resize(nbytes);
      if (is_norm) {
        // Norm weights and RoPE factors near 1 (random within ±10 %), so activations keep a realistic scale;
        // biases small (±0.02).
        SplitMix64 rng(seed);
        for (int64_t k = 0; k < n; ++k) {
          const float v = static_cast<float>(is_bias ? 0.04 * rng.uniform() - 0.02 : 0.9 + 0.2 * rng.uniform());
          std::memcpy(out.data() + 4 * k, &v, 4);
        }
      } else {
        Status filled = fill_random_weights(type, n, seed, out);
        if (!filled.ok()) return filled;
      }
      if (progress) progress->set(progress->done() + static_cast<int64_t>(nbytes >> 20));
      return Status::Ok();
    };
    PLM_CHECK(w.add_tensor_lazy(t.name, type, t.ne, std::move(produce)));
  }
  PLM_CHECK(w.write(path));
  if (progress) {
    progress->set(total_mib);
    progress->finish();
  }
  res.plan = std::move(plan);
  res.file_bytes = total;
  return res;
}

}  // namespace pocketlm
