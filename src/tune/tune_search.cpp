// The tune driver: filter, stages, decisions, outputs. Definitions in docs/tune.md.
#include "tune/tune_search.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "eval/results.h"
#include "eval/task_runner.h"
#include "quant/methods/method.h"
#include "tune/tune_report.h"
#include "util/atomic_file.h"
#include "util/byte_size.h"

extern char** environ;

namespace pocketlm {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

Status write_text_atomic(const std::string& path, const std::string& text) {
  PLM_TRY(AtomicFile f, AtomicFile::create(path));
  PLM_CHECK(f.write(text.data(), text.size()));
  return f.commit();
}

// `dst` becomes a copy of `src` atomically: a hard link (candidate files are never rewritten), else the bytes
// through an AtomicFile (fsync'd, renamed into place).
Status publish_copy(const std::string& src, const std::string& dst) {
  std::error_code ec;
  const std::string tmp = AtomicFile::temp_path_for(dst);
  fs::remove(tmp, ec);
  fs::create_hard_link(src, tmp, ec);
  if (!ec) {
    fs::rename(tmp, dst, ec);
    if (!ec) return Status::Ok();
    fs::remove(tmp, ec);
  }
  std::ifstream in(src, std::ios::binary);
  if (!in) return Error(src + ": cannot read");
  PLM_TRY(AtomicFile f, AtomicFile::create(dst));
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto n = in.gcount();
    if (n > 0) PLM_CHECK(f.write(buf.data(), static_cast<size_t>(n)));
  }
  if (in.bad()) return Error(src + ": read error");
  return f.commit();
}

json interval_json(const Interval& i) { return {{"mean", i.mean}, {"lo", i.lo}, {"hi", i.hi}}; }

// results.jsonl: the lines already there, by "candidate/stage". A torn last line (a kill while the file was
// replaced cannot happen: it is rewritten atomically) or a bad line is an error naming the line.
Expected<std::map<std::string, json>> read_results_lines(const std::string& path) {
  std::map<std::string, json> out;
  std::ifstream in(path);
  if (!in) return out;
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    try {
      json j = json::parse(line);
      const std::string key = j.at("candidate").get<std::string>() + "/" + std::to_string(j.at("stage").get<int>());
      out[key] = std::move(j);
    } catch (const json::exception& e) {
      return Error(path + ":" + std::to_string(n) + ": not a tune result line: " + e.what());
    }
  }
  return out;
}

// The primary score of each example key in a candidate's results file.
Expected<std::map<std::string, double>> primary_scores(const std::string& path) {
  PLM_TRY(ResultsContent rc, read_results(path));
  std::map<std::string, double> out;
  for (const ResultRecord& r : rc.records)
    if (!r.scores.empty()) out[r.key] = r.scores.front().second;
  return out;
}

// x[v][i] over the keys (in order) every candidate has.
std::vector<std::vector<double>> score_matrix(const std::vector<std::map<std::string, double>>& s,
                                              const std::vector<std::string>& keys, std::vector<std::string>& common) {
  common.clear();
  for (const std::string& k : keys) {
    bool all = true;
    for (const auto& m : s) all = all && m.count(k);
    if (all) common.push_back(k);
  }
  std::vector<std::vector<double>> x(s.size());
  for (size_t v = 0; v < s.size(); ++v)
    for (const std::string& k : common) x[v].push_back(s[v].at(k));
  return x;
}

std::string fmt(double v, int decimals = 2) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  return b;
}

}  // namespace

StageDecision decide_stage(const std::vector<std::vector<double>>& x, bool last_stage, int resamples, uint64_t seed) {
  StageDecision d;
  const size_t n = x.size();
  d.keep.assign(n, true);
  d.why.assign(n, "");
  if (n == 0) return d;
  d.boot = paired_bootstrap(x, resamples, seed);
  for (size_t v = 1; v < n; ++v)
    if (d.boot.means[v].mean > d.boot.means[d.leader].mean) d.leader = v;
  std::vector<size_t> order(n);
  for (size_t v = 0; v < n; ++v) order[v] = v;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return d.boot.means[a].mean > d.boot.means[b].mean; });
  const size_t top = (n + 1) / 2;
  for (size_t r = 0; r < n; ++r) {
    const size_t v = order[r];
    const Interval& diff = d.boot.diff[v][d.leader];
    if (v == d.leader)
      d.why[v] = "leader";
    else if (last_stage)
      d.why[v] = "final stage";
    else if (r < top)
      d.why[v] = "top half";
    else if (diff.hi < 0) {
      d.keep[v] = false;
      d.why[v] = "worse than the leader with confidence: difference " + fmt(diff.mean) + " [" + fmt(diff.lo) + ", " +
                 fmt(diff.hi) + "]";
    } else {
      d.why[v] = "bottom half but not worse with confidence: difference " + fmt(diff.mean) + " [" + fmt(diff.lo) +
                 ", " + fmt(diff.hi) + "]";
    }
  }
  return d;
}

