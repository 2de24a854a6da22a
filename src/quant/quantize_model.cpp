#include "quant/quantize_model.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

#include "formats/block_grid.h"
#include "formats/dequantize.h"
#include "formats/quantize.h"
#include "gguf/writer.h"
#include "kernels/matmul.h"
#include "quant/methods/calib_stats.h"
#include "quant/methods/outliers.h"
#include "quant/methods/weight_transform.h"
#include "util/byte_size.h"
#include "util/progress.h"
#include "util/thread_pool.h"

namespace pocketlm {
namespace {

std::string tname(GgmlType t) { return std::string(type_traits(t).name); }

bool is_float_type(GgmlType t) { return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16; }

std::string writable_types() {
  std::string s;
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1,
                     GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K,
                     GgmlType::Q6_K, GgmlType::IQ4_NL, GgmlType::IQ4_XS}) {
    s += (s.empty() ? "" : " ") + tname(t);
  }
  s += "; pocketlm-only, which llama.cpp cannot read:";
  for (GgmlType t : {GgmlType::Q4_0_G64, GgmlType::Q4_0_G128}) s += " " + tname(t);
  return s;
}

Expected<GgmlType> writable_type(std::string_view name) {
  const std::optional<GgmlType> t = type_from_name(name);
  if (!t) return Error("unknown tensor type '" + std::string(name) + "' (types: " + writable_types() + ")");
  if (!can_quantize(*t)) return Error("pocketlm cannot write type " + tname(*t) + " (types: " + writable_types() + ")");
  return *t;
}

int64_t count_elements(const std::vector<int64_t>& ne) {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

std::string shape_of(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

}  // namespace

int64_t QuantizeTensorPlan::n_elements() const { return count_elements(ne); }
double QuantizeTensorPlan::bits_per_weight() const {
  const int64_t n = n_elements();
  return n > 0 ? 8.0 * static_cast<double>(bytes) / static_cast<double>(n) : 0.0;
}
int QuantizePlan::n_fallback() const {
  int n = 0;
  for (const auto& t : tensors) n += t.fallback ? 1 : 0;
  return n;
}
int QuantizePlan::n_outlier_matrices() const {
  int n = 0;
  for (const auto& t : tensors) n += t.outlier_idx.empty() ? 0 : 1;
  return n;
}
std::vector<std::string> QuantizePlan::pocketlm_only_types() const {
  std::vector<GgmlType> types;
  for (const auto& t : tensors)
    if (is_pocketlm_only(t.type) && std::find(types.begin(), types.end(), t.type) == types.end())
      types.push_back(t.type);
  std::sort(types.begin(), types.end());
  std::vector<std::string> names;
  for (GgmlType t : types) names.push_back(tname(t));
  return names;
}

std::optional<uint32_t> ftype_of_single_type(GgmlType type) {
  switch (type) {
    case GgmlType::F32: return 0;
    case GgmlType::F16: return 1;
    case GgmlType::Q4_0: return 2;
    case GgmlType::Q4_1: return 3;
    case GgmlType::Q8_0: return 7;
    case GgmlType::Q5_0: return 8;
    case GgmlType::Q5_1: return 9;
    case GgmlType::Q2_K: return 10;
    case GgmlType::Q3_K: return 11;
    case GgmlType::Q4_K: return 14;
    case GgmlType::Q5_K: return 16;
    case GgmlType::Q6_K: return 18;
    case GgmlType::IQ4_NL: return 25;
    case GgmlType::IQ4_XS: return 30;
    case GgmlType::BF16: return 32;
    // pocketlm-only: llama.cpp has no file type for them; Q4_0's (MOSTLY_Q4_0), the nearest, is recorded.
    case GgmlType::Q4_0_G64:
    case GgmlType::Q4_0_G128: return 2;
    default: return std::nullopt;
  }
}

Expected<QuantizeRule> make_quantize_rule(const std::string& pattern, const std::string& type,
                                          const std::string& where) {
  QuantizeRule rule;
  rule.pattern = pattern;
  rule.where = where;
  try {
    rule.re = std::regex(rule.pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return Error(where + ": bad regular expression '" + rule.pattern + "': " + e.what());
  }
  auto t = writable_type(type);
  if (!t) return t.error().with_context(where);
  rule.type = *t;
  return rule;
}

Expected<std::vector<QuantizeRule>> parse_quantize_rules(std::string_view text, const std::string& name) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    return Error(name + ": not valid JSON: " + e.what());
  }
  if (j.is_object() && j.contains("rules")) j = j["rules"];
  if (!j.is_array())
    return Error(name + ": expected a JSON list of {\"pattern\": \"<regex>\", \"type\": \"<type>\"} objects");
  std::vector<QuantizeRule> rules;
  for (size_t i = 0; i < j.size(); ++i) {
    const std::string where = name + ": rule " + std::to_string(i + 1);
    const nlohmann::json& r = j[i];
    if (!r.is_object()) return Error(where + ": expected an object {\"pattern\": ..., \"type\": ...}");
    for (const auto& [key, value] : r.items()) {
      if (key != "pattern" && key != "type")
        return Error(where + ": unknown key '" + key + "' (expected pattern, type)");
    }
    if (!r.contains("pattern") || !r["pattern"].is_string()) return Error(where + ": missing string \"pattern\"");
    if (!r.contains("type") || !r["type"].is_string()) return Error(where + ": missing string \"type\"");
    PLM_TRY(QuantizeRule rule,
            make_quantize_rule(r["pattern"].get<std::string>(), r["type"].get<std::string>(), where));
    rules.push_back(std::move(rule));
  }
  return rules;
}

