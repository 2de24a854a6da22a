// The YAML form of `pocketlm quantize --rules` (same schema as the JSON form, quantize_model.h), read with
// yaml-cpp. Every error names the file and the line (1-based) of the node at fault.
#include <yaml-cpp/yaml.h>

#include <string>

#include "quant/quantize_model.h"

namespace pocketlm {
namespace {

std::string at(const std::string& name, const YAML::Mark& m) {
  return m.line >= 0 ? name + ":" + std::to_string(m.line + 1) : name;
}

const char* kind(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Scalar: return "a scalar";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    default: return "an undefined node";
  }
}

}  // namespace

Expected<std::vector<QuantizeRule>> parse_quantize_rules_yaml(std::string_view yaml, const std::string& name) {
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    if (root.IsMap() && root["rules"]) root = root["rules"];
    if (!root.IsSequence())
      return Error(at(name, root.Mark()) +
                   ": expected a YAML list of {pattern: <regex>, type: <type>} mappings (or "
                   "rules: [...]), found " +
                   kind(root));
    std::vector<QuantizeRule> rules;
    for (size_t i = 0; i < root.size(); ++i) {
      const YAML::Node r = root[i];
      const std::string where = at(name, r.Mark()) + ": rule " + std::to_string(i + 1);
      if (!r.IsMap()) return Error(where + ": expected a mapping {pattern: ..., type: ...}, found " + kind(r));
      for (const auto& kv : r) {
        const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string("?");
        if (key != "pattern" && key != "type")
          return Error(at(name, kv.first.Mark()) + ": rule " + std::to_string(i + 1) + ": unknown key '" + key +
                       "' (expected pattern, type)");
      }
      const YAML::Node pattern = r["pattern"], type = r["type"];
      if (!pattern || !pattern.IsScalar()) return Error(where + ": missing string \"pattern\"");
      if (!type || !type.IsScalar()) return Error(where + ": missing string \"type\"");
      PLM_TRY(QuantizeRule rule, make_quantize_rule(pattern.Scalar(), type.Scalar(), where));
      rules.push_back(std::move(rule));
    }
    return rules;
  } catch (const YAML::Exception& e) {
    // A syntax error: yaml-cpp's mark is 0-based.
    return Error(at(name, e.mark) + ":" + std::to_string(e.mark.column + 1) + ": not valid YAML: " + e.msg);
  }
}

}  // namespace pocketlm
