#pragma once
// Chat prompts: a conversation rendered as the text a model was trained on. This is not a Jinja engine:
// like llama.cpp's llama_chat_apply_template, a template is either a short name ("chatml", "llama3", ...)
// or the Jinja source from tokenizer.chat_template, whose family is recognised by distinctive substrings
// (e.g. "<|im_start|>" -> chatml). The output equals llama.cpp's for the same family.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.h"

namespace pocketlm {

struct ChatMessage {
  std::string role;  // "system" | "user" | "assistant" (other roles pass through where the family allows)
  std::string content;
};

// Renders `msgs`; with add_assistant_prompt, ends with the opening of an assistant turn. An unrecognised
// template, or a family pocketlm does not implement, is an error that names it and suggests
// --chat-template NAME.
Expected<std::string> apply_chat_template(std::string_view tmpl, const std::vector<ChatMessage>& msgs,
                                          bool add_assistant_prompt);

// One request as the text a model continues: the prompt rendering shared by evaluation tasks and calibration.
// With a chat template (a name or Jinja source), `user` as a user turn followed by the opening of the
// assistant's turn; with `answer`, the assistant's turn holds it instead (a calibration sequence). Without one
// (""; base models), `completion` as given, then with `answer` a space, the answer and a newline.
struct PromptTurn {
  std::string user;                   // chat style: the user message
  std::string completion;             // completion style: the whole prompt as text to continue
  std::optional<std::string> answer;  // the reply that follows, when one is part of the sequence
};
Expected<std::string> render_prompt(std::string_view chat_template, const PromptTurn& turn);

// The family a template (name or Jinja source) is recognised as, in llama.cpp's terms (e.g. "chatml",
// "llama2-sys", "mistral-v7"); "" when none.
std::string detect_chat_template(std::string_view tmpl);

// Names accepted by --chat-template.
std::vector<std::string> chat_template_names();

}  // namespace pocketlm