Expected<std::vector<QuantizeRule>> read_quantize_rules(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error(path + ": cannot open the rules file");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  const auto ends = [&](std::string_view suffix) {
    if (path.size() < suffix.size()) return false;
    for (size_t i = 0; i < suffix.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(path[path.size() - suffix.size() + i])) != suffix[i]) return false;
    return true;
  };
  if (ends(".yaml") || ends(".yml")) return parse_quantize_rules_yaml(text, path);
  if (ends(".json") || nlohmann::json::accept(text)) return parse_quantize_rules(text, path);
  return parse_quantize_rules_yaml(text, path);
}

namespace {

// The plan for a shape; `file` (the shape's GGUF, when there is one) adds what needs the tensors' entries: the
// importance matrix's validation and coverage, GPTQ.
Expected<QuantizePlan> plan_quantization_impl(const QuantizeShape& in, const QuantizeOptions& o, const GgufFile* file) {
  QuantizePlan plan;
  const std::vector<RecipeTensor>& tensors = in.tensors;
  std::vector<TensorPlan> base;
  auto recipe = find_recipe(o.target);
  if (recipe && !o.pure) {
    RecipeModelInfo info = in.info;
    info.has_imatrix = o.imatrix != nullptr;
    PLM_TRY(base, plan_recipe(*recipe, info, tensors));
    plan.target = std::string(recipe->name);
    plan.is_recipe = true;
    plan.base = recipe->base;
    plan.ftype = recipe->ftype;
  } else {
    GgmlType type = GgmlType::F32;
    if (recipe) {
      type = recipe->base;
    } else {
      auto t = writable_type(o.target);
      if (!t) {
        std::string recipes;
        for (const QuantRecipe& r : all_recipes()) recipes += (recipes.empty() ? "" : " ") + std::string(r.name);
        if (!type_from_name(o.target))
          return Error("unknown quantization type or recipe '" + o.target + "' (recipes: " + recipes +
                       "; types: " + writable_types() + ")");
        return t.error();
      }
      type = *t;
    }
    base = plan_uniform(type, tensors);
    plan.target = tname(type);
    plan.base = type;
    plan.ftype = ftype_of_single_type(type).value_or(0);
  }

  if (o.search == QuantSearch::nearest && (o.imatrix || o.transform || o.gptq_stats || o.outliers != 0))
    return Error(
        "--search nearest is llama-quantize's plain rounding: it takes no imatrix, calibration, --method "
        "other than rtn, --smooth or --outliers (those steer a search)");
  if (o.outliers != 0) {
    if (o.outliers < 1 || o.outliers > kMaxOutlierColumns)
      return Error("--outliers " + std::to_string(o.outliers) + ": K must be 1 to " +
                   std::to_string(kMaxOutlierColumns) + " (and at most half of a matrix's inputs)");
    if (file && !o.outlier_stats)
      return Error("--outliers " + std::to_string(o.outliers) +
                   " needs calibration data (--calib FILE or --tasks FILE.jsonl): the channels are chosen by their "
                   "activations");
  }
  for (const RecipeTensor& rt : tensors)
    if (is_outlier_tensor(rt.name))
      return Error(in.name + ": tensor '" + rt.name +
                   "': the file already has an outlier branch (pocketlm.outliers); quantize from the float model");

  if (o.imatrix && file) {
    Status v = validate_imatrix(*o.imatrix, *file);
    if (!v.ok()) return v.error().with_context("imatrix " + o.imatrix_path);
  }

  const bool tied =
      std::none_of(tensors.begin(), tensors.end(), [](const RecipeTensor& t) { return t.name == "output.weight"; });
  std::map<GgmlType, int> requantized;
  std::map<GgmlType, int> not_runnable;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const RecipeTensor& rt = tensors[i];
    int64_t n_rows = 1, n_elements = 1;
    for (size_t d = 0; d < rt.ne.size(); ++d) {
      n_elements *= rt.ne[d];
      if (d > 0) n_rows *= rt.ne[d];
    }
    const uint64_t src_bytes = row_size(rt.type, rt.ne.empty() ? 1 : rt.ne[0]) * static_cast<uint64_t>(n_rows);
    QuantizeTensorPlan p;
    p.name = rt.name;
    p.ne = rt.ne;
    p.src_type = rt.type;
    p.type = base[i].type;
    p.reason = base[i].reason;
    p.fallback = base[i].fallback();
    if (recipe_allows_quantization(rt)) {
      // Explicit choices: the rules (first match), then the embedding / head flags. These are the user's own
      // words, so a type whose block does not divide the rows is an error, not a silent substitute.
      std::optional<GgmlType> want;
      std::string by;
      for (const QuantizeRule& r : o.rules) {
        if (std::regex_search(rt.name, r.re)) {
          want = r.type;
          by = r.where + " ('" + r.pattern + "')";
          break;
        }
      }
      const bool is_embd = rt.name == "token_embd.weight" || rt.name == "per_layer_token_embd.weight";
      if (is_embd && o.token_embedding_type) {
        want = o.token_embedding_type;
        by = "--token-embedding-type";
      } else if (o.output_tensor_type && (rt.name == "output.weight" || (tied && rt.name == "token_embd.weight"))) {
        want = o.output_tensor_type;
        by = rt.name == "output.weight" ? "--output-tensor-type"
                                        : "--output-tensor-type (the embedding is tied to the head)";
      }
      if (want) {
        const int64_t block = type_traits(*want).block_size;
        if (rt.ne[0] % block != 0) {
          const GgmlType fits = recipe_fallback_type(*want, rt.ne[0]);
          return Error(by + ": tensor '" + rt.name + "' " + shape_of(rt.ne) + " has rows of " +
                       std::to_string(rt.ne[0]) + " values, not a multiple of " + tname(*want) + "'s block of " +
                       std::to_string(block) + " (" + tname(fits) + " fits)");
        }
        p.type = *want;
        p.reason = by;
        p.fallback = false;
      }
    }
    p.transformed = o.transform && o.transform->touches(p.name);
    p.quantize = p.type != p.src_type || p.transformed;
    if (p.transformed && !can_quantize(p.type))
      return Error(in.name + ": tensor '" + p.name + "' is rescaled by the quantization method but its type " +
                   tname(p.type) + " cannot be written again");
    if (p.quantize && !type_traits(p.src_type).can_dequantize)
      return Error(in.name + ": tensor '" + p.name + "' is " + tname(p.src_type) +
                   ", which pocketlm cannot decode (so it cannot be converted to " + tname(p.type) + ")");
    p.requantize = p.quantize && !is_float_type(p.src_type);
    if (file && o.gptq_stats && p.quantize && has_block_grid(p.type) && p.ne.size() >= 2 && n_rows == p.ne[1]) {
      const InputStats* st = o.gptq_stats->find(p.name);
      p.gptq = st && !st->gram.empty() && st->n == p.ne[0];
    }
    if (p.requantize) ++requantized[p.src_type];
    p.has_importance = p.quantize && o.imatrix && !is_float_type(p.type) && p.type != GgmlType::Q8_0 &&
                       (!file || o.imatrix->find(p.name) != nullptr);
    p.bytes = p.quantize ? row_size(p.type, p.ne[0]) * static_cast<uint64_t>(n_rows) : src_bytes;
    if (o.outliers > 0 && takes_outliers(p.name) && p.quantize && !is_float_type(p.type) && p.ne.size() == 2) {
      if (o.outliers > p.ne[0] / 2)
        return Error("--outliers " + std::to_string(o.outliers) + ": tensor '" + p.name + "' " + shape_of(p.ne) +
                     " has " + std::to_string(p.ne[0]) + " inputs, so at most " + std::to_string(p.ne[0] / 2) +
                     " (half) can be outlier channels");
      if (!file) {  // a shape only: the size is all that is planned
        p.outlier_idx.resize(static_cast<size_t>(o.outliers));
      } else if (const InputStats* st = o.outlier_stats->find(p.name); st && st->n == p.ne[0] && st->count > 0) {
        p.outlier_idx = select_outlier_channels(*st, o.outliers, o.transform ? o.transform->col(p.name) : nullptr);
      }
      if (!p.outlier_idx.empty())
        p.outlier_bytes = static_cast<uint64_t>(o.outliers) * (2 * static_cast<uint64_t>(p.ne[1]) + 4);
    }
    if (p.ne.size() >= 2 && !has_vec_dot(p.type) && p.name != "token_embd.weight") ++not_runnable[p.type];
    plan.src_bytes += src_bytes;
    plan.out_bytes += p.bytes + p.outlier_bytes;
    if (!p.outlier_idx.empty()) plan.outliers = o.outliers;
    plan.n_elements += n_elements;
    plan.tensors.push_back(std::move(p));
  }
  for (const auto& [t, n] : requantized) {
    plan.warnings.push_back(std::to_string(n) + " tensor(s) of " + in.name + " are already " + tname(t) +
                            ": they are dequantized and quantized again, which adds a second rounding error "
                            "(start from an F32/F16/BF16 model when you can)");
  }
  for (const auto& [t, n] : not_runnable) {
    plan.warnings.push_back(std::to_string(n) + " matrix weight(s) become " + tname(t) +
                            ", which llama.cpp runs but pocketlm cannot multiply yet (no " + tname(t) + " kernels)");
  }
  if (o.imatrix && (plan.base == GgmlType::Q8_0 || is_float_type(plan.base)))
    plan.warnings.push_back("the importance matrix does not change " + tname(plan.base) +
                            " (round-to-nearest / float); it steers only the other types in the plan");
  return plan;
}

}  // namespace

