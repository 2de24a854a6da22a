#include "eval/perplexity_run.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "eval/log_probs.h"
#include "util/atomic_file.h"
#include "util/byte_size.h"
#include "util/stats.h"
#include "util/thread_pool.h"

namespace pocketlm::eval {

namespace {

nlohmann::json mean_err(const MeanErr& m) { return {{"value", m.value}, {"error", m.err}}; }

Expected<std::string> read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error(path + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Error(path + ": read error");
  return ss.str();
}

// A KL-divergence base file must hold this model's tokenizer and, when a text is given, that text's tokens.
Status check_base_matches(const LogitsReader& base, const Tokenizer& tok, const std::string& text_path,
                          const std::vector<int32_t>* text_ids) {
  const LogitsFileInfo& in = base.info();
  const std::string& name = base.path();
  if (in.n_vocab != tok.n_vocab())
    return Error(name + ": made with a vocabulary of " + std::to_string(in.n_vocab) + " tokens, but this model's has " +
                 std::to_string(tok.n_vocab()) + ": a different tokenizer");
  if (in.format == LogitsFileInfo::Format::Pocketlm && in.tokenizer_fingerprint != tokenizer_fingerprint(tok)) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "made with a different tokenizer (fingerprint %016llx, this model's is %016llx)",
                  static_cast<unsigned long long>(in.tokenizer_fingerprint),
                  static_cast<unsigned long long>(tokenizer_fingerprint(tok)));
    return Error(name + ": " + buf + "; KL divergence needs the same vocabulary");
  }
  const int32_t bos = tok.add_bos() ? tok.bos() : -1;
  if (in.format == LogitsFileInfo::Format::Pocketlm && (in.bos_replaced != (bos >= 0) || (bos >= 0 && in.bos != bos)))
    return Error(name + ": saved with BOS " + (in.bos_replaced ? std::to_string(in.bos) : std::string("off")) +
                 ", but this model " + (bos >= 0 ? "adds BOS " + std::to_string(bos) : std::string("adds none")));
  if (text_ids != nullptr) {
    const auto file_ids = base.tokens();
    if (text_ids->size() < file_ids.size())
      return Error(name + " holds " + std::to_string(file_ids.size()) + " tokens, but " + text_path +
                   " tokenizes to only " + std::to_string(text_ids->size()) +
                   ": the logits were saved over another text");
    for (size_t i = 0; i < file_ids.size(); ++i)
      if (file_ids[i] != (*text_ids)[i])
        return Error(name + ": token " + std::to_string(i) + " is id " + std::to_string(file_ids[i]) + ", but " +
                     text_path + " has id " + std::to_string((*text_ids)[i]) +
                     " there: the logits were saved over another text (or with another tokenizer)");
  }
  return Status::Ok();
}

void note(const PerplexityEvents& ev, const std::string& line) {
  if (ev.note) ev.note(line);
}

}  // namespace

double PerplexityOutcome::tokens_per_second() const {
  return eval_seconds > 0 ? static_cast<double>(n_chunk * n_ctx) / eval_seconds : 0.0;
}

