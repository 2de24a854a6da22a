#include "tokenizer/pre_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>

#include "tokenizer/utf8.h"

namespace pocketlm {
namespace {

// ---- The regexes (PCRE syntax). They restate the Split patterns of each model's tokenizer.json, with
// case-insensitive groups spelled out ('[sS]') as llama.cpp does.
constexpr std::string_view kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|)"
    R"( ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|)"
    R"( ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kSeedCoder =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}|)"
    R"( ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kGpt4o = R"([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+)"
                                    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|)"
                                    R"([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*)"
                                    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|)"
                                    R"(\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kTekken = R"([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|)"
                                     R"([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|)"
                                     R"(\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kDeepseek3 =
    R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|)"
    R"( ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kPoro = R"( ?[^(\s|.,!?\x{2026}\x{3002}\x{FF0C}\x{3001}\x{964}\x{6D4}\x{60C})]+)";
// CJK ideographs, the range U+0800..U+4E00 and Hangul, as DeepSeek's tokenizers group them.
constexpr std::string_view kDeepseekCjk = R"([\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+)";
constexpr std::string_view kDeepseekLlmLetters =
    R"(\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF})"
    R"(\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1})"
    R"(\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5})"
    R"(\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A})"
    R"(\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B})"
    R"(\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC})"
    R"(\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107})"
    R"(\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134})"
    R"(\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4})"
    R"(\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787})"
    R"(\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A})"
    R"(\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2})"
    R"(\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)";
constexpr std::string_view kDeepseekLlmPunct =
    R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)";

struct Family {
  std::vector<std::string_view> regexes;
};

const Family kFamilyDefault{{R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", "[0-9][0-9][0-9]"}};
const Family kFamilyGpt2{{kGpt2}};
const Family kFamilyStarcoder{{R"(\p{N})", kGpt2}};
const Family kFamilyLlama3{{kLlama3}};
const Family kFamilyQwen2{{kQwen2}};
const Family kFamilySeedCoder{{kSeedCoder}};
const Family kFamilyGpt4o{{kGpt4o}};
const Family kFamilyTekken{{kTekken}};
const Family kFamilyFalcon{{R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2, "[0-9][0-9][0-9]"}};
const Family kFamilyDeepseekLlm{
    {"[\r\n]", kDeepseekLlmLetters, kDeepseekLlmPunct, R"(\s+$)", kDeepseekCjk, R"(\p{N}+)"}};
const Family kFamilyDeepseekCoder{{"[\r\n]", R"(\s?\p{L}+)", R"(\s?\p{P}+)", kDeepseekCjk, R"(\p{N})"}};
const Family kFamilyDeepseek3{
    {R"(\p{N}{1,3})", R"([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)", kDeepseek3}};
const Family kFamilyPoro{{kPoro}};
const Family kFamilyViking{{kPoro, R"(\p{N})"}};

struct NameEntry {
  std::string_view name;
  const Family* family;
  PreTokenizerTraits traits;
};

constexpr PreTokenizerTraits kClean{};                                // clean_spaces on decode
constexpr PreTokenizerTraits kRaw{false, false, false, false};        // no clean-up
constexpr PreTokenizerTraits kLlama3Traits{true, true, true, false};  // ignore_merges, add BOS
constexpr PreTokenizerTraits kTekkenTraits{true, false, true, false};
constexpr PreTokenizerTraits kChatglmTraits{false, true, false, true};

// tokenizer.ggml.pre -> regexes and traits, as llama.cpp's vocabulary loader maps them.
const std::vector<NameEntry>& name_table() {
  static const std::vector<NameEntry> table = {
      {"default", &kFamilyDefault, kClean},
      {"llama3", &kFamilyLlama3, kLlama3Traits},
      {"llama-v3", &kFamilyLlama3, kLlama3Traits},
      {"llama-bpe", &kFamilyLlama3, kLlama3Traits},
      {"falcon3", &kFamilyLlama3, kLlama3Traits},
      {"falcon-h1", &kFamilyLlama3, kLlama3Traits},
      {"pixtral", &kFamilyLlama3, kLlama3Traits},
      {"midm-2.0", &kFamilyLlama3, kLlama3Traits},
      {"lfm2", &kFamilyLlama3, kLlama3Traits},
      {"dbrx", &kFamilyLlama3, kClean},
      {"smaug-bpe", &kFamilyLlama3, kClean},
      {"glm4", &kFamilyLlama3, kChatglmTraits},
      {"chatglm-bpe", &kFamilyLlama3, kChatglmTraits},
      {"deepseek-llm", &kFamilyDeepseekLlm, kRaw},
      {"deepseek-coder", &kFamilyDeepseekCoder, kRaw},
      {"deepseek-v3", &kFamilyDeepseek3, kRaw},
      {"falcon", &kFamilyFalcon, kClean},
      {"mpt", &kFamilyGpt2, kClean},
      {"gpt-2", &kFamilyGpt2, kClean},
      {"phi-2", &kFamilyGpt2, kClean},
      {"olmo", &kFamilyGpt2, kClean},
      {"jais", &kFamilyGpt2, kClean},
      {"gigachat", &kFamilyGpt2, kClean},
      {"a.x-4.0", &kFamilyGpt2, kClean},
      {"mellum", &kFamilyGpt2, kClean},
      {"exaone4", &kFamilyGpt2, kClean},
      {"trillion", &kFamilyGpt2, kRaw},
      {"granite-docling", &kFamilyGpt2, kRaw},
      {"starcoder", &kFamilyStarcoder, kClean},
      {"refact", &kFamilyStarcoder, kClean},
      {"codeshell", &kFamilyStarcoder, kClean},
      {"exaone", &kFamilyStarcoder, kClean},
      {"minerva-7b", &kFamilyStarcoder, kClean},
      {"mellum2", &kFamilyStarcoder, kClean},
      {"command-r", &kFamilyStarcoder, kRaw},
      {"smollm", &kFamilyStarcoder, kRaw},
      {"qwen2", &kFamilyQwen2, kRaw},
      {"deepseek-r1-qwen", &kFamilyQwen2, kRaw},
      {"kormo", &kFamilyQwen2, kRaw},
      {"f2llmv2", &kFamilyQwen2, kRaw},
      {"hunyuan", &kFamilyQwen2, kRaw},
      {"solar-open", &kFamilyQwen2, kRaw},
      {"grok-2", &kFamilyQwen2, kRaw},
      {"megrez", &kFamilyQwen2, kClean},
      {"stablelm2", &kFamilyQwen2, kClean},
      {"seed-coder", &kFamilySeedCoder, kRaw},
      {"gpt-4o", &kFamilyGpt4o, kRaw},
      {"llama4", &kFamilyGpt4o, kRaw},
      {"kanana2", &kFamilyGpt4o, kRaw},
      {"tekken", &kFamilyTekken, kTekkenTraits},
      {"poro-chat", &kFamilyPoro, kRaw},
      {"bloom", &kFamilyPoro, kClean},
      {"gpt3-finnish", &kFamilyPoro, kClean},
      {"viking", &kFamilyViking, kRaw},
  };
  return table;
}

struct CodeDeleter {
  void operator()(pcre2_code* c) const { pcre2_code_free(c); }
};
struct MatchDataDeleter {
  void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
};
using CodePtr = std::unique_ptr<pcre2_code, CodeDeleter>;
using MatchDataPtr = std::unique_ptr<pcre2_match_data, MatchDataDeleter>;

Expected<CodePtr> compile(std::string_view pattern, uint32_t extra_options = 0) {
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  CodePtr code(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                             PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY | extra_options, &err, &err_offset, nullptr));
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    return Error("pre-tokenizer regex '" + std::string(pattern) + "' does not compile at offset " +
                 std::to_string(err_offset) + ": " + reinterpret_cast<const char*>(msg));
  }
  pcre2_jit_compile(code.get(), PCRE2_JIT_COMPLETE);  // optional: falls back to the interpreter
  return code;
}

}  // namespace

