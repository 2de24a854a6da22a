#include "bench/synthetic_model.h"

#include <cstring>
#include <memory>

#include "bench/random_weights.h"
#include "gguf/reader.h"
#include "gguf/writer.h"
#include "util/progress.h"

namespace pocketlm {

const std::vector<SynthShape>& synth_shapes() {
  //                 name            reference              embd layers heads kv   ff     ctx     rope base  eps   tied
  static const std::vector<SynthShape> kShapes = {
      {"llama-1b", "Llama-3.2-1B", 2048, 16, 32, 8, 8192, 131072, 500000.0, 1e-5, true},
      {"llama-3b", "Llama-3.2-3B", 3072, 28, 24, 8, 8192, 131072, 500000.0, 1e-5, true},
      {"llama-7b", "Llama-2-7B", 4096, 32, 32, 32, 11008, 4096, 10000.0, 1e-5, false},
      {"smollm2-135m", "SmolLM2-135M", 576, 30, 9, 3, 1536, 8192, 100000.0, 1e-5, true},
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

std::vector<RecipeTensor> synth_tensor_list(const SynthShape& s, int64_t n_vocab) {
  const int64_t head_dim = s.n_embd / s.n_head;
  const int64_t n_kv = head_dim * s.n_head_kv;
  std::vector<RecipeTensor> t;
  // llama.cpp's convert order: embedding, then per layer, then the final norm and head.
  t.push_back({"token_embd.weight", {s.n_embd, n_vocab}, GgmlType::F32});
  for (int64_t i = 0; i < s.n_layer; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    t.push_back({b + "attn_norm.weight", {s.n_embd}, GgmlType::F32});
    t.push_back({b + "attn_q.weight", {s.n_embd, s.n_embd}, GgmlType::F32});
    t.push_back({b + "attn_k.weight", {s.n_embd, n_kv}, GgmlType::F32});
    t.push_back({b + "attn_v.weight", {s.n_embd, n_kv}, GgmlType::F32});
    t.push_back({b + "attn_output.weight", {s.n_embd, s.n_embd}, GgmlType::F32});
    t.push_back({b + "ffn_norm.weight", {s.n_embd}, GgmlType::F32});
    t.push_back({b + "ffn_gate.weight", {s.n_embd, s.n_ff}, GgmlType::F32});
    t.push_back({b + "ffn_up.weight", {s.n_embd, s.n_ff}, GgmlType::F32});
    t.push_back({b + "ffn_down.weight", {s.n_ff, s.n_embd}, GgmlType::F32});
  }
  t.push_back({"output_norm.weight", {s.n_embd}, GgmlType::F32});
  if (!s.tied_embeddings) t.push_back({"output.weight", {s.n_embd, n_vocab}, GgmlType::F32});
  return t;
}

Expected<SynthResult> write_synthetic_model(const SynthOptions& o, const std::string& path) {
  const SynthShape& s = o.shape;
  if (s.n_embd <= 0 || s.n_layer <= 0 || s.n_head <= 0 || s.n_head_kv <= 0 || s.n_ff <= 0 ||
      s.n_embd % s.n_head != 0 || s.n_head % s.n_head_kv != 0) {
    return Error("shape '" + s.name + "': inconsistent dimensions");
  }
  PLM_TRY(QuantRecipe recipe, find_recipe(o.recipe));
  PLM_TRY(GgufFile tok, GgufFile::open(o.tokenizer_from));

  GgufWriter w;
  w.set("general.architecture", GgufValue::of_string("llama"));
  w.set("general.type", GgufValue::of_string("model"));
  w.set("general.name", GgufValue::of_string("synthetic " + s.name + " " + std::string(recipe.name) +
                                             " (random weights, " + s.reference + " dims)"));
  w.set("general.file_type", GgufValue::of_u32(recipe.ftype));
  w.set("general.quantization_version", GgufValue::of_u32(2));
  w.set("llama.context_length", GgufValue::of_u32(static_cast<uint32_t>(s.n_ctx_train)));
  w.set("llama.embedding_length", GgufValue::of_u32(static_cast<uint32_t>(s.n_embd)));
  w.set("llama.block_count", GgufValue::of_u32(static_cast<uint32_t>(s.n_layer)));
  w.set("llama.feed_forward_length", GgufValue::of_u32(static_cast<uint32_t>(s.n_ff)));
  w.set("llama.attention.head_count", GgufValue::of_u32(static_cast<uint32_t>(s.n_head)));
  w.set("llama.attention.head_count_kv", GgufValue::of_u32(static_cast<uint32_t>(s.n_head_kv)));
  w.set("llama.rope.freq_base", GgufValue::of_f32(static_cast<float>(s.rope_freq_base)));
  w.set("llama.rope.dimension_count", GgufValue::of_u32(static_cast<uint32_t>(s.n_embd / s.n_head)));
  w.set("llama.attention.layer_norm_rms_epsilon", GgufValue::of_f32(static_cast<float>(s.rms_eps)));
  int64_t n_vocab = 0;
  for (const auto& [key, value] : tok.metadata()) {
    if (key.rfind("tokenizer.", 0) != 0) continue;
    if (key == "tokenizer.ggml.tokens") n_vocab = static_cast<int64_t>(value.arr.size());
    w.set(key, value);
  }
  if (n_vocab <= 0) return Error(o.tokenizer_from + ": no tokenizer.ggml.tokens array to copy a tokenizer from");
  w.set("llama.vocab_size", GgufValue::of_u32(static_cast<uint32_t>(n_vocab)));

  const std::vector<RecipeTensor> tensors = synth_tensor_list(s, n_vocab);
  RecipeModelInfo info;
  info.arch = "llama";
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
  if (o.progress) progress = std::make_shared<Progress>("synth " + s.name + " " + std::string(recipe.name), total_mib, "MiB");

  for (size_t i = 0; i < tensors.size(); ++i) {
    const RecipeTensor& t = tensors[i];
    const GgmlType type = plan[i].type;
    int64_t n = 1;
    for (int64_t d : t.ne) n *= d;
    const bool is_norm = t.ne.size() == 1;
    const uint64_t seed = o.seed * 1000003ull + i;
    const size_t nbytes = row_size(type, n);
    auto produce = [type, n, seed, is_norm, nbytes, progress](std::vector<uint8_t>& out) -> Status {
      out.resize(nbytes);
      if (is_norm) {
        // Norm weights near 1 (random within ±10 %), so activations keep a realistic scale.
        SplitMix64 rng(seed);
        for (int64_t k = 0; k < n; ++k) {
          const float v = static_cast<float>(0.9 + 0.2 * rng.uniform());
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
