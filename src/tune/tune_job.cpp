// One candidate at one stage: quantize (once), score the stage's new examples, KLD (once), record.
#include "tune/tune_job.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <utility>

#include "eval/perplexity_run.h"
#include "eval/results.h"
#include "eval/task_runner.h"
#include "gguf/reader.h"
#include "model/model.h"
#include "quant/imatrix_collect.h"
#include "quant/methods/method.h"
#include "quant/quantize_model.h"
#include "runtime/session.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "util/atomic_file.h"
#include "util/stats.h"
#include "util/thread_pool.h"

namespace pocketlm {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

Status write_text_atomic(const std::string& path, const std::string& text) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  PLM_TRY(AtomicFile f, AtomicFile::create(path));
  PLM_CHECK(f.write(text.data(), text.size()));
  return f.commit();
}

Expected<std::string> read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error(path + ": cannot read");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json candidate_json(const TuneCandidate& c) {
  json rules = json::array();
  for (const auto& [p, t] : c.rules) rules.push_back({{"pattern", p}, {"type", t}});
  return {{"id", c.id},           {"file_id", c.file_id},   {"target", c.target}, {"method", c.method},
          {"hot_f16", c.hot_f16}, {"rule_set", c.rule_set}, {"rules", rules},     {"kv_type", c.kv_type}};
}

const TuneCandidate* find_candidate(const TuneConfig& cfg, const std::string& id) {
  for (const auto& c : cfg.candidates)
    if (c.id == id) return &c;
  return nullptr;
}

int n_threads_or_cores(int n) { return n > 0 ? n : physical_cores(); }