struct PreTokenizer::Compiled {
  std::vector<CodePtr> regexes;
  CodePtr non_ascii_space;  // one non-ASCII White_Space code point
};

namespace {
// Non-ASCII whitespace is matched as U+000B, as llama.cpp does before it runs a regex, so that a class such
// as [\x{3000}-\x{3002}] does not catch U+3000 and \s catches U+0085. Surrogates and other code points PCRE2
// cannot take become stand-ins of the same general category (Co / So); the words keep the originals.
void build_subject(const PreTokenizer::Compiled& c, const std::vector<uint32_t>& cps, std::string& subject,
                   std::vector<uint32_t>& cp_at_byte) {
  subject.clear();
  bool non_ascii = false;
  for (uint32_t cp : cps) {
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xE000;
    non_ascii |= cp >= 0x80;
    utf8::append(subject, cp);
  }
  if (non_ascii) {
    std::string spaced;
    spaced.reserve(subject.size());
    MatchDataPtr md(pcre2_match_data_create_from_pattern(c.non_ascii_space.get(), nullptr));
    size_t pos = 0;
    while (pos < subject.size()) {
      const int rc = pcre2_match(c.non_ascii_space.get(), reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(),
                                 pos, PCRE2_NO_UTF_CHECK, md.get(), nullptr);
      if (rc < 0) break;
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
      spaced.append(subject, pos, ov[0] - pos);
      spaced.push_back('\x0B');
      pos = ov[1];
    }
    spaced.append(subject, pos, std::string::npos);
    subject.swap(spaced);
  }
  cp_at_byte.assign(subject.size() + 1, 0);
  uint32_t index = 0;
  for (size_t off = 0; off < subject.size(); ++index) {
    const size_t len = utf8::sequence_length(static_cast<uint8_t>(subject[off]));
    for (size_t k = 0; k < len; ++k) cp_at_byte[off + k] = index;
    off += len;
  }
  cp_at_byte[subject.size()] = index;
}

// Applies one regex to every piece: matches and the gaps between them become pieces.
void split_pieces(const pcre2_code* re, const std::string& subject, const std::vector<uint32_t>& cp_at_byte,
                  const std::vector<size_t>& byte_at_cp, std::vector<size_t>& lengths) {
  std::vector<size_t> out;
  out.reserve(lengths.size() * 2);
  MatchDataPtr md(pcre2_match_data_create_from_pattern(re, nullptr));
  size_t start_cp = 0;
  for (size_t len_cp : lengths) {
    const size_t seg_begin = byte_at_cp[start_cp];
    const size_t seg_end = byte_at_cp[start_cp + len_cp];
    const auto* seg = reinterpret_cast<PCRE2_SPTR>(subject.data() + seg_begin);
    const size_t seg_len = seg_end - seg_begin;
    size_t pos = 0;  // bytes into the segment
    auto cps_between = [&](size_t a, size_t b) { return cp_at_byte[seg_begin + b] - cp_at_byte[seg_begin + a]; };
    while (pos < seg_len) {
      int rc = pcre2_match(re, seg, seg_len, pos, PCRE2_NO_UTF_CHECK | PCRE2_NOTEMPTY, md.get(), nullptr);
      if (rc == PCRE2_ERROR_JIT_STACKLIMIT)  // deep backtracking: the interpreter keeps its stack on the heap
        rc = pcre2_match(re, seg, seg_len, pos, PCRE2_NO_UTF_CHECK | PCRE2_NOTEMPTY | PCRE2_NO_JIT, md.get(), nullptr);
      if (rc < 0) break;  // no match (or a resource limit): the rest stays one piece
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
      if (ov[0] > pos) out.push_back(cps_between(pos, ov[0]));
      out.push_back(cps_between(ov[0], ov[1]));
      pos = ov[1];
    }
    if (pos < seg_len) out.push_back(cps_between(pos, seg_len));
    start_cp += len_cp;
  }
  lengths.swap(out);
}
}  // namespace

