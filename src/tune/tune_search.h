#pragma once
// `pocketlm tune`'s driver: the space's candidates through the planner's filter, then successive halving over
// the task examples (every candidate on the first few, the better half on more, ...), dropping a candidate only
// when it is worse than the stage's leader with confidence (the paired-bootstrap interval of the difference lies
// below zero), then the pick: the best-scoring candidate at the last stage (ties go to the smaller file). The
// jobs of a stage run through an executor (this process, child processes, Ray); their results are files in the
// tune directory, so a killed tune restarted with the same flags redoes no finished job (tune_job.h).
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "eval/compare.h"
#include "tune/tune_fit.h"
#include "tune/tune_job.h"
#include "tune/tune_space.h"
#include "util/error.h"

namespace pocketlm {

// A stage's decisions from x[v][i], the primary score of candidate v on example i (the same examples for all).
struct StageDecision {
  BootstrapResult boot;          // means[v] and diff[v][leader]
  size_t leader = 0;             // the highest mean (the first on ties)
  std::vector<bool> keep;        // on to the next stage
  std::vector<std::string> why;  // per candidate: "leader", "top half", "not worse with confidence", "worse: ..."
};
// The top half (rounded up) goes on; of the rest, those whose difference to the leader is not below zero with
// confidence go on too. At the last stage nobody is dropped.
StageDecision decide_stage(const std::vector<std::vector<double>>& x, bool last_stage, int resamples, uint64_t seed);

// The pick among the final stage's candidates: the highest mean; means within `tie` of it are ties, which go to
// the smallest file (then the first).
size_t pick_candidate(const std::vector<double>& means, const std::vector<uint64_t>& file_bytes, double tie = 1e-9);

// Examples per stage: the last stage scores all `n_examples`; each earlier one half of the next, while that
// is at least `min_examples` and while there are candidates to halve (at most 1 + ceil(log2(candidates)) stages).
std::vector<int64_t> stage_sizes(int64_t n_examples, size_t n_candidates, int64_t min_examples);

struct TuneRequest {
  std::string dir;
  TuneSpace space;
  TuneConfig config;  // base, tasks, limit, n_ctx, kld, calib (candidates and stages are filled in)
  FitOptions fit;
  int n_threads = 0;               // per job
  int64_t min_stage_examples = 0;  // 0: twice the number of task labels, at least 10 (a bootstrap over fewer
                                   // examples is too sure of itself)
  int resamples = kDefaultBootstrapResamples;
  uint64_t seed = kDefaultBootstrapSeed;
  std::string command;  // the command line, for the report's reproduce section
  // Draft choices (space.drafts) are measured on the finalists: greedy generation of this many examples with
  // each draft that fits the budget (0: none measured, every finalist runs without a draft).
  int64_t speed_examples = 2;
  // A finalist whose predicted decode speed with its best draft is below this cannot be the pick (needs a
  // device profile: --device, or the measured machine).
  std::optional<double> min_tps;
};

// Runs the jobs of `ids` at `stage` (all of them, or fails); `examples_done(n)` as examples are scored.
using TuneExecutor = std::function<Status(const std::vector<std::string>& ids, int stage,
                                          const std::function<void(int64_t)>& examples_done)>;
struct TuneEvents {
  std::function<void(const std::string&)> note;
  // Before a stage's jobs: stage (0-based), stages, candidates left, examples to score in all this stage.
  std::function<void(int stage, int n_stages, size_t candidates, int64_t examples)> stage_start;
  std::function<void(int64_t)> examples_done;
  std::function<void(int stage)> stage_end;
};

struct TuneCandidateResult {
  CandidateFit fit;
  int last_stage = -1;           // -1: not evaluated (did not fit)
  int64_t examples = 0;          // at its last stage
  Interval score, score_stage0;  // mean primary metric (0-100) with the bootstrap interval
  Interval vs_leader;            // at its last stage
  std::string decision;          // "pick", "final", "dropped at stage N: ...", "does not fit"
  uint64_t file_bytes = 0;
  double bits_per_weight = 0;
  std::optional<double> kld, ppl;
  bool on_front = false;                                   // Pareto-optimal in (file bytes, stage-0 score)
  std::vector<std::pair<std::string, double>> task_means;  // at its last stage
  // Finalists: each draft choice's memory (the planner), its measurement (acceptance: deterministic; seconds:
  // timing), and the best: the highest predicted speedup among the drafts that fit, "none" when no draft
  // predicts one above 1.
  std::vector<DraftFit> drafts;
  std::vector<TuneDraftSpeed> speeds;
  TuneDraft best_draft = make_tune_draft(TuneDraft::Kind::None);
  double best_speedup = 1.0;
  // The predicted decode speed with the best draft (the device's, or the measured machine's): for --min-tps.
  std::optional<double> best_decode_tps;
};
struct TaskWinLoss {
  std::string other, task;
  WinLoss wl;  // the pick against `other` per example on the task's primary metric
  int64_t n = 0;
  double pick_mean = 0, other_mean = 0;
};
struct TuneOutcome {
  std::string dir, base, command, calib;
  uint64_t budget_bytes = 0;
  std::string device;
  int64_t n_ctx = 0;
  std::vector<int64_t> stage_examples;
  std::vector<TuneCandidateResult> candidates;  // every candidate of the space, evaluated ones first
  size_t pick = 0;
  std::string pick_why;
  std::vector<TaskWinLoss> wins;                         // the pick against every other evaluated candidate
  Disagreement kld_vs_task_pairs, kld_vs_task_examples;  // stage-0 scores against KLD
  int64_t jobs_run = 0, jobs_skipped = 0;                // this run; skipped: found done (a restart)
  std::vector<std::string> notes;
  std::string speed_device;  // the measured machine's description when no device is given ("" with --device)
  std::optional<double> min_tps;
  std::string pick_command;  // how to run the pick, with its KV type and best draft
};

// The whole tune. Writes DIR/tune.json, results.jsonl, pareto.json, pick.gguf and report.html (tune_report.h).
Expected<TuneOutcome> run_tune(const TuneRequest& req, const TuneExecutor& exec, const TuneEvents& ev = {});

// The executor that runs every job in this process, one after the other.
// (Both read the configuration from DIR/tune.json, which run_tune writes before the first stage.)
TuneExecutor in_process_executor(const std::string& dir, int n_threads, const TuneJobEvents& ev = {});

// The executor that runs up to `workers` jobs at once as child processes: `argv_prefix` + [ID, STAGE] (e.g.
// {"/path/pocketlm", "tune", "job", DIR, "-t", "1"}). A job that fails is an error naming it.
TuneExecutor process_executor(std::vector<std::string> argv_prefix, int workers, const std::string& dir);

// pareto.json's text: nothing in it depends on timing.
std::string pareto_json(const TuneOutcome& o);
// speed.json's text: what does (measured tokens/s, speeds predicted for the measured machine).
std::string speed_json(const TuneOutcome& o);

}  // namespace pocketlm