Expected<QuantizePlan> plan_quantization(const QuantizeShape& in, const QuantizeOptions& o) {
  return plan_quantization_impl(in, o, nullptr);
}

Expected<QuantizePlan> plan_quantization(const GgufFile& in, const QuantizeOptions& o) {
  QuantizeShape shape;
  shape.name = in.path();
  shape.tensors = recipe_tensors(in);
  if (find_recipe(o.target).ok() && !o.pure) {
    PLM_TRY(shape.info, recipe_model_info(in));
  }
  return plan_quantization_impl(shape, o, &in);
}

Expected<QuantizeResult> quantize_model(const GgufFile& in, const QuantizePlan& plan, const QuantizeOptions& o,
                                        const std::string& out_path) {
  if (plan.tensors.size() != in.tensors().size()) return Error("quantize: the plan was made for another file");
  const auto t0 = std::chrono::steady_clock::now();
  ThreadPool pool(o.n_threads > 0 ? o.n_threads : physical_cores());

  GgufWriter w;
  for (const auto& [key, value] : in.metadata()) {
    if (key == "general.alignment" || key == "split.no" || key == "split.count" || key == "split.tensors.count" ||
        key == kPocketlmOnlyTypesKey || key == kPocketlmOutliersKey)  // recomputed below from the output's own
      continue;
    w.set(key, value);
  }
  if (in.has("general.alignment") || in.alignment() != kGgufDefaultAlignment) w.set_alignment(in.alignment());
  w.set("general.quantization_version", GgufValue::of_u32(2));
  w.set("general.file_type", GgufValue::of_u32(plan.ftype));
  if (const std::vector<std::string> only = plan.pocketlm_only_types(); !only.empty())
    w.set(kPocketlmOnlyTypesKey, GgufValue::of_strings(only));
  if (plan.outliers > 0) w.set(kPocketlmOutliersKey, GgufValue::of_u32(static_cast<uint32_t>(plan.outliers)));
  if (!o.method.empty()) w.set("quantize.method", GgufValue::of_string(o.method));
  if (!o.calibration.empty()) w.set("quantize.calibration", GgufValue::of_string(o.calibration));
  if (o.imatrix && !o.imatrix_path.empty()) {
    w.set("quantize.imatrix.file", GgufValue::of_string(o.imatrix_path));
    if (!o.imatrix->datasets.empty())
      w.set("quantize.imatrix.dataset", GgufValue::of_string(o.imatrix->datasets.front()));
    w.set("quantize.imatrix.entries_count", GgufValue::of_u32(static_cast<uint32_t>(o.imatrix->entries.size())));
    if (o.imatrix->chunk_count > 0)
      w.set("quantize.imatrix.chunks_count", GgufValue::of_u32(static_cast<uint32_t>(o.imatrix->chunk_count)));
  }

  // GPTQ's inverse-Hessian factor of the last input seen: Q, K and V (gate and up) share it.
  struct Factors {
    std::mutex mu;
    const InputStats* input = nullptr;
    std::vector<float> col;
    std::vector<int32_t> idx;  // outlier channels taken out of H
    std::shared_ptr<const std::vector<float>> U;
  };
  auto factors = std::make_shared<Factors>();
  // The outlier branches' side matrices, made while their weight is encoded and written right after it.
  auto sides = std::make_shared<std::vector<std::vector<uint16_t>>>(plan.tensors.size());
  auto result = std::make_shared<QuantizeResult>();
  result->tensors.resize(plan.tensors.size());
  std::shared_ptr<Progress> progress;
  if (o.progress)
    progress =
        std::make_shared<Progress>("quantize " + plan.target, static_cast<int64_t>(plan.tensors.size()), "tensors");

  for (size_t i = 0; i < plan.tensors.size(); ++i) {
    {
      QuantizeTensorResult& res = result->tensors[i];
      res.name = plan.tensors[i].name;
      res.type = plan.tensors[i].type;
      res.bytes = plan.tensors[i].bytes;
      res.quantized = plan.tensors[i].quantize;
    }
    auto produce = [i, &plan, &in, &o, &pool, result, progress, factors, sides](std::vector<uint8_t>& out) -> Status {
      const QuantizeTensorPlan& p = plan.tensors[i];
      const GgufTensor& t = in.tensors()[i];
      QuantizeTensorResult& res = result->tensors[i];
      if (o.cancel && o.cancel->load()) return Error("interrupted");
      if (!p.quantize) {
        out.assign(t.data, t.data + t.nbytes);
        if (progress) progress->add(1);
        return Status::Ok();
      }
      const int64_t n_per_row = t.ne[0], n_rows = t.n_rows();
      const size_t src_row = row_size(t.type, n_per_row), dst_row = row_size(p.type, n_per_row);
      // The input as floats: the F32 data in place, anything else decoded; rescaled when the method says so.
      std::vector<float> decoded;
      const float* x = reinterpret_cast<const float*>(t.data);
      const std::vector<int32_t>& side_idx = p.outlier_idx;
      if (t.type != GgmlType::F32 || p.transformed || !side_idx.empty()) {
        decoded.resize(static_cast<size_t>(n_rows * n_per_row));
        if (t.type == GgmlType::F32) {
          std::memcpy(decoded.data(), t.data, decoded.size() * sizeof(float));
        } else {
          pool.parallel_for(n_rows, [&](int64_t r0, int64_t r1, int) {
            for (int64_t r = r0; r < r1; ++r)
              dequantize_row(t.type, t.data + static_cast<size_t>(r) * src_row, decoded.data() + r * n_per_row,
                             n_per_row);
          });
        }
        if (p.transformed) o.transform->apply(p.name, decoded.data(), n_per_row, n_rows);
        if (!side_idx.empty()) {  // the side columns leave W (zeros never widen a symmetric grid's range)
          std::vector<uint16_t>& side = (*sides)[i];
          side.resize(static_cast<size_t>(n_rows) * side_idx.size());
          split_outlier_columns(decoded.data(), n_rows, n_per_row, side_idx, side.data());
        }
        x = decoded.data();
      }
      out.resize(p.bytes);
      const int64_t rows_per_mat = t.ne[1];
      const int64_t n_mat = n_rows / rows_per_mat;
      const ImatrixEntry* entry = p.has_importance ? o.imatrix->find(p.name) : nullptr;
      const std::vector<float>* col = o.transform ? o.transform->col(p.name) : nullptr;
      const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 22) / n_per_row);
      std::vector<std::vector<float>> importance(static_cast<size_t>(n_mat));
      for (int64_t m = 0; m < n_mat; ++m) {
        if (entry) {
          importance[static_cast<size_t>(m)] = entry->importance(entry->n_mat > 1 ? m : 0);
          if (col)  // a column multiplied by c sees inputs divided by c
            for (int64_t j = 0; j < n_per_row; ++j)
              importance[static_cast<size_t>(m)][static_cast<size_t>(j)] /=
                  (*col)[static_cast<size_t>(j)] * (*col)[static_cast<size_t>(j)];
          // The side channels are zeroed in the input at run time: their (zero) weights carry no error.
          for (int32_t j : side_idx) importance[static_cast<size_t>(m)][static_cast<size_t>(j)] = 0.0f;
        }
      }
      if (p.gptq) {
        const InputStats* st = o.gptq_stats->find(p.name);
        std::shared_ptr<const std::vector<float>> U;
        {
          std::lock_guard<std::mutex> lock(factors->mu);
          if (factors->input == st && factors->col == (col ? *col : std::vector<float>{}) && factors->idx == side_idx)
            U = factors->U;
        }
        if (!U) {
          std::vector<float> H(st->gram);
          if (col)
            for (int64_t a = 0; a < n_per_row; ++a)
              for (int64_t j = 0; j < n_per_row; ++j)
                H[static_cast<size_t>(a * n_per_row + j)] /=
                    (*col)[static_cast<size_t>(a)] * (*col)[static_cast<size_t>(j)];
          for (int32_t c : side_idx)  // a side channel's input is zero at run time: no row or column in H
            for (int64_t j = 0; j < n_per_row; ++j)
              H[static_cast<size_t>(c * n_per_row + j)] = H[static_cast<size_t>(j * n_per_row + c)] = 0.0f;
          auto f = gptq_inverse_factor(H.data(), n_per_row, o.gptq.damp, &pool);
          if (!f) return f.error().with_context("tensor '" + p.name + "'");
          U = std::make_shared<const std::vector<float>>(std::move(*f));
          std::lock_guard<std::mutex> lock(factors->mu);
          factors->input = st;
          factors->col = col ? *col : std::vector<float>{};
          factors->idx = side_idx;
          factors->U = U;
        }
        std::vector<float> diag(static_cast<size_t>(n_per_row));
        for (int64_t j = 0; j < n_per_row; ++j) {
          const double c = col ? (*col)[static_cast<size_t>(j)] : 1.0;
          diag[static_cast<size_t>(j)] = static_cast<float>(st->gram[static_cast<size_t>(j * n_per_row + j)] / (c * c));
        }
        for (int32_t j : side_idx) diag[static_cast<size_t>(j)] = 0.0f;
        GptqOptions gopt = o.gptq;
        gopt.search = o.search;
        Status g = gptq_quantize(p.type, x, n_rows, n_per_row, U->data(), diag.data(), gopt, out.data(), &pool);
        if (!g.ok()) return g.error().with_context("tensor '" + p.name + "'");
      } else {
        for (int64_t m = 0; m < n_mat; ++m) {
          const float* imp = entry ? importance[static_cast<size_t>(m)].data() : nullptr;
          for (int64_t r = 0; r < rows_per_mat; r += chunk) {
            if (o.cancel && o.cancel->load()) return Error("interrupted");
            const int64_t row = m * rows_per_mat + r, nr = std::min(chunk, rows_per_mat - r);
            auto q = quantize_rows(p.type, x + row * n_per_row, out.data() + static_cast<size_t>(row) * dst_row, nr,
                                   n_per_row, imp, &pool, o.search);
            if (!q) return q.error().with_context("tensor '" + p.name + "'");
          }
        }
      }
      // The reconstruction error, weighted by the importance of each column when there is one; the side
      // columns (kept in f16, their input zeroed in the quantized product) are left out (weight 0). Sixteen float
      // partial sums per row (it vectorizes), added up in double row by row.
      std::vector<std::vector<float>> col_w(static_cast<size_t>(n_mat));
      std::vector<double> row_wsum(static_cast<size_t>(n_mat), 0.0);
      for (int64_t m = 0; m < n_mat; ++m) {
        std::vector<float>& cw = col_w[static_cast<size_t>(m)];
        cw.assign(static_cast<size_t>(n_per_row), 1.0f);
        if (entry)
          for (int64_t j = 0; j < n_per_row; ++j)
            cw[static_cast<size_t>(j)] = importance[static_cast<size_t>(m)][static_cast<size_t>(j)];
        for (int32_t j : side_idx) cw[static_cast<size_t>(j)] = 0.0f;
        for (float v : cw) row_wsum[static_cast<size_t>(m)] += v;
      }
      const int nt = pool.size();
      std::vector<double> err(static_cast<size_t>(nt), 0.0), ref(static_cast<size_t>(nt), 0.0),
          wsum(static_cast<size_t>(nt), 0.0);
      std::vector<std::vector<float>> scratch(static_cast<size_t>(nt));
      pool.parallel_for(n_rows, [&](int64_t r0, int64_t r1, int th) {
        std::vector<float>& y = scratch[static_cast<size_t>(th)];
        y.resize(static_cast<size_t>(n_per_row));
        double e = 0, sx = 0, ws = 0;
        for (int64_t r = r0; r < r1; ++r) {
          dequantize_row(p.type, out.data() + static_cast<size_t>(r) * dst_row, y.data(), n_per_row);
          const float* xr = x + r * n_per_row;
          const float* cw = col_w[static_cast<size_t>(r / rows_per_mat)].data();
          float e16[16] = {}, s16[16] = {};
          int64_t j = 0;
          for (; j + 16 <= n_per_row; j += 16)
            for (int k = 0; k < 16; ++k) {
              const float xv = xr[j + k], d = xv - y[static_cast<size_t>(j + k)];
              e16[k] += cw[j + k] * d * d;
              s16[k] += cw[j + k] * xv * xv;
            }
          for (; j < n_per_row; ++j) {
            const float xv = xr[j], d = xv - y[static_cast<size_t>(j)];
            e16[0] += cw[j] * d * d;
            s16[0] += cw[j] * xv * xv;
          }
          double re = 0, rs = 0;
          for (int k = 0; k < 16; ++k) {
            re += e16[k];
            rs += s16[k];
          }
          if (!std::isfinite(re) || !std::isfinite(rs)) {  // values near float's limit: the row again in double
            re = rs = 0;
            for (int64_t c = 0; c < n_per_row; ++c) {
              const double xv = xr[c], d = xv - static_cast<double>(y[static_cast<size_t>(c)]);
              re += static_cast<double>(cw[c]) * d * d;
              rs += static_cast<double>(cw[c]) * xv * xv;
            }
          }
          e += re;
          sx += rs;
          ws += row_wsum[static_cast<size_t>(r / rows_per_mat)];
        }
        err[static_cast<size_t>(th)] += e;
        ref[static_cast<size_t>(th)] += sx;
        wsum[static_cast<size_t>(th)] += ws;
      });
      double e = 0, s = 0, ws = 0;
      for (int k = 0; k < nt; ++k) {
        e += err[static_cast<size_t>(k)];
        s += ref[static_cast<size_t>(k)];
        ws += wsum[static_cast<size_t>(k)];
      }
      res.rmse = ws > 0 ? std::sqrt(e / ws) : 0.0;
      res.rel_rmse = s > 0 ? std::sqrt(e / s) : 0.0;
      if (progress) progress->add(1);
      return Status::Ok();
    };
    PLM_CHECK(w.add_tensor_lazy(plan.tensors[i].name, plan.tensors[i].type, plan.tensors[i].ne, std::move(produce)));
    if (const QuantizeTensorPlan& p = plan.tensors[i]; !p.outlier_idx.empty()) {
      const auto k = static_cast<int64_t>(p.outlier_idx.size());
      PLM_CHECK(w.add_tensor_lazy(outlier_w_name(p.name), GgmlType::F16, {k, p.ne[1]},
                                  [i, sides](std::vector<uint8_t>& out) -> Status {
                                    std::vector<uint16_t>& side = (*sides)[i];
                                    const auto* b = reinterpret_cast<const uint8_t*>(side.data());
                                    out.assign(b, b + side.size() * sizeof(uint16_t));
                                    std::vector<uint16_t>().swap(side);
                                    return Status::Ok();
                                  }));
      PLM_CHECK(
          w.add_tensor_lazy(outlier_idx_name(p.name), GgmlType::I32, {k}, [&p](std::vector<uint8_t>& out) -> Status {
            const auto* b = reinterpret_cast<const uint8_t*>(p.outlier_idx.data());
            out.assign(b, b + p.outlier_idx.size() * sizeof(int32_t));
            return Status::Ok();
          }));
    }
  }
  Status written = w.write(out_path);
  if (!written.ok()) return written.error();
  if (progress) progress->finish();
  result->file_bytes = plan.out_bytes;
  result->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return std::move(*result);
}

