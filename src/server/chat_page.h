#pragma once
// The web chat page served at `/`: one self-contained HTML file (styles and script inline, no CDN: a phone
// or a board may have no network) that streams replies from /v1/chat/completions and shows the speed.
#include <string_view>

namespace pocketlm::server {
std::string_view chat_page_html();
}  // namespace pocketlm::server
