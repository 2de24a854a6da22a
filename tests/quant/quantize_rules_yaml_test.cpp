// `pocketlm quantize --rules` in YAML: the same rules as the JSON form (list, or rules: [...]); the file's
// name (or, for other names, whether it parses as JSON) picks the parser; every error names the file, the
// line and the problem; the CLI's dry run applies a YAML rule file.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "e2e/cli_runner.h"
#include "quant/quantize_model.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

namespace fs = std::filesystem;

void expect_same_rules(const std::vector<QuantizeRule>& a, const std::vector<QuantizeRule>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].pattern, b[i].pattern) << i;
    EXPECT_EQ(a[i].type, b[i].type) << i;
  }
}

std::string yaml_error(const std::string& yaml) {
  auto r = parse_quantize_rules_yaml(yaml, "r.yaml");
  EXPECT_FALSE(r.ok()) << yaml;
  return r.ok() ? std::string() : r.error().message();
}

TEST(QuantizeRulesYaml, SameRulesAsTheJsonForm) {
  auto json = parse_quantize_rules(R"([{"pattern": "attn_(q|k)\\.weight$", "type": "q8_0"},
                                       {"pattern": "blk\\.0\\.", "type": "f16"},
                                       {"pattern": "ffn_down", "type": "Q6_K"}])",
                                   "r.json");
  ASSERT_TRUE(json.ok()) << json.error().message();
  // Plain and single-quoted scalars keep backslashes; in double quotes they are escapes ("\\." = \.).
  auto list = parse_quantize_rules_yaml(R"(# per-layer bit widths
- pattern: attn_(q|k)\.weight$
  type: q8_0
- {pattern: 'blk\.0\.', type: f16}
- pattern: "ffn_down"
  type: Q6_K
)",
                                        "r.yaml");
  ASSERT_TRUE(list.ok()) << list.error().message();
  expect_same_rules(*list, *json);
  auto wrapped = parse_quantize_rules_yaml(R"(rules:
  - pattern: "attn_(q|k)\\.weight$"
    type: q8_0
  - pattern: blk\.0\.
    type: f16
  - pattern: ffn_down
    type: q6_K
)",
                                           "r.yaml");
  ASSERT_TRUE(wrapped.ok()) << wrapped.error().message();
  expect_same_rules(*wrapped, *json);
  EXPECT_NE((*wrapped)[1].where.find("r.yaml:4: rule 2"), std::string::npos) << (*wrapped)[1].where;
  EXPECT_TRUE(std::regex_search("blk.3.attn_k.weight", (*wrapped)[0].re));
  EXPECT_FALSE(std::regex_search("blk.3.attn_kxweight", (*wrapped)[0].re));
  auto empty = parse_quantize_rules_yaml("[]", "r.yaml");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(QuantizeRulesYaml, ErrorsNameFileLineAndProblem) {
  std::string e = yaml_error("- pattern: ok\n  type: q8_0\n- pattern: attn_(q\n  type: q4_0\n");
  EXPECT_NE(e.find("r.yaml:3: rule 2: bad regular expression 'attn_(q'"), std::string::npos) << e;
  e = yaml_error("- pattern: ok\n  type: q4_9\n");
  EXPECT_NE(e.find("r.yaml:1: rule 1: unknown tensor type 'q4_9'"), std::string::npos) << e;
  e = yaml_error("- pattern: ok\n  type: q4_0\n- pattern: x\n  typ: q4_0\n");
  EXPECT_NE(e.find("r.yaml:4: rule 2: unknown key 'typ'"), std::string::npos) << e;
  e = yaml_error("- pattern: ok\n");
  EXPECT_NE(e.find("r.yaml:1: rule 1: missing string \"type\""), std::string::npos) << e;
  e = yaml_error("- type: q4_0\n");
  EXPECT_NE(e.find("rule 1: missing string \"pattern\""), std::string::npos) << e;
  e = yaml_error("- pattern: [a, b]\n  type: q4_0\n");
  EXPECT_NE(e.find("rule 1: missing string \"pattern\""), std::string::npos) << e;
  e = yaml_error("- pattern: ok\n  type: q4_0\n- just a string\n");
  EXPECT_NE(e.find("r.yaml:3: rule 2: expected a mapping {pattern: ..., type: ...}, found a scalar"), std::string::npos)
      << e;
  e = yaml_error("pattern: ok\ntype: q4_0\n");
  EXPECT_NE(e.find("r.yaml:1: expected a YAML list"), std::string::npos) << e;
  e = yaml_error("- pattern: ok\n  type: q4_0\n- pattern: [unclosed\n  type: q8_0\n");
  EXPECT_NE(e.find("r.yaml:"), std::string::npos) << e;
  EXPECT_NE(e.find("not valid YAML"), std::string::npos) << e;
  e = yaml_error("- pattern: ok\n\ttype: q4_0\n");  // a tab in the indentation
  EXPECT_NE(e.find("r.yaml:2:"), std::string::npos) << e;
  EXPECT_NE(e.find("not valid YAML"), std::string::npos) << e;
  e = yaml_error("");
  EXPECT_NE(e.find("expected a YAML list"), std::string::npos) << e;
}

class RulesFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("plm_rules_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& body) {
    std::ofstream(dir_ / name) << body;
    return (dir_ / name).string();
  }
  fs::path dir_;
};

TEST_F(RulesFiles, TheNameOrTheContentPicksTheParser) {
  const std::string yaml = "- pattern: ffn\n  type: q8_0\n";
  const std::string json = R"([{"pattern": "ffn", "type": "q8_0"}])";
  for (const auto& [name, body] : std::vector<std::pair<std::string, std::string>>{{"a.yaml", yaml},
                                                                                   {"a.YML", yaml},
                                                                                   {"a.json", json},
                                                                                   {"a.rules", json},
                                                                                   {"b.rules", yaml},
                                                                                   {"c.yaml", json}}) {
    auto r = read_quantize_rules(write(name, body));
    ASSERT_TRUE(r.ok()) << name << ": " << r.error().message();
    ASSERT_EQ(r->size(), 1u) << name;
    EXPECT_EQ((*r)[0].type, GgmlType::Q8_0) << name;
  }
  // A .json file is parsed as JSON only: YAML in it is a JSON error.
  auto r = read_quantize_rules(write("y.json", yaml));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("y.json: not valid JSON"), std::string::npos) << r.error().message();
  r = read_quantize_rules((dir_ / "missing.yaml").string());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("missing.yaml: cannot open"), std::string::npos) << r.error().message();
}

TEST_F(RulesFiles, QuantizeDryRunAppliesAYamlRuleFile) {
  if (!fs::exists(test::stories_path())) GTEST_SKIP() << "no stories260K.gguf in shared/models";
  const std::string rules = write("rules.yaml", "rules:\n  - pattern: 'blk\\.[0-1]\\.attn_v'\n    type: q8_0\n");
  auto r = test::run_cli({"quantize", test::stories_path().string(), "q4_0", "--dry-run", "--rules", rules});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("rules.yaml:2: rule 1"), std::string::npos) << r.out;
  const std::string bad = write("bad.yaml", "rules:\n  - pattern: ffn\n    type: q3_0\n");
  r = test::run_cli({"quantize", test::stories_path().string(), (dir_ / "out.gguf").string(), "q4_0", "--rules", bad});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("bad.yaml:2: rule 1: unknown tensor type 'q3_0'"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out.gguf"));
}

}  // namespace
}  // namespace pocketlm
