// Chat templates: the expected strings are what llama.cpp's llama_chat_apply_template returns for the same
// template name and conversation (obtained from the .peer build, libllama v0.5.0).
#include <gtest/gtest.h>

#include <filesystem>

#include "test_paths.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"

namespace pocketlm {
namespace {

const std::vector<ChatMessage> kConversation = {
    {"system", "You are a helpful assistant"},
    {"user", "Hello"},
    {"assistant", "Hi there"},
    {"user", "Who are you"},
};

struct Expectation {
  const char* name;
  const char* without_prompt;
  const char* with_prompt;  // nullptr: the same as without (the family opens no assistant turn)
};

const Expectation kExpected[] = {
    {"chatml",
     "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
     "<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n",
     "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
     "<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n<|im_start|>assistant\n"},
    {"llama2", "[INST] You are a helpful assistant\nHello [/INST]Hi there</s>[INST] Who are you [/INST]", nullptr},
    {"llama2-sys",
     "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>[INST] Who are you [/INST]",
     nullptr},
    {"llama2-sys-bos",
     "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s><s>[INST] Who are you "
     "[/INST]",
     nullptr},
    {"llama2-sys-strip",
     "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>[INST] Who are you [/INST]",
     nullptr},
    {"mistral", "[INST] You are a helpful assistant\nHello [/INST]Hi there</s>[INST] Who are you [/INST]", nullptr},
    {"mistral-v1", " [INST] You are a helpful assistant\n\nHello [/INST] Hi there</s> [INST] Who are you [/INST]",
     nullptr},
    {"mistral-v3", "[INST] You are a helpful assistant\n\nHello[/INST] Hi there</s>[INST] Who are you[/INST]", nullptr},
    {"mistral-v3-tekken", "[INST]You are a helpful assistant\n\nHello[/INST]Hi there</s>[INST]Who are you[/INST]",
     nullptr},
    {"mistral-v7",
     "[SYSTEM_PROMPT] You are a helpful assistant[/SYSTEM_PROMPT][INST] Hello[/INST] Hi there</s>[INST] Who are "
     "you[/INST]",
     nullptr},
    {"mistral-v7-tekken",
     "[SYSTEM_PROMPT]You are a helpful assistant[/SYSTEM_PROMPT][INST]Hello[/INST]Hi there</s>[INST]Who are "
     "you[/INST]",
     nullptr},
    {"phi3",
     "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\nHi there<|end|>\n"
     "<|user|>\nWho are you<|end|>\n",
     "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\nHi there<|end|>\n"
     "<|user|>\nWho are you<|end|>\n<|assistant|>\n"},
    {"phi4",
     "<|im_start|>system<|im_sep|>You are a helpful assistant<|im_end|><|im_start|>user<|im_sep|>Hello<|im_end|>"
     "<|im_start|>assistant<|im_sep|>Hi there<|im_end|><|im_start|>user<|im_sep|>Who are you<|im_end|>",
     "<|im_start|>system<|im_sep|>You are a helpful assistant<|im_end|><|im_start|>user<|im_sep|>Hello<|im_end|>"
     "<|im_start|>assistant<|im_sep|>Hi there<|im_end|><|im_start|>user<|im_sep|>Who are you<|im_end|>"
     "<|im_start|>assistant<|im_sep|>"},
    {"zephyr",
     "<|system|>\nYou are a helpful assistant<|endoftext|>\n<|user|>\nHello<|endoftext|>\n<|assistant|>\nHi "
     "there<|endoftext|>\n<|user|>\nWho are you<|endoftext|>\n",
     "<|system|>\nYou are a helpful assistant<|endoftext|>\n<|user|>\nHello<|endoftext|>\n<|assistant|>\nHi "
     "there<|endoftext|>\n<|user|>\nWho are you<|endoftext|>\n<|assistant|>\n"},
    {"gemma",
     "<start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n<start_of_turn>model\nHi "
     "there<end_of_turn>\n<start_of_turn>user\nWho are you<end_of_turn>\n",
     "<start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n<start_of_turn>model\nHi "
     "there<end_of_turn>\n<start_of_turn>user\nWho are you<end_of_turn>\n<start_of_turn>model\n"},
    {"llama3",
     "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|><|start_header_id|>user"
     "<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
     "<|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|>",
     "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|><|start_header_id|>user"
     "<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
     "<|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|><|start_header_id|>assistant"
     "<|end_header_id|>\n\n"},
};

TEST(ChatTemplate, FamiliesMatchLlamaCpp) {
  for (const auto& e : kExpected) {
    auto without = apply_chat_template(e.name, kConversation, false);
    ASSERT_TRUE(without.ok()) << e.name << ": " << without.error().message();
    EXPECT_EQ(*without, e.without_prompt) << e.name;
    auto with = apply_chat_template(e.name, kConversation, true);
    ASSERT_TRUE(with.ok()) << e.name;
    EXPECT_EQ(*with, e.with_prompt ? e.with_prompt : e.without_prompt) << e.name;
  }
}

TEST(ChatTemplate, EveryNameRenders) {
  const auto names = chat_template_names();
  EXPECT_GE(names.size(), 15u);
  for (const auto& name : names) {
    EXPECT_EQ(detect_chat_template(name), name);
    EXPECT_TRUE(apply_chat_template(name, kConversation, true).ok()) << name;
  }
}

// Families that trim message text do so the way llama.cpp does (ASCII whitespace at both ends).
TEST(ChatTemplate, Trimming) {
  const std::vector<ChatMessage> msgs = {{"system", "  sys \n"}, {"user", " Hello  "}, {"assistant", "  Hi "}};
  EXPECT_EQ(*apply_chat_template("gemma", msgs, false),
            "<start_of_turn>user\nsys\n\nHello<end_of_turn>\n<start_of_turn>model\nHi<end_of_turn>\n");
  EXPECT_EQ(*apply_chat_template("llama3", msgs, false),
            "<|start_header_id|>system<|end_header_id|>\n\nsys<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
            "Hello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi<|eot_id|>");
  EXPECT_EQ(*apply_chat_template("mistral-v3", msgs, false), "[INST]   sys \n\n\n Hello  [/INST] Hi</s>");
  EXPECT_EQ(*apply_chat_template("chatml", msgs, false),
            "<|im_start|>system\n  sys \n<|im_end|>\n<|im_start|>user\n Hello  <|im_end|>\n<|im_start|>assistant\n"
            "  Hi <|im_end|>\n");
}

TEST(ChatTemplate, DetectsJinjaSources) {
  // SmolLM2-135M-Instruct's tokenizer.chat_template.
  const std::string smollm2 =
      "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
      "'<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' "
      "}}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% "
      "endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  EXPECT_EQ(detect_chat_template(smollm2), "chatml");
  EXPECT_EQ(*apply_chat_template(smollm2, kConversation, true), *apply_chat_template("chatml", kConversation, true));

  EXPECT_EQ(detect_chat_template("{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim }}"), "gemma");
  EXPECT_EQ(detect_chat_template("{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"),
            "llama3");
  EXPECT_EQ(detect_chat_template("{{'<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n'}}"
                                 "{{ '<|assistant|>\\n' }}"),
            "phi3");
  EXPECT_EQ(detect_chat_template("{{ '[SYSTEM_PROMPT]' + system + '[/SYSTEM_PROMPT]' }}{{ '[INST]' }}"), "mistral-v7");
  EXPECT_EQ(detect_chat_template("{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}<<SYS>>"),
            "llama2-sys-strip");
  EXPECT_EQ(detect_chat_template("{{ '[INST] <<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' }}"), "llama2-sys");
  EXPECT_EQ(detect_chat_template("{{ bos_token }}{{ '[INST] ' + content + ' [/INST]' }}"), "llama2");
  EXPECT_EQ(detect_chat_template("{{ '<|im_start|>' + role + '<|im_sep|>' }}"), "phi4");
  EXPECT_EQ(detect_chat_template("no markers at all"), "");
}

// The chat templates llama.cpp keeps beside its tests, where pocketlm renders their family.
TEST(ChatTemplate, DetectsPeerTemplates) {
  const auto dir = test::peer_dir() / "src" / "models" / "templates";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << dir << " is absent (the llama.cpp peer checkout provides it)";
  const std::pair<const char*, const char*> cases[] = {
      {"meta-llama-Llama-3.1-8B-Instruct.jinja", "llama3"},
      {"google-gemma-2-2b-it.jinja", "gemma"},
      {"microsoft-Phi-3.5-mini-instruct.jinja", "phi3"},
      {"Qwen-Qwen2.5-7B-Instruct.jinja", "chatml"},
      {"mistralai-Mistral-Nemo-Instruct-2407.jinja", "mistral-v3-tekken"},
      {"Mistral-Small-3.2-24B-Instruct-2506.jinja", "mistral-v7"},
  };
  for (const auto& [file, family] : cases) {
    const auto path = dir / file;
    if (!std::filesystem::exists(path)) continue;
    const std::string src = test::read_file(path);
    EXPECT_EQ(detect_chat_template(src), family) << file;
    EXPECT_TRUE(apply_chat_template(src, kConversation, true).ok()) << file;
  }
}

TEST(ChatTemplate, SmolLM2ModelTemplate) {
  const auto path = test::smollm2_path();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is absent; run scripts/fetch-models.sh";
  auto file = GgufFile::open(path.string());
  ASSERT_TRUE(file.ok()) << file.error().message();
  auto tmpl = file->get_string("tokenizer.chat_template");
  ASSERT_TRUE(tmpl.ok()) << tmpl.error().message();
  auto text = apply_chat_template(*tmpl, {{"user", "Hello"}}, true);
  ASSERT_TRUE(text.ok()) << text.error().message();
  EXPECT_EQ(*text, "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, UnknownTemplateIsAnError) {
  const std::string tmpl =
      "{% for m in messages %}{{ '### ' + m['role'] + ': ' + m['content'] }}{% endfor %}"
      " and some more text after the first sixty characters";
  auto r = apply_chat_template(tmpl, kConversation, true);
  ASSERT_FALSE(r.ok());
  const std::string& msg = r.error().message();
  EXPECT_NE(msg.find("unrecognised chat template '" + tmpl.substr(0, 60)), std::string::npos) << msg;
  EXPECT_EQ(msg.find("first sixty"), std::string::npos) << msg;  // only the head of the template is quoted
  EXPECT_NE(msg.find("name a template to use, one of: "), std::string::npos) << msg;
  EXPECT_NE(msg.find("chatml"), std::string::npos) << msg;

  // Recognised by llama.cpp, but a family pocketlm does not render: the error names the family.
  auto cr = apply_chat_template("{{ '<|START_OF_TURN_TOKEN|><|USER_TOKEN|>' }}", kConversation, true);
  ASSERT_FALSE(cr.ok());
  EXPECT_NE(cr.error().message().find("command-r"), std::string::npos) << cr.error().message();
  EXPECT_EQ(cr.error().setting(), "chat_template");
  EXPECT_EQ(cr.error().message().find("--"), std::string::npos)
      << "a library error names no CLI flag: " << cr.error().message();
  EXPECT_FALSE(apply_chat_template("", kConversation, true).ok());
}

}  // namespace
}  // namespace pocketlm