Expected<PerplexityOutcome> run_perplexity(const Model& model, const std::string& model_path, const PerplexityJob& job,
                                           const PerplexityEvents& ev) {
  const bool kld_mode = !job.base_logits.empty();
  const Tokenizer& tok = model.tokenizer();
  PerplexityOutcome out;
  out.model = model_path;
  out.text = job.text_path;
  out.base_logits = job.base_logits;

  std::optional<LogitsReader> base;
  if (kld_mode) {
    PLM_TRY(auto r, LogitsReader::open(job.base_logits));
    base.emplace(std::move(r));
    if (job.n_ctx && *job.n_ctx != base->info().n_ctx)
      return Error(job.base_logits + " was saved with a context of " + std::to_string(base->info().n_ctx) +
                   " tokens, but " + std::to_string(*job.n_ctx) +
                   " was asked for (leave the context size out to use the file's)")
          .about("n_ctx");
    if (job.max_chunks > base->info().n_chunk)
      return Error(std::to_string(job.max_chunks) + " chunks asked for, but " + job.base_logits + " holds only " +
                   std::to_string(base->info().n_chunk) + " chunks")
          .about("max_chunks");
  } else if (job.text_path.empty()) {
    return Error("no text to score: give a text file (or a base logits file to score against)");
  }
  if (!job.save_logits.empty()) {
    if (kld_mode) return Error("saving log-probs and scoring against a base file are two runs: give one of them");
    std::error_code ec;
    for (const std::string& in : {model_path, job.text_path})
      if (!in.empty() && std::filesystem::equivalent(job.save_logits, in, ec))
        return Error("saving the log-probs to " + job.save_logits + " would overwrite the input " + in);
  }

  std::vector<int32_t> ids;
  if (!job.text_path.empty()) {
    PLM_TRY(std::string text, read_text(job.text_path));
    const double t0 = now_seconds();
    auto r = tokenize_for_perplexity(tok, text);
    if (!r) return Error(model_path + ": " + r.error().message());
    ids = std::move(r).value();
    out.text_bytes = text.size();
    out.text_tokens = ids.size();
    out.tokenize_seconds = now_seconds() - t0;
    char buf[256];
    std::snprintf(buf, sizeof buf, "%zu bytes, %zu tokens (tokenized in %.2f s)", text.size(), ids.size(),
                  out.tokenize_seconds);
    note(ev, job.text_path + ": " + buf);
  }
  if (kld_mode) PLM_CHECK(check_base_matches(*base, tok, job.text_path, job.text_path.empty() ? nullptr : &ids));

  const int64_t n_ctx = kld_mode ? base->info().n_ctx : job.n_ctx.value_or(512);
  const int64_t n_tokens = kld_mode ? static_cast<int64_t>(base->tokens().size()) : static_cast<int64_t>(ids.size());
  PLM_TRY(const ChunkPlan plan,
          plan_chunks(tok, n_tokens, n_ctx, job.max_chunks, kld_mode ? job.base_logits : job.text_path));
  if (n_ctx > model.config().n_ctx_train)
    out.warning = "the model was trained on a context of " + std::to_string(model.config().n_ctx_train) +
                  " tokens; the chunks hold " + std::to_string(n_ctx);

  std::optional<LogitsWriter> writer;
  if (!job.save_logits.empty()) {
    LogitsFileInfo info;
    info.n_ctx = n_ctx;
    info.n_vocab = tok.n_vocab();
    info.n_chunk = plan.n_chunk;
    info.bos_replaced = plan.bos >= 0;
    info.bos = plan.bos;
    info.tokenizer_fingerprint = tokenizer_fingerprint(tok);
    // Announced before the file exists: a signal between its creation and the announcement would leave it.
    if (ev.partial_file) ev.partial_file(AtomicFile::temp_path_for(job.save_logits));
    auto w = LogitsWriter::create(job.save_logits, info,
                                  std::span<const int32_t>(ids).first(static_cast<size_t>(plan.n_chunk * n_ctx)));
    if (!w) {
      if (ev.partial_file) ev.partial_file("");
      return w.error();
    }
    writer.emplace(std::move(*w));
  }

  SessionOptions so = job.session;
  so.n_ctx = n_ctx;
  PLM_TRY(auto session, Session::create(model, so));
  out.n_ctx = n_ctx;
  out.n_chunk = plan.n_chunk;
  out.n_batch = std::min(job.n_batch, n_ctx);
  out.scored_per_chunk = plan.scored();
  out.threads = so.thread_pool ? so.thread_pool->size() : so.n_threads > 0 ? so.n_threads : physical_cores();
  out.kv_type = kv_type_name(so.kv_type);
  {
    char buf[256];
    std::snprintf(
        buf, sizeof buf, "%lld chunks of %lld tokens, scoring the last %lld of each; batch %lld, %d threads, KV %s",
        static_cast<long long>(plan.n_chunk), static_cast<long long>(n_ctx), static_cast<long long>(plan.scored()),
        static_cast<long long>(out.n_batch), out.threads, out.kv_type.c_str());
    note(ev, buf);
  }
  if (writer) {
    out.saved_bytes_per_position = log_prob_row_bytes(tok.n_vocab());
    note(ev, "saving log-probs to " + job.save_logits + " (" +
                 human_bytes(static_cast<double>(logits_file_bytes(n_ctx, tok.n_vocab(), plan.n_chunk))) + ": " +
                 std::to_string(out.saved_bytes_per_position) + " bytes per scored position)");
  }
  if (ev.start) ev.start(plan.n_chunk * n_ctx);

  const double t_eval = now_seconds();
  if (!kld_mode) {
    PLM_TRY(PerplexityResult r, perplexity(*session, ids, plan, out.n_batch, writer ? &*writer : nullptr,
                                           ev.tokens_done, [&](const PerplexityResult& so_far) {
                                             if (ev.ppl_chunk)
                                               ev.ppl_chunk(static_cast<int64_t>(so_far.running_ppl.size()),
                                                            so_far.running_ppl.back());
                                           }));
    if (writer) {
      PLM_CHECK(writer->commit());
      if (ev.partial_file) ev.partial_file("");
      out.saved_bytes = writer->bytes_written();
    }
    out.ppl = std::move(r);
  } else {
    PLM_TRY(KldRun r, kl_divergence(*session, *base, plan, out.n_batch, ev.tokens_done, [&](const KldRun& so_far) {
              if (ev.kld_chunk) ev.kld_chunk(static_cast<int64_t>(so_far.per_chunk.size()), so_far.per_chunk.back());
            }));
    out.kld = r.acc.report();
  }
  out.eval_seconds = now_seconds() - t_eval;
  return out;
}

