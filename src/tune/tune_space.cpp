// The tune search space: the default, the YAML reader (yaml-cpp; every error names the file, the line and the
// field) and the expansion into candidates.
#include "tune/tune_space.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "formats/kv_types.h"
#include "formats/quantize.h"
#include "gguf/reader.h"
#include "quant/methods/method.h"
#include "quant/quantize_model.h"
#include "quant/recipe.h"

namespace pocketlm {
namespace {

std::string at(const std::string& name, const YAML::Mark& m) {
  return m.line >= 0 ? name + ":" + std::to_string(m.line + 1) : name;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_float(GgmlType t) { return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16; }

// A step "+N" (N in 1..4), or 0 when `s` is not one.
int parse_step(const std::string& s) {
  if (s.size() == 2 && s[0] == '+' && s[1] >= '1' && s[1] <= '4') return s[1] - '0';
  return 0;
}

Expected<std::vector<std::string>> scalar_list(const YAML::Node& n, const std::string& name, const std::string& field) {
  if (!n.IsSequence())
    return Error(at(name, n.Mark()) + ": field '" + field + "': expected a list (e.g. " + field + ": [a, b])");
  if (n.size() == 0) return Error(at(name, n.Mark()) + ": field '" + field + "': the list is empty");
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const YAML::Node& v : n) {
    if (!v.IsScalar())
      return Error(at(name, v.Mark()) + ": field '" + field + "': expected a name, found a list or mapping");
    if (!seen.insert(lower(v.Scalar())).second)
      return Error(at(name, v.Mark()) + ": field '" + field + "': '" + v.Scalar() + "' is listed twice");
    out.push_back(v.Scalar());
  }
  return out;
}

Status check_target(const std::string& t, const std::string& where) {
  if (find_recipe(t).ok()) return Status::Ok();
  const auto type = type_from_name(t);
  if (type && can_quantize(*type)) return Status::Ok();
  return Error(where + ": field 'targets': '" + t +
               "' is neither a recipe (Q4_K_M, Q8_0, ...) nor a type pocketlm can "
               "write (q4_K, q4_0_g64, ...)");
}

Status check_rule(const TuneRule& r, const std::string& where) {
  try {
    std::regex re(r.pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return Error(where + ": field 'pattern': '" + r.pattern + "' is not a valid regex (" + e.what() + ")");
  }
  if (parse_step(r.type) > 0) return Status::Ok();
  const auto type = type_from_name(r.type);
  if (!type || !can_quantize(*type))
    return Error(where + ": field 'type': '" + r.type + "' is not a type pocketlm can write, nor a step up (+1 .. +4)");
  return Status::Ok();
}

std::string id_part(const std::string& s) {
  std::string out;
  for (char c : lower(s)) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-') ? c : '-';
  return out;
}

// "75" for 0.75, "33" for 1/3: a fraction as a whole percentage, for names.
std::string percent(double f) { return std::to_string(std::lround(f * 100.0)); }

bool parse_bool(const std::string& s, bool& out) {
  const std::string l = lower(s);
  if (l == "true" || l == "yes") return out = true, true;
  if (l == "false" || l == "no") return out = false, true;
  return false;
}

Expected<double> parse_fraction(const YAML::Node& v, const std::string& where, const std::string& key) {
  const std::string bad = where + ": field 'prune': " + key + ": '" + (v.IsScalar() ? v.Scalar() : std::string("?")) +
                          "' is not a fraction in (0, 1] (the share kept, e.g. 0.75)";
  if (!v.IsScalar()) return Error(bad);
  try {
    size_t used = 0;
    const double f = std::stod(v.Scalar(), &used);
    if (used != v.Scalar().size() || !(f > 0.0 && f <= 1.0)) return Error(bad);
    return f;
  } catch (const std::exception&) {
    return Error(bad);
  }
}

Expected<int64_t> parse_count(const YAML::Node& v, const std::string& where, const std::string& what, int64_t min) {
  const std::string bad = where + ": " + what + ": '" + (v.IsScalar() ? v.Scalar() : std::string("?")) +
                          "' is not a whole number of at least " + std::to_string(min);
  if (!v.IsScalar()) return Error(bad);
  try {
    size_t used = 0;
    const long long n = std::stoll(v.Scalar(), &used);
    if (used != v.Scalar().size() || n < min) return Error(bad);
    return static_cast<int64_t>(n);
  } catch (const std::exception&) {
    return Error(bad);
  }
}

std::string prune_name(const TunePrune& p) {
  std::string n;
  auto add = [&](const std::string& part) { n += (n.empty() ? "" : "-") + part; };
  if (p.drop > 0) add("drop" + std::to_string(p.drop));
  if (!p.drop_layers.empty()) {
    std::string l = "dropl";
    for (size_t i = 0; i < p.drop_layers.size(); ++i) l += (i ? "_" : "") + std::to_string(p.drop_layers[i]);
    add(l);
  }
  if (p.ffn_keep < 1.0) add("ffn" + percent(p.ffn_keep));
  if (p.heads_keep < 1.0) add("heads" + percent(p.heads_keep));
  if (p.repair && !n.empty()) add("rep");
  return n;
}

Expected<TunePrune> parse_prune_level(const YAML::Node& n, const std::string& name) {
  const std::string where = at(name, n.Mark());
  TunePrune p;
  if (n.IsScalar()) {
    if (lower(n.Scalar()) == "none") return p;
    return Error(where + ": field 'prune': '" + n.Scalar() +
                 "' is not a prune level (none, or {drop: N, drop_layers: [..], ffn_keep: F, heads_keep: F, "
                 "repair: true})");
  }
  if (!n.IsMap())
    return Error(where + ": field 'prune': expected none or {drop: N, ffn_keep: F, heads_keep: F, repair: BOOL}");
  for (const auto& e : n) {
    const std::string k = e.first.IsScalar() ? e.first.Scalar() : std::string("?");
    const std::string w = at(name, e.second.Mark());
    if (k == "drop") {
      PLM_TRY(p.drop, parse_count(e.second, w, "field 'prune': drop", 1));
    } else if (k == "drop_layers") {
      if (!e.second.IsSequence() || e.second.size() == 0)
        return Error(w + ": field 'prune': drop_layers: expected a non-empty list of block indices");
      std::set<int64_t> seen;
      for (const YAML::Node& i : e.second) {
        PLM_TRY(int64_t l, parse_count(i, at(name, i.Mark()), "field 'prune': drop_layers", 0));
        if (!seen.insert(l).second)
          return Error(at(name, i.Mark()) + ": field 'prune': drop_layers: block " + std::to_string(l) +
                       " is listed twice");
      }
      p.drop_layers.assign(seen.begin(), seen.end());
    } else if (k == "ffn_keep") {
      PLM_TRY(p.ffn_keep, parse_fraction(e.second, w, k));
    } else if (k == "heads_keep") {
      PLM_TRY(p.heads_keep, parse_fraction(e.second, w, k));
    } else if (k == "repair") {
      if (!e.second.IsScalar() || !parse_bool(e.second.Scalar(), p.repair))
        return Error(w + ": field 'prune': repair: expected true or false");
    } else {
      return Error(at(name, e.first.Mark()) + ": field 'prune': unknown key '" + k +
                   "' (expected drop, drop_layers, ffn_keep, heads_keep, repair)");
    }
  }
  if (p.drop > 0 && !p.drop_layers.empty())
    return Error(where + ": field 'prune': give drop (a count) or drop_layers (a list), not both");
  p.name = prune_name(p);
  if (p.name.empty())
    return Error(where + ": field 'prune': the level prunes nothing (write none for the unpruned base)");
  return p;
}

Expected<TuneDraft> parse_draft(const YAML::Node& n, const std::string& name) {
  const std::string where = at(name, n.Mark());
  const std::string expected = " (none, lookup, or {self: TYPE, layers: N})";
  if (n.IsScalar()) {
    const std::string l = lower(n.Scalar());
    if (l == "none") return make_tune_draft(TuneDraft::Kind::None);
    if (l == "lookup") return make_tune_draft(TuneDraft::Kind::Lookup);
    return Error(where + ": field 'drafts': '" + n.Scalar() + "' is not a draft choice" + expected);
  }
  if (!n.IsMap() || !n["self"] || !n["self"].IsScalar())
    return Error(where + ": field 'drafts': expected a draft choice" + expected);
  GgmlType type = GgmlType::Q4_0;
  int64_t layers = 0;
  for (const auto& e : n) {
    const std::string k = e.first.IsScalar() ? e.first.Scalar() : std::string("?");
    const std::string w = at(name, e.second.Mark());
    if (k == "self") {
      const auto t = type_from_name(e.second.Scalar());
      if (!t || !can_quantize(*t) || is_float(*t))
        return Error(w + ": field 'drafts': self: '" + e.second.Scalar() +
                     "' is not a quantized type pocketlm can write (q4_0, q8_0, q2_K, ...)");
      type = *t;
    } else if (k == "layers") {
      PLM_TRY(layers, parse_count(e.second, w, "field 'drafts': layers", 1));
    } else {
      return Error(at(name, e.first.Mark()) + ": field 'drafts': unknown key '" + k + "' (expected self, layers)");
    }
  }
  return make_tune_draft(TuneDraft::Kind::Self, type, layers);
}

}  // namespace

TuneDraft make_tune_draft(TuneDraft::Kind kind, GgmlType self_type, int64_t layers) {
  TuneDraft d;
  d.kind = kind;
  d.self_type = self_type;
  d.layers = kind == TuneDraft::Kind::Self ? layers : 0;
  switch (kind) {
    case TuneDraft::Kind::None: d.name = "none"; break;
    case TuneDraft::Kind::Lookup: d.name = "lookup"; break;
    case TuneDraft::Kind::Self:
      d.name = "self-" + std::string(type_traits(self_type).name) + (layers > 0 ? "-l" + std::to_string(layers) : "");
      break;
  }
  return d;
}

std::string TuneDraft::flags() const {
  switch (kind) {
    case Kind::None: return "";
    case Kind::Lookup: return "--lookup";
    case Kind::Self:
      return "--draft-self " + std::string(type_traits(self_type).name) +
             (layers > 0 ? " --draft-layers " + std::to_string(layers) : "");
  }
  return "";
}

Expected<GgmlType> target_base_type(const std::string& target) {
  if (auto r = find_recipe(target)) return r->base;
  if (auto t = type_from_name(target)) return *t;
  return Error("unknown recipe or type '" + target + "'");
}

GgmlType type_steps_up(GgmlType t, int steps) {
  for (int i = 0; i < steps; ++i) {
    switch (t) {
      case GgmlType::Q2_K: t = GgmlType::Q3_K; break;
      case GgmlType::Q3_K: t = GgmlType::Q4_K; break;
      case GgmlType::Q4_K: t = GgmlType::Q5_K; break;
      case GgmlType::Q5_K: t = GgmlType::Q6_K; break;
      case GgmlType::Q6_K: t = GgmlType::Q8_0; break;
      case GgmlType::Q4_0:
      case GgmlType::Q4_0_G64:
      case GgmlType::Q4_0_G128:
      case GgmlType::IQ4_NL: t = GgmlType::Q5_0; break;
      case GgmlType::IQ4_XS: t = GgmlType::Q5_K; break;
      case GgmlType::Q4_1: t = GgmlType::Q5_1; break;
      case GgmlType::Q5_0:
      case GgmlType::Q5_1: t = GgmlType::Q8_0; break;
      case GgmlType::Q8_0: t = GgmlType::F16; break;
      default: break;  // f16, bf16, f32 stay
    }
  }
  return t;
}

PruneOptions tune_prune_options(const TunePrune& p, int64_t n_layer) {
  PruneOptions o;
  o.drop_layers = p.drop_layers;
  if (p.drop > 0) o.keep_layers = std::max<int64_t>(0, n_layer - p.drop);
  o.score = LayerScore::Angular;
  o.ffn_keep = p.ffn_keep;
  o.heads_keep = p.heads_keep;
  o.repair = p.repair;
  o.progress = false;
  return o;
}

TuneSpace default_tune_space() {
  TuneSpace s;
  s.targets = {"Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_K_S", "Q4_0", "Q3_K_M"};
  s.methods = {"rtn", "imatrix"};
  s.hot_f16 = {false};
  s.rule_sets = {{"", {}}, {"attn-up", {{"attn_(q|k|v|output)\\.weight$", "+1"}}}};
  s.kv_types = {"f16"};
  s.prune = {TunePrune{}};  // pruning is off by default: it rarely wins at these sizes (docs/pruning.md)
  s.drafts = {make_tune_draft(TuneDraft::Kind::None), make_tune_draft(TuneDraft::Kind::Lookup),
              make_tune_draft(TuneDraft::Kind::Self, GgmlType::Q4_0)};
  return s;
}

Expected<TuneSpace> parse_tune_space(std::string_view yaml, const std::string& name) {
  TuneSpace s = default_tune_space();
  s.source = name;
  try {
    const YAML::Node root = YAML::Load(std::string(yaml));
    if (root.IsNull() || (root.IsScalar() && root.Scalar().empty()))
      return Error(name +
                   ": the space file is empty: give at least one of targets, methods, hot_f16, rules, kv_types, "
                   "prune, drafts (docs/tune.md)");
    if (!root.IsMap())
      return Error(at(name, root.Mark()) +
                   ": expected a mapping with targets, methods, hot_f16, rules, kv_types, prune, drafts");
    bool include_none = true;
    for (const auto& kv : root) {
      const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string("?");
      const std::string where = at(name, kv.second.Mark());
      if (key == "targets") {
        PLM_TRY(s.targets, scalar_list(kv.second, name, key));
        for (const std::string& t : s.targets) PLM_CHECK(check_target(t, where));
      } else if (key == "methods") {
        PLM_TRY(s.methods, scalar_list(kv.second, name, key));
        for (const std::string& m : s.methods) {
          auto q = parse_quant_method(m);
          if (!q) return Error(where + ": field 'methods': " + q.error().message());
        }
      } else if (key == "kv_types") {
        PLM_TRY(s.kv_types, scalar_list(kv.second, name, key));
        for (const std::string& k : s.kv_types) {
          auto t = parse_kv_type(lower(k));
          if (!t || *t == KvType::F32)
            return Error(where + ": field 'kv_types': '" + k + "' is not a KV cache type (f16, q8, q4)");
        }
      } else if (key == "hot_f16") {
        PLM_TRY(std::vector<std::string> v, scalar_list(kv.second, name, key));
        s.hot_f16.clear();
        for (const std::string& b : v) {
          const std::string l = lower(b);
          if (l == "true" || l == "yes")
            s.hot_f16.push_back(true);
          else if (l == "false" || l == "no")
            s.hot_f16.push_back(false);
          else
            return Error(where + ": field 'hot_f16': '" + b + "' is not true or false");
        }
      } else if (key == "prune" || key == "drafts") {
        if (!kv.second.IsSequence() || kv.second.size() == 0)
          return Error(where + ": field '" + key + "': expected a non-empty list");
        std::set<std::string> names;
        if (key == "prune") {
          s.prune.clear();
          for (const YAML::Node& v : kv.second) {
            PLM_TRY(TunePrune p, parse_prune_level(v, name));
            if (!names.insert(p.name).second)
              return Error(at(name, v.Mark()) + ": field 'prune': '" + (p.name.empty() ? "none" : p.name) +
                           "' is listed twice");
            s.prune.push_back(std::move(p));
          }
        } else {
          s.drafts.clear();
          for (const YAML::Node& v : kv.second) {
            PLM_TRY(TuneDraft d, parse_draft(v, name));
            if (!names.insert(d.name).second)
              return Error(at(name, v.Mark()) + ": field 'drafts': '" + d.name + "' is listed twice");
            s.drafts.push_back(std::move(d));
          }
        }
      } else if (key == "include_no_rules") {
        if (!kv.second.IsScalar() || (lower(kv.second.Scalar()) != "true" && lower(kv.second.Scalar()) != "false"))
          return Error(where + ": field 'include_no_rules': expected true or false");
        include_none = lower(kv.second.Scalar()) == "true";
      } else if (key == "rules") {
        const YAML::Node& n = kv.second;
        if (!n.IsSequence())
          return Error(where +
                       ": field 'rules': expected a list of {name: NAME, rules: [{pattern: REGEX, type: TYPE|+N}]}");
        s.rule_sets.clear();
        std::set<std::string> names;
        for (const YAML::Node& set : n) {
          const std::string w = at(name, set.Mark());
          if (!set.IsMap() || !set["name"] || !set["name"].IsScalar() || set["name"].Scalar().empty())
            return Error(w + ": field 'rules': each rule set needs a non-empty 'name' and a list 'rules'");
          TuneRuleSet rs;
          rs.name = set["name"].Scalar();
          if (lower(rs.name) == "none") return Error(w + ": field 'rules': the name 'none' is reserved for no rules");
          if (!names.insert(lower(rs.name)).second)
            return Error(w + ": field 'rules': rule set '" + rs.name + "' is defined twice");
          for (const auto& e : set) {
            const std::string k = e.first.IsScalar() ? e.first.Scalar() : std::string("?");
            if (k != "name" && k != "rules")
              return Error(at(name, e.first.Mark()) + ": rule set '" + rs.name + "': unknown key '" + k +
                           "' (expected name, rules)");
          }
          const YAML::Node rules = set["rules"];
          if (!rules || !rules.IsSequence() || rules.size() == 0)
            return Error(w + ": rule set '" + rs.name +
                         "': field 'rules': expected a non-empty list of {pattern, type}");
          for (const YAML::Node& r : rules) {
            const std::string rw = at(name, r.Mark()) + ": rule set '" + rs.name + "'";
            if (!r.IsMap() || !r["pattern"] || !r["pattern"].IsScalar() || !r["type"] || !r["type"].IsScalar())
              return Error(rw + ": each rule needs a string 'pattern' and a string 'type'");
            TuneRule rule{r["pattern"].Scalar(), r["type"].Scalar()};
            PLM_CHECK(check_rule(rule, rw));
            rs.rules.push_back(std::move(rule));
          }
          s.rule_sets.push_back(std::move(rs));
        }
      } else {
        return Error(at(name, kv.first.Mark()) + ": unknown field '" + key +
                     "' (expected targets, methods, hot_f16, rules, include_no_rules, kv_types, prune, drafts)");
      }
    }
    if (include_none && (s.rule_sets.empty() || !s.rule_sets.front().name.empty()))
      s.rule_sets.insert(s.rule_sets.begin(), TuneRuleSet{});
    if (s.rule_sets.empty()) return Error(name + ": field 'rules': no rule set left (include_no_rules is false)");
    return s;
  } catch (const YAML::Exception& e) {
    return Error(at(name, e.mark) + ":" + std::to_string(e.mark.column + 1) + ": not valid YAML: " + e.msg);
  }
}

Expected<TuneSpace> read_tune_space(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error(path + ": cannot read the space file");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_tune_space(ss.str(), path);
}

Status tune_quantize_options(const TuneCandidate& c, const GgufFile& base, QuantizeOptions& o) {
  return tune_quantize_options(c, recipe_tensors(base), o);
}

Status tune_quantize_options(const TuneCandidate& c, const std::vector<RecipeTensor>& tensors, QuantizeOptions& o) {
  o.target = c.target;
  o.pure = false;
  if (c.hot_f16) o.token_embedding_type = o.output_tensor_type = GgmlType::F16;
  for (size_t i = 0; i < c.rules.size(); ++i) {
    const auto& [pattern, type_name] = c.rules[i];
    const std::string where = "rule set '" + c.rule_set + "': rule " + std::to_string(i + 1);
    PLM_TRY(QuantizeRule rule, make_quantize_rule(pattern, type_name, where));
    // The tensors this rule decides (the first matching rule wins) and whether its type divides their rows.
    bool all_fit = true;
    for (const RecipeTensor& t : tensors) {
      if (!recipe_allows_quantization(t) || !std::regex_search(t.name, rule.re)) continue;
      const int64_t width = t.ne.empty() ? 1 : t.ne[0];
      all_fit = all_fit && recipe_fallback_type(rule.type, width) == rule.type;
    }
    if (all_fit) {
      o.rules.push_back(std::move(rule));
      continue;
    }
    for (const RecipeTensor& t : tensors) {
      if (!recipe_allows_quantization(t) || !std::regex_search(t.name, rule.re)) continue;
      std::string exact = "^";
      for (char ch : t.name) {
        if (std::strchr(".^$|()[]{}*+?\\", ch)) exact += '\\';
        exact += ch;
      }
      exact += "$";
      const GgmlType fb = recipe_fallback_type(rule.type, t.ne.empty() ? 1 : t.ne[0]);
      PLM_TRY(QuantizeRule r,
              make_quantize_rule(exact, std::string(type_traits(fb).name), where + " (" + t.name + ")"));
      o.rules.push_back(std::move(r));
    }
  }
  return Status::Ok();
}

Expected<std::vector<TuneCandidate>> expand_tune_space(const TuneSpace& space) {
  std::vector<TuneCandidate> out;
  std::set<std::string> ids;
  for (const std::string& target : space.targets) {
    PLM_TRY(GgmlType base, target_base_type(target));
    for (const std::string& method : space.methods) {
      PLM_TRY(QuantMethod m, parse_quant_method(method));
      if (is_float(base) && m != QuantMethod::Rtn) continue;  // nothing to calibrate: the same file as rtn
      for (bool hot : space.hot_f16) {
        for (const TuneRuleSet& rs : space.rule_sets) {
          std::vector<std::pair<std::string, std::string>> rules;
          for (const TuneRule& r : rs.rules) {
            const int step = parse_step(r.type);
            rules.emplace_back(r.pattern, step > 0 ? std::string(type_traits(type_steps_up(base, step)).name) : r.type);
          }
          const std::vector<TunePrune> levels = space.prune.empty() ? std::vector<TunePrune>{TunePrune{}} : space.prune;
          for (const TunePrune& pl : levels) {
            if (!pl.none() && m != QuantMethod::Rtn) continue;  // calibration statistics are the unpruned base's
            for (const std::string& kv : space.kv_types) {
              if (!parse_kv_type(lower(kv))) return Error(space.source + ": unknown KV cache type '" + kv + "'");
              TuneCandidate c;
              c.target = target;
              c.method = std::string(quant_method_name(m));
              c.hot_f16 = hot;
              c.rule_set = rs.name;
              c.rules = rules;
              c.kv_type = kv_type_name(*parse_kv_type(lower(kv)));
              c.prune = pl;
              c.file_id = id_part(target) + "." + id_part(c.method) + (hot ? ".hot" : "") +
                          (rs.name.empty() ? "" : "." + id_part(rs.name)) + (pl.none() ? "" : "." + pl.name);
              c.id = c.file_id + ".kv-" + c.kv_type;
              if (!ids.insert(c.id).second) continue;
              out.push_back(std::move(c));
            }
          }
        }
      }
    }
  }
  if (out.empty()) return Error(space.source + ": the space has no candidate");
  return out;
}

}  // namespace pocketlm
