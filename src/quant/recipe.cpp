#include "quant/recipe.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

namespace pocketlm {
namespace {

// Broad roles of a tensor, by name (llama.cpp names: blk.N.attn_v.weight, ...).
enum class Role {
  Output,
  TokenEmbd,
  AttnQkv,
  AttnKvB,
  AttnV,
  AttnK,
  AttnQ,
  AttnOutput,
  FfnUp,
  FfnGate,
  FfnDown,
  Other
};

bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }
bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

Role role_of(std::string_view n) {
  if (n == "output.weight") return Role::Output;
  if (n == "token_embd.weight" || n == "per_layer_token_embd.weight") return Role::TokenEmbd;
  if (contains(n, "attn_qkv.weight")) return Role::AttnQkv;
  if (contains(n, "attn_kv_b.weight")) return Role::AttnKvB;
  if (contains(n, "attn_v.weight")) return Role::AttnV;
  if (contains(n, "attn_k.weight")) return Role::AttnK;
  if (contains(n, "attn_q.weight")) return Role::AttnQ;
  if (contains(n, "attn_output.weight")) return Role::AttnOutput;
  if (contains(n, "ffn_up")) return Role::FfnUp;
  if (contains(n, "ffn_gate")) return Role::FfnGate;
  if (contains(n, "ffn_down")) return Role::FfnDown;
  return Role::Other;
}

bool is_attn_v_like(Role r) { return r == Role::AttnV || r == Role::AttnQkv || r == Role::AttnKvB; }

int n_dims(const std::vector<int64_t>& ne) {
  int n = 1;
  for (size_t i = 0; i < ne.size(); ++i) {
    if (ne[i] > 1) n = static_cast<int>(i) + 1;
  }
  return n;
}

// Tensors llama.cpp never quantizes: 1-D tensors, norms, routers, positional/token-type embeddings and a
// few small special weights of other architectures.
bool allows_quantization(const RecipeTensor& t) {
  if (n_dims(t.ne) < 2) return false;
  const std::string_view n = t.name;
  if (!ends_with(n, "weight")) return false;
  static constexpr std::string_view kNever[] = {"_norm.weight",
                                                "ffn_gate_inp.weight",
                                                "ffn_gate_tid2eid.weight",
                                                "altup",
                                                "laurel",
                                                "per_layer_model_proj",
                                                "ssm_conv1d",
                                                "shortconv.conv.weight",
                                                "attn_rel_b.weight",
                                                "time_mix_first.weight",
                                                ".position_embd",
                                                ".patch_embd",
                                                ".rel_pos"};
  for (std::string_view part : kNever) {
    if (contains(n, part)) return false;
  }
  return n != "position_embd.weight" && n != "token_types.weight";
}

bool is_quantized(GgmlType t) {
  return t != GgmlType::F32 && t != GgmlType::F16 && t != GgmlType::BF16 && t != GgmlType::F64 && t != GgmlType::I8 &&
         t != GgmlType::I16 && t != GgmlType::I32 && t != GgmlType::I64;
}

std::string tname(GgmlType t) { return std::string(type_traits(t).name); }
int64_t block_of(GgmlType t) { return type_traits(t).block_size; }

// The nearest type whose block fits a row llama.cpp falls back to (256-element k-quants → 32-element legacy
// types); nullopt when there is none (the type already has a 32-block).
std::optional<GgmlType> legacy_fallback(GgmlType t) {
  switch (t) {
    case GgmlType::Q2_K:
    case GgmlType::Q3_K: return GgmlType::Q4_0;
    case GgmlType::Q4_K: return GgmlType::Q5_0;
    case GgmlType::Q5_K: return GgmlType::Q5_1;
    case GgmlType::Q6_K: return GgmlType::Q8_0;
    case GgmlType::IQ4_XS: return GgmlType::IQ4_NL;
    // pocketlm-only group sizes (never a recipe's type; asked for by a single TYPE or a rule): the next
    // smaller group, then llama.cpp's q4_0.
    case GgmlType::Q4_0_G128: return GgmlType::Q4_0_G64;
    case GgmlType::Q4_0_G64: return GgmlType::Q4_0;
    default: return std::nullopt;
  }
}

struct PlanState {
  const QuantRecipe& r;
  const RecipeModelInfo& m;
  bool tied = true;
  int64_t n_attn_v = 0, i_attn_v = 0, i_ffn_down = 0;
  bool is_70b = false;
  int64_t gqa = 1;
};

// The recipe's per-role rule. Returns the type and, when it differs from `base`, why.
GgmlType role_rule(PlanState& s, const RecipeTensor& t, Role role, std::string& why) {
  const RecipeId id = s.r.id;
  GgmlType ty = s.r.base;
  const bool falcon = s.m.arch == "falcon";
  const int64_t n_expert = std::max<int64_t>(1, s.m.n_expert);

  if (role == Role::Output || (s.tied && role == Role::TokenEmbd)) {
    const char* what = role == Role::Output ? "output head" : "token embedding (tied to the output head)";
    if (falcon || t.ne[0] % block_of(ty) != 0) {
      ty = GgmlType::Q8_0;
      why = std::string(what) + ": q8_0";
    } else if (ty != GgmlType::Q8_0) {
      ty = GgmlType::Q6_K;
      why = std::string(what) + ": q6_K";
    }
    return ty;
  }
  if (role == Role::TokenEmbd) return ty;
  if (is_attn_v_like(role)) {
    const int64_t i = s.i_attn_v++;
    if (id == RecipeId::Q2_K) {
      ty = s.gqa >= 4 ? GgmlType::Q4_K : GgmlType::Q3_K;
      why = "attn_v";
    } else if (id == RecipeId::Q3_K_M) {
      ty = i < 2 ? GgmlType::Q5_K : GgmlType::Q4_K;
      why = i < 2 ? "attn_v of the first two layers" : "attn_v";
    } else if ((id == RecipeId::Q4_K_M || id == RecipeId::Q5_K_M) && recipe_more_bits_layer(i, s.n_attn_v)) {
      ty = GgmlType::Q6_K;
      why = "attn_v on a more-bits layer";
    } else if (id == RecipeId::Q4_K_S && i < 4) {
      ty = GgmlType::Q5_K;
      why = "attn_v of the first four layers";
    }
    if (s.is_70b && (ty == GgmlType::Q3_K || ty == GgmlType::Q4_K)) {
      ty = GgmlType::Q5_K;
      why = "attn_v of a 70B model (8 heads share it)";
    }
    if (n_expert == 8) {
      ty = GgmlType::Q8_0;
      why = "attn_v of an 8-expert model";
    }
    return ty;
  }
  if (role == Role::AttnK) {
    if (n_expert == 8) {
      why = "attn_k of an 8-expert model";
      return GgmlType::Q8_0;
    }
    return ty;
  }
  if (role == Role::FfnDown) {
    int64_t i_layer = s.i_ffn_down++;
    const int64_t n_layer = s.m.n_layer;
    if (n_expert > 1) {
      int parsed = -1;
      if (std::sscanf(t.name.c_str(), "blk.%d.", &parsed) == 1) i_layer = parsed;
    }
    const bool more = recipe_more_bits_layer(i_layer, n_layer);
    if (id == RecipeId::Q2_K) {
      ty = GgmlType::Q3_K;
      why = "ffn_down";
    } else if (id == RecipeId::Q3_K_M) {
      ty = i_layer < n_layer / 16 ? GgmlType::Q5_K : (!falcon || more) ? GgmlType::Q4_K : GgmlType::Q3_K;
      why = i_layer < n_layer / 16 ? "ffn_down of the first sixteenth of the layers" : "ffn_down";
    } else if (id == RecipeId::Q4_K_M) {
      if (falcon) {
        ty = i_layer < n_layer / 16 ? GgmlType::Q6_K : more ? GgmlType::Q5_K : GgmlType::Q4_K;
      } else if (more) {
        ty = GgmlType::Q6_K;
      }
      if (ty != s.r.base) why = "ffn_down on a more-bits layer";
    } else if (id == RecipeId::Q5_K_M && more) {
      ty = GgmlType::Q6_K;
      why = "ffn_down on a more-bits layer";
    } else if (id == RecipeId::Q4_K_S && !falcon && i_layer < n_layer / 8) {
      ty = GgmlType::Q5_K;
      why = "ffn_down of the first eighth of the layers";
    } else if ((id == RecipeId::Q4_0 || id == RecipeId::Q5_0) && s.m.has_imatrix && i_layer < n_layer / 8) {
      ty = id == RecipeId::Q4_0 ? GgmlType::Q4_1 : GgmlType::Q5_1;
      why = "ffn_down of the first eighth of the layers (with an importance matrix)";
    }
    return ty;
  }
  if (role == Role::AttnOutput && !falcon) {
    if (n_expert == 8) {
      if (id == RecipeId::Q2_K || id == RecipeId::Q3_K_S || id == RecipeId::Q3_K_M || id == RecipeId::Q4_K_S ||
          id == RecipeId::Q4_K_M) {
        ty = GgmlType::Q5_K;
        why = "attn_output of an 8-expert model";
      }
    } else if (id == RecipeId::Q2_K) {
      ty = GgmlType::Q3_K;
      why = "attn_output";
    } else if (id == RecipeId::Q3_K_M) {
      ty = GgmlType::Q4_K;
      why = "attn_output";
    }
  }
  return ty;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

bool recipe_more_bits_layer(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

const std::vector<QuantRecipe>& all_recipes() {
  static const std::vector<QuantRecipe> kRecipes = {
      {RecipeId::F16, "F16", 1, GgmlType::F16, "16-bit floats (except 1-D tensors)"},
      {RecipeId::Q8_0, "Q8_0", 7, GgmlType::Q8_0, "8.5 bits/weight; output head q8_0"},
      {RecipeId::Q4_0, "Q4_0", 2, GgmlType::Q4_0, "4.5 bits/weight legacy; output head q6_K"},
      {RecipeId::Q4_1, "Q4_1", 3, GgmlType::Q4_1, "5.0 bits/weight legacy; output head q6_K"},
      {RecipeId::Q5_0, "Q5_0", 8, GgmlType::Q5_0, "5.5 bits/weight legacy; output head q6_K"},
      {RecipeId::Q5_1, "Q5_1", 9, GgmlType::Q5_1, "6.0 bits/weight legacy; output head q6_K"},
      {RecipeId::Q2_K, "Q2_K", 10, GgmlType::Q2_K, "q2_K; attn_v q3_K/q4_K, ffn_down and attn_output q3_K"},
      {RecipeId::Q3_K_S, "Q3_K_S", 11, GgmlType::Q3_K, "q3_K everywhere but the output head"},
      {RecipeId::Q3_K_M, "Q3_K_M", 12, GgmlType::Q3_K, "q3_K; attn_v q5_K/q4_K, attn_output q4_K, ffn_down q5_K/q4_K"},
      {RecipeId::Q4_K_S, "Q4_K_S", 14, GgmlType::Q4_K, "q4_K; first attn_v and ffn_down q5_K"},
      {RecipeId::Q4_K_M, "Q4_K_M", 15, GgmlType::Q4_K, "q4_K; attn_v and ffn_down q6_K on the more-bits layers"},
      {RecipeId::Q5_K_S, "Q5_K_S", 16, GgmlType::Q5_K, "q5_K everywhere but the output head"},
      {RecipeId::Q5_K_M, "Q5_K_M", 17, GgmlType::Q5_K, "q5_K; attn_v and ffn_down q6_K on the more-bits layers"},
      {RecipeId::Q6_K, "Q6_K", 18, GgmlType::Q6_K, "q6_K everywhere"},
  };
  return kRecipes;
}

Expected<QuantRecipe> find_recipe(std::string_view name) {
  const std::string want = upper(name);
  std::string known;
  for (const QuantRecipe& r : all_recipes()) {
    if (r.name == want) return r;
    known += (known.empty() ? "" : " ") + std::string(r.name);
  }
  return Error("unknown quantization recipe '" + std::string(name) + "' (known: " + known + ")");
}

Expected<std::vector<TensorPlan>> plan_recipe(const QuantRecipe& recipe, const RecipeModelInfo& model,
                                              std::span<const RecipeTensor> tensors) {
  if (model.n_layer <= 0)
    return Error("recipe " + std::string(recipe.name) + ": the model has no layers (block_count)");
  PlanState s{recipe, model};
  s.gqa = model.n_head > 0 && model.n_head_kv > 0 ? model.n_head / model.n_head_kv : 1;
  s.is_70b = model.arch == "llama" && model.n_layer == 80 && model.n_head_kv > 0 && model.n_head != model.n_head_kv;
  for (const RecipeTensor& t : tensors) {
    if (t.ne.empty() || t.ne.size() > 4) return Error("tensor '" + t.name + "': expected 1 to 4 dimensions");
    const Role r = role_of(t.name);
    if (is_attn_v_like(r)) ++s.n_attn_v;
    if (r == Role::Output) s.tied = false;
  }

  // llama.cpp visits tensors by layer number (tensors outside the layers first), then by name; its attn_v and
  // ffn_down counters, which pick the "more bits" layers, count in that order, whatever the file's order.
  std::vector<size_t> order(tensors.size());
  std::vector<int> layer(tensors.size(), -1);
  for (size_t i = 0; i < tensors.size(); ++i) {
    order[i] = i;
    std::sscanf(tensors[i].name.c_str(), "blk.%d.", &layer[i]);
  }
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (layer[a] != layer[b]) return layer[a] < layer[b];
    return tensors[a].name < tensors[b].name;
  });

  std::vector<TensorPlan> plan(tensors.size());
  for (size_t idx : order) {
    const RecipeTensor& t = tensors[idx];
    TensorPlan& p = plan[idx];
    p = TensorPlan{t.name, t.type, std::nullopt, ""};
    if (!allows_quantization(t)) continue;
    if (!is_quantized(recipe.base)) {
      p.type = recipe.base;
      continue;
    }
    GgmlType ty = role_rule(s, t, role_of(t.name), p.reason);
    // The output head's own rule already avoids a type whose block does not fit (q8_0 instead); it is
    // reported as a fallback from q6_K all the same, as that is what the recipe wanted.
    const int64_t width = t.ne[0];
    if ((role_of(t.name) == Role::Output || (s.tied && role_of(t.name) == Role::TokenEmbd)) &&
        width % block_of(recipe.base) != 0 && ty == GgmlType::Q8_0 && recipe.base != GgmlType::Q8_0) {
      p.wanted = GgmlType::Q6_K;
      p.reason = "row width " + std::to_string(width) + " is not a multiple of 256 (q6_K's block): q8_0 instead";
    }
    if (width % block_of(ty) != 0) {
      const GgmlType asked = ty;
      const std::optional<GgmlType> fb = legacy_fallback(ty);
      ty = fb ? *fb : ty;
      std::string why = "row width " + std::to_string(width) + " is not a multiple of " +
                        std::to_string(block_of(asked)) + " (" + tname(asked) + "'s block)";
      if (width % block_of(ty) != 0) {
        ty = GgmlType::F16;
        why += " nor of 32: f16 instead";
      } else {
        why += ": " + tname(ty) + " instead";
      }
      p.wanted = asked;
      p.reason = std::move(why);
    }
    p.type = ty;
    if (p.type == recipe.base && !p.wanted) p.reason.clear();
  }
  return plan;
}

bool recipe_allows_quantization(const RecipeTensor& t) { return allows_quantization(t); }

GgmlType recipe_fallback_type(GgmlType type, int64_t width) {
  for (std::optional<GgmlType> t = type; t; t = legacy_fallback(*t))
    if (width % block_of(*t) == 0) return *t;
  return GgmlType::F16;
}

std::vector<TensorPlan> plan_uniform(GgmlType type, std::span<const RecipeTensor> tensors) {
  std::vector<TensorPlan> plan;
  plan.reserve(tensors.size());
  for (const RecipeTensor& t : tensors) {
    TensorPlan p{t.name, t.type, std::nullopt, ""};
    if (allows_quantization(t) && !t.ne.empty()) {
      const int64_t width = t.ne[0];
      p.type = recipe_fallback_type(type, width);
      if (p.type != type) {
        p.wanted = type;
        p.reason = "row width " + std::to_string(width) + " is not a multiple of " + std::to_string(block_of(type)) +
                   " (" + tname(type) + "'s block)" +
                   (legacy_fallback(type) && p.type == GgmlType::F16 ? " nor of 32" : "") + ": " + tname(p.type) +
                   " instead";
      }
    }
    plan.push_back(std::move(p));
  }
  return plan;
}

Expected<RecipeModelInfo> recipe_model_info(const GgufFile& f) {
  RecipeModelInfo m;
  PLM_TRY(m.arch, f.get_string("general.architecture"));
  const std::string p = m.arch + ".";
  PLM_TRY(m.n_layer, f.get_int(p + "block_count"));
  PLM_TRY(m.n_head, f.get_int_or(p + "attention.head_count", 0));
  PLM_TRY(m.n_head_kv, f.get_int_or(p + "attention.head_count_kv", m.n_head));
  PLM_TRY(m.n_expert, f.get_int_or(p + "expert_count", 0));
  return m;
}

std::vector<RecipeTensor> recipe_tensors(const GgufFile& f) {
  std::vector<RecipeTensor> out;
  out.reserve(f.tensors().size());
  for (const GgufTensor& t : f.tensors()) {
    out.push_back({t.name, std::vector<int64_t>(t.ne, t.ne + t.n_dims), t.type});
  }
  return out;
}

}  // namespace pocketlm