size_t pick_candidate(const std::vector<double>& means, const std::vector<uint64_t>& file_bytes, double tie) {
  size_t best = 0;
  for (size_t v = 1; v < means.size(); ++v) {
    if (means[v] > means[best] + tie)
      best = v;
    else if (std::fabs(means[v] - means[best]) <= tie && file_bytes[v] < file_bytes[best])
      best = v;
  }
  return best;
}

std::vector<int64_t> stage_sizes(int64_t n_examples, size_t n_candidates, int64_t min_examples) {
  std::vector<int64_t> sizes{n_examples};
  size_t max_stages = 1;
  for (size_t c = 1; c < n_candidates; c *= 2) ++max_stages;
  while (sizes.size() < max_stages && sizes.front() / 2 >= std::max<int64_t>(1, min_examples))
    sizes.insert(sizes.begin(), sizes.front() / 2);
  return sizes;
}

TuneExecutor in_process_executor(const std::string& dir, int n_threads, const TuneJobEvents& ev) {
  return [dir, n_threads, ev](const std::vector<std::string>& ids, int stage,
                              const std::function<void(int64_t)>& examples_done) -> Status {
    PLM_TRY(TuneConfig cfg, read_tune_config(dir));
    TuneJobEvents e = ev;
    e.example_done = [&] {
      if (examples_done) examples_done(1);
    };
    for (const std::string& id : ids) {
      auto r = run_tune_job(dir, cfg, id, stage, n_threads, e);
      if (!r) return r.error().with_context("candidate " + id + ", stage " + std::to_string(stage));
    }
    return Status::Ok();
  };
}

TuneExecutor process_executor(std::vector<std::string> argv_prefix, int workers, const std::string& dir) {
  return [argv_prefix, workers, dir](const std::vector<std::string>& ids, int stage,
                                     const std::function<void(int64_t)>& examples_done) -> Status {
    std::map<pid_t, std::string> running;
    size_t next = 0;
    std::string failed;
    while (next < ids.size() || !running.empty()) {
      while (failed.empty() && next < ids.size() && static_cast<int>(running.size()) < std::max(1, workers)) {
        std::vector<std::string> argv = argv_prefix;
        argv.push_back(ids[next]);
        argv.push_back(std::to_string(stage));
        std::vector<char*> cargv;
        for (auto& a : argv) cargv.push_back(a.data());
        cargv.push_back(nullptr);
        pid_t pid = -1;
        if (posix_spawn(&pid, cargv[0], nullptr, nullptr, cargv.data(), environ) != 0)
          return Error("cannot start " + argv[0] + " for candidate " + ids[next]);
        running[pid] = ids[next++];
      }
      if (running.empty()) break;
      int status = 0;
      const pid_t pid = waitpid(-1, &status, 0);
      if (pid < 0) return Error("waiting for the tune's worker processes failed");
      auto it = running.find(pid);
      if (it == running.end()) continue;
      const std::string id = it->second;
      running.erase(it);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (failed.empty())
          failed = "candidate " + id + ", stage " + std::to_string(stage) + ": the worker process " +
                   (WIFSIGNALED(status) ? "was killed by signal " + std::to_string(WTERMSIG(status))
                                        : "exited with status " + std::to_string(WEXITSTATUS(status))) +
                   " (its error is above)";
        continue;
      }
      if (examples_done) {
        auto rec = read_tune_job_record(dir + "/jobs/" + id + ".s" + std::to_string(stage) + ".json");
        if (rec) examples_done(rec->new_examples);
      }
    }
    if (!failed.empty()) return Error(failed);
    return Status::Ok();
  };
}