// An exclusive lock on PATH (created), held until destruction: one process at a time works on a candidate (a
// retried Ray task while the first attempt's process is still alive, two KV variants quantizing one file).
class FileLock {
 public:
  static Expected<FileLock> take(const std::string& path) {
    std::error_code ec;
    fs::create_directories(fs::path(path).parent_path(), ec);
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return Error(path + ": cannot create the lock file");
    while (::flock(fd, LOCK_EX) != 0) {
      if (errno != EINTR) {
        ::close(fd);
        return Error(path + ": cannot lock");
      }
    }
    return FileLock(fd);
  }
  FileLock(FileLock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  FileLock& operator=(FileLock&&) = delete;
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// The calibration sequences of cfg.calib (llama-imatrix's chunking).
Expected<std::vector<std::vector<int32_t>>> calib_sequences(const Model& model, const TuneConfig& cfg) {
  PLM_TRY(std::string text, read_whole(cfg.calib));
  if (text.empty()) return Error(cfg.calib + ": the calibration text is empty");
  const Tokenizer& tok = model.tokenizer();
  const std::vector<int32_t> ids = tok.encode(text, /*add_special=*/true, /*parse_special=*/false);
  const int64_t chunks = std::max<int64_t>(1, cfg.calib_tokens / cfg.calib_ctx);
  return imatrix_text_chunks(tok, ids, cfg.calib_ctx, chunks, cfg.calib);
}

// Collects (or reads from DIR/calib.stats) the calibration statistics of the base model.
Expected<CalibStats> tune_calib_stats(const std::string& dir, const TuneConfig& cfg, const GgufFile& in, int n_threads,
                                      bool* from_cache) {
  if (cfg.calib.empty()) return Error("a method that needs calibration data, but the tune has no calibration text");
  PLM_TRY(std::unique_ptr<Model> model, Model::load(cfg.base));
  PLM_TRY(std::vector<std::vector<int32_t>> seqs, calib_sequences(*model, cfg));
  SessionOptions so;
  so.n_ctx = cfg.calib_ctx;
  so.n_threads = n_threads_or_cores(n_threads);
  PLM_TRY(std::unique_ptr<Session> session, Session::create(*model, so));
  CalibrationRequest req;
  req.sequences = seqs;
  req.data_name =
      cfg.calib + ": " + std::to_string(seqs.size()) + " chunks of " + std::to_string(cfg.calib_ctx) + " tokens";
  req.cache_path = tune_calib_path(dir);
  req.gram = true;
  req.progress = false;
  auto pool = shared_thread_pool(n_threads_or_cores(n_threads));
  return calibration_stats(in, *session, req, *pool, from_cache);
}

// Writes the candidate's file (atomically) unless it exists.
Expected<double> quantize_candidate(const std::string& dir, const TuneConfig& cfg, const TuneCandidate& c,
                                    int n_threads, const TuneJobEvents& ev) {
  const std::string out = tune_model_path(dir, c);
  if (fs::exists(out)) return 0.0;
  PLM_TRY(FileLock lock, FileLock::take(dir + "/models/" + c.file_id + ".lock"));
  if (fs::exists(out)) return 0.0;  // written while we waited
  const double t0 = now_seconds();
  PLM_TRY(GgufFile in, GgufFile::open(cfg.base));
  QuantizeOptions o;
  o.n_threads = n_threads;
  o.progress = false;
  PLM_CHECK(tune_quantize_options(c, in, o));
  PLM_TRY(QuantMethod m, parse_quant_method(c.method));
  std::optional<CalibStats> stats;
  if (method_needs_calibration(m, false)) {
    bool cached = false;
    PLM_TRY(stats, tune_calib_stats(dir, cfg, in, n_threads, &cached));
  }
  PreparedMethod prepared;
  auto pool = shared_thread_pool(n_threads_or_cores(n_threads));
  PLM_CHECK(prepare_method(in, m, stats ? &*stats : nullptr, -1, AwqOptions{}, o, prepared, *pool));
  PLM_TRY(QuantizePlan plan, plan_quantization(in, o));
  std::error_code ec;
  fs::create_directories(fs::path(out).parent_path(), ec);
  PLM_TRY(QuantizeResult r, quantize_model(in, plan, o, out));
  if (ev.note) ev.note("tune: wrote " + out + " (" + c.target + ", " + c.method + ")");
  (void)r;
  return now_seconds() - t0;
}

}  // namespace

std::string tune_model_path(const std::string& dir, const TuneCandidate& c) {
  return dir + "/models/" + c.file_id + ".gguf";
}
std::string tune_eval_path(const std::string& dir, const TuneCandidate& c) { return dir + "/evals/" + c.id + ".jsonl"; }
std::string tune_kld_path(const std::string& dir, const TuneCandidate& c) {
  return dir + "/evals/" + c.id + ".kld.json";
}
std::string tune_job_path(const std::string& dir, const TuneCandidate& c, int stage) {
  return dir + "/jobs/" + c.id + ".s" + std::to_string(stage) + ".json";
}
std::string tune_base_logits_path(const std::string& dir) { return dir + "/base.logits"; }
std::string tune_calib_path(const std::string& dir) { return dir + "/calib.stats"; }

std::string tune_config_json(const TuneConfig& c) {
  json cands = json::array();
  for (const auto& x : c.candidates) cands.push_back(candidate_json(x));
  json j = {{"pocketlm_tune", 1},
            {"base", c.base},
            {"tasks", c.tasks},
            {"limit", c.limit},
            {"n_ctx", c.n_ctx},
            {"max_tokens", c.max_tokens},
            {"kld_text", c.kld_text},
            {"kld_ctx", c.kld_ctx},
            {"kld_chunks", c.kld_chunks},
            {"calib", c.calib},
            {"calib_tokens", c.calib_tokens},
            {"calib_ctx", c.calib_ctx},
            {"stage_examples", c.stage_examples},
            {"candidates", cands}};
  return j.dump(1) + "\n";
}

Expected<TuneConfig> parse_tune_config(const std::string& text, const std::string& name) {
  try {
    const json j = json::parse(text);
    if (!j.is_object() || j.value("pocketlm_tune", 0) != 1) return Error(name + ": not a pocketlm tune configuration");
    TuneConfig c;
    c.base = j.at("base").get<std::string>();
    c.tasks = j.at("tasks").get<std::vector<std::string>>();
    c.limit = j.at("limit").get<int64_t>();
    c.n_ctx = j.at("n_ctx").get<int64_t>();
    c.max_tokens = j.at("max_tokens").get<int>();
    c.kld_text = j.at("kld_text").get<std::string>();
    c.kld_ctx = j.at("kld_ctx").get<int64_t>();
    c.kld_chunks = j.at("kld_chunks").get<int64_t>();
    c.calib = j.at("calib").get<std::string>();
    c.calib_tokens = j.at("calib_tokens").get<int64_t>();
    c.calib_ctx = j.at("calib_ctx").get<int64_t>();
    c.stage_examples = j.at("stage_examples").get<std::vector<int64_t>>();
    for (const json& x : j.at("candidates")) {
      TuneCandidate t;
      t.id = x.at("id").get<std::string>();
      t.file_id = x.at("file_id").get<std::string>();
      t.target = x.at("target").get<std::string>();
      t.method = x.at("method").get<std::string>();
      t.hot_f16 = x.at("hot_f16").get<bool>();
      t.rule_set = x.at("rule_set").get<std::string>();
      for (const json& r : x.at("rules"))
        t.rules.emplace_back(r.at("pattern").get<std::string>(), r.at("type").get<std::string>());
      t.kv_type = x.at("kv_type").get<std::string>();
      c.candidates.push_back(std::move(t));
    }
    return c;
  } catch (const json::exception& e) {
    return Error(name + ": not a valid tune configuration: " + e.what());
  }
}

Expected<TuneConfig> read_tune_config(const std::string& dir) {
  const std::string path = dir + "/tune.json";
  PLM_TRY(std::string text, read_whole(path));
  return parse_tune_config(text, path);
}

std::string tune_config_difference(const TuneConfig& a, const TuneConfig& b) {
  const json ja = json::parse(tune_config_json(a)), jb = json::parse(tune_config_json(b));
  for (auto it = ja.begin(); it != ja.end(); ++it)
    if (!jb.contains(it.key()) || jb.at(it.key()) != it.value()) return it.key();
  return "";
}

Expected<std::vector<TaskExample>> tune_examples(const TuneConfig& c, std::vector<std::string>* problems) {
  PLM_TRY(TaskSet set, load_task_files(c.tasks, c.limit));
  if (problems) *problems = set.problems;
  if (set.examples.empty()) return Error("no usable examples in the task file(s)");
  std::vector<std::string> order;
  std::map<std::string, std::vector<TaskExample>> by_task;
  for (auto& ex : set.examples) {
    if (!by_task.count(ex.task)) order.push_back(ex.task);
    by_task[ex.task].push_back(std::move(ex));
  }
  std::vector<TaskExample> out;
  for (size_t i = 0;; ++i) {
    bool any = false;
    for (const std::string& t : order) {
      auto& v = by_task[t];
      if (i < v.size()) {
        out.push_back(std::move(v[i]));
        any = true;
      }
    }
    if (!any) break;
  }
  return out;
}

std::string tune_job_record_json(const TuneJobRecord& r) {
  json j = {{"candidate", r.candidate},
            {"stage", r.stage},
            {"examples", r.examples},
            {"new_examples", r.new_examples},
            {"file_bytes", r.file_bytes},
            {"bits_per_weight", r.bits_per_weight},
            {"kld", r.kld ? json(*r.kld) : json(nullptr)},
            {"ppl", r.ppl ? json(*r.ppl) : json(nullptr)},
            {"quantize_seconds", r.quantize_seconds},
            {"eval_seconds", r.eval_seconds},
            {"kld_seconds", r.kld_seconds}};
  return j.dump() + "\n";
}

Expected<TuneJobRecord> read_tune_job_record(const std::string& path) {
  PLM_TRY(std::string text, read_whole(path));
  try {
    const json j = json::parse(text);
    TuneJobRecord r;
    r.candidate = j.at("candidate").get<std::string>();
    r.stage = j.at("stage").get<int>();
    r.examples = j.at("examples").get<int64_t>();
    r.new_examples = j.at("new_examples").get<int64_t>();
    r.file_bytes = j.at("file_bytes").get<uint64_t>();
    r.bits_per_weight = j.at("bits_per_weight").get<double>();
    if (!j.at("kld").is_null()) r.kld = j.at("kld").get<double>();
    if (!j.at("ppl").is_null()) r.ppl = j.at("ppl").get<double>();
    r.quantize_seconds = j.at("quantize_seconds").get<double>();
    r.eval_seconds = j.at("eval_seconds").get<double>();
    r.kld_seconds = j.at("kld_seconds").get<double>();
    return r;
  } catch (const json::exception& e) {
    return Error(path + ": not a valid job record: " + e.what());
  }
}

Status prepare_tune_dir(const std::string& dir, const TuneConfig& cfg, int n_threads, const TuneJobEvents& ev) {
  bool calib = false;
  for (const auto& c : cfg.candidates) {
    auto m = parse_quant_method(c.method);
    if (m && method_needs_calibration(*m, false) && !fs::exists(tune_model_path(dir, c))) calib = true;
  }
  if (calib && !fs::exists(tune_calib_path(dir))) {
    if (ev.note) ev.note("tune: collecting calibration statistics over " + cfg.calib);
    PLM_TRY(GgufFile in, GgufFile::open(cfg.base));
    bool cached = false;
    PLM_TRY(CalibStats s, tune_calib_stats(dir, cfg, in, n_threads, &cached));
    (void)s;
  }
  if (!cfg.kld_text.empty() && !fs::exists(tune_base_logits_path(dir))) {
    if (ev.note) ev.note("tune: saving the base model's log-probs over " + cfg.kld_text);
    PLM_TRY(std::unique_ptr<Model> model, Model::load(cfg.base));
    eval::PerplexityJob job;
    job.text_path = cfg.kld_text;
    job.save_logits = tune_base_logits_path(dir);
    job.n_ctx = cfg.kld_ctx;
    job.max_chunks = cfg.kld_chunks;
    job.n_batch = std::min<int64_t>(cfg.kld_ctx, 512);
    job.session.n_threads = n_threads_or_cores(n_threads);
    PLM_TRY(eval::PerplexityOutcome out, eval::run_perplexity(*model, cfg.base, job));
    (void)out;
  }
  return Status::Ok();
}

Expected<TuneJobRecord> run_tune_job(const std::string& dir, const TuneConfig& cfg, const std::string& id, int stage,
                                     int n_threads, const TuneJobEvents& ev) {
  const TuneCandidate* c = find_candidate(cfg, id);
  if (!c) return Error(dir + "/tune.json: no candidate '" + id + "' in this tune");
  if (stage < 0 || stage >= static_cast<int>(cfg.stage_examples.size()))
    return Error("stage " + std::to_string(stage) + " is not a stage of this tune (0 .. " +
                 std::to_string(cfg.stage_examples.size() - 1) + ")");
  const std::string job_path = tune_job_path(dir, *c, stage);
  if (fs::exists(job_path)) return read_tune_job_record(job_path);
  PLM_TRY(FileLock lock, FileLock::take(dir + "/jobs/" + c->id + ".lock"));
  if (fs::exists(job_path)) return read_tune_job_record(job_path);  // done while we waited

  TuneJobRecord rec;
  rec.candidate = id;
  rec.stage = stage;
  PLM_TRY(rec.quantize_seconds, quantize_candidate(dir, cfg, *c, n_threads, ev));
  const std::string model_path = tune_model_path(dir, *c);
  PLM_TRY(std::unique_ptr<Model> model, Model::load(model_path));
  const ResultsHeader described = describe_model(model->gguf());
  rec.file_bytes = described.file_size;
  rec.bits_per_weight = described.bits_per_weight;

  // The stage's examples not yet in the candidate's results file.
  PLM_TRY(std::vector<TaskExample> examples, tune_examples(cfg));
  const int64_t n =
      std::min<int64_t>(cfg.stage_examples[static_cast<size_t>(stage)], static_cast<int64_t>(examples.size()));
  SessionOptions so;
  so.n_ctx = cfg.n_ctx;
  so.n_threads = n_threads_or_cores(n_threads);
  PLM_TRY(so.kv_type, parse_kv_type(c->kv_type));
  PLM_TRY(std::unique_ptr<Session> session, Session::create(*model, so));
  std::string tmpl;
  if (auto t = model->gguf().get_string_or("tokenizer.chat_template", "")) tmpl = *t;
  if (!tmpl.empty()) {
    auto probe = apply_chat_template(tmpl, {{"user", "x"}}, true);
    if (!probe) return probe.error().with_context(model_path);
  }
  ResultsHeader header = described;
  header.model = model_path;
  header.chat_template = tmpl.empty() ? "none" : detect_chat_template(tmpl);
  if (header.chat_template.empty()) header.chat_template = "custom";
  header.max_tokens = cfg.max_tokens;
  std::vector<ResultRecord> existing;
  std::vector<std::string> notes;
  std::error_code ec;
  fs::create_directories(dir + "/evals", ec);
  PLM_TRY(ResultsLog log, ResultsLog::open(tune_eval_path(dir, *c), header, existing, notes));
  for (const auto& note : notes)
    if (ev.note) ev.note("note: " + note);
  std::set<std::string> done;
  for (const auto& r : existing) done.insert(r.key);
  TaskRunner runner(*model, *session, tmpl);
  const double t0 = now_seconds();
  for (int64_t i = 0; i < n; ++i) {
    const TaskExample& ex = examples[static_cast<size_t>(i)];
    if (done.count(ex.key())) continue;
    auto run = runner.run(ex, cfg.max_tokens);
    if (!run) {  // e.g. a prompt longer than the context: left out for this candidate (the driver compares common keys)
      if (ev.note)
        ev.note("note: " + id + ": " + ex.file + ":" + std::to_string(ex.line) + " (" + ex.id +
                "): " + run.error().message() + "; skipped");
      continue;
    }
    const TaskOutput& r = *run;
    ResultRecord out;
    out.key = ex.key();
    out.id = ex.id;
    out.task = ex.task;
    out.kind = std::string(task_kind_name(ex.kind));
    out.output = r.output;
    out.stop = r.stop;
    out.scores = score_output(ex, r.output);
    out.prompt_tokens = r.prompt_tokens;
    out.tokens = r.tokens;
    out.seconds = r.seconds;
    PLM_CHECK(log.append(out));
    ++rec.new_examples;
    if (ev.example_done) ev.example_done();
  }
  rec.eval_seconds = now_seconds() - t0;
  rec.examples = n;

  // KL divergence against the base, once per candidate.
  if (!cfg.kld_text.empty()) {
    const std::string kld_path = tune_kld_path(dir, *c);
    if (!fs::exists(kld_path)) {
      const double t1 = now_seconds();
      eval::PerplexityJob job;
      job.base_logits = tune_base_logits_path(dir);
      job.max_chunks = cfg.kld_chunks;
      job.n_batch = std::min<int64_t>(cfg.kld_ctx, 512);
      job.session = so;
      PLM_TRY(eval::PerplexityOutcome out, eval::run_perplexity(*model, model_path, job));
      if (!out.kld) return Error(model_path + ": the KL-divergence run gave no report");
      const json j = {{"kld", out.kld->kld.value},           {"kld_error", out.kld->kld.err},
                      {"ppl", out.kld->ppl.value},           {"ppl_base", out.kld->ppl_base.value},
                      {"same_top", out.kld->same_top.value}, {"positions", out.kld->positions}};
      PLM_CHECK(write_text_atomic(kld_path, j.dump() + "\n"));
      rec.kld_seconds = now_seconds() - t1;
    }
    PLM_TRY(std::string text, read_whole(kld_path));
    try {
      const json j = json::parse(text);
      rec.kld = j.at("kld").get<double>();
      rec.ppl = j.at("ppl").get<double>();
    } catch (const json::exception& e) {
      return Error(kld_path + ": not a valid KLD record: " + e.what());
    }
  }
  PLM_CHECK(write_text_atomic(job_path, tune_job_record_json(rec)));
  return rec;
}

}  // namespace pocketlm