std::string format_quantize_plan(const QuantizePlan& plan) {
  std::string s;
  char line[512];
  std::snprintf(line, sizeof line, "%-34s %-14s %-6s %-6s %10s %6s  %s\n", "tensor", "shape", "from", "to", "bytes",
                "bpw", "note");
  s += line;
  for (const auto& t : plan.tensors) {
    std::string note = t.reason;
    if (!t.quantize) note = note.empty() ? "kept" : note + " (kept)";
    if (t.requantize) note += std::string(note.empty() ? "" : "; ") + "requantized from " + tname(t.src_type);
    if (t.has_importance) note += std::string(note.empty() ? "" : "; ") + "imatrix";
    if (!t.outlier_idx.empty())
      note += std::string(note.empty() ? "" : "; ") + "+ " + std::to_string(t.outlier_idx.size()) +
              " outlier columns in f16 (" + std::to_string(t.outlier_bytes) + " bytes)";
    if (t.fallback) note = "FALLBACK: " + note;
    std::snprintf(line, sizeof line, "%-34s %-14s %-6s %-6s %10llu %6.2f  %s\n", t.name.c_str(), shape_of(t.ne).c_str(),
                  tname(t.src_type).c_str(), tname(t.type).c_str(), static_cast<unsigned long long>(t.bytes),
                  t.bits_per_weight(), note.c_str());
    s += line;
  }
  std::map<std::string, int> mix;
  for (const auto& t : plan.tensors) ++mix[tname(t.type)];
  std::string mixs;
  for (const auto& [k, n] : mix) mixs += (mixs.empty() ? "" : ", ") + std::to_string(n) + " " + k;
  const double bpw =
      plan.n_elements > 0 ? 8.0 * static_cast<double>(plan.out_bytes) / static_cast<double>(plan.n_elements) : 0;
  std::snprintf(line, sizeof line,
                "total: %zu tensors (%s), %d fallback(s); %s -> %s, %.2f bits/weight; %s (general.file_type %u)\n",
                plan.tensors.size(), mixs.c_str(), plan.n_fallback(),
                human_bytes(static_cast<double>(plan.src_bytes)).c_str(),
                human_bytes(static_cast<double>(plan.out_bytes)).c_str(), bpw,
                ((plan.is_recipe ? "recipe " : "single type ") + plan.target).c_str(), plan.ftype);
  s += line;
  if (plan.outliers > 0) {
    uint64_t side = 0;
    for (const auto& t : plan.tensors) side += t.outlier_bytes;
    std::snprintf(line, sizeof line,
                  "outlier branch: %lld columns in f16 for %d matrices, %s of side tensors (in the total above)\n",
                  static_cast<long long>(plan.outliers), plan.n_outlier_matrices(),
                  human_bytes(static_cast<double>(side)).c_str());
    s += line;
  }
  return s;
}

