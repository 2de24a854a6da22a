// pocketlm plan: memory, speed and energy of a model (+ recipe, context, KV types, draft) on a device.
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "commands.h"
#include "formats/kv_types.h"
#include "plan/device_plan.h"
#include "plan/device_profile.h"
#include "plan/plan_check.h"
#include "plan/plan_model.h"

namespace pocketlm::cli {
namespace {

struct PlanFlags {
  std::string model, shape, recipe, rules, draft, device = "all", devices_file, output = "md";
  std::string cache_type_k = "f16", cache_type_v;
  int64_t n_ctx = 0;
  int threads = 0;
  bool check = false;
  int check_reps = 3;
};

Expected<PlanModel> load_plan_model(const std::string& model, const std::string& shape, const PlanRecipe& r) {
  if (!shape.empty()) return plan_model_from_shape(shape, r);
  return plan_model_from_gguf(model, r);
}

int fail(const std::string& msg) {
  std::fprintf(stderr, "error: %s\n", msg.c_str());
  return 1;
}

int plan(const PlanFlags& f) {
  if (f.model.empty() == f.shape.empty()) return fail("give -m MODEL.gguf or --shape SPEC (one of them)");
  const PlanRecipe recipe{f.recipe, f.rules};
  auto model = load_plan_model(f.model, f.shape, recipe);
  if (!model) return fail(model.error().message());
  std::unique_ptr<PlanModel> draft;
  if (!f.draft.empty()) {
    auto d = plan_model_from_gguf(f.draft);
    if (!d) return fail("--draft: " + d.error().message());
    draft = std::make_unique<PlanModel>(std::move(*d));
  }
  auto tk = parse_kv_type(f.cache_type_k);
  if (!tk) return fail("-ctk: " + tk.error().message());
  auto tv = parse_kv_type(f.cache_type_v.empty() ? f.cache_type_k : f.cache_type_v);
  if (!tv) return fail("-ctv: " + tv.error().message());
  if (f.n_ctx < 0) return fail("-c must be positive");
  if (f.check) {
    if (f.device != "this")
      return fail("--check benchmarks the model on this machine: give --device this (not '" + f.device + "')");
    if (f.model.empty()) return fail("--check needs a model file (-m): a --shape has no weights to run");
    if (!f.recipe.empty() || !f.rules.empty())
      return fail(
          "--check runs the file as it is on disk: drop --recipe/--rules, or quantize first and check the result");
  }

  std::vector<DeviceProfile> user;
  if (!f.devices_file.empty()) {
    auto u = read_device_profiles(f.devices_file);
    if (!u) return fail(u.error().message());
    user = std::move(*u);
  }
  std::vector<DeviceProfile> devices;
  if (f.device == "all") {
    devices = builtin_device_profiles();
    devices.insert(devices.end(), user.begin(), user.end());
  } else {
    auto d = find_device_profile(f.device, user, f.threads);
    if (!d) return fail(d.error().message());
    devices.push_back(std::move(*d));
  }

  MemoryOptions o;
  o.n_ctx = f.n_ctx;
  o.type_k = *tk;
  o.type_v = *tv;
  o.draft = draft.get();
  std::vector<DevicePlan> plans;
  for (const DeviceProfile& d : devices) {
    o.n_threads = f.threads;
    auto p = plan_for_device(*model, o, d);
    if (!p) return fail(p.error().message());
    plans.push_back(std::move(*p));
  }
  std::optional<PlanCheck> check;
  if (f.check) {
    std::fprintf(stderr, "check: benchmarking %s (pp%lld, tg%lld, %d repetitions)...\n", f.model.c_str(),
                 static_cast<long long>(kPlanPrefillTokens), static_cast<long long>(kPlanDecodeTokens), f.check_reps);
    PlanCheckOptions co;
    co.n_threads = f.threads;
    co.repetitions = f.check_reps;
    auto c = check_plan_here(f.model, plans.front(), co);
    if (!c) return fail(c.error().message());
    check = *c;
  }
  std::string out;
  if (f.output == "json") {
    auto j = plan_json_value(*model, plans);
    if (check) j["devices"][0]["check"] = plan_check_json(*check);
    out = j.dump(2) + "\n";
  } else if (plans.size() == 1)
    out = format_plan_breakdown(*model, plans.front()) + (check ? format_plan_check(*check) : "");
  else
    out = format_plan_table(*model, plans);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace

void add_plan_command(CLI::App& root) {
  auto f = std::make_shared<PlanFlags>();
  CLI::App* app =
      root.add_subcommand("plan", "will it fit, and how fast: memory, speed and energy of a model on a device");
  app->add_option("-m,--model", f->model, "GGUF model file")->check(CLI::ExistingFile);
  app->add_option(
      "--shape", f->shape,
      "a synthetic shape instead of a file: llama-1b | llama-3b | llama-7b | smollm2-135m[,key=value...] or "
      "layers=24,heads=16,head_dim=64,params=3B[,kv_heads,embd,ff,vocab,ctx,tied]");
  app->add_option("--recipe", f->recipe,
                  "plan the model quantized with this recipe or type (Q4_K_M, Q8_0, q4_K, ...); nothing is written");
  app->add_option("--rules", f->rules, "quantize rules (YAML/JSON, as quantize --rules) applied on top")
      ->check(CLI::ExistingFile);
  app->add_option("-c,--ctx-size", f->n_ctx, "context size in tokens (default: min(trained context, 4096))");
  app->add_option("--cache-type-k", f->cache_type_k, "KV cache type for K (-ctk): f16 | f32 | q8 | q4")
      ->capture_default_str();
  app->add_option("--cache-type-v", f->cache_type_v, "KV cache type for V (-ctv) (default: -ctk's)");
  app->add_option("--draft", f->draft, "a draft model for speculative decoding (its memory is added)")
      ->check(CLI::ExistingFile);
  app->add_option("--device", f->device, "a device profile name, this (measured), or all (a table)")
      ->capture_default_str();
  app->add_option("--devices", f->devices_file, "more device profiles (YAML or JSON)")->check(CLI::ExistingFile);
  app->add_option("-t,--threads", f->threads, "threads (default: the device's cores)")->check(CLI::Range(1, 1024));
  app->add_flag("--check", f->check,
                "with --device this: benchmark the model here (pp512, tg128) and set the measurement beside the "
                "prediction");
  app->add_option("--check-reps", f->check_reps, "repetitions of each --check test (medians)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app->add_option("-o,--output", f->output, "md | json")->capture_default_str()->check(CLI::IsMember({"md", "json"}));
  app->callback([f] {
    const int rc = plan(*f);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace pocketlm::cli
