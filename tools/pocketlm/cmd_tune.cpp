// pocketlm tune: pick the file to ship by the user's own eval under a device's memory budget (src/tune/,
// docs/tune.md). `pocketlm tune job DIR CANDIDATE STAGE` is one unit of its work, run by --workers and --ray.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>

#include "commands.h"
#include "common.h"
#include "plan/device_profile.h"
#include "tune/tune_search.h"
#include "util/progress.h"
#include "util/thread_pool.h"

extern char** environ;

namespace pocketlm::cli {
namespace {
namespace fs = std::filesystem;

struct TuneFlags {
  std::string model, device, devices, budget, calib, space, kld_text, output, ray;
  std::vector<std::string> tasks;
  int64_t n_ctx = 2048, limit = 0, kld_chunks = 4, kld_ctx = 128, min_stage = 0, calib_tokens = 8192, calib_ctx = 512;
  int threads = 0, workers = 1, max_tokens = 0, resamples = kDefaultBootstrapResamples;
  int64_t speed_examples = 2;
  double min_tps = 0;
  uint64_t seed = kDefaultBootstrapSeed;
  std::vector<std::string> raw_args;
};

struct JobFlags {
  std::string dir, candidate;
  int stage = 0, threads = 0;
};

std::string self_exe() {
  std::error_code ec;
  const fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("pocketlm") : p.string();
}

// The Ray driver script: $POCKETLM_TUNE_RAY, else python/pocketlm_tune_ray.py beside the build or install tree.
std::string ray_script() {
  if (const char* e = std::getenv("POCKETLM_TUNE_RAY")) return e;
  const fs::path exe = fs::path(self_exe()).parent_path();
  for (const fs::path& p : {exe / "../../python/pocketlm_tune_ray.py", exe / "../python/pocketlm_tune_ray.py",
                            exe / "../share/pocketlm/pocketlm_tune_ray.py"}) {
    std::error_code ec;
    if (fs::exists(p, ec)) return fs::weakly_canonical(p, ec).string();
  }
  return "";
}

int run_and_wait(const std::vector<std::string>& argv) {
  std::vector<std::string> a = argv;
  std::vector<char*> c;
  for (auto& s : a) c.push_back(s.data());
  c.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawnp(&pid, c[0], nullptr, nullptr, c.data(), environ) != 0) return -1;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int tune(const TuneFlags& f) {
  if (f.tasks.empty()) return std::fprintf(stderr, "error: tune needs --tasks FILE.jsonl[,FILE2...]\n"), 1;
  if (f.device.empty() && f.budget.empty())
    return std::fprintf(stderr, "error: tune needs a memory budget: --device NAME or --budget BYTES (e.g. 160M)\n"), 1;
  TuneRequest req;
  req.dir = f.output;
  req.n_threads = f.threads;
  req.min_stage_examples = f.min_stage;
  req.resamples = f.resamples;
  req.seed = f.seed;
  for (const auto& a : f.raw_args) req.command += (req.command.empty() ? "" : " ") + a;
  if (!f.space.empty()) {
    auto s = read_tune_space(f.space);
    if (!s) return print_error(s.error()), 1;
    req.space = std::move(*s);
  } else {
    req.space = default_tune_space();
  }
  if (!f.budget.empty()) {
    auto b = parse_byte_size(f.budget, "--budget");
    if (!b) return print_error(b.error()), 1;
    req.fit.budget_bytes = *b;
  }
  if (!f.device.empty()) {
    std::vector<DeviceProfile> user;
    if (!f.devices.empty()) {
      auto u = read_device_profiles(f.devices);
      if (!u) return print_error(u.error()), 1;
      user = std::move(*u);
    }
    auto d = find_device_profile(f.device, user, f.threads > 0 ? f.threads : physical_cores());
    if (!d) return print_error(d.error()), 1;
    req.fit.device = *d;
  }
  req.fit.n_threads = f.threads > 0 ? f.threads : physical_cores();
  if (!req.fit.device) {
    // No device: predicted speeds for this machine, measured (they go to speed.json, not pareto.json).
    auto d = measure_this_device(f.threads > 0 ? f.threads : physical_cores());
    if (d)
      req.fit.this_device = *d;
    else
      std::fprintf(stderr, "note: no predicted speeds: %s\n", d.error().message().c_str());
  }
  req.speed_examples = f.speed_examples;
  if (f.min_tps > 0) {
    if (!req.fit.device && !req.fit.this_device)
      return std::fprintf(stderr, "error: --min-tps needs predicted speeds: give --device NAME\n"), 1;
    req.min_tps = f.min_tps;
  }
  // Absolute paths: jobs may run elsewhere (a Ray worker's directory is not ours).
  auto abs = [](const std::string& p) { return p.empty() ? p : fs::absolute(p).lexically_normal().string(); };
  TuneConfig& c = req.config;
  c.base = abs(f.model);
  for (const auto& t : f.tasks) c.tasks.push_back(abs(t));
  c.limit = f.limit;
  c.n_ctx = f.n_ctx;
  c.max_tokens = f.max_tokens;
  c.kld_text = abs(f.kld_text);
  c.kld_chunks = f.kld_chunks;
  c.kld_ctx = f.kld_ctx;
  c.calib = abs(f.calib);
  c.calib_tokens = f.calib_tokens;
  c.calib_ctx = f.calib_ctx;

  TuneJobEvents jev;
  jev.note = [](const std::string& s) { std::fprintf(stderr, "%s\n", s.c_str()); };
  TuneExecutor exec;
  std::string how;
  if (!f.ray.empty()) {
    const std::string script = ray_script();
    if (script.empty())
      return std::fprintf(stderr,
                          "error: --ray: python/pocketlm_tune_ray.py not found (set POCKETLM_TUNE_RAY to its path)\n"),
             1;
    const std::string dir = fs::absolute(f.output).string();
    exec = [script, dir, &f](const std::vector<std::string>& ids, int stage,
                             const std::function<void(int64_t)>& done) -> Status {
      std::vector<std::string> argv = {"python3",   script,
                                       "--address", f.ray,
                                       "--cli",     self_exe(),
                                       "--dir",     dir,
                                       "--stage",   std::to_string(stage),
                                       "--threads", std::to_string(f.threads > 0 ? f.threads : 1)};
      for (const auto& id : ids) argv.push_back(id);
      const int rc = run_and_wait(argv);
      if (rc != 0)
        return Error("--ray: the Ray driver (" + script + ") failed with status " + std::to_string(rc) + " at stage " +
                     std::to_string(stage));
      for (const auto& id : ids)
        if (auto r = read_tune_job_record(dir + "/jobs/" + id + ".s" + std::to_string(stage) + ".json"); r && done)
          done(r->new_examples);
      return Status::Ok();
    };
    how = "Ray tasks (" + f.ray + ")";
  } else if (f.workers > 1) {
    const int per = f.threads > 0 ? f.threads : std::max(1, physical_cores() / f.workers);
    exec = process_executor({self_exe(), "tune", "job", fs::absolute(f.output).string(), "-t", std::to_string(per)},
                            f.workers, fs::absolute(f.output).string());
    how = std::to_string(f.workers) + " worker processes, " + std::to_string(per) + " thread(s) each";
  } else {
    exec = in_process_executor(f.output, f.threads, jev);
    how = "this process";
  }
  std::unique_ptr<Progress> progress;
  TuneEvents ev;
  ev.note = jev.note;
  ev.stage_start = [&](int s, int n, size_t cands, int64_t examples) {
    std::fprintf(stderr, "tune: stage %d/%d: %zu candidates left, %lld examples to score (%s)\n", s + 1, n, cands,
                 static_cast<long long>(examples), how.c_str());
    progress = std::make_unique<Progress>(
        "tune stage " + std::to_string(s + 1) + "/" + std::to_string(n) + " (" + std::to_string(cands) + " candidates)",
        std::max<int64_t>(1, examples), "examples");
    if (examples == 0) progress->set(1);
  };
  ev.examples_done = [&](int64_t n) {
    if (progress) progress->add(n);
  };
  ev.stage_end = [&](int) {
    if (progress) progress->finish();
    progress.reset();
  };
  auto out = run_tune(req, exec, ev);
  if (!out) return print_error(out.error()), 1;
  const auto& p = out->candidates[out->pick];
  std::printf(
      "pick: %s (%s, %.2f bits/weight, score %.2f [%.2f, %.2f] over %lld examples, predicted peak RSS %s at -c %lld "
      "with KV %s)\n",
      p.fit.candidate.id.c_str(), human_bytes(static_cast<double>(p.file_bytes)).c_str(), p.bits_per_weight,
      p.score.mean, p.score.lo, p.score.hi, static_cast<long long>(p.examples),
      human_bytes(static_cast<double>(p.fit.peak_rss_bytes)).c_str(), static_cast<long long>(out->n_ctx),
      p.fit.candidate.kv_type.c_str());
  std::printf("jobs: %lld run, %lld found done\n", static_cast<long long>(out->jobs_run),
              static_cast<long long>(out->jobs_skipped));
  std::printf("run it: %s\n", out->pick_command.c_str());
  std::printf("wrote %s/pick.gguf, results.jsonl, pareto.json, speed.json, report.html\n", f.output.c_str());
  return 0;
}

int tune_job(const JobFlags& f) {
  auto cfg = read_tune_config(f.dir);
  if (!cfg) return print_error(cfg.error()), 1;
  TuneJobEvents ev;
  ev.note = [](const std::string& s) { std::fprintf(stderr, "%s\n", s.c_str()); };
  auto r = run_tune_job(f.dir, *cfg, f.candidate, f.stage, f.threads, ev);
  if (!r) return print_error(r.error()), 1;
  std::printf("%s", tune_job_record_json(*r).c_str());
  return 0;
}

}  // namespace

void add_tune_command(CLI::App& root) {
  auto f = std::make_shared<TuneFlags>();
  CLI::App* app = root.add_subcommand(
      "tune", "search quantization recipes for the best task score that fits a device's memory budget (docs/tune.md)");
  app->add_option("-m,--model", f->model, "the base GGUF (e.g. F32 or F16) every candidate is quantized from")
      ->check(CLI::ExistingFile);
  app->add_option("--tasks", f->tasks, "task files (JSONL), comma-separated")->delimiter(',')->check(CLI::ExistingFile);
  app->add_option("--device", f->device,
                  "device profile whose budget (RAM x app share) candidates must fit (pocketlm plan --device)");
  app->add_option("--devices", f->devices, "user device profiles (YAML/JSON)")->check(CLI::ExistingFile);
  app->add_option("--budget", f->budget, "memory budget: bytes with K/M/G (e.g. 160M); overrides the device's");
  app->add_option("-c,--ctx-size", f->n_ctx, "context the budget is checked at (and examples run at)")
      ->capture_default_str()
      ->check(CLI::Range(16, 1 << 20));
  app->add_option("--calib", f->calib, "calibration text for imatrix/awq/gptq (without it those methods are left out)")
      ->check(CLI::ExistingFile);
  app->add_option("--calib-tokens", f->calib_tokens, "calibration tokens")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{16}, int64_t{1} << 30));
  app->add_option("--calib-ctx", f->calib_ctx, "tokens per calibration chunk")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{16}, int64_t{1} << 20));
  app->add_option("--space", f->space, "search space (YAML; default: docs/tune.md)")->check(CLI::ExistingFile);
  app->add_option("--limit", f->limit, "first N examples of each task file (0 = all)")->check(CLI::NonNegativeNumber);
  app->add_option("--kld-text", f->kld_text, "text for each candidate's KL divergence from the base")
      ->check(CLI::ExistingFile);
  app->add_option("--kld-chunks", f->kld_chunks, "chunks of --kld-ctx tokens for the KLD")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app->add_option("--kld-ctx", f->kld_ctx, "tokens per KLD chunk")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{16}, int64_t{1} << 20));
  app->add_option("-o,--output", f->output, "tune directory (resumed when it holds this tune); required");
  app->add_option("-t,--threads", f->threads, "threads per job (default: physical cores / workers)")
      ->check(CLI::Range(1, 1024));
  app->add_option("--workers", f->workers, "candidate evaluations at once, as child processes")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app->add_option("--ray", f->ray,
                  "run candidate evaluations as Ray tasks: a cluster address or 'auto' (python/pocketlm_tune_ray.py)");
  app->add_option("--max-tokens", f->max_tokens, "maximum generated tokens per example (default: per task)")
      ->check(CLI::Range(1, 1 << 16));
  app->add_option("--min-stage-examples", f->min_stage,
                  "examples in the first stage at least (default: 2 per task, at least 10)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  app->add_option("--resamples", f->resamples, "bootstrap resamples")
      ->capture_default_str()
      ->check(CLI::Range(100, 1000000));
  app->add_option("--seed", f->seed, "bootstrap seed")->capture_default_str();
  app->add_option("--speed-examples", f->speed_examples,
                  "examples each finalist generates with each draft choice of the space (0: no draft measured)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  app->add_option("--min-tps", f->min_tps,
                  "the pick must reach this predicted decode speed (tokens/s, with its best draft) on the device "
                  "(or this machine, measured)")
      ->check(CLI::PositiveNumber);
  app->footer(
      "example:\n  pocketlm tune -m model-f32.gguf --tasks summarize.dev.jsonl,commit-message.dev.jsonl --limit 40 \\\n"
      "      --budget 160M -c 2048 --kld-text wiki.test.raw --calib wiki.train.raw -o tune-out -t 2");

  auto jf = std::make_shared<JobFlags>();
  CLI::App* job =
      app->add_subcommand("job", "one candidate at one stage of the tune in DIR (what --workers and --ray run)");
  job->add_option("dir", jf->dir, "tune directory")->required()->check(CLI::ExistingDirectory);
  job->add_option("candidate", jf->candidate, "candidate id")->required();
  job->add_option("stage", jf->stage, "stage (0-based)")->required()->check(CLI::NonNegativeNumber);
  job->add_option("-t,--threads", jf->threads, "threads")->check(CLI::Range(1, 1024));
  job->callback([jf] {
    const int rc = tune_job(*jf);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
  app->callback([f, app] {
    if (app->got_subcommand("job")) return;
    if (f->model.empty() || f->output.empty()) {
      std::fprintf(stderr, "error: tune needs -m BASE.gguf and -o DIR\n");
      throw CLI::RuntimeError(1);
    }
    // The command as given (every option set, in definition order), for the report's reproduce section.
    f->raw_args = {"pocketlm tune"};
    for (const auto* o : app->get_options()) {
      if (o->count() == 0 || o->get_name() == "--help") continue;
      std::string v;
      for (const auto& r : o->results()) v += (v.empty() ? "" : ",") + r;
      f->raw_args.push_back((o->get_lnames().empty() ? "-" + o->get_snames().front() : "--" + o->get_lnames().front()) +
                            " " + v);
    }
    const int rc = tune(*f);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace pocketlm::cli
