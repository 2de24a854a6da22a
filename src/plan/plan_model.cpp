#include "plan/plan_model.h"

#include "kernels/interleave.h"

#include <cctype>
#include <cmath>
#include <sstream>

#include "bench/synthetic_model.h"
#include "gguf/reader.h"
#include "plan/calibration.h"
#include "quant/quantize_model.h"
#include "quant/recipe.h"

namespace pocketlm {

uint64_t PlanModel::weight_bytes() const {
  uint64_t b = 0;
  for (const PlanTensor& t : tensors) b += t.bytes;
  return b;
}

std::map<GgmlType, uint64_t> PlanModel::bytes_by_type() const {
  std::map<GgmlType, uint64_t> m;
  for (const PlanTensor& t : tensors) m[t.type] += t.bytes;
  return m;
}

const PlanTensor* PlanModel::tensor(const std::string& name) const {
  for (const PlanTensor& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

namespace {
bool is_head_tied(const PlanModel& m) { return m.tensor("output.weight") == nullptr; }
}  // namespace

uint64_t PlanModel::decode_weight_bytes() const {
  uint64_t b = 0;
  for (const PlanTensor& t : tensors) {
    if (t.name == "token_embd.weight" && !is_head_tied(*this))
      b += row_size(t.type, t.row_width);
    else
      b += t.bytes;
  }
  return b;
}

uint64_t PlanModel::decode_weight_bytes_x16() const {
  uint64_t b = 0;
  for (const PlanTensor& t : tensors) {
    if (t.name == "token_embd.weight" && !is_head_tied(*this)) continue;  // a row lookup, not a GEMV
    if (t.n_elements != t.row_width && kernels::has_x16_layout(t.type)) b += t.bytes;
  }
  return b;
}

int64_t PlanModel::matmul_params() const {
  int64_t n = 0;
  for (const PlanTensor& t : tensors) {
    if (t.n_elements == t.row_width) continue;  // 1-D: norms
    if (t.name == "token_embd.weight" && !is_head_tied(*this)) continue;
    n += t.n_elements;
  }
  return n;
}

int64_t PlanModel::head_params() const {
  const PlanTensor* head = tensor("output.weight");
  if (head == nullptr) head = tensor("token_embd.weight");
  return head != nullptr ? head->n_elements : 0;
}

namespace {

PlanTensor make_tensor(const std::string& name, GgmlType type, const std::vector<int64_t>& ne) {
  PlanTensor t;
  t.name = name;
  t.type = type;
  t.row_width = ne.empty() ? 1 : ne[0];
  t.n_elements = 1;
  for (int64_t d : ne) t.n_elements *= d;
  t.bytes = row_size(type, t.row_width) * static_cast<uint64_t>(t.n_elements / std::max<int64_t>(1, t.row_width));
  return t;
}

// Rules on top of `types` (one per tensor, in order): the first rule whose pattern a tensor's name matches
// sets its type, for the tensors llama.cpp quantizes; a block that does not divide the row falls back.
Status apply_rules(const std::string& rules_path, const std::vector<RecipeTensor>& tensors,
                   std::vector<GgmlType>& types) {
  if (rules_path.empty()) return Status::Ok();
  PLM_TRY(std::vector<QuantizeRule> rules, read_quantize_rules(rules_path));
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (!recipe_allows_quantization(tensors[i])) continue;
    for (const QuantizeRule& r : rules) {
      if (std::regex_search(tensors[i].name, r.re)) {
        types[i] = recipe_fallback_type(r.type, tensors[i].ne.empty() ? 1 : tensors[i].ne[0]);
        break;
      }
    }
  }
  return Status::Ok();
}

// The types a recipe or single type gives (plan_recipe / plan_uniform, the quantizer's planning functions).
Expected<std::vector<GgmlType>> recipe_types(const std::string& target, const RecipeModelInfo& info,
                                             const std::vector<RecipeTensor>& tensors) {
  std::vector<GgmlType> types;
  if (auto recipe = find_recipe(target)) {
    PLM_TRY(std::vector<TensorPlan> plan, plan_recipe(*recipe, info, tensors));
    for (const TensorPlan& p : plan) types.push_back(p.type);
    return types;
  }
  const auto type = type_from_name(target);
  if (!type) return Error("unknown quantization type or recipe '" + target + "' (e.g. Q4_K_M, Q8_0, q4_K, f16)");
  for (const TensorPlan& p : plan_uniform(*type, tensors)) types.push_back(p.type);
  return types;
}

}  // namespace

Expected<PlanModel> plan_model_from_gguf(const std::string& path, const PlanRecipe& recipe) {
  PLM_TRY(GgufFile f, GgufFile::open(path));
  PlanModel m;
  m.source = path;
  PLM_TRY(m.config, ModelConfig::from_gguf(f));
  m.metadata_bytes = f.data_offset();
  const std::vector<RecipeTensor> tensors = recipe_tensors(f);
  std::vector<GgmlType> types;
  for (const RecipeTensor& t : tensors) types.push_back(t.type);
  if (!recipe.target.empty() || recipe.options) {
    // The quantizer's own dry-run plan: the same types `pocketlm quantize --dry-run` prints.
    QuantizeOptions o;
    if (recipe.options) {
      o = *recipe.options;
    } else {
      o.target = recipe.target;
      if (!recipe.rules_path.empty()) {
        PLM_TRY(o.rules, read_quantize_rules(recipe.rules_path));
      }
    }
    o.progress = false;
    PLM_TRY(QuantizePlan plan, plan_quantization(f, o));
    if (plan.tensors.size() != tensors.size())
      return Error(path + ": the quantization plan does not cover every tensor");
    for (size_t i = 0; i < tensors.size(); ++i) types[i] = plan.tensors[i].type;
    m.recipe = plan.target;
  } else if (!recipe.rules_path.empty()) {
    PLM_CHECK(apply_rules(recipe.rules_path, tensors, types));
    m.recipe = "rules " + recipe.rules_path;
  }
  for (size_t i = 0; i < tensors.size(); ++i)
    m.tensors.push_back(make_tensor(tensors[i].name, types[i], tensors[i].ne));
  return m;
}

Expected<PlanModel> plan_model_from_quantize_shape(const QuantizeShape& shape, const ModelConfig& config,
                                                   uint64_t metadata_bytes, const QuantizeOptions& options) {
  PlanModel m;
  m.source = shape.name;
  m.config = config;
  m.metadata_bytes = metadata_bytes;
  QuantizeOptions o = options;
  o.progress = false;
  PLM_TRY(QuantizePlan plan, plan_quantization(shape, o));
  m.recipe = plan.target;
  for (const QuantizeTensorPlan& t : plan.tensors) m.tensors.push_back(make_tensor(t.name, t.type, t.ne));
  return m;
}

namespace {

// "3B" / "1.5e9" / "270M" -> a count.
Expected<double> parse_count(const std::string& v, const std::string& key) {
  if (v.empty()) return Error("shape: '" + key + "' has no value");
  double scale = 1;
  std::string num = v;
  switch (std::toupper(static_cast<unsigned char>(v.back()))) {
    case 'K':
      scale = 1e3;
      num.pop_back();
      break;
    case 'M':
      scale = 1e6;
      num.pop_back();
      break;
    case 'B':
    case 'G':
      scale = 1e9;
      num.pop_back();
      break;
    case 'T':
      scale = 1e12;
      num.pop_back();
      break;
    default: break;
  }
  size_t used = 0;
  double x = 0;
  try {
    x = std::stod(num, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != num.size() || !std::isfinite(x) || x <= 0)
    return Error("shape: '" + key + "=" + v + "': expected a positive number");
  return x * scale;
}

// The reference checkpoints' vocabularies (the synthetic writer takes its tokenizer from another file).
int64_t reference_vocab(const std::string& shape) {
  if (shape == "llama-1b" || shape == "llama-3b") return 128256;  // Llama 3
  if (shape == "smollm2-135m") return 49152;
  return 32000;  // Llama 2
}

}  // namespace

Expected<PlanModel> plan_model_from_shape(const std::string& spec, const PlanRecipe& recipe) {
  if (recipe.target.empty()) return Error("shape '" + spec + "': a shape has no stored types: give a recipe or type");
  SynthShape s;
  s.name = "custom";
  s.n_ctx_train = 4096;
  s.tied_embeddings = false;
  int64_t n_vocab = 32000, head_dim = 0;
  double params = 0;
  std::stringstream ss(spec);
  std::string item;
  bool first = true;
  while (std::getline(ss, item, ',')) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos) {
      if (!first)
        return Error("shape '" + spec + "': '" + item + "' is not key=value (only the first item may be a shape name)");
      PLM_TRY(s, find_synth_shape(item));
      n_vocab = reference_vocab(item);
      first = false;
      continue;
    }
    first = false;
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    PLM_TRY(double x, parse_count(value, key));
    const auto n = static_cast<int64_t>(std::llround(x));
    if (key == "layers")
      s.n_layer = n;
    else if (key == "heads")
      s.n_head = n;
    else if (key == "kv_heads")
      s.n_head_kv = n;
    else if (key == "head_dim")
      head_dim = n;
    else if (key == "embd")
      s.n_embd = n;
    else if (key == "ff")
      s.n_ff = n;
    else if (key == "vocab")
      n_vocab = n;
    else if (key == "ctx")
      s.n_ctx_train = n;
    else if (key == "params")
      params = x;
    else if (key == "tied")
      s.tied_embeddings = n != 0;
    else
      return Error("shape '" + spec + "': unknown key '" + key +
                   "' (layers, heads, kv_heads, head_dim, embd, ff, vocab, ctx, params, tied)");
  }
  // Bounds far above any real model, so a typo cannot make a tensor list of a trillion entries.
  if (s.n_layer > 4096 || s.n_head > 4096 || s.n_head_kv > 4096 || head_dim > 65536 || s.n_embd > (1 << 20) ||
      s.n_ff > (1 << 22) || n_vocab > (1 << 24) || s.n_ctx_train > (1 << 24) || params > 1e14)
    return Error("shape '" + spec +
                 "': a dimension is out of range (layers and heads <= 4096, embd <= 1M, ff <= 4M, "
                 "vocab and ctx <= 16M, params <= 100T)");
  if (s.n_head_kv == 0) s.n_head_kv = s.n_head;
  if (s.n_embd == 0) s.n_embd = s.n_head * head_dim;
  if (s.n_layer <= 0 || s.n_head <= 0 || s.n_embd <= 0)
    return Error("shape '" + spec + "': give a shape name or layers, heads and head_dim (or embd)");
  if (s.n_embd % s.n_head != 0 || s.n_head % s.n_head_kv != 0 || (head_dim > 0 && s.n_embd != s.n_head * head_dim))
    return Error("shape '" + spec +
                 "': inconsistent dimensions (embd = heads x head_dim, heads a multiple of kv_heads)");
  if (params > 0) {
    // Solve ff: params = vocab x embd x (1 or 2) + layers x (2 embd^2 + 2 embd kv_dim + 3 embd ff), rounded
    // up to whole 256-blocks so every K-quant fits.
    const double e = static_cast<double>(s.n_embd),
                 kv = e / static_cast<double>(s.n_head) * static_cast<double>(s.n_head_kv);
    const double rest = params - static_cast<double>(n_vocab) * e * (s.tied_embeddings ? 1 : 2) -
                        static_cast<double>(s.n_layer) * (2 * e * e + 2 * e * kv);
    if (rest <= 0) return Error("shape '" + spec + "': params is too small for these layers, heads and vocabulary");
    s.n_ff = (static_cast<int64_t>(std::ceil(rest / (3.0 * e * static_cast<double>(s.n_layer)))) + 255) / 256 * 256;
  }
  if (s.n_ff <= 0) return Error("shape '" + spec + "': give ff or params");
  if (s.n_ff > (1 << 22))
    return Error("shape '" + spec + "': ff " + std::to_string(s.n_ff) +
                 " is out of range (params too large for the shape?)");

  PlanModel m;
  m.source = "shape " + spec;
  ModelConfig& c = m.config;
  c.arch = "llama";
  c.name = s.name;
  c.n_vocab = n_vocab;
  c.n_ctx_train = s.n_ctx_train;
  c.n_embd = s.n_embd;
  c.n_layer = s.n_layer;
  c.n_head = s.n_head;
  c.n_head_kv = s.n_head_kv;
  c.n_ff = s.n_ff;
  c.head_dim = c.head_dim_v = c.rope_dim = s.n_embd / s.n_head;
  c.tied_embeddings = s.tied_embeddings;
  const std::vector<RecipeTensor> tensors = synth_tensor_list(s, n_vocab);
  RecipeModelInfo info;
  info.arch = "llama";
  info.n_layer = s.n_layer;
  info.n_head = s.n_head;
  info.n_head_kv = s.n_head_kv;
  PLM_TRY(std::vector<GgmlType> types, recipe_types(recipe.target, info, tensors));
  PLM_CHECK(apply_rules(recipe.rules_path, tensors, types));
  m.recipe = recipe.target;
  for (size_t i = 0; i < tensors.size(); ++i)
    m.tensors.push_back(make_tensor(tensors[i].name, types[i], tensors[i].ne));
  m.metadata_bytes = static_cast<uint64_t>(static_cast<double>(n_vocab) * kPlanMetadataBytesPerVocab);
  return m;
}

}  // namespace pocketlm
