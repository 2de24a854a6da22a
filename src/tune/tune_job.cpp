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
#include "prune/prune_model.h"
#include "prune/prune_stats.h"
#include "quant/imatrix_collect.h"
#include "quant/methods/method.h"
#include "quant/quantize_model.h"
#include "runtime/session.h"
#include "runtime/speculative/draft_length.h"
#include "runtime/speculative/draft_setup.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "util/atomic_file.h"
#include "util/byte_size.h"
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
  json j = {{"id", c.id},           {"file_id", c.file_id},   {"target", c.target}, {"method", c.method},
            {"hot_f16", c.hot_f16}, {"rule_set", c.rule_set}, {"rules", rules},     {"kv_type", c.kv_type}};
  if (!c.prune.none())
    j["prune"] = {{"name", c.prune.name},
                  {"drop", c.prune.drop},
                  {"drop_layers", c.prune.drop_layers},
                  {"ffn_keep", c.prune.ffn_keep},
                  {"heads_keep", c.prune.heads_keep},
                  {"repair", c.prune.repair}};
  return j;
}

json draft_json(const TuneDraft& d) {
  return {{"name", d.name},
          {"kind", d.kind == TuneDraft::Kind::Self     ? "self"
                   : d.kind == TuneDraft::Kind::Lookup ? "lookup"
                                                       : "none"},
          {"self_type", std::string(type_traits(d.self_type).name)},
          {"layers", d.layers}};
}