nlohmann::json PerplexityOutcome::to_json() const {
  nlohmann::json j = {{"model", model},     {"n_ctx", n_ctx},     {"chunks", n_chunk},
                      {"n_batch", n_batch}, {"threads", threads}, {"kv_type", kv_type}};
  if (!text.empty()) j["text"] = text;
  if (!base_logits.empty()) j["base_logits"] = base_logits;
  if (ppl) {
    j["scored_tokens"] = ppl->count;
    j["ppl"] = ppl->ppl();
    j["ppl_error"] = ppl->ppl_error();
    j["running_ppl"] = ppl->running_ppl;
  }
  if (saved_bytes) j["saved_logits"] = {{"bytes", *saved_bytes}, {"bytes_per_position", saved_bytes_per_position}};
  if (kld) {
    j["scored_tokens"] = kld->positions;
    j["kl_divergence"] = kld_json(*kld);
  }
  j["seconds"] = eval_seconds;
  j["tokens_per_second"] = tokens_per_second();
  return j;
}

nlohmann::json kld_json(const KldReport& r) {
  return {{"positions", r.positions},
          {"ppl", mean_err(r.ppl)},
          {"ppl_base", mean_err(r.ppl_base)},
          {"ln_ppl_correlation", r.ln_ppl_correlation},
          {"ln_ppl_ratio", mean_err(r.ln_ppl_ratio)},
          {"ppl_ratio", mean_err(r.ppl_ratio)},
          {"ppl_diff", mean_err(r.ppl_diff)},
          {"kld",
           {{"mean", r.kld.value},
            {"mean_error", r.kld.err},
            {"max", r.kld_max},
            {"p99.9", r.kld_p999},
            {"p99", r.kld_p99},
            {"p95", r.kld_p95},
            {"p90", r.kld_p90},
            {"median", r.kld_median},
            {"p10", r.kld_p10},
            {"p5", r.kld_p5},
            {"p1", r.kld_p1},
            {"p0.1", r.kld_p01},
            {"min", r.kld_min}}},
          {"delta_p",
           {{"mean", r.mean_dp.value},
            {"mean_error", r.mean_dp.err},
            {"rms", r.rms_dp.value},
            {"rms_error", r.rms_dp.err},
            {"max", r.dp_max},
            {"p99.9", r.dp_p999},
            {"p99", r.dp_p99},
            {"p95", r.dp_p95},
            {"p90", r.dp_p90},
            {"p75", r.dp_p75},
            {"median", r.dp_median},
            {"p25", r.dp_p25},
            {"p10", r.dp_p10},
            {"p5", r.dp_p5},
            {"p1", r.dp_p1},
            {"p0.1", r.dp_p01},
            {"min", r.dp_min}}},
          {"same_top", {{"value", r.same_top.value}, {"error", r.same_top.err}, {"count", r.same_top_count}}}};
}

