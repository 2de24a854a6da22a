#pragma once
// DIR/report.html of `pocketlm tune`: one self-contained page (inline CSS and SVG, no script, nothing fetched):
// the Pareto plot (file bytes against task score, the front and the pick marked), KLD against task score as a
// second view, the table of every candidate (fits, bytes, predicted peak RSS and speed, score with interval,
// KLD, decision), the pick and why, per-task wins and losses of the pick, and the commands to reproduce it.
#include <string>

namespace pocketlm {
struct TuneOutcome;
std::string tune_report_html(const TuneOutcome& o);
}  // namespace pocketlm
