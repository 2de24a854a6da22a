#include "tune/tune_report.h"

#include <algorithm>
#include <cstdio>

#include "eval/svg_plot.h"
#include "tune/tune_search.h"
#include "util/byte_size.h"

namespace pocketlm {
namespace {

std::string fmt(double v, int decimals = 2) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  return b;
}
std::string interval(const Interval& i) { return fmt(i.mean) + " [" + fmt(i.lo) + ", " + fmt(i.hi) + "]"; }
std::string esc(const std::string& s) { return xml_escape(s); }
std::string mib(double bytes) { return fmt(bytes / (1024.0 * 1024.0), 2); }
std::string join_ints(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

std::string pareto_svg(const TuneOutcome& o) {
  SvgChart c;
  c.title = "Candidates: file size against task score (stage 0, every candidate on the same examples)";
  c.x_label = "file size (MiB)";
  c.y_label = "mean task score (primary metrics, 0-100)";
  SvgSeries all{"candidate", "#9aa7b8", false, false, true, {}, {}};
  SvgSeries front{"Pareto front", "#1f77b4", false, false, false, {}, {}};
  SvgSeries pick{"pick", "#d62728", false, false, true, {}, {}};
  std::vector<const TuneCandidateResult*> f;
  for (const auto& r : o.candidates) {
    if (r.last_stage < 0) continue;
    all.points.emplace_back(static_cast<double>(r.file_bytes) / 1048576.0, r.score_stage0.mean);
    all.labels.push_back(r.on_front ? "" : r.fit.candidate.id);
    if (r.on_front) f.push_back(&r);
  }
  std::sort(f.begin(), f.end(), [](auto* a, auto* b) { return a->file_bytes < b->file_bytes; });
  for (auto* r : f) {
    front.points.emplace_back(static_cast<double>(r->file_bytes) / 1048576.0, r->score_stage0.mean);
    front.labels.push_back(r->fit.candidate.id);
  }
  const auto& p = o.candidates[o.pick];
  pick.points.emplace_back(static_cast<double>(p.file_bytes) / 1048576.0, p.score_stage0.mean);
  pick.labels.push_back("");
  c.series = {all, front, pick};
  return render_svg(c);
}

std::string kld_svg(const TuneOutcome& o) {
  SvgChart c;
  c.title = "KL divergence from the base against task score (stage 0)";
  c.x_label = "mean KLD vs the base (nats/token)";
  c.y_label = "mean task score (0-100)";
  SvgSeries all{"candidate", "#2ca02c", false, false, true, {}, {}};
  SvgSeries pick{"pick", "#d62728", false, false, true, {}, {}};
  for (const auto& r : o.candidates) {
    if (r.last_stage < 0 || !r.kld) continue;
    all.points.emplace_back(*r.kld, r.score_stage0.mean);
    all.labels.push_back(r.fit.candidate.id);
  }
  const auto& p = o.candidates[o.pick];
  if (p.kld) pick.points.emplace_back(*p.kld, p.score_stage0.mean), pick.labels.push_back("");
  c.series = {all, pick};
  return render_svg(c);
}

}  // namespace

std::string tune_report_html(const TuneOutcome& o) {
  const TuneCandidateResult& p = o.candidates[o.pick];
  std::string h;
  h += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>pocketlm tune: " + esc(o.base) +
       "</title>\n<style>body{font-family:DejaVu Sans,Arial,sans-serif;margin:24px;max-width:1200px;color:#222}"
       "table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}"
       "th{background:#f2f2f2}td.l{text-align:left}tr.pick{background:#fde8e8;font-weight:bold}tr.out{color:#999}"
       "code,pre{background:#f6f6f6;padding:2px 4px}pre{padding:8px;white-space:pre-wrap;word-break:break-all}.plots "
       "svg{max-width:100%;height:auto}"
       "</style></head><body>\n";
  h += "<h1>pocketlm tune</h1>\n<p>Base <code>" + esc(o.base) + "</code>; budget " +
       esc(human_bytes(static_cast<double>(o.budget_bytes))) +
       (o.device.empty() ? "" : " (device " + esc(o.device) + ")") + " at a context of " + std::to_string(o.n_ctx) +
       " tokens; stages of ";
  for (size_t s = 0; s < o.stage_examples.size(); ++s) h += (s ? ", " : "") + std::to_string(o.stage_examples[s]);
  h += " examples.</p>\n";
  if (!o.speed_device.empty())
    h += "<p>No device was given: predicted speeds are for the machine tune ran on, measured (the <code>this</code> "
         "profile: " +
         esc(o.speed_device) +
         "). They depend on that measurement, so they are in <code>speed.json</code>, not "
         "<code>pareto.json</code>.</p>\n";
  h += "<h2 id=\"pick\">The pick: " + esc(p.fit.candidate.id) + "</h2>\n<p>File <code>pick.gguf</code> (" +
       esc(human_bytes(static_cast<double>(p.file_bytes))) + ", " + fmt(p.bits_per_weight) +
       " bits/weight), run with KV type <code>" + esc(p.fit.candidate.kv_type) + "</code>" +
       (p.best_draft.kind != TuneDraft::Kind::None ? " and the draft <code>" + esc(p.best_draft.flags()) + "</code>"
                                                   : std::string()) +
       ": <code>" + esc(o.pick_command) + "</code>. Why: " + esc(o.pick_why) + ".</p>\n";
  h += "<div class=\"plots\" id=\"pareto\">\n" + pareto_svg(o) + "</div>\n";
  bool any_kld = false;
  for (const auto& r : o.candidates) any_kld = any_kld || r.kld.has_value();
  if (any_kld) {
    h += "<div class=\"plots\" id=\"kld\">\n" + kld_svg(o) + "</div>\n";
    if (o.kld_vs_task_pairs.decided > 0)
      h += "<p>KLD against the task score: <b>" + std::to_string(o.kld_vs_task_pairs.opposite) + " of " +
           std::to_string(o.kld_vs_task_pairs.decided) + "</b> candidate pairs disagree (" +
           fmt(100 * o.kld_vs_task_pairs.rate(), 1) + " %: the lower KLD scores lower on the tasks); per example " +
           std::to_string(o.kld_vs_task_examples.opposite) + " of " + std::to_string(o.kld_vs_task_examples.decided) +
           " (" + fmt(100 * o.kld_vs_task_examples.rate(), 1) + " %).</p>\n";
  }
  h += "<h2>Candidates</h2>\n<table id=\"candidates\"><tr><th>candidate</th><th>fits</th><th>file "
       "MiB</th><th>bits/weight</th>"
       "<th>predicted peak RSS MiB</th><th>predicted decode t/s</th><th>stage-0 score</th><th>last "
       "stage</th><th>examples</th>"
       "<th>score [95 % interval]</th><th>vs leader</th><th>KLD</th><th>PPL</th><th>front</th><th "
       "class=\"l\">decision</th></tr>\n";
  for (size_t i = 0; i < o.candidates.size(); ++i) {
    const auto& r = o.candidates[i];
    const bool ev = r.last_stage >= 0;
    h += std::string("<tr") + (i == o.pick ? " class=\"pick\"" : (!ev ? " class=\"out\"" : "")) + "><td class=\"l\">" +
         esc(r.fit.candidate.id) + "</td><td>" + (r.fit.fits ? "yes" : "no") + "</td><td>" +
         (ev ? mib(static_cast<double>(r.file_bytes)) : "") + "</td><td>" + (ev ? fmt(r.bits_per_weight) : "") +
         "</td><td>" + mib(static_cast<double>(r.fit.peak_rss_bytes)) + "</td><td>" +
         (r.fit.decode_tps        ? fmt(*r.fit.decode_tps, 1)
          : r.fit.this_decode_tps ? fmt(*r.fit.this_decode_tps, 1) + "*"
                                  : "") +
         "</td><td>" + (ev ? interval(r.score_stage0) : "") + "</td><td>" + (ev ? std::to_string(r.last_stage) : "") +
         "</td><td>" + (ev ? std::to_string(r.examples) : "") + "</td><td>" + (ev ? interval(r.score) : "") +
         "</td><td>" + (ev ? interval(r.vs_leader) : "") + "</td><td>" + (r.kld ? fmt(*r.kld, 4) : "") + "</td><td>" +
         (r.ppl ? fmt(*r.ppl, 2) : "") + "</td><td>" + (ev && r.on_front ? "yes" : "") + "</td><td class=\"l\">" +
         esc(r.decision) + "</td></tr>\n";
  }
  h += "</table>\n";
  if (!o.speed_device.empty()) h += "<p>* predicted for the machine tune ran on (measured).</p>\n";
  bool any_draft = false;
  for (const auto& r : o.candidates) any_draft = any_draft || !r.drafts.empty();
  if (any_draft) {
    h += "<h2>Draft choices of the finalists</h2>\n<p>Speculative decoding is lossless (the same greedy output up "
         "to rounding in the batched verification pass: compared, below), so a draft changes speed and memory, not "
         "scores: none were measured again. Each draft that fits "
         "the budget beside the candidate ran greedy generation on the first examples; the acceptance gives the "
         "predicted speedup E(k) / (1 + k (c + 0.1)) (docs/speculative.md), which chooses each finalist's best "
         "draft. Measured tokens/s (prompt included) are timing on this machine, with whatever else ran; where they "
         "disagree with the prediction (a tiny model, whose per-round overhead the formula leaves out), trust an idle "
         "machine's measurement.</p>\n"
         "<table id=\"drafts\"><tr><th class=\"l\">candidate</th><th class=\"l\">draft</th><th>fits</th><th>draft "
         "MiB</th><th>peak RSS MiB</th><th>accepted / drafted</th><th>predicted speedup</th><th>measured t/s</th>"
         "<th class=\"l\">note</th></tr>\n";
    for (size_t i = 0; i < o.candidates.size(); ++i) {
      const auto& r = o.candidates[i];
      const TuneDraftSpeed* fastest = nullptr;
      for (const auto& x : r.speeds)
        if (x.error.empty() && x.seconds > 0 && (!fastest || x.tps() > fastest->tps())) fastest = &x;
      for (const DraftFit& d : r.drafts) {
        const TuneDraftSpeed* sp = nullptr;
        for (const auto& x : r.speeds)
          if (x.draft == d.draft.name) sp = &x;
        std::string note = d.refused;
        if (sp && !sp->error.empty()) note = sp->error;
        if (r.best_draft.name == d.draft.name && d.draft.kind != TuneDraft::Kind::None) note = "best draft";
        if (fastest && fastest->draft == d.draft.name)
          note += (note.empty() ? "" : "; ") + std::string("fastest measured here");
        if (sp && !sp->same_output)
          note += (note.empty() ? "" : "; ") + std::string("greedy output differs from plain decoding on ") +
                  std::to_string(sp->differing) + " of " + std::to_string(sp->examples) + " examples (rounding)";
        const bool measured = sp && sp->error.empty() && sp->examples > 0;
        h += std::string("<tr") + (i == o.pick && r.best_draft.name == d.draft.name ? " class=\"pick\"" : "") +
             "><td class=\"l\">" + esc(r.fit.candidate.id) + "</td><td class=\"l\">" + esc(d.draft.name) + "</td><td>" +
             (d.fits && d.refused.empty() ? "yes" : "no") + "</td><td>" + mib(static_cast<double>(d.draft_bytes)) +
             "</td><td>" + mib(static_cast<double>(d.peak_rss_bytes)) + "</td><td>" +
             (measured && sp->drafted > 0 ? std::to_string(sp->accepted) + " / " + std::to_string(sp->drafted) : "") +
             "</td><td>" + (measured ? fmt(sp->predicted_speedup()) : "") + "</td><td>" +
             (measured ? fmt(sp->tps(), 1) : "") + "</td><td class=\"l\">" + esc(note) + "</td></tr>\n";
      }
    }
    h += "</table>\n";
  }
  h += "<h2>Per-task wins and losses of the pick</h2>\n<p>Per example on the task's primary metric, over the examples "
       "both "
       "were scored on.</p>\n<table id=\"wins\"><tr><th class=\"l\">against</th><th "
       "class=\"l\">task</th><th>examples</th>"
       "<th>wins</th><th>losses</th><th>ties</th><th>pick mean</th><th>other mean</th></tr>\n";
  for (const auto& w : o.wins)
    h += "<tr><td class=\"l\">" + esc(w.other) + "</td><td class=\"l\">" + esc(w.task) + "</td><td>" +
         std::to_string(w.n) + "</td><td>" + std::to_string(w.wl.wins) + "</td><td>" + std::to_string(w.wl.losses) +
         "</td><td>" + std::to_string(w.wl.ties) + "</td><td>" + fmt(w.pick_mean) + "</td><td>" + fmt(w.other_mean) +
         "</td></tr>\n";
  h += "</table>\n";
  h += "<h2>Reproduce</h2>\n<pre>" + esc(o.command) + "\n";
  const auto& c = p.fit.candidate;
  std::string q = "pocketlm quantize " + o.base + " pick.gguf " + c.target;
  if (c.method != "rtn") q += " --method " + c.method + " --calib " + (o.calib.empty() ? "CALIB.txt" : o.calib);
  if (c.hot_f16) q += " --hot-fp16";
  if (!c.rules.empty()) q += " --rules " + (c.rule_set.empty() ? std::string("rules") : c.rule_set) + ".yaml";
  h += "# the pick alone:\n" + esc(q) + "\n";
  if (!c.rules.empty()) {
    h += "# " + esc(c.rule_set) + ".yaml:\n";
    for (const auto& [pat, type] : c.rules) h += esc("- {pattern: '" + pat + "', type: " + type + "}") + "\n";
  }
  if (!c.prune.none())
    h += "# pruned first (" + esc(c.prune.name) + "; the quantize line above then reads pruned.gguf):\n" +
         esc("pocketlm prune " + o.base + " pruned.gguf" +
             (c.prune.drop > 0 && p.fit.plan ? " --layers " + std::to_string(p.fit.plan->config.n_layer)
                                             : std::string()) +
             (c.prune.drop_layers.empty() ? std::string() : " --drop-layers " + join_ints(c.prune.drop_layers)) +
             (c.prune.ffn_keep < 1 ? " --ffn-keep " + fmt(c.prune.ffn_keep, 3) : std::string()) +
             (c.prune.heads_keep < 1 ? " --heads-keep " + fmt(c.prune.heads_keep, 3) : std::string()) +
             (c.prune.repair ? " --repair" : "") + (o.calib.empty() ? "" : " --calib " + o.calib)) +
         "\n";
  h += esc(o.pick_command) + "\n</pre>\n";
  h += "<p>Files: <code>results.jsonl</code> (one line per candidate and stage), <code>pareto.json</code>, "
       "<code>speed.json</code> (timing), <code>evals/</code> (every candidate's outputs and scores), "
       "<code>models/</code>.</p>\n</body></html>\n";
  return h;
}

}  // namespace pocketlm