Expected<TuneOutcome> run_tune(const TuneRequest& req, const TuneExecutor& exec, const TuneEvents& ev) {
  auto note = [&](const std::string& s) {
    if (ev.note) ev.note(s);
  };
  TuneOutcome out;
  out.dir = req.dir;
  out.base = req.config.base;
  out.command = req.command;
  out.calib = req.config.calib;
  out.n_ctx = req.config.n_ctx;
  out.budget_bytes =
      req.fit.budget_bytes > 0 ? req.fit.budget_bytes : (req.fit.device ? req.fit.device->budget_bytes() : 0);
  out.device = req.fit.device ? req.fit.device->name : "";

  // 1. The space, less the methods that need calibration when there is no calibration text.
  PLM_TRY(std::vector<TuneCandidate> all, expand_tune_space(req.space));
  if (req.config.calib.empty()) {
    std::vector<TuneCandidate> kept;
    std::set<std::string> dropped, dropped_levels;
    for (auto& c : all) {
      auto m = parse_quant_method(c.method);
      if (m && method_needs_calibration(*m, false))
        dropped.insert(c.method);
      else if (!c.prune.none() && prune_needs_calibration(tune_prune_options(c.prune, int64_t{1} << 20)))
        dropped_levels.insert(c.prune.name);  // chooses what goes by calibration scores
      else
        kept.push_back(std::move(c));
    }
    for (const auto& m : dropped) {
      out.notes.push_back("method " + m + " needs calibration data (--calib FILE): its candidates are left out");
      note("note: " + out.notes.back());
    }
    for (const auto& l : dropped_levels) {
      out.notes.push_back("prune level " + l +
                          " chooses by calibration scores (--calib FILE): its candidates are left out");
      note("note: " + out.notes.back());
    }
    if (kept.empty())
      return Error("every candidate of the space needs calibration data: give --calib FILE").about("calib");
    all = std::move(kept);
  }

  for (const TunePrune& pl : req.space.prune)
    if (!pl.none())
      for (const std::string& m : req.space.methods)
        if (auto q = parse_quant_method(m); q && *q != QuantMethod::Rtn) {
          out.notes.push_back("prune level " + pl.name + " is combined with rtn only (" + m +
                              " would need calibration statistics of the pruned model)");
          note("note: " + out.notes.back());
          break;
        }

  // 2. The planner's filter.
  FitOptions fo = req.fit;
  fo.n_ctx = req.config.n_ctx;
  PLM_TRY(std::vector<CandidateFit> fits, fit_candidates(req.config.base, all, fo));
  TuneConfig cfg = req.config;
  cfg.drafts = req.space.drafts;
  cfg.speed_examples = req.speed_examples;
  out.min_tps = req.min_tps;
  if (!fo.device && fo.this_device) out.speed_device = fo.this_device->description;
  std::vector<CandidateFit> fitting;
  for (const auto& f : fits) {
    if (!f.refused.empty()) {
      out.notes.push_back(f.candidate.id + " left out: " + f.refused);
      note("note: " + out.notes.back());
    }
    if (f.fits) {
      cfg.candidates.push_back(f.candidate);
      fitting.push_back(f);
    }
  }
  if (fitting.empty()) return Error(nothing_fits_message(fits, fo)).about("budget");
  note("tune: " + std::to_string(fits.size()) + " candidates, " + std::to_string(fitting.size()) + " fit " +
       human_bytes(static_cast<double>(out.budget_bytes)) + " at -c " + std::to_string(cfg.n_ctx) + " (" +
       std::to_string(fits.size() - fitting.size()) + " left out before quantizing)");

  // 3. Examples and stages.
  std::vector<std::string> problems;
  PLM_TRY(std::vector<TaskExample> examples, tune_examples(cfg, &problems));
  for (const auto& p : problems) note("warning: " + p);
  std::set<std::string> labels;
  for (const auto& ex : examples) labels.insert(ex.task);
  const int64_t min_examples = req.min_stage_examples > 0
                                   ? req.min_stage_examples
                                   : std::max<int64_t>(10, 2 * static_cast<int64_t>(labels.size()));
  cfg.stage_examples = stage_sizes(static_cast<int64_t>(examples.size()), fitting.size(), min_examples);
  out.stage_examples = cfg.stage_examples;

  // 4. The directory: a new tune, or the same tune restarted.
  std::error_code ec;
  fs::create_directories(req.dir, ec);
  if (!fs::is_directory(req.dir)) return Error(req.dir + ": cannot create the tune directory");
  if (fs::exists(req.dir + "/tune.json")) {
    PLM_TRY(TuneConfig old, read_tune_config(req.dir));
    const std::string diff = tune_config_difference(old, cfg);
    if (!diff.empty())
      return Error(req.dir + " holds a tune with another configuration ('" + diff +
                   "' differs): restart it with the same flags, or give another output directory");
    note("tune: resuming the tune in " + req.dir);
    // Writes a kill interrupted leave their temporary files (util/atomic_file.h): no job runs yet, remove them.
    for (const auto& e : fs::recursive_directory_iterator(req.dir, ec))
      if (e.is_regular_file(ec) && e.path().filename().string().find(".tmp.") != std::string::npos)
        fs::remove(e.path(), ec);
  } else {
    PLM_CHECK(write_text_atomic(req.dir + "/tune.json", tune_config_json(cfg)));
  }
  TuneJobEvents jev;
  jev.note = ev.note;
  PLM_CHECK(prepare_tune_dir(req.dir, cfg, req.n_threads, jev));

  // 5. The stages.
  auto lines_read = read_results_lines(req.dir + "/results.jsonl");
  if (!lines_read) return lines_read.error();
  std::map<std::string, json> lines = std::move(*lines_read);
  std::vector<TuneCandidateResult> res(fitting.size());
  for (size_t v = 0; v < fitting.size(); ++v) res[v].fit = fitting[v];
  std::vector<size_t> alive(fitting.size());
  for (size_t v = 0; v < alive.size(); ++v) alive[v] = v;
  std::vector<std::string> all_keys;
  for (const auto& ex : examples) all_keys.push_back(ex.key());
  const int n_stages = static_cast<int>(cfg.stage_examples.size());
  std::vector<std::vector<double>> x0;  // stage 0: every fitting candidate on the same examples
  std::vector<std::string> keys0;
  std::vector<std::map<std::string, double>> scores(fitting.size());
  for (int s = 0; s < n_stages; ++s) {
    const int64_t n = cfg.stage_examples[static_cast<size_t>(s)];
    std::vector<std::string> todo;
    for (size_t v : alive) {
      if (fs::exists(tune_job_path(req.dir, fitting[v].candidate, s)))
        ++out.jobs_skipped;
      else
        todo.push_back(fitting[v].candidate.id);
    }
    int64_t to_score = 0;
    for (const std::string& id : todo) {
      const TuneCandidate& c = fitting[std::find_if(fitting.begin(), fitting.end(),
                                                    [&](const CandidateFit& f) { return f.candidate.id == id; }) -
                                       fitting.begin()]
                                   .candidate;
      auto have = primary_scores(tune_eval_path(req.dir, c));
      int64_t have_n = 0;
      if (have)
        for (int64_t i = 0; i < n; ++i) have_n += have->count(all_keys[static_cast<size_t>(i)]) ? 1 : 0;
      to_score += n - have_n;
    }
    if (ev.stage_start) ev.stage_start(s, n_stages, alive.size(), to_score);
    if (!todo.empty()) PLM_CHECK(exec(todo, s, ev.examples_done));
    out.jobs_run += static_cast<int64_t>(todo.size());
    if (ev.stage_end) ev.stage_end(s);

    // Scores of the stage's examples, the decision, the lines.
    std::vector<std::map<std::string, double>> st;
    std::vector<TuneJobRecord> recs;
    for (size_t v : alive) {
      PLM_TRY(TuneJobRecord r, read_tune_job_record(tune_job_path(req.dir, fitting[v].candidate, s)));
      auto m = primary_scores(tune_eval_path(req.dir, fitting[v].candidate));
      if (!m) return m.error();
      scores[v] = *m;
      st.push_back(std::move(*m));
      recs.push_back(r);
    }
    const std::vector<std::string> stage_keys(all_keys.begin(), all_keys.begin() + n);
    std::vector<std::string> common;
    const auto x = score_matrix(st, stage_keys, common);
    if (common.empty()) return Error("stage " + std::to_string(s) + ": no example was scored by every candidate");
    if (s == 0) {
      x0 = x;
      keys0 = common;
    }
    const StageDecision d = decide_stage(x, s == n_stages - 1, req.resamples, req.seed);
    std::vector<size_t> next;
    for (size_t a = 0; a < alive.size(); ++a) {
      const size_t v = alive[a];
      TuneCandidateResult& r = res[v];
      r.last_stage = s;
      r.examples = static_cast<int64_t>(common.size());
      r.score = d.boot.means[a];
      if (s == 0) r.score_stage0 = r.score;
      r.vs_leader = d.boot.diff[a][d.leader];
      r.file_bytes = recs[a].file_bytes;
      r.bits_per_weight = recs[a].bits_per_weight;
      r.kld = recs[a].kld;
      r.ppl = recs[a].ppl;
      r.decision = d.keep[a] ? (s == n_stages - 1 ? "final" : "on to stage " + std::to_string(s + 1))
                             : "dropped at stage " + std::to_string(s);
      r.decision += " (" + d.why[a] + ")";
      std::map<std::string, std::pair<double, int64_t>> tm;
      for (size_t i = 0; i < common.size(); ++i) {
        const std::string task = common[i].substr(0, common[i].find('/'));
        tm[task].first += x[a][i];
        ++tm[task].second;
      }
      r.task_means.clear();
      for (const auto& [t, p] : tm) r.task_means.emplace_back(t, p.first / static_cast<double>(p.second));
      if (d.keep[a]) next.push_back(v);
      const std::string key = fitting[v].candidate.id + "/" + std::to_string(s);
      if (!lines.count(key)) {
        json per_task = json::object();
        for (const auto& [t, m] : r.task_means) per_task[t] = m;
        lines[key] = {{"candidate", fitting[v].candidate.id},
                      {"stage", s},
                      {"examples", r.examples},
                      {"score", interval_json(r.score)},
                      {"vs_leader", interval_json(r.vs_leader)},
                      {"leader", fitting[alive[d.leader]].candidate.id},
                      {"decision", r.decision},
                      {"per_task", per_task},
                      {"file_bytes", r.file_bytes},
                      {"bits_per_weight", r.bits_per_weight},
                      {"predicted_peak_rss_bytes", fitting[v].peak_rss_bytes},
                      {"kld", r.kld ? json(*r.kld) : json(nullptr)},
                      {"ppl", r.ppl ? json(*r.ppl) : json(nullptr)},
                      {"new_examples", recs[a].new_examples},
                      {"seconds", recs[a].quantize_seconds + recs[a].eval_seconds + recs[a].kld_seconds}};
      }
    }
    // One line per candidate and stage, in (stage, candidate) order, the file replaced atomically.
    std::vector<std::pair<std::pair<int, size_t>, std::string>> ordered;
    for (const auto& [k, j] : lines) {
      size_t idx = 0;
      for (; idx < fitting.size() && fitting[idx].candidate.id != j.at("candidate").get<std::string>(); ++idx) {
      }
      ordered.push_back({{j.at("stage").get<int>(), idx}, j.dump()});
    }
    std::sort(ordered.begin(), ordered.end());
    std::string text;
    for (const auto& o : ordered) text += o.second + "\n";
    PLM_CHECK(write_text_atomic(req.dir + "/results.jsonl", text));
    alive = next;
  }

  // 6. Draft choices on the finalists: the planner's memory with each draft, then (those that fit) greedy
  // generation with it. Lossless decoding: no score is measured again; the acceptance counts give each draft's
  // predicted speedup (deterministic), the seconds go to speed.json only.
  bool measure = req.speed_examples > 0;
  for (size_t v : alive) {
    TuneCandidateResult& r = res[v];
    r.drafts = fit_drafts(fitting[v], cfg.drafts, fo);
    std::vector<TuneDraft> to_measure;
    for (const DraftFit& d : r.drafts)
      if (d.fits && d.refused.empty() && d.draft.kind != TuneDraft::Kind::None) to_measure.push_back(d.draft);
    if (measure && !to_measure.empty()) {
      PLM_TRY(r.speeds, run_tune_speed(req.dir, cfg, fitting[v].candidate.id, to_measure, req.n_threads, jev));
      for (const TuneDraftSpeed& sp : r.speeds) {
        if (sp.draft == "none" || !sp.error.empty() || sp.drafted == 0) continue;
        if (!sp.same_output) {
          // The batched verification pass rounds differently from one-token decoding, so a near-tie can flip
          // (pocketlm eval --lookup shows the same): reported, the draft stays a choice.
          out.notes.push_back(fitting[v].candidate.id + " with draft " + sp.draft +
                              ": the greedy output differs from "
                              "plain decoding on " +
                              std::to_string(sp.differing) + " of " + std::to_string(sp.examples) +
                              " examples (rounding in the batched verification)");
          note("note: " + out.notes.back());
        }
        if (sp.predicted_speedup() > r.best_speedup + 1e-12) {
          r.best_speedup = sp.predicted_speedup();
          for (const DraftFit& d : r.drafts)
            if (d.draft.name == sp.draft) r.best_draft = d.draft;
        }
      }
    }
    const std::optional<double> tps = fitting[v].decode_tps ? fitting[v].decode_tps : fitting[v].this_decode_tps;
    if (tps) r.best_decode_tps = *tps * r.best_speedup;
  }

  // 7. The pick, the front, wins and losses, disagreement.
  std::vector<size_t> eligible;
  if (req.min_tps) {
    for (size_t v : alive)
      if (res[v].best_decode_tps && *res[v].best_decode_tps >= *req.min_tps) eligible.push_back(v);
    if (eligible.empty()) {
      out.notes.push_back("no finalist reaches --min-tps " + fmt(*req.min_tps, 1) +
                          " (predicted decode t/s with its best draft): the pick ignores it");
      note("warning: " + out.notes.back());
    }
  }
  if (eligible.empty()) eligible = alive;
  std::vector<double> means;
  std::vector<uint64_t> bytes;
  for (size_t v : eligible) {
    means.push_back(res[v].score.mean);
    bytes.push_back(res[v].file_bytes);
  }
  const size_t pick = eligible[pick_candidate(means, bytes)];
  out.pick = pick;
  {
    const TuneCandidateResult& p = res[pick];
    out.pick_why = "the highest mean score at the last stage (" + fmt(p.score.mean) + " [" + fmt(p.score.lo) + ", " +
                   fmt(p.score.hi) + "] over " + std::to_string(p.examples) + " examples) among " +
                   std::to_string(alive.size()) + " finalist(s) that fit " +
                   human_bytes(static_cast<double>(out.budget_bytes)) + " at -c " + std::to_string(out.n_ctx) +
                   " (predicted peak RSS " + human_bytes(static_cast<double>(p.fit.peak_rss_bytes)) + ")";
    if (eligible.size() < alive.size())
      out.pick_why += "; " + std::to_string(alive.size() - eligible.size()) + " finalist(s) left out by --min-tps " +
                      fmt(*req.min_tps, 1) + " (predicted decode t/s with the best draft below it)";
    size_t tied = 0;
    for (size_t v : eligible)
      if (v != pick && std::fabs(res[v].score.mean - p.score.mean) <= 1e-9) ++tied;
    if (tied) out.pick_why += "; tied with " + std::to_string(tied) + " other(s), the smallest file wins";
    // A smaller finalist the data cannot tell apart from the pick: worth knowing before shipping the larger file.
    const TuneCandidateResult* smaller = nullptr;
    for (size_t v : eligible)
      if (v != pick && res[v].file_bytes < p.file_bytes && res[v].vs_leader.hi >= 0 &&
          (!smaller || res[v].file_bytes < smaller->file_bytes))
        smaller = &res[v];
    if (smaller)
      out.pick_why +=
          "; note: " + smaller->fit.candidate.id + " is " +
          fmt(100.0 * (1.0 - static_cast<double>(smaller->file_bytes) / static_cast<double>(p.file_bytes)), 0) +
          " % smaller and not worse with confidence (difference to the leader " + fmt(smaller->vs_leader.mean) + " [" +
          fmt(smaller->vs_leader.lo) + ", " + fmt(smaller->vs_leader.hi) + "])";
    res[pick].decision = "pick (" + res[pick].decision + ")";
    if (p.best_draft.kind != TuneDraft::Kind::None)
      out.pick_why += "; run it with the draft " + p.best_draft.name + " (predicted " + fmt(p.best_speedup) +
                      "x decode speed from the measured acceptance; the greedy output is the candidate's own)";
    std::string cmd = "pocketlm run -m pick.gguf -c " + std::to_string(out.n_ctx) + " -ctk " + p.fit.candidate.kv_type +
                      " -ctv " + p.fit.candidate.kv_type;
    if (!p.best_draft.flags().empty()) cmd += " " + p.best_draft.flags();
    out.pick_command = cmd + " -p ...";
  }
  for (size_t v = 0; v < res.size(); ++v) {
    res[v].on_front = true;
    for (size_t u = 0; u < res.size(); ++u) {
      if (u == v) continue;
      const bool no_worse =
          res[u].file_bytes <= res[v].file_bytes && res[u].score_stage0.mean >= res[v].score_stage0.mean;
      const bool better = res[u].file_bytes < res[v].file_bytes || res[u].score_stage0.mean > res[v].score_stage0.mean;
      if (no_worse && better) res[v].on_front = false;
    }
  }
  for (size_t v = 0; v < res.size(); ++v) {
    if (v == pick) continue;
    std::map<std::string, std::vector<std::pair<double, double>>> per_task;
    for (int64_t i = 0; i < cfg.stage_examples[static_cast<size_t>(res[v].last_stage)]; ++i) {
      const std::string& k = all_keys[static_cast<size_t>(i)];
      if (scores[pick].count(k) && scores[v].count(k))
        per_task[k.substr(0, k.find('/'))].emplace_back(scores[pick].at(k), scores[v].at(k));
    }
    for (const auto& [task, pairs] : per_task) {
      TaskWinLoss w;
      w.other = fitting[v].candidate.id;
      w.task = task;
      std::vector<double> a, b;
      for (const auto& [pa, pb] : pairs) a.push_back(pa), b.push_back(pb);
      w.wl = wins_losses(a, b);
      w.n = static_cast<int64_t>(pairs.size());
      for (size_t i = 0; i < a.size(); ++i)
        w.pick_mean += a[i] / static_cast<double>(a.size()), w.other_mean += b[i] / static_cast<double>(b.size());
      out.wins.push_back(w);
    }
  }
  bool all_kld = true;
  std::vector<double> klds;
  for (const auto& r : res) {
    all_kld = all_kld && r.kld.has_value();
    klds.push_back(r.kld.value_or(0));
  }
  if (all_kld && res.size() > 1) {
    std::vector<double> m0;
    for (const auto& r : res) m0.push_back(r.score_stage0.mean);
    out.kld_vs_task_pairs = variant_disagreement(klds, m0);
    out.kld_vs_task_examples = example_disagreement(klds, x0);
  }
  out.candidates = res;
  for (const auto& f : fits)
    if (!f.fits) {
      TuneCandidateResult r;
      r.fit = f;
      r.decision = f.refused.empty()
                       ? "does not fit (predicted peak RSS " + human_bytes(static_cast<double>(f.peak_rss_bytes)) + ")"
                       : "refused by the quantizer: " + f.refused;
      out.candidates.push_back(r);
    }
  out.pick = pick;

  // 8. The outputs.
  const std::string pick_path = req.dir + "/pick.gguf";
  PLM_CHECK(publish_copy(tune_model_path(req.dir, fitting[pick].candidate), pick_path));
  PLM_CHECK(write_text_atomic(req.dir + "/pareto.json", pareto_json(out)));
  PLM_CHECK(write_text_atomic(req.dir + "/speed.json", speed_json(out)));
  PLM_CHECK(write_text_atomic(req.dir + "/report.html", tune_report_html(out)));
  return out;
}

