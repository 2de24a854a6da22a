// pocketlm synth: a GGUF of a real model's shape with random (valid) weights, for measuring speed and memory
// at 1B–7B scale without downloading the checkpoints (--shape); or a real model's weights transplanted into
// another architecture's layout, for checking that architecture against llama.cpp (--arch, --from).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>

#include "bench/synthetic_model.h"
#include "bench/transplant.h"
#include "commands.h"
#include "common.h"

namespace pocketlm::cli {
namespace {

struct SynthFlags {
  std::string shape, arch, from, type = "Q4_K_M", tokenizer_from, out;
  uint64_t seed = 1;
  bool quiet = false;
};

std::string default_tokenizer() {
  const char* name = "SmolLM2-135M-Instruct.Q4_1.gguf";
  std::vector<std::filesystem::path> dirs = {"models"};
  if (const char* env = std::getenv("POCKETLM_MODELS_DIR")) dirs.insert(dirs.begin(), env);
  for (const auto& d : dirs) {
    if (std::filesystem::exists(d / name)) return (d / name).string();
  }
  return "";
}

int transplant(const SynthFlags& f) {
  auto r = write_transplanted_model({.target = f.arch, .from = f.from, .seed = f.seed}, f.out);
  if (!r) {
    std::fprintf(stderr, "error: %s\n", r.error().message().c_str());
    return 1;
  }
  std::printf("%s: %s (%s architecture) from %s; %zu tensors, %zu added\n", f.out.c_str(), f.arch.c_str(),
              r->arch.c_str(), f.from.c_str(), r->n_tensors, r->n_added);
  return 0;
}

int synth(const SynthFlags& f) {
  if (f.shape.empty() == f.arch.empty()) {
    std::fprintf(stderr, "error: give either --shape (random weights) or --arch with --from (a transplant)\n");
    return 1;
  }
  if (!f.arch.empty()) {
    if (f.from.empty()) {
      std::fprintf(stderr,
                   "error: --arch needs --from REAL.gguf (SmolLM2 for the Llama-block archs, Gemma 3 for gemma2)\n");
      return 1;
    }
    return transplant(f);
  }
  auto shape = find_synth_shape(f.shape);
  if (!shape) {
    std::fprintf(stderr, "error: --shape: %s\n", shape.error().message().c_str());
    return 1;
  }
  SynthOptions o;
  o.shape = *shape;
  o.recipe = f.type;
  o.seed = f.seed;
  o.progress = !f.quiet;
  o.tokenizer_from = f.tokenizer_from.empty() ? default_tokenizer() : f.tokenizer_from;
  if (o.tokenizer_from.empty()) {
    std::fprintf(stderr,
                 "error: no tokenizer: models/SmolLM2-135M-Instruct.Q4_1.gguf is absent "
                 "(scripts/fetch-models.sh fetches it); give --tokenizer-from GGUF\n");
    return 1;
  }
  auto r = write_synthetic_model(o, f.out);
  if (!r) {
    print_error(r.error());
    return 1;
  }
  std::map<std::string, int> counts;
  int n_fallback = 0;
  for (const TensorPlan& p : r->plan) {
    ++counts[std::string(type_traits(p.type).name)];
    if (p.fallback()) {
      if (n_fallback < 3) std::fprintf(stderr, "note: %s: %s\n", p.name.c_str(), p.reason.c_str());
      ++n_fallback;
    }
  }
  if (n_fallback > 3) std::fprintf(stderr, "note: ... %d tensors fell back in all\n", n_fallback);
  std::string mix;
  for (const auto& [t, n] : counts) mix += (mix.empty() ? "" : ", ") + std::to_string(n) + " " + t;
  std::printf("%s: %s-shaped (%s dims), %s, %.1f M params, vocab %lld from %s, %s; tensors: %s\n", f.out.c_str(),
              shape->name.c_str(), shape->reference.c_str(), f.type.c_str(), static_cast<double>(r->n_params) / 1e6,
              static_cast<long long>(r->n_vocab), o.tokenizer_from.c_str(),
              human_bytes(static_cast<double>(r->file_bytes)).c_str(), mix.c_str());
  return 0;
}

}  // namespace

void add_synth_command(CLI::App& root) {
  auto f = std::make_shared<SynthFlags>();
  CLI::App* app = root.add_subcommand(
      "synth",
      "write a random-weight GGUF of a real model's shape for benchmarks (--shape), or transplant a real "
      "model into another architecture (--arch --from)");
  std::string shapes;
  for (const SynthShape& s : synth_shapes())
    shapes += (shapes.empty() ? "" : " | ") + s.name + " (" + s.reference + ")";
  app->add_option("--shape", f->shape, shapes);
  std::string targets;
  for (const std::string& t : transplant_targets()) targets += (targets.empty() ? "" : " | ") + t;
  app->add_option("--arch", f->arch, "transplant target: " + targets);
  app->add_option("--from", f->from, "the real GGUF whose weights --arch transplants (SmolLM2; Gemma 3 for gemma2)")
      ->check(CLI::ExistingFile);
  app->add_option("--type", f->type,
                  "quantization recipe: Q4_K_M Q4_K_S Q5_K_M Q5_K_S Q3_K_M Q3_K_S Q2_K Q6_K "
                  "Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 F16")
      ->capture_default_str();
  app->add_option("--tokenizer-from", f->tokenizer_from,
                  "GGUF whose tokenizer is copied (sets the vocabulary size; default: "
                  "models/SmolLM2-135M-Instruct.Q4_1.gguf)")
      ->check(CLI::ExistingFile);
  app->add_option("--seed", f->seed, "random seed (same seed, same bytes)")->capture_default_str();
  app->add_option("-o,--output", f->out, "output GGUF (written atomically)")->required();
  app->add_flag("-q,--quiet", f->quiet, "no progress line");
  app->callback([f] {
    const int rc = synth(*f);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace pocketlm::cli
