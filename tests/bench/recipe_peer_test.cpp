// Recipe plans against llama.cpp itself: small F16 synthetic models with the layer structure and row widths
// that decide the plan (llama-1b: 16 layers, GQA 4, tied; llama-7b: 32 layers, no GQA, untied; SmolLM2:
// 30 layers, 576-wide rows that force fallbacks) go through `llama-quantize --dry-run`, and every tensor's
// type it reports must equal our plan's. Skips without the peer build.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <map>
#include <regex>
#include <string>

#include "bench/synthetic_model.h"
#include "gguf/reader.h"
#include "quant/recipe.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

namespace fs = std::filesystem;

std::string run_capture(const std::string& cmd, int& rc) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) {
    rc = -1;
    return out;
  }
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  rc = pclose(p);
  return out;
}

// name -> type name ("q4_K") from llama-quantize's per-tensor lines.
std::map<std::string, std::string> peer_plan(const fs::path& quantize, const std::string& model,
                                             const std::string& recipe) {
  int rc = 0;
  const std::string out = run_capture("'" + quantize.string() + "' --dry-run '" + model + "' " + recipe, rc);
  EXPECT_EQ(rc, 0) << out.substr(out.size() > 2000 ? out.size() - 2000 : 0);
  std::map<std::string, std::string> types;
  static const std::regex line(R"(\]\s+(\S+)\s+- \[[^\]]*\], type =\s*(\S+),[^\n]*?(?:\((\w+)\))?\s*$)");
  size_t pos = 0;
  while (pos < out.size()) {
    size_t end = out.find('\n', pos);
    if (end == std::string::npos) end = out.size();
    const std::string l = out.substr(pos, end - pos);
    std::smatch m;
    if (l.rfind("[", 0) == 0 && std::regex_search(l, m, line)) types[m[1]] = m[3].matched ? m[3].str() : m[2].str();
    pos = end + 1;
  }
  return types;
}

class RecipePeer : public ::testing::Test {
 protected:
  void SetUp() override {
    quantize_ = test::peer_dir() / "build" / "bin" / "llama-quantize";
    if (!fs::exists(quantize_)) GTEST_SKIP() << quantize_ << " is absent (scripts/build-peer.sh builds llama.cpp)";
    if (!fs::exists(test::stories_path())) GTEST_SKIP() << test::stories_path() << " is absent";
  }
  fs::path quantize_;
};

TEST_F(RecipePeer, PlansEqualLlamaQuantizeDryRun) {
  // Widths are cut down where only "a multiple of 256" matters, keeping the files small.
  SynthShape like_1b{"1b-like", "Llama-3.2-1B layers", 256, 16, 32, 8, 512, 2048, 500000.0, 1e-5, true};
  SynthShape like_7b{"7b-like", "Llama-2-7B layers", 256, 32, 4, 4, 512, 2048, 10000.0, 1e-5, false};
  SynthShape smol{"smollm2-like", "SmolLM2-135M widths", 576, 30, 9, 3, 256, 2048, 100000.0, 1e-5, true};
  const fs::path dir = fs::temp_directory_path() / ("plm_recipe_peer_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  int checked = 0;
  for (const SynthShape& shape : {like_1b, like_7b, smol}) {
    SynthOptions o;
    o.shape = shape;
    o.recipe = "F16";
    o.tokenizer_from = test::stories_path().string();
    o.progress = false;
    const std::string path = (dir / (shape.name + ".gguf")).string();
    auto written = write_synthetic_model(o, path);
    ASSERT_TRUE(written.ok()) << written.error().message();
    for (const char* recipe :
         {"Q4_K_M", "Q4_K_S", "Q5_K_M", "Q5_K_S", "Q3_K_M", "Q3_K_S", "Q2_K", "Q6_K", "Q8_0", "Q4_0", "Q4_1"}) {
      auto r = find_recipe(recipe);
      ASSERT_TRUE(r.ok());
      auto plan = plan_recipe(*r, RecipeModelInfo{"llama", shape.n_layer, shape.n_head, shape.n_head_kv, 0, false},
                              synth_tensor_list(shape, written->n_vocab));
      ASSERT_TRUE(plan.ok());
      const auto peer = peer_plan(quantize_, path, recipe);
      ASSERT_EQ(peer.size(), plan->size()) << shape.name << " " << recipe;
      for (const TensorPlan& p : *plan) {
        ASSERT_TRUE(peer.count(p.name)) << p.name;
        EXPECT_EQ(std::string(type_traits(p.type).name), peer.at(p.name))
            << shape.name << " " << recipe << " " << p.name;
        ++checked;
      }
    }
  }
  fs::remove_all(dir);
  EXPECT_GT(checked, 2000);
}

TEST_F(RecipePeer, PlansOfTheRealSmolLM2FileEqualLlamaQuantizeDryRun) {
  // The real file's tensor list and metadata (read by recipe_tensors / recipe_model_info), requantized.
  const fs::path smol = test::smollm2_path();
  if (!fs::exists(smol)) GTEST_SKIP() << smol << " absent (scripts/fetch-models.sh)";
  auto f = GgufFile::open(smol.string());
  ASSERT_TRUE(f.ok());
  auto info = recipe_model_info(*f);
  ASSERT_TRUE(info.ok()) << info.error().message();
  EXPECT_EQ(info->n_layer, 30);
  EXPECT_EQ(info->n_head_kv, 3);
  const auto tensors = recipe_tensors(*f);
  for (const char* recipe : {"Q4_K_M", "Q5_K_M", "Q3_K_M", "Q2_K", "Q4_0", "Q8_0", "F16"}) {
    auto plan = plan_recipe(*find_recipe(recipe), *info, tensors);
    ASSERT_TRUE(plan.ok());
    const auto peer = peer_plan(quantize_, smol.string(), recipe);
    ASSERT_EQ(peer.size(), plan->size()) << recipe;
    for (const TensorPlan& p : *plan) {
      ASSERT_TRUE(peer.count(p.name)) << p.name;
      EXPECT_EQ(std::string(type_traits(p.type).name), peer.at(p.name)) << recipe << " " << p.name;
    }
  }
}

}  // namespace
}  // namespace pocketlm