TuneDraft parse_draft_json(const json& j) {
  const std::string kind = j.at("kind").get<std::string>();
  const auto type = type_from_name(j.at("self_type").get<std::string>());
  if (!type) throw json::other_error::create(501, "unknown self_type", &j);
  return make_tune_draft(kind == "self"     ? TuneDraft::Kind::Self
                         : kind == "lookup" ? TuneDraft::Kind::Lookup
                                            : TuneDraft::Kind::None,
                         *type, j.at("layers").get<int64_t>());
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
  std::string in_path = cfg.base;
  if (!c.prune.none()) {
    PLM_CHECK(prune_for_tune(dir, cfg, c.prune, n_threads, ev));
    in_path = tune_pruned_path(dir, c.prune);
  }
  PLM_TRY(GgufFile in, GgufFile::open(in_path));
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
std::string tune_pruned_path(const std::string& dir, const TunePrune& p) {
  return dir + "/models/pruned." + p.name + ".gguf";
}
std::string tune_speed_path(const std::string& dir, const TuneCandidate& c) { return dir + "/speed/" + c.id + ".json"; }

Status prune_for_tune(const std::string& dir, const TuneConfig& cfg, const TunePrune& p, int n_threads,
                      const TuneJobEvents& ev) {
  const std::string out = tune_pruned_path(dir, p);
  if (fs::exists(out)) return Status::Ok();
  PLM_TRY(FileLock lock, FileLock::take(out + ".lock"));
  if (fs::exists(out)) return Status::Ok();  // written while we waited
  ModelLoadOptions lo;
  lo.decode_layout = false;  // pruning reads the file's rows
  PLM_TRY(std::unique_ptr<Model> model, Model::load(cfg.base, lo));
  PruneOptions o = tune_prune_options(p, model->config().n_layer);
  PLM_CHECK(check_prunable(*model, o));
  std::optional<PruneStats> stats;
  std::vector<std::vector<int32_t>> seqs;
  if (prune_needs_calibration(o)) {
    if (cfg.calib.empty())
      return Error("prune level '" + p.name + "' chooses by calibration scores: give --calib TEXT").about("calib");
    if (ev.note) ev.note("tune: pruning " + cfg.base + " (" + p.name + ") with scores over " + cfg.calib);
    PLM_TRY(seqs, calib_sequences(*model, cfg));
    PruneStatsOptions so;
    so.gram = o.repair;
    so.n_threads = n_threads_or_cores(n_threads);
    PLM_TRY(stats, collect_prune_stats(*model, seqs, so));
  }
  PruneOptions first = o;
  first.repair = false;  // the blocks to drop are known only after the first pass
  PLM_TRY(PrunePlan plan, plan_pruning(*model, stats ? &*stats : nullptr, first));
  if (o.repair) {
    plan.repair = true;
    if (const auto runs = absorb_runs(*model, plan); !runs.empty()) {
      PruneStatsOptions so;  // a second pass for what the dropped blocks add to the residual stream
      so.gram = true;
      so.absorb = runs;
      so.n_threads = n_threads_or_cores(n_threads);
      PLM_TRY(stats, collect_prune_stats(*model, seqs, so));
    }
    PLM_TRY(plan, plan_pruning(*model, &*stats, o));
  }
  std::error_code ec;
  fs::create_directories(fs::path(out).parent_path(), ec);
  PLM_TRY(PruneResult r, write_pruned_model(*model, plan, stats ? &*stats : nullptr, o, out));
  if (ev.note) ev.note("tune: wrote " + out + " (" + human_bytes(static_cast<double>(r.file_bytes)) + ")");
  return Status::Ok();
}

double TuneDraftSpeed::predicted_speedup() const {
  if (draft == "none" || rounds == 0) return 1.0;
  return pocketlm::predicted_speedup(acceptance(), static_cast<double>(drafted) / static_cast<double>(rounds),
                                     draft_cost);
}

namespace {

json speed_json(const TuneDraftSpeed& r) {
  return {{"draft", r.draft},
          {"examples", r.examples},
          {"tokens", r.tokens},
          {"seconds", r.seconds},
          {"rounds", r.rounds},
          {"drafted", r.drafted},
          {"accepted", r.accepted},
          {"draft_cost", r.draft_cost},
          {"same_output", r.same_output},
          {"differing", r.differing},
          {"error", r.error}};
}

}  // namespace

Expected<std::vector<TuneDraftSpeed>> run_tune_speed(const std::string& dir, const TuneConfig& cfg,
                                                     const std::string& id, const std::vector<TuneDraft>& drafts,
                                                     int n_threads, const TuneJobEvents& ev) {
  const TuneCandidate* c = find_candidate(cfg, id);
  if (!c) return Error(dir + "/tune.json: no candidate '" + id + "' in this tune");
  std::vector<TuneDraft> todo{make_tune_draft(TuneDraft::Kind::None)};
  for (const TuneDraft& d : drafts)
    if (d.kind != TuneDraft::Kind::None) todo.push_back(d);
  const std::string path = tune_speed_path(dir, *c);
  if (fs::exists(path)) {  // measured before (a restart): the same drafts are not measured again
    PLM_TRY(std::string text, read_whole(path));
    try {
      const json j = json::parse(text);
      std::vector<TuneDraftSpeed> out;
      for (const json& x : j.at("drafts")) {
        TuneDraftSpeed r;
        r.draft = x.at("draft").get<std::string>();
        r.examples = x.at("examples").get<int64_t>();
        r.tokens = x.at("tokens").get<int64_t>();
        r.seconds = x.at("seconds").get<double>();
        r.rounds = x.at("rounds").get<int64_t>();
        r.drafted = x.at("drafted").get<int64_t>();
        r.accepted = x.at("accepted").get<int64_t>();
        r.draft_cost = x.at("draft_cost").get<double>();
        r.same_output = x.at("same_output").get<bool>();
        r.differing = x.at("differing").get<int64_t>();
        r.error = x.at("error").get<std::string>();
        out.push_back(r);
      }
      bool same = out.size() == todo.size();
      for (size_t i = 0; same && i < out.size(); ++i) same = out[i].draft == todo[i].name;
      if (same && j.at("examples").get<int64_t>() == cfg.speed_examples) return out;
    } catch (const json::exception&) {
      // measured again below
    }
  }
  const std::string model_path = tune_model_path(dir, *c);
  PLM_TRY(std::unique_ptr<Model> model, Model::load(model_path));
  PLM_TRY(std::vector<TaskExample> examples, tune_examples(cfg));
  const size_t n = static_cast<size_t>(std::min<int64_t>(cfg.speed_examples, static_cast<int64_t>(examples.size())));
  std::string tmpl;
  if (auto t = model->gguf().get_string_or("tokenizer.chat_template", "")) tmpl = *t;
  std::vector<TuneDraftSpeed> out;
  std::map<size_t, std::string> plain_outputs;  // by example
  for (const TuneDraft& d : todo) {
    TuneDraftSpeed r;
    r.draft = d.name;
    SessionOptions so;
    so.n_ctx = cfg.n_ctx;
    so.n_threads = n_threads_or_cores(n_threads);
    PLM_TRY(so.kv_type, parse_kv_type(c->kv_type));
    DraftConfig dc;
    if (d.kind == TuneDraft::Kind::Self) {
      dc.self_type = d.self_type;
      dc.self_layers = d.layers;
    }
    dc.lookup = d.kind == TuneDraft::Kind::Lookup;
    auto src = make_draft_source(*model, dc, so);
    if (!src) {
      r.error = src.error().message();
      out.push_back(r);
      continue;
    }
    PLM_TRY(std::unique_ptr<Session> session, Session::create(*model, so));
    TaskRunner runner(*model, *session, tmpl);
    if (*src) {
      runner.set_draft(src->get(), DraftParams{});
      r.draft_cost = (*src)->cost_per_token();
    }
    for (size_t i = 0; i < n; ++i) {
      auto run = runner.run(examples[i], cfg.max_tokens);
      if (!run) continue;  // a prompt longer than the context: left out for every draft alike
      ++r.examples;
      r.tokens += run->tokens;
      r.seconds += run->seconds;
      if (d.kind == TuneDraft::Kind::None)
        plain_outputs[i] = run->output;
      else if (!plain_outputs.count(i) || plain_outputs.at(i) != run->output)
        r.same_output = false, ++r.differing;
    }
    const SpeculativeStats& st = runner.draft_stats();
    r.rounds = st.rounds;
    r.drafted = st.drafted;
    r.accepted = st.accepted;
    if (ev.note)
      ev.note("tune: speed of " + id + " with draft " + d.name + ": " + std::to_string(r.tokens) + " tokens in " +
              std::to_string(r.seconds) + " s" +
              (r.drafted > 0 ? ", accepted " + std::to_string(r.accepted) + "/" + std::to_string(r.drafted) : ""));
    out.push_back(r);
  }
  json arr = json::array();
  for (const auto& r : out) arr.push_back(speed_json(r));
  PLM_CHECK(write_text_atomic(
      path, json({{"candidate", id}, {"examples", cfg.speed_examples}, {"drafts", arr}}).dump(1) + "\n"));
  return out;
}

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
  json drafts = json::array();
  for (const auto& d : c.drafts) drafts.push_back(draft_json(d));
  j["drafts"] = drafts;
  j["speed_examples"] = c.speed_examples;
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
      if (x.contains("prune")) {
        const json& p = x.at("prune");
        t.prune.name = p.at("name").get<std::string>();
        t.prune.drop = p.at("drop").get<int64_t>();
        t.prune.drop_layers = p.at("drop_layers").get<std::vector<int64_t>>();
        t.prune.ffn_keep = p.at("ffn_keep").get<double>();
        t.prune.heads_keep = p.at("heads_keep").get<double>();
        t.prune.repair = p.at("repair").get<bool>();
      }
      c.candidates.push_back(std::move(t));
    }
    if (j.contains("drafts"))
      for (const json& d : j.at("drafts")) c.drafts.push_back(parse_draft_json(d));
    c.speed_examples = j.value("speed_examples", int64_t{0});
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
  for (auto it = ja.begin(); it != ja.end(); ++it) {
    // The draft choices and their examples change no job (the driver measures them after the last stage, and
    // measures again when they differ from what DIR/speed/ holds): a restart may change them.
    if (it.key() == "drafts" || it.key() == "speed_examples") continue;
    if (!jb.contains(it.key()) || jb.at(it.key()) != it.value()) return it.key();
  }
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
  std::set<std::string> pruned;
  for (const auto& c : cfg.candidates) {
    auto m = parse_quant_method(c.method);
    if (m && method_needs_calibration(*m, false) && !fs::exists(tune_model_path(dir, c))) calib = true;
    // The pruned bases every quantization of a level starts from, made once here so parallel jobs do not wait.
    if (!c.prune.none() && !fs::exists(tune_model_path(dir, c)) && pruned.insert(c.prune.name).second)
      PLM_CHECK(prune_for_tune(dir, cfg, c.prune, n_threads, ev));
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
