#pragma once
// Stop strings over streamed text (the one generate loop's rule, shared by the batch scheduler): the text that
// could be the start of a stop string is held back until the next token shows whether it is one.
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace pocketlm {

// The generated text and how much of it has been released. Keeps a reference to `stops`.
class StopMatcher {
 public:
  explicit StopMatcher(const std::vector<std::string>& stops) : stops_(stops) {}

  // Adds a token's text; returns true when a stop string now appears (the text is cut before it).
  bool add(std::string_view piece) {
    text_ += piece;
    // A stop string starts in the held-back tail or the new text: what was released cannot begin one.
    for (const std::string& s : stops_) {
      if (s.empty()) continue;
      const size_t at = text_.find(s, released_);
      if (at != std::string::npos) {
        text_.resize(at);
        return true;
      }
    }
    return false;
  }
  // The text that can be released now: all of it but the longest tail that begins a stop string.
  std::string_view release(bool all) {
    size_t keep = 0;
    if (!all)
      for (const std::string& s : stops_)
        for (size_t n = std::min(s.size() - (s.empty() ? 0 : 1), text_.size() - released_); n > keep; --n)
          if (text_.compare(text_.size() - n, n, s, 0, n) == 0) {
            keep = n;
            break;
          }
    const size_t b = std::min(released_, text_.size()), e = std::max(b, text_.size() - keep);
    released_ = e;
    return std::string_view(text_).substr(b, e - b);
  }
  std::string take_text() { return std::move(text_); }

 private:
  const std::vector<std::string>& stops_;
  std::string text_;
  size_t released_ = 0;
};

}  // namespace pocketlm
