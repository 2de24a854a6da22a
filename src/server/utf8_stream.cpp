#include "server/utf8_stream.h"

#include <algorithm>
#include <cstdint>

#include "tokenizer/utf8.h"

namespace pocketlm::server {

size_t complete_utf8_prefix(std::string_view s) {
  // Look back at most 3 bytes for the lead byte of a sequence that is not finished yet.
  for (size_t back = 1; back <= std::min<size_t>(3, s.size()); ++back) {
    const auto b = static_cast<uint8_t>(s[s.size() - back]);
    if ((b & 0xC0) == 0x80) continue;  // a continuation byte: keep looking for its lead
    const size_t len = b < 0x80 ? 1 : utf8::sequence_length(b);
    return len > back ? s.size() - back : s.size();
  }
  return s.size();
}

}  // namespace pocketlm::server