std::string format_kld_report(const KldReport& r) {
  std::string s;
  char line[128];
  auto add = [&](const char* fmt, auto... v) {
    std::snprintf(line, sizeof line, fmt, v...);
    s += line;
  };
  s += "====== Perplexity statistics ======\n";
  add("Mean PPL(Q)                   : %10.6f ± %10.6f\n", r.ppl.value, r.ppl.err);
  add("Mean PPL(base)                : %10.6f ± %10.6f\n", r.ppl_base.value, r.ppl_base.err);
  add("Cor(ln(PPL(Q)), ln(PPL(base))): %6.2f%%\n", 100.0 * r.ln_ppl_correlation);
  add("Mean ln(PPL(Q)/PPL(base))     : %10.6f ± %10.6f\n", r.ln_ppl_ratio.value, r.ln_ppl_ratio.err);
  add("Mean PPL(Q)/PPL(base)         : %10.6f ± %10.6f\n", r.ppl_ratio.value, r.ppl_ratio.err);
  add("Mean PPL(Q)-PPL(base)         : %10.6f ± %10.6f\n\n", r.ppl_diff.value, r.ppl_diff.err);
  s += "====== KL divergence statistics ======\n";
  add("Mean    KLD: %10.6f ± %10.6f\n", r.kld.value, r.kld.err);
  add("Maximum KLD: %10.6f\n", r.kld_max);
  add("99.9%%   KLD: %10.6f\n", r.kld_p999);
  add("99.0%%   KLD: %10.6f\n", r.kld_p99);
  add("95.0%%   KLD: %10.6f\n", r.kld_p95);
  add("90.0%%   KLD: %10.6f\n", r.kld_p90);
  add("Median  KLD: %10.6f\n", r.kld_median);
  add("10.0%%   KLD: %10.6f\n", r.kld_p10);
  add(" 5.0%%   KLD: %10.6f\n", r.kld_p5);
  add(" 1.0%%   KLD: %10.6f\n", r.kld_p1);
  add(" 0.1%%   KLD: %10.6f\n", r.kld_p01);
  add("Minimum KLD: %10.6f\n\n", r.kld_min);
  s += "====== Token probability statistics ======\n";
  add("Mean    Δp: %6.3f ± %5.3f %%\n", 100.0 * r.mean_dp.value, 100.0 * r.mean_dp.err);
  add("Maximum Δp: %6.3f%%\n", 100.0 * r.dp_max);
  add("99.9%%   Δp: %6.3f%%\n", 100.0 * r.dp_p999);
  add("99.0%%   Δp: %6.3f%%\n", 100.0 * r.dp_p99);
  add("95.0%%   Δp: %6.3f%%\n", 100.0 * r.dp_p95);
  add("90.0%%   Δp: %6.3f%%\n", 100.0 * r.dp_p90);
  add("75.0%%   Δp: %6.3f%%\n", 100.0 * r.dp_p75);
  add("Median  Δp: %6.3f%%\n", 100.0 * r.dp_median);
  add("25.0%%   Δp: %6.3f%%\n", 100.0 * r.dp_p25);
  add("10.0%%   Δp: %6.3f%%\n", 100.0 * r.dp_p10);
  add(" 5.0%%   Δp: %6.3f%%\n", 100.0 * r.dp_p5);
  add(" 1.0%%   Δp: %6.3f%%\n", 100.0 * r.dp_p1);
  add(" 0.1%%   Δp: %6.3f%%\n", 100.0 * r.dp_p01);
  add("Minimum Δp: %6.3f%%\n", 100.0 * r.dp_min);
  add("RMS Δp    : %6.3f ± %5.3f %%\n", 100.0 * r.rms_dp.value, 100.0 * r.rms_dp.err);
  add("Same top p: %6.3f ± %5.3f %%\n", 100.0 * r.same_top.value, 100.0 * r.same_top.err);
  return s;
}

}  // namespace pocketlm::eval
