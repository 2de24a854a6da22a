#pragma once
// The search space of `pocketlm tune` (docs/tune.md): which files and settings are candidates to ship.
// A space lists values along each axis; its candidates are every combination:
//   targets    recipes (Q4_K_M, Q8_0, ...) and single types (q4_K, q4_0_g64, ...), as `pocketlm quantize` takes
//   methods    rtn | imatrix | awq | gptq | awq+gptq (quant/methods/method.h)
//   hot_f16    token embedding and output head kept in f16 (quantize --hot-fp16), false and/or true
//   rules      per-layer rule sets (quantize --rules), each named; a rule's type is a type name or "+N", N steps
//              up the target's type family (q4_K -> q5_K -> q6_K -> q8_0 -> f16), e.g. attention one step up
//   kv_types   the KV cache type at run time: f16 | q8 | q4 (a candidate's memory and its scores)
//   prune      prune levels (prune/prune_model.h) applied to the base before quantizing: blocks dropped, FFN
//              and head fractions kept, the least-squares repair; "none" is the unpruned base
//   drafts     draft choices for speculative decoding: none | lookup | a self-draft of a type (first N layers).
//              Not an axis of candidates: decoding with a draft is lossless, so it changes a candidate's speed and
//              memory, never its scores; tune measures each finalist's acceptance with each draft instead.
// The default space is default_tune_space(); a YAML file replaces the axes it names.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "formats/ggml_type.h"
#include "prune/prune_model.h"
#include "util/error.h"

namespace pocketlm {

struct TuneRule {
  std::string pattern;  // std::regex_search on the tensor name
  std::string type;     // a type name, or "+1", "+2": steps up from the target's type
};

struct TuneRuleSet {
  std::string name;  // "" : no rules
  std::vector<TuneRule> rules;
};

// A prune level: what `pocketlm prune` is asked for (docs/pruning.md), always with the angular layer score.
struct TunePrune {
  std::string name;                  // "" : not pruned; else e.g. "drop2-ffn75-rep" (stable, part of ids)
  int64_t drop = 0;                  // blocks dropped: the most redundant contiguous run (angular distance)
  std::vector<int64_t> drop_layers;  // or these blocks
  double ffn_keep = 1.0;             // fraction of FFN channels kept
  double heads_keep = 1.0;           // fraction of query heads kept
  bool repair = false;               // least-squares refit (prune --repair)
  bool none() const { return name.empty(); }
};

// A draft choice for speculative decoding (docs/speculative.md).
struct TuneDraft {
  enum class Kind { None, Lookup, Self };
  Kind kind = Kind::None;
  GgmlType self_type = GgmlType::Q4_0;  // Self: the type the target is requantized to in memory
  int64_t layers = 0;                   // Self: the first N layers (0: all)
  std::string name;                     // "none" | "lookup" | "self-q4_0" | "self-q4_0-l4"
  std::string flags() const;            // the run flags: "" | "--lookup" | "--draft-self q4_0 --draft-layers 4"
};
TuneDraft make_tune_draft(TuneDraft::Kind kind, GgmlType self_type = GgmlType::Q4_0, int64_t layers = 0);

struct TuneSpace {
  std::vector<std::string> targets;
  std::vector<std::string> methods;
  std::vector<bool> hot_f16;
  std::vector<TuneRuleSet> rule_sets;  // the first is usually the empty set (no rules)
  std::vector<std::string> kv_types;
  std::vector<TunePrune> prune;    // the first is usually "none"
  std::vector<TuneDraft> drafts;   // measured per finalist (not candidates)
  std::string source = "default";  // the file it came from
};

// One point of the space: what to write (target, method, hot f16, rules) and how to run it (KV type).
struct TuneCandidate {
  std::string id;       // "q4_k_m.imatrix.hot.attn-up.kv-q8": stable, usable as a file name
  std::string file_id;  // the same without the KV type: candidates that share one quantized file
  std::string target;
  std::string method;  // "rtn" ...
  bool hot_f16 = false;
  std::string rule_set;                                    // its name, "" for none
  std::vector<std::pair<std::string, std::string>> rules;  // (pattern, concrete type), steps resolved
  std::string kv_type;                                     // "f16" | "q8" | "q4"
  TunePrune prune;                                         // applied to the base first (none: unpruned)
};

TuneSpace default_tune_space();

// What `pocketlm prune` is asked for by a prune level (layers by the angular score; no progress line).
PruneOptions tune_prune_options(const TunePrune& p, int64_t n_layer);

// YAML: a mapping with any of the keys targets, methods, hot_f16, rules, kv_types, prune, drafts (a missing key
// keeps the default axis). prune is a list of `none` and {drop: N | drop_layers: [i, ...], ffn_keep: F,
// heads_keep: F, repair: BOOL}; drafts a list of `none`, `lookup` and {self: TYPE, layers: N}. rules is a list of
// {name: NAME, rules: [{pattern: REGEX, type: TYPE|+N}, ...]}; the set "none" (no rules) is always included first
// unless `include_no_rules: false`. Errors name the file, the line and the field: an empty file, a value that is not a
// list, an unknown recipe/type/method/KV type, a bad regex, a duplicate or empty axis.
Expected<TuneSpace> parse_tune_space(std::string_view yaml, const std::string& name);
Expected<TuneSpace> read_tune_space(const std::string& path);

// Every combination, in axis order (targets outermost, then methods, hot_f16, rules, prune, kv_types). Combinations
// that are the same file are kept once: a float target (f16, F16, bf16, f32) ignores methods other than rtn; a
// method that needs no calibration is the same as rtn only when it is rtn. A pruned candidate is rtn only (the
// calibration statistics are the unpruned base's: imatrix, AWQ and GPTQ would need the pruned model's). Steps
// ("+1") are resolved against each target's type.
Expected<std::vector<TuneCandidate>> expand_tune_space(const TuneSpace& space);

// The type `steps` steps up `t`'s family (q2_K q3_K q4_K q5_K q6_K q8_0 f16; q4_0 q5_0 q8_0; q4_1 q5_1 q8_0;
// iq4_nl/iq4_xs/q4_0_g64/q4_0_g128 -> q5_0/q5_K/q5_0/q5_0); f16 and f32 stay.
GgmlType type_steps_up(GgmlType t, int steps);

// The base type of a recipe or single type name ("Q4_K_M" -> q4_K, "q5_0" -> q5_0).
Expected<GgmlType> target_base_type(const std::string& target);

class GgufFile;
struct QuantizeOptions;
// The quantizer's options for a candidate on `base` (target, hot f16 embedding / head, rules; not the method). A
// rule whose type does not divide a matching tensor's rows falls back for that tensor as the recipes do
// (recipe_fallback_type: q5_K on rows of 576 -> q5_1, ...), instead of the quantizer's error for such a rule:
// the step "+1" must mean something on every model.
Status tune_quantize_options(const TuneCandidate& c, const GgufFile& base, QuantizeOptions& o);
struct RecipeTensor;
Status tune_quantize_options(const TuneCandidate& c, const std::vector<RecipeTensor>& tensors, QuantizeOptions& o);

}  // namespace pocketlm