std::string format_quantize_results(const QuantizePlan& plan, const QuantizeResult& r) {
  std::string s;
  char line[512];
  std::snprintf(line, sizeof line, "%-34s %-6s %10s %12s %9s\n", "tensor", "type", "bytes", "rmse", "rel.rmse");
  s += line;
  double worst = 0;
  std::string worst_name;
  for (size_t i = 0; i < r.tensors.size(); ++i) {
    const auto& t = r.tensors[i];
    if (t.quantized) {
      const char* w = plan.tensors[i].has_importance ? " (imatrix-weighted)" : "";
      std::snprintf(line, sizeof line, "%-34s %-6s %10llu %12.4e %9.5f%s\n", t.name.c_str(), tname(t.type).c_str(),
                    static_cast<unsigned long long>(t.bytes), t.rmse, t.rel_rmse, w);
      if (t.rel_rmse > worst) {
        worst = t.rel_rmse;
        worst_name = t.name;
      }
    } else {
      std::snprintf(line, sizeof line, "%-34s %-6s %10llu %12s %9s\n", t.name.c_str(), tname(t.type).c_str(),
                    static_cast<unsigned long long>(t.bytes), "-", "copied");
    }
    s += line;
  }
  if (!worst_name.empty()) {
    std::snprintf(line, sizeof line, "largest relative RMSE: %.5f (%s)\n", worst, worst_name.c_str());
    s += line;
  }
  return s;
}

}  // namespace pocketlm