std::string pareto_json(const TuneOutcome& o) {
  json cands = json::array();
  for (const auto& r : o.candidates) {
    const TuneCandidate& c = r.fit.candidate;
    json j = {{"id", c.id},
              {"target", c.target},
              {"method", c.method},
              {"hot_f16", c.hot_f16},
              {"rule_set", c.rule_set},
              {"kv_type", c.kv_type},
              {"fits", r.fit.fits},
              {"predicted_weights_bytes", r.fit.weights_bytes},
              {"predicted_peak_rss_bytes", r.fit.peak_rss_bytes},
              {"predicted_decode_tps", r.fit.decode_tps ? json(*r.fit.decode_tps) : json(nullptr)},
              {"predicted_prefill_tps", r.fit.prefill_tps ? json(*r.fit.prefill_tps) : json(nullptr)},
              {"decision", r.decision}};
    j["prune"] = c.prune.none() ? json(nullptr) : json(c.prune.name);
    if (r.fit.refused.empty() && r.fit.plan) j["predicted_file_bytes"] = r.fit.weights_bytes + r.fit.metadata_bytes;
    if (!r.drafts.empty()) {
      json drafts = json::array();
      for (const DraftFit& d : r.drafts) {
        json dj = {{"draft", d.draft.name},
                   {"flags", d.draft.flags()},
                   {"fits", d.fits},
                   {"draft_bytes", d.draft_bytes},
                   {"predicted_peak_rss_bytes", d.peak_rss_bytes}};
        if (!d.refused.empty()) dj["refused"] = d.refused;
        for (const TuneDraftSpeed& sp : r.speeds) {
          if (sp.draft != d.draft.name || d.draft.kind == TuneDraft::Kind::None) continue;
          if (!sp.error.empty()) {
            dj["refused"] = sp.error;
            continue;
          }
          dj["examples"] = sp.examples;
          dj["rounds"] = sp.rounds;
          dj["drafted"] = sp.drafted;
          dj["accepted"] = sp.accepted;
          dj["draft_cost"] = sp.draft_cost;
          dj["same_output"] = sp.same_output;
          dj["differing_examples"] = sp.differing;
          dj["predicted_speedup"] = sp.predicted_speedup();
          if (r.fit.decode_tps) dj["predicted_decode_tps"] = *r.fit.decode_tps * sp.predicted_speedup();
        }
        drafts.push_back(dj);
      }
      j["drafts"] = drafts;
      j["best_draft"] = r.best_draft.name;
      j["best_draft_speedup"] = r.best_speedup;
    }
    if (r.last_stage >= 0) {
      j["file_bytes"] = r.file_bytes;
      j["bits_per_weight"] = r.bits_per_weight;
      j["last_stage"] = r.last_stage;
      j["examples"] = r.examples;
      j["score"] = interval_json(r.score);
      j["score_stage0"] = interval_json(r.score_stage0);
      j["kld"] = r.kld ? json(*r.kld) : json(nullptr);
      j["ppl"] = r.ppl ? json(*r.ppl) : json(nullptr);
      j["on_front"] = r.on_front;
    }
    cands.push_back(j);
  }
  json front = json::array();
  for (const auto& r : o.candidates)
    if (r.last_stage >= 0 && r.on_front) front.push_back(r.fit.candidate.id);
  json j = {{"base", o.base},
            {"budget_bytes", o.budget_bytes},
            {"device", o.device},
            {"n_ctx", o.n_ctx},
            {"stage_examples", o.stage_examples},
            {"pick", o.candidates[o.pick].fit.candidate.id},
            {"pick_kv_type", o.candidates[o.pick].fit.candidate.kv_type},
            {"pick_draft", o.candidates[o.pick].best_draft.name},
            {"pick_command", o.pick_command},
            {"min_tps", o.min_tps ? json(*o.min_tps) : json(nullptr)},
            {"front", front},
            {"candidates", cands}};
  if (o.kld_vs_task_pairs.decided + o.kld_vs_task_pairs.tied > 0)
    j["kld_vs_task_disagreement"] = {
        {"pairs", {{"decided", o.kld_vs_task_pairs.decided}, {"opposite", o.kld_vs_task_pairs.opposite}}},
        {"examples", {{"decided", o.kld_vs_task_examples.decided}, {"opposite", o.kld_vs_task_examples.opposite}}}};
  return j.dump(1) + "\n";
}