Expected<PreTokenizer> PreTokenizer::create(std::string_view name) {
  const std::string_view key = name.empty() ? std::string_view("default") : name;
  const auto& table = name_table();
  const auto it = std::find_if(table.begin(), table.end(), [&](const NameEntry& e) { return e.name == key; });
  if (it == table.end()) {
    std::string known;
    for (const auto& e : table) known += (known.empty() ? "" : ", ") + std::string(e.name);
    return Error("unknown or unsupported pre-tokenizer '" + std::string(name) + "' (supported: " + known + ")");
  }
  auto compiled = std::make_shared<Compiled>();
  for (std::string_view pattern : it->family->regexes) {
    PLM_TRY(auto code, compile(pattern));
    compiled->regexes.push_back(std::move(code));
  }
  PLM_TRY(compiled->non_ascii_space, compile(R"([^\x00-\x7F\P{White_Space}])"));
  PreTokenizer p;
  p.name_ = std::string(key);
  p.traits_ = it->traits;
  p.regexes_ = std::move(compiled);
  return p;
}

std::vector<std::string> PreTokenizer::supported_names() {
  std::vector<std::string> names;
  for (const auto& e : name_table()) names.emplace_back(e.name);
  return names;
}

std::vector<std::string> PreTokenizer::split(std::string_view text) const {
  const std::vector<uint32_t> cps = utf8::decode_all(text);
  if (cps.empty()) return {};
  std::string subject;
  std::vector<uint32_t> cp_at_byte;
  build_subject(*regexes_, cps, subject, cp_at_byte);
  std::vector<size_t> byte_at_cp(cps.size() + 1);
  for (size_t off = 0, i = 0; off <= subject.size(); ++off)
    if (off == subject.size() || (static_cast<uint8_t>(subject[off]) & 0xC0) != 0x80) byte_at_cp[i++] = off;

  std::vector<size_t> lengths = {cps.size()};
  for (const auto& re : regexes_->regexes) split_pieces(re.get(), subject, cp_at_byte, byte_at_cp, lengths);

  std::vector<std::string> words;
  words.reserve(lengths.size());
  size_t start = 0;
  std::string raw;
  for (size_t len : lengths) {
    raw.clear();
    for (size_t i = start; i < start + len; ++i) utf8::append(raw, cps[i]);
    std::string word;
    word.reserve(raw.size() * 2);
    for (char ch : raw) word += utf8::byte_to_symbol(static_cast<uint8_t>(ch));
    words.push_back(std::move(word));
    start += len;
  }
  return words;
}

}  // namespace pocketlm
