#pragma once
// One unit of `pocketlm tune`'s work: a candidate at a stage. The job writes the candidate's file (once,
// shared by the candidates that differ only in KV type), scores the stage's task examples it has not scored
// yet (eval's resumable results file), measures its KL divergence against the base once, and records that the
// stage is done. Everything lives in the tune directory, so a job is idempotent (run it twice: the second
// finds the work done) and can run in this process, in a child process (--workers) or on a Ray node that sees
// the same directory (--ray): `pocketlm tune job DIR CANDIDATE STAGE`.
//
// The directory (docs/tune.md):
//   tune.json            the configuration: base, tasks, limit, context, candidates that fit, stage sizes
//   results.jsonl        one line per candidate and stage (the driver's, tune_search.h)
//   models/FILE.gguf     a candidate's quantized file      evals/ID.jsonl     its task results (eval's format)
//   evals/ID.kld.json    its KL divergence vs the base     jobs/ID.sN.json    the job's record of stage N
//   base.logits          the base model's log-probs on --kld-text    calib.stats   calibration statistics
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "eval/task_set.h"
#include "tune/tune_space.h"
#include "util/error.h"

namespace pocketlm {

struct TuneConfig {
  std::string base;                // the model every candidate is made from
  std::vector<std::string> tasks;  // task files (JSONL)
  int64_t limit = 0;               // first N good examples of each file (0: all)
  int64_t n_ctx = 2048;            // the context the budget is checked at (and examples run at)
  int max_tokens = 0;              // eval's --max-tokens (0: per task)
  std::string kld_text;            // "" : no KL divergence
  int64_t kld_ctx = 512, kld_chunks = 4;
  std::string calib;  // calibration text for the methods that need one
  int64_t calib_tokens = 8192, calib_ctx = 512;
  std::vector<TuneCandidate> candidates;  // those that fit, in space order
  std::vector<int64_t> stage_examples;    // examples scored by the end of each stage (a growing prefix)
  std::vector<TuneDraft> drafts;          // the draft choices measured on the finalists
  int64_t speed_examples = 0;             // examples each finalist generates with each draft (0: none measured)
};

// JSON with stable keys; parse errors name the file and the key.
std::string tune_config_json(const TuneConfig& c);
Expected<TuneConfig> parse_tune_config(const std::string& json, const std::string& name);
Expected<TuneConfig> read_tune_config(const std::string& dir);
// The first field in which two configurations differ ("" when they agree): a restart must be the same tune (the
// draft choices and --speed-examples may change: no job depends on them).
std::string tune_config_difference(const TuneConfig& a, const TuneConfig& b);

// The tune's examples in the order stages take them: the files' examples interleaved task by task (one of each
// task label in turn), so every prefix covers the tasks evenly. `problems` receives skipped lines.
Expected<std::vector<TaskExample>> tune_examples(const TuneConfig& c, std::vector<std::string>* problems = nullptr);

// Paths inside the tune directory.
std::string tune_model_path(const std::string& dir, const TuneCandidate& c);
std::string tune_eval_path(const std::string& dir, const TuneCandidate& c);
std::string tune_kld_path(const std::string& dir, const TuneCandidate& c);
std::string tune_job_path(const std::string& dir, const TuneCandidate& c, int stage);
std::string tune_base_logits_path(const std::string& dir);
std::string tune_calib_path(const std::string& dir);
std::string tune_pruned_path(const std::string& dir, const TunePrune& p);  // the pruned base, before quantizing
std::string tune_speed_path(const std::string& dir, const TuneCandidate& c);

struct TuneJobRecord {
  std::string candidate;
  int stage = 0;
  int64_t examples = 0;      // scored in all, by the end of this stage
  int64_t new_examples = 0;  // scored by this job (0 when a rerun found them done)
  uint64_t file_bytes = 0;
  double bits_per_weight = 0;
  std::optional<double> kld, ppl;
  double quantize_seconds = 0, eval_seconds = 0, kld_seconds = 0;
};
std::string tune_job_record_json(const TuneJobRecord& r);
Expected<TuneJobRecord> read_tune_job_record(const std::string& path);

struct TuneJobEvents {
  std::function<void(const std::string&)> note;  // a log line
  std::function<void()> example_done;            // after each newly scored example
};

// Runs (or finds done) candidate `id` at `stage`. n_threads 0: physical cores.
Expected<TuneJobRecord> run_tune_job(const std::string& dir, const TuneConfig& cfg, const std::string& id, int stage,
                                     int n_threads, const TuneJobEvents& ev = {});

// A finalist's speed with each draft choice: greedy generation of the first cfg.speed_examples examples, plainly
// and with each draft (decoding is lossless up to rounding: the outputs are compared, `differing`). The
// acceptance counts and the draft's cost per token are deterministic; the seconds are timing.
struct TuneDraftSpeed {
  std::string draft;  // TuneDraft::name
  int64_t examples = 0, tokens = 0;
  double seconds = 0;  // generation with the prompt, summed (timing)
  int64_t rounds = 0, drafted = 0, accepted = 0;
  double draft_cost = 0;  // the draft's cost per token in target decode steps (0 for lookup and none)
  bool same_output = true;
  int64_t differing = 0;  // examples whose greedy output differs from plain decoding's (see docs/tune.md)
  std::string error;      // the draft could not be made (e.g. a self-draft no smaller than the candidate)
  double tps() const { return seconds > 0 ? static_cast<double>(tokens) / seconds : 0; }
  double acceptance() const { return drafted > 0 ? static_cast<double>(accepted) / static_cast<double>(drafted) : 0; }
  // The speedup over plain decoding that draft_length.h's formula predicts from the measured acceptance and
  // mean draft length (1 for none; deterministic, unlike tps()).
  double predicted_speedup() const;
};
// Runs (or reads from DIR/speed/ID.json, when it holds the same drafts) the measurement for candidate `id`.
// drafts: the choices to measure ("none" is always measured first, as the reference output).
Expected<std::vector<TuneDraftSpeed>> run_tune_speed(const std::string& dir, const TuneConfig& cfg,
                                                     const std::string& id, const std::vector<TuneDraft>& drafts,
                                                     int n_threads, const TuneJobEvents& ev = {});

// The base pruned by `p` into tune_pruned_path (once: a later call finds it), from calibration scores on cfg.calib
// when the level needs them.
Status prune_for_tune(const std::string& dir, const TuneConfig& cfg, const TunePrune& p, int n_threads,
                      const TuneJobEvents& ev = {});

// The base model's log-probs on cfg.kld_text (when set and not yet saved) and the calibration statistics (when
// a candidate's method needs them and they are not cached): the work every job shares, done once before the
// first stage so parallel jobs do not repeat it.
Status prepare_tune_dir(const std::string& dir, const TuneConfig& cfg, int n_threads, const TuneJobEvents& ev = {});

}  // namespace pocketlm