std::string speed_json(const TuneOutcome& o) {
  json cands = json::array();
  for (const auto& r : o.candidates) {
    if (r.last_stage < 0) continue;
    json j = {{"id", r.fit.candidate.id}};
    if (r.fit.this_decode_tps) j["predicted_decode_tps"] = *r.fit.this_decode_tps;
    if (r.fit.this_prefill_tps) j["predicted_prefill_tps"] = *r.fit.this_prefill_tps;
    if (r.best_decode_tps) j["predicted_decode_tps_best_draft"] = *r.best_decode_tps;
    json drafts = json::array();
    const TuneDraftSpeed* fastest = nullptr;
    for (const TuneDraftSpeed& sp : r.speeds)
      if (sp.error.empty() && sp.seconds > 0 && (!fastest || sp.tps() > fastest->tps())) fastest = &sp;
    if (fastest) j["measured_fastest_draft"] = fastest->draft;
    for (const TuneDraftSpeed& sp : r.speeds) {
      json d = {{"draft", sp.draft}, {"examples", sp.examples}, {"tokens", sp.tokens}, {"seconds", sp.seconds}};
      if (sp.seconds > 0) d["measured_tps"] = sp.tps();
      if (!sp.error.empty()) d["error"] = sp.error;
      drafts.push_back(d);
    }
    j["drafts"] = drafts;
    cands.push_back(j);
  }
  json j = {{"note",
             "timing: measured tokens/s (greedy task generation, prompt included, on the machine tune ran on, "
             "while other jobs may have run) and speeds predicted for the measured machine; pareto.json holds "
             "nothing that depends on timing"},
            {"device", o.speed_device.empty() ? o.device : o.speed_device},
            {"candidates", cands}};
  return j.dump(1) + "\n";
}

}  // namespace pocketlm
