// Tokenizer::from_gguf: reads tokenizer.ggml.* and settles the special tokens and flags the way llama.cpp's
// vocabulary loader does (defaults per model kind, ids from metadata, end-of-generation tokens recognised
// by their text).
#include <algorithm>
#include <cctype>

#include "tokenizer/special_tokens.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"

namespace pocketlm {
namespace {

using tok::kAttrControl;
using tok::kAttrNormal;
using tok::kAttrRstrip;
using tok::kAttrUnused;
using tok::kAttrUserDefined;

Error key_error(const GgufFile& f, std::string_view key, const std::string& problem) {
  return Error(f.path() + ": metadata '" + std::string(key) + "': " + problem);
}

// A numeric array (tokenizer.ggml.scores may be float32 or int32) with at least `n` entries.
Expected<std::vector<float>> read_scores(const GgufFile& f, std::string_view key, size_t n) {
  const GgufValue* v = f.find(key);
  std::vector<float> scores(n, 0.0f);
  if (!v) return scores;
  if (v->type != GgufType::ARRAY ||
      !(v->elem_type == GgufType::FLOAT32 || v->elem_type == GgufType::FLOAT64 || gguf_type_is_integer(v->elem_type)))
    return key_error(f, key, "expected an array of numbers, found " + std::string(gguf_type_name(v->type)));
  if (v->arr.size() < n)
    return key_error(f, key, std::to_string(v->arr.size()) + " scores for " + std::to_string(n) + " tokens");
  for (size_t i = 0; i < n; ++i) {
    const GgufValue& e = v->arr[i];
    scores[i] = e.type == GgufType::FLOAT32 || e.type == GgufType::FLOAT64 ? static_cast<float>(e.f)
                                                                           : static_cast<float>(e.as_int());
  }
  return scores;
}

// The id in `key` when present and in range; otherwise `id` stays (a default out of range becomes -1).
Status read_special_id(const GgufFile& f, std::string_view key, int32_t n_vocab, int32_t& id) {
  if (id >= n_vocab) id = -1;
  if (!f.has(key)) return Status::Ok();
  PLM_TRY(int64_t v, f.get_int(key));
  if (v >= 0 && v < n_vocab) id = static_cast<int32_t>(v);
  return Status::Ok();
}

bool one_of(const std::string& s, std::initializer_list<std::string_view> texts) {
  return std::find(texts.begin(), texts.end(), s) != texts.end();
}

// EOT, EOM and FIM tokens that the metadata did not name are recognised by their text. Walking the
// text -> id map in its own order, the first match wins and is made a control token.
void detect_by_text(Tokenizer::Impl& t) {
  struct Rule {
    int32_t* id;
    std::initializer_list<std::string_view> texts;
  };
  // DeepSeek's full-width forms: <｜end▁of▁sentence｜>, <｜fim▁begin｜>, <｜fim▁hole｜>, <｜fim▁end｜>.
#define PLM_DS(words) "<\xEF\xBD\x9C" words "\xEF\xBD\x9C>"
  const Rule rules[] = {
      {&t.eot,
       {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>",
        "[EOT]", PLM_DS("end\xE2\x96\x81of\xE2\x96\x81sentence"), "<end_of_utterance>"}},
      {&t.eom, {"<|eom_id|>"}},
      {&t.fim_pre,
       {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
        PLM_DS("fim\xE2\x96\x81"
               "begin"),
        "<PRE>", "\xE2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>"}},
      {&t.fim_suf,
       {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", PLM_DS("fim\xE2\x96\x81hole"), "<SUF>", "\xE2\x96\x81<SUF>",
        "<|code_suffix|>", "<|suffix|>"}},
      {&t.fim_mid,
       {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
        PLM_DS("fim\xE2\x96\x81"
               "end"),
        "<MID>", "\xE2\x96\x81<MID>", "<|code_middle|>", "<|middle|>"}},
      {&t.fim_pad, {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"}},
      {&t.fim_rep, {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"}},
      {&t.fim_sep, {"<|file_sep|>"}},
  };
#undef PLM_DS
  for (const auto& [text, id] : t.vocab.ids) {
    uint32_t& attr = t.vocab.tokens[static_cast<size_t>(id)].attr;
    for (const Rule& r : rules) {
      if (*r.id == -1 && one_of(text, r.texts)) {
        *r.id = id;
        attr |= kAttrControl;
      }
    }
  }
}

// End-of-generation tokens, as llama.cpp's list of texts plus EOS/EOT/EOM, with its model-specific
// exceptions (gpt-oss / solar-open "<|end|>", gemma-4 "</s>").
void collect_eog(Tokenizer::Impl& t) {
  auto& tokens = t.vocab.tokens;
  for (int32_t id : {t.fim_pad, t.fim_rep, t.fim_sep})
    if (id >= 0) t.eog.insert(id);
  for (const auto& [text, id] : t.vocab.ids) {
    if (one_of(text, {"<|eot_id|>",
                      "<|im_end|>",
                      "<|end|>",
                      "<|return|>",
                      "<|call|>",
                      "<|flush|>",
                      "<|calls|>",
                      "<end_of_turn>",
                      "<|endoftext|>",
                      "</s>",
                      "<|eom_id|>",
                      "<EOT>",
                      "_<EOT>",
                      "[EOT]",
                      "[EOS]",
                      "<|end_of_text|>",
                      "<end_of_utterance>",
                      "<eos>",
                      "<turn|>",
                      "<|tool_response>",
                      "<\xEF\xBD\x9C"
                      "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
                      "[e~["})) {
      t.eog.insert(id);
      tokens[static_cast<size_t>(id)].attr |= kAttrControl;
    }
  }
  for (const auto& [text, id] : t.vocab.ids)  // gpt-oss: always rendered
    if (one_of(text, {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"}))
      tokens[static_cast<size_t>(id)].attr = kAttrUserDefined;
  for (int32_t id : {t.eos, t.eot, t.eom})
    if (id >= 0) t.eog.insert(id);

  bool has_return = false, has_call = false, has_flush = false, has_tool_response = false;
  int32_t end_id = -1, s_id = -1;
  for (int32_t id : t.eog) {
    if (!t.vocab.valid(id)) continue;
    const std::string& text = tokens[static_cast<size_t>(id)].text;
    has_return |= text == "<|return|>";
    has_call |= text == "<|call|>" || text == "<|calls|>";
    has_flush |= text == "<|flush|>";
    has_tool_response |= text == "<|tool_response>";
    if (text == "<|end|>") end_id = id;
    if (text == "</s>") s_id = id;
  }
  if (end_id >= 0 && has_call && (has_return || has_flush)) {
    t.eog.erase(end_id);
    tokens[static_cast<size_t>(end_id)].attr = kAttrUserDefined;
  }
  if (s_id >= 0 && has_tool_response) {
    t.eog.erase(s_id);
    tokens[static_cast<size_t>(s_id)].attr = kAttrNormal;
  }
}

std::string byte_of_hex_token(const std::string& text) {
  // "<0xXX>" -> the byte 0xXX (leading hex digits of the two characters after "<0x", as strtol reads them).
  unsigned value = 0;
  for (size_t i = 3; i < std::min<size_t>(text.size(), 5); ++i) {
    const int c = std::tolower(static_cast<unsigned char>(text[i]));
    if (!std::isxdigit(c)) break;
    value = value * 16 + static_cast<unsigned>(c <= '9' ? c - '0' : c - 'a' + 10);
  }
  return std::string(1, static_cast<char>(value));
}

// GPT-2 byte alphabet back to bytes; a code point outside it is kept visibly, as llama.cpp does.
std::string decode_byte_alphabet(const std::string& text) {
  std::string out;
  for (size_t off = 0; off < text.size();) {
    const uint32_t cp = utf8::decode(text, off);
    const int byte = utf8::symbol_to_byte(cp);
    if (byte >= 0) {
      out.push_back(static_cast<char>(byte));
      continue;
    }
    static const char* hex = "0123456789abcdef";
    out += "[UNK_BYTE_0x";
    for (char c : utf8::encode(cp)) {
      out.push_back(hex[static_cast<uint8_t>(c) >> 4]);
      out.push_back(hex[static_cast<uint8_t>(c) & 15]);
    }
    out += text + "]";
  }
  return out;
}

std::string render_piece(const Tokenizer::Impl& t, const tok::TokenData& d) {
  if (d.attr & (tok::kAttrUnknown | kAttrControl | kAttrUserDefined)) return d.text;
  if (d.attr & kAttrNormal) {
    if (!t.spm) return decode_byte_alphabet(d.text);
    std::string s;
    for (size_t i = 0; i < d.text.size(); ++i) {
      if (d.text.compare(i, 3, "\xE2\x96\x81") == 0) {
        s.push_back(' ');
        i += 2;
      } else {
        s.push_back(d.text[i]);
      }
    }
    return s;
  }
  if (d.attr & tok::kAttrByte) return byte_of_hex_token(d.text);
  return "";
}

// llama.cpp marks special tokens of Phi-3 models (by general.name) to swallow the whitespace after them.
void apply_name_rules(const GgufFile& f, Tokenizer::Impl& t) {
  const GgufValue* name = f.find("general.name");
  if (!name || name->type != GgufType::STRING) return;
  std::string lower = name->str;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](char c) { return static_cast<char>(std::tolower(c)); });
  if (lower.find("phi-3") == std::string::npos && lower.find("phi3") == std::string::npos) return;
  auto set = [&](const std::string& text, bool on) {
    const int32_t id = t.vocab.find(text);
    if (id < 0) return;
    uint32_t& attr = t.vocab.tokens[static_cast<size_t>(id)].attr;
    attr = on ? (attr | kAttrRstrip) : (attr & ~kAttrRstrip);
  };
  for (int32_t id : t.specials) t.vocab.tokens[static_cast<size_t>(id)].attr |= kAttrRstrip;
  set("</s>", true);
  for (const char* text : {"<unk>", "<s>", "<|endoftext|>"}) set(text, false);
}

Status load(const GgufFile& f, Tokenizer::Impl& t) {
  t.path = f.path();
  PLM_TRY(t.model, f.get_string("tokenizer.ggml.model"));
  PLM_TRY(t.pre_name, f.get_string_or("tokenizer.ggml.pre", ""));
  PLM_TRY(auto texts, f.get_string_array("tokenizer.ggml.tokens"));
  const int32_t n = static_cast<int32_t>(texts.size());

  int32_t unk = -1;
  if (t.model == "llama") {
    t.spm = true;
    t.bos = 1, t.eos = 2, unk = 0;
    t.add_space_prefix = true;
    t.add_bos = true;
    t.clean_spaces = false;
  } else if (t.model == "gpt2") {
    t.spm = false;
    t.bos = 11, t.eos = 11;
    auto pre = PreTokenizer::create(t.pre_name);
    if (!pre) return key_error(f, "tokenizer.ggml.pre", pre.error().message());
    t.pre = std::move(pre).value();
    t.add_bos = t.pre->traits().add_bos;
    t.clean_spaces = t.pre->traits().clean_spaces;
    if (t.pre->traits().no_bos) t.bos = -1;
    PLM_TRY(auto merges, f.get_string_array("tokenizer.ggml.merges"));
    for (size_t i = 0; i < merges.size(); ++i) t.ranks.add(merges[i], static_cast<int>(i));
  } else {
    return key_error(f, "tokenizer.ggml.model",
                     "unsupported tokenizer model '" + t.model + "' (supported: llama (SentencePiece), gpt2 (BPE))");
  }
  PLM_TRY(t.add_space_prefix, f.get_bool_or("tokenizer.ggml.add_space_prefix", t.add_space_prefix));

  PLM_TRY(auto scores, read_scores(f, "tokenizer.ggml.scores", texts.size()));
  std::vector<int64_t> types;
  if (f.has("tokenizer.ggml.token_type")) {
    PLM_TRY(types, f.get_int_array("tokenizer.ggml.token_type"));
    if (types.size() < texts.size())
      return key_error(f, "tokenizer.ggml.token_type",
                       std::to_string(types.size()) + " types for " + std::to_string(texts.size()) + " tokens");
  }
  t.vocab.tokens.resize(texts.size());
  for (int32_t i = 0; i < n; ++i) {
    auto& d = t.vocab.tokens[static_cast<size_t>(i)];
    d.text = texts[static_cast<size_t>(i)].empty() ? "[EMPTY_" + std::to_string(i) + "]"
                                                   : std::move(texts[static_cast<size_t>(i)]);
    d.score = scores[static_cast<size_t>(i)];
    d.attr = types.empty() ? kAttrNormal : tok::attr_from_token_type(types[static_cast<size_t>(i)]);
    t.vocab.ids[d.text] = i;
  }

  const std::pair<const char*, int32_t*> keys[] = {
      {"tokenizer.ggml.bos_token_id", &t.bos},         {"tokenizer.ggml.eos_token_id", &t.eos},
      {"tokenizer.ggml.eot_token_id", &t.eot},         {"tokenizer.ggml.eom_token_id", &t.eom},
      {"tokenizer.ggml.unknown_token_id", &unk},       {"tokenizer.ggml.seperator_token_id", &t.sep},
      {"tokenizer.ggml.padding_token_id", &t.pad},     {"tokenizer.ggml.mask_token_id", &t.mask},
      {"tokenizer.ggml.fim_pre_token_id", &t.fim_pre}, {"tokenizer.ggml.fim_suf_token_id", &t.fim_suf},
      {"tokenizer.ggml.fim_mid_token_id", &t.fim_mid}, {"tokenizer.ggml.fim_pad_token_id", &t.fim_pad},
      {"tokenizer.ggml.fim_rep_token_id", &t.fim_rep}, {"tokenizer.ggml.fim_sep_token_id", &t.fim_sep},
      {"tokenizer.ggml.prefix_token_id", &t.fim_pre},  {"tokenizer.ggml.suffix_token_id", &t.fim_suf},
      {"tokenizer.ggml.middle_token_id", &t.fim_mid},
  };
  for (const auto& [key, id] : keys) PLM_CHECK(read_special_id(f, key, n, *id));
  t.vocab.unk = unk;
  PLM_TRY(t.add_bos, f.get_bool_or("tokenizer.ggml.add_bos_token", t.add_bos));
  PLM_TRY(t.add_eos, f.get_bool_or("tokenizer.ggml.add_eos_token", t.add_eos));

  detect_by_text(t);
  for (const auto& [text, id] : t.vocab.ids) {  // control tokens named "unused" are unused
    uint32_t& attr = t.vocab.tokens[static_cast<size_t>(id)].attr;
    if ((attr & kAttrControl) && text.find("unused") != std::string::npos) attr |= kAttrUnused;
  }
  collect_eog(t);

  t.specials = tok::special_tokens_by_length(t.vocab);
  t.pieces.reserve(t.vocab.tokens.size());
  for (const auto& d : t.vocab.tokens) t.pieces.push_back(render_piece(t, d));
  apply_name_rules(f, t);
  return Status::Ok();
}

}  // namespace

namespace tok {
uint32_t attr_from_token_type(int64_t type) {
  switch (type) {
    case 1: return kAttrNormal;
    case 2: return kAttrUnknown;
    case 3: return kAttrControl;
    case 4: return kAttrUserDefined;
    case 5: return kAttrUnused;
    case 6: return kAttrByte;
    default: return kAttrUndefined;
  }
}
}  // namespace tok

Expected<std::unique_ptr<Tokenizer>> Tokenizer::from_gguf(const GgufFile& f) {
  auto impl = std::make_unique<Impl>();
  PLM_CHECK(load(f, *impl));
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(impl)));
}

}  // namespace pocketlm
