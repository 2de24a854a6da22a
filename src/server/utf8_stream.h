#pragma once
// Streaming text in whole characters: token pieces may split a UTF-8 character, and a JSON string (an SSE
// chunk) must not end inside one.
#include <cstddef>
#include <string_view>

namespace pocketlm::server {

// The length of the longest prefix of s that does not end inside a UTF-8 sequence (a split character's
// first bytes are held back until the rest arrives).
size_t complete_utf8_prefix(std::string_view s);

}  // namespace pocketlm::server
