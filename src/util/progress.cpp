#include "util/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cinttypes>

#include "util/stats.h"

namespace pocketlm {

Progress::Progress(std::string label, int64_t total, std::string unit, std::FILE* out)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(std::max<int64_t>(total, 0)),
      out_(out),
      tty_(out != nullptr && isatty(fileno(out)) != 0),
      start_(now_seconds()) {}

Progress::~Progress() { finish(); }

void Progress::add(int64_t n) {
  done_.fetch_add(n);
  draw(false);
}

void Progress::set(int64_t done) {
  done_.store(done);
  draw(false);
}

void Progress::set_note(std::string note) {
  std::lock_guard<std::mutex> lock(mu_);
  note_ = std::move(note);
}

void Progress::finish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return;
  }
  draw(true);
  std::lock_guard<std::mutex> lock(mu_);
  finished_ = true;
}

std::string Progress::format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "--:--";
  const auto s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%" PRId64 ":%02" PRId64 ":%02" PRId64, s / 3600, (s / 60) % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%" PRId64 ":%02" PRId64, s / 60, s % 60);
  return buf;
}

void Progress::draw(bool final_line) {
  if (out_ == nullptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  const double now = now_seconds();
  const int64_t done = std::min(done_.load(), total_ > 0 ? total_ : done_.load());
  const double frac = total_ > 0 ? static_cast<double>(done) / static_cast<double>(total_) : 0.0;
  if (!final_line) {
    if (tty_) {
      if (last_draw_ >= 0 && now - last_draw_ < 0.1) return;
    } else {
      const int decile = static_cast<int>(frac * 10);
      if (decile == last_decile_ || decile >= 10) return;
      last_decile_ = decile;
    }
  }
  last_draw_ = now;
  const double elapsed = now - start_;
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
  constexpr int kWidth = 24;
  const int filled = static_cast<int>(frac * kWidth);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.append(static_cast<size_t>(kWidth - filled), '.');
  const std::string unit = unit_.empty() ? "" : " " + unit_;
  if (final_line) {
    std::fprintf(out_, "%s%s [%s] %" PRId64 "/%" PRId64 "%s in %s (%.1f%s/s)%s%s\n", tty_ ? "\r" : "", label_.c_str(),
                 bar.c_str(), done, total_, unit.c_str(), format_duration(elapsed).c_str(), rate, unit.c_str(),
                 note_.empty() ? "" : " ", note_.c_str());
  } else {
    const double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : -1;
    std::fprintf(out_, "%s%s [%s] %" PRId64 "/%" PRId64 "%s %.1f%s/s ETA %s%s%s%s", tty_ ? "\r" : "", label_.c_str(),
                 bar.c_str(), done, total_, unit.c_str(), rate, unit.c_str(), format_duration(eta).c_str(),
                 note_.empty() ? "" : " ", note_.c_str(), tty_ ? "\033[K" : "\n");
  }
  std::fflush(out_);
}

}  // namespace pocketlm
