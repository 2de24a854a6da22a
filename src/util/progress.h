#pragma once
// A progress line for long work (quantize, imatrix, eval, perplexity, download): label, bar, done/total,
// rate and ETA on stderr. On a terminal it redraws one line at most 10 times a second; otherwise (logs, CI)
// it prints a plain line every 10 % so a captured log stays short. Thread-safe: workers may call add().
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>

namespace pocketlm {

class Progress {
 public:
  // `unit` names what is counted ("tensors", "chunks", "examples"). `out` is where the line goes.
  Progress(std::string label, int64_t total, std::string unit = "", std::FILE* out = stderr);
  ~Progress();  // finish() if not yet done
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void add(int64_t n = 1);  // n more items done
  void set(int64_t done);   // absolute count
  void finish();            // final line with the total time; idempotent
  // A short note shown at the end of the line (e.g. "PPL 12.34"); drawn with the next update.
  void set_note(std::string note);

  int64_t done() const { return done_.load(); }
  static std::string format_duration(double seconds);  // "0:07", "1:02:03"

 private:
  void draw(bool final_line);
  std::string label_, unit_, note_;
  int64_t total_;
  std::FILE* out_;
  bool tty_;
  double start_;
  double last_draw_ = -1;
  int last_decile_ = -1;
  bool finished_ = false;
  std::atomic<int64_t> done_{0};
  std::mutex mu_;
};

}  // namespace pocketlm
