#include "tokenizer/chat_template.h"

#include <algorithm>
#include <functional>
#include <sstream>

namespace pocketlm {
namespace {

using Messages = std::vector<ChatMessage>;
using Render = std::function<void(std::ostringstream&, const Messages&, bool)>;

std::string trim(const std::string& s) {
  auto space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  size_t b = 0, e = s.size();
  while (b < e && space(s[b])) ++b;
  while (e > b && space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

void render_chatml(std::ostringstream& ss, const Messages& msgs, bool add_ass) {
  for (const auto& m : msgs) ss << "<|im_start|>" << m.role << "\n" << m.content << "<|im_end|>\n";
  if (add_ass) ss << "<|im_start|>assistant\n";
}

// [INST] forms of Llama 2 (no assistant prompt is added: the open [INST] turn already asks for one).
void render_llama2(std::ostringstream& ss, const Messages& msgs, bool with_system, bool bos_in_history, bool strip) {
  bool inside_turn = true;
  ss << "[INST] ";
  for (const auto& m : msgs) {
    const std::string content = strip ? trim(m.content) : m.content;
    if (!inside_turn) {
      inside_turn = true;
      ss << (bos_in_history ? "<s>[INST] " : "[INST] ");
    }
    if (m.role == "system") {
      if (with_system) {
        ss << "<<SYS>>\n" << content << "\n<</SYS>>\n\n";
      } else {
        ss << content << "\n";
      }
    } else if (m.role == "user") {
      ss << content << " [/INST]";
    } else {
      ss << content << "</s>";
      inside_turn = false;
    }
  }
}

// Mistral v1 / v3 / v3-tekken.
void render_mistral_legacy(std::ostringstream& ss, const Messages& msgs, const char* lead, const char* trail,
                           bool trim_assistant) {
  bool inside_turn = false;
  for (const auto& m : msgs) {
    if (!inside_turn) {
      ss << lead << "[INST]" << trail;
      inside_turn = true;
    }
    if (m.role == "system") {
      ss << m.content << "\n\n";
    } else if (m.role == "user") {
      ss << m.content << lead << "[/INST]";
    } else {
      ss << trail << (trim_assistant ? trim(m.content) : m.content) << "</s>";
      inside_turn = false;
    }
  }
}

// Mistral v7 / v7-tekken.
void render_mistral_v7(std::ostringstream& ss, const Messages& msgs, const char* space) {
  for (const auto& m : msgs) {
    if (m.role == "system") {
      ss << "[SYSTEM_PROMPT]" << space << m.content << "[/SYSTEM_PROMPT]";
    } else if (m.role == "user") {
      ss << "[INST]" << space << m.content << "[/INST]";
    } else {
      ss << space << m.content << "</s>";
    }
  }
}

void render_phi3(std::ostringstream& ss, const Messages& msgs, bool add_ass) {
  for (const auto& m : msgs) ss << "<|" << m.role << "|>\n" << m.content << "<|end|>\n";
  if (add_ass) ss << "<|assistant|>\n";
}

void render_phi4(std::ostringstream& ss, const Messages& msgs, bool add_ass) {
  for (const auto& m : msgs) ss << "<|im_start|>" << m.role << "<|im_sep|>" << m.content << "<|im_end|>";
  if (add_ass) ss << "<|im_start|>assistant<|im_sep|>";
}

void render_zephyr(std::ostringstream& ss, const Messages& msgs, bool add_ass) {
  for (const auto& m : msgs) ss << "<|" << m.role << "|>\n" << m.content << "<|endoftext|>\n";
  if (add_ass) ss << "<|assistant|>\n";
}

// Gemma has no system turn: the system text opens the next user turn.
void render_gemma(std::ostringstream& ss, const Messages& msgs, bool add_ass) {
  std::string system;
  for (const auto& m : msgs) {
    if (m.role == "system") {
      system += trim(m.content);
      continue;
    }
    const std::string role = m.role == "assistant" ? "model" : m.role;
    ss << "<start_of_turn>" << role << "\n";
    if (!system.empty() && role != "model") {
      ss << system << "\n\n";
      system.clear();
    }
    ss << trim(m.content) << "<end_of_turn>\n";
  }
  if (add_ass) ss << "<start_of_turn>model\n";
}

void render_llama3(std::ostringstream& ss, const Messages& msgs, bool add_ass) {
  for (const auto& m : msgs)
    ss << "<|start_header_id|>" << m.role << "<|end_header_id|>\n\n" << trim(m.content) << "<|eot_id|>";
  if (add_ass) ss << "<|start_header_id|>assistant<|end_header_id|>\n\n";
}

struct Family {
  std::string_view name;
  Render render;
};

const std::vector<Family>& families() {
  static const std::vector<Family> table = {
      {"chatml", render_chatml},
      {"llama2", [](auto& ss, const Messages& m, bool) { render_llama2(ss, m, false, false, false); }},
      {"llama2-sys", [](auto& ss, const Messages& m, bool) { render_llama2(ss, m, true, false, false); }},
      {"llama2-sys-bos", [](auto& ss, const Messages& m, bool) { render_llama2(ss, m, true, true, false); }},
      {"llama2-sys-strip", [](auto& ss, const Messages& m, bool) { render_llama2(ss, m, true, false, true); }},
      {"mistral-v1", [](auto& ss, const Messages& m, bool) { render_mistral_legacy(ss, m, " ", " ", false); }},
      {"mistral-v3", [](auto& ss, const Messages& m, bool) { render_mistral_legacy(ss, m, "", " ", true); }},
      {"mistral-v3-tekken", [](auto& ss, const Messages& m, bool) { render_mistral_legacy(ss, m, "", "", false); }},
      {"mistral-v7", [](auto& ss, const Messages& m, bool) { render_mistral_v7(ss, m, " "); }},
      {"mistral-v7-tekken", [](auto& ss, const Messages& m, bool) { render_mistral_v7(ss, m, ""); }},
      {"phi3", render_phi3},
      {"phi4", render_phi4},
      {"zephyr", render_zephyr},
      {"gemma", render_gemma},
      {"llama3", render_llama3},
  };
  return table;
}

// Names llama.cpp accepts for families pocketlm does not render: asking for one gives an error naming the
// family rather than "unrecognised".
constexpr std::string_view kKnownNames[] = {
    "falcon3",   "monarch",        "orion",      "openchat",      "vicuna",        "vicuna-orca", "deepseek",
    "deepseek2", "deepseek3",      "command-r",  "chatglm3",      "chatglm4",      "glmedge",     "minicpm",
    "exaone3",   "exaone4",        "exaone-moe", "rwkv-world",    "granite",       "granite-4.0", "granite-4.1",
    "gigachat",  "megrez",         "yandex",     "bailing",       "bailing-think", "bailing2",    "llama4",
    "smolvlm",   "hunyuan-moe",    "gpt-oss",    "hunyuan-dense", "hunyuan-vl",    "kimi-k2",     "seed_oss",
    "grok-2",    "pangu-embedded", "solar-open", "deepseek-ocr"};

// llama.cpp's recognition rules, in its order.
std::string detect(std::string_view t) {
  for (const auto& f : families())
    if (t == f.name) return std::string(f.name);
  for (std::string_view n : kKnownNames)
    if (t == n) return std::string(n);
  auto has = [&](std::string_view s) { return t.find(s) != std::string_view::npos; };
  if (has("<|im_start|>")) return has("<|im_sep|>") ? "phi4" : has("<end_of_utterance>") ? "smolvlm" : "chatml";
  if (t.rfind("mistral", 0) == 0 || has("[INST]")) {
    if (has("[SYSTEM_PROMPT]")) return "mistral-v7";
    if (has("' [INST] ' + system_message") || has("[AVAILABLE_TOOLS]")) {
      if (has(" [INST]")) return "mistral-v1";
      if (has("\"[INST]\"")) return "mistral-v3-tekken";
      return "mistral-v3";
    }
    if (has("content.strip()")) return "llama2-sys-strip";
    if (has("bos_token + '[INST]")) return "llama2-sys-bos";
    if (has("<<SYS>>")) return "llama2-sys";
    return "llama2";
  }
  if (has("<|assistant|>") && has("<|end|>")) return "phi3";
  if (has("[gMASK]<sop>")) return "chatglm4";
  if (has("<|assistant|>") && has("<|user|>")) {
    if (has("<|tool_declare|>")) return "exaone-moe";
    return has("</s>") ? "falcon3" : "glmedge";
  }
  if (has("<|{{ item['role'] }}|>") && has("<|begin_of_image|>")) return "glmedge";
  if (has("<|user|>") && has("<|endoftext|>")) return "zephyr";
  if (has("bos_token + message['role']")) return "monarch";
  if (has("<start_of_turn>")) return "gemma";
  if (has("'\\n\\nAssistant: ' + eos_token")) return "orion";
  if (has("GPT4 Correct ")) return "openchat";
  if (has("USER: ") && has("ASSISTANT: ")) return has("SYSTEM: ") ? "vicuna-orca" : "vicuna";
  if (has("### Instruction:") && has("<|EOT|>")) return "deepseek";
  if (has("<|START_OF_TURN_TOKEN|>") && has("<|USER_TOKEN|>")) return "command-r";
  if (has("<|start_header_id|>") && has("<|end_header_id|>")) return "llama3";
  // The remaining rules only lead to families pocketlm does not render; they name them in the error.
  if (has("[gMASK]sop")) return "chatglm3";
  if (has("<\xE7\x94\xA8\xE6\x88\xB7>")) return "minicpm";  // "<用户>"
  if (has("'Assistant: ' + message['content'] + eos_token")) return "deepseek2";
  if (has("<\xEF\xBD\x9C"
          "Assistant\xEF\xBD\x9C>") &&
      has("<\xEF\xBD\x9C"
          "User\xEF\xBD\x9C>") &&
      has("<\xEF\xBD\x9C"
          "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"))
    return "deepseek3";
  if (has("[|system|]") && has("[|assistant|]") && has("[|endofturn|]")) return has("[|tool|]") ? "exaone4" : "exaone3";
  if (has("rwkv-world") || has("{{- 'User: ' + message['content']|trim + '\\n\\n' -}}")) return "rwkv-world";
  if (has("<|start_of_role|>")) return "granite";
  if (has("message['role'] + additional_special_tokens[0] + message['content'] + additional_special_tokens[1]"))
    return "gigachat";
  if (has("<|role_start|>")) return "megrez";
  if (has(" \xD0\x90\xD1\x81\xD1\x81\xD0\xB8\xD1\x81\xD1\x82\xD0\xB5\xD0\xBD\xD1\x82:")) return "yandex";
  if (has("<role>ASSISTANT</role>")) return "bailing";
  if (has("<|header_start|>") && has("<|header_end|>")) return "llama4";
  if (has("<|endofuserprompt|>")) return "dots1";
  if (has("<|extra_0|>") && has("<|extra_4|>")) return "hunyuan-moe";
  if (has("<|start|>") && has("<|channel|>")) return "gpt-oss";
  if (has("<|im_assistant|>assistant<|im_middle|>")) return "kimi-k2";
  if (has("<seed:bos>")) return "seed_oss";
  if (has("'Assistant: '  + message['content'] + '<|separator|>")) return "grok-2";
  if (has("<|begin|>") && has("<|end|>") && has("<|content|>")) return "solar-open";
  return "";
}

std::string names_list() {
  std::string s;
  for (const auto& f : families()) s += (s.empty() ? "" : ", ") + std::string(f.name);
  return s;
}

}  // namespace

std::string detect_chat_template(std::string_view tmpl) { return detect(tmpl); }

std::vector<std::string> chat_template_names() {
  std::vector<std::string> names;
  for (const auto& f : families()) names.emplace_back(f.name);
  return names;
}

Expected<std::string> apply_chat_template(std::string_view tmpl, const std::vector<ChatMessage>& msgs,
                                          bool add_assistant_prompt) {
  const std::string family = detect(tmpl);
  const auto& table = families();
  const auto it = std::find_if(table.begin(), table.end(), [&](const Family& f) { return f.name == family; });
  if (it == table.end()) {
    std::string head(tmpl.substr(0, 60));
    std::replace(head.begin(), head.end(), '\n', ' ');
    if (tmpl.size() > 60) head += "...";
    const std::string what = family.empty() ? "unrecognised chat template '" + head + "'"
                                            : "chat template '" + head + "' is of the " + family +
                                                  " family, which pocketlm does not implement";
    return Error(what + "; name a template to use, one of: " + names_list()).about("chat_template");
  }
  std::ostringstream ss;
  it->render(ss, msgs, add_assistant_prompt);
  return ss.str();
}

Expected<std::string> render_prompt(std::string_view chat_template, const PromptTurn& turn) {
  if (chat_template.empty()) return turn.answer ? turn.completion + " " + *turn.answer + "\n" : turn.completion;
  std::vector<ChatMessage> msgs = {{"user", turn.user}};
  if (turn.answer) msgs.push_back({"assistant", *turn.answer});
  return apply_chat_template(chat_template, msgs, /*add_assistant_prompt=*/!turn.answer);
}

}  // namespace pocketlm
