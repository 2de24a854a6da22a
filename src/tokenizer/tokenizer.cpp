#include "tokenizer/tokenizer.h"

#include "tokenizer/special_tokens.h"
#include "tokenizer/spm.h"
#include "tokenizer/tokenizer_impl.h"

namespace pocketlm {
namespace {

std::string escape_spaces(std::string_view text) {  // ' ' -> U+2581
  std::string s;
  s.reserve(text.size() + text.size() / 4);
  for (char c : text) {
    if (c == ' ') {
      s += "\xE2\x96\x81";
    } else {
      s.push_back(c);
    }
  }
  return s;
}

// clean_up_tokenization_spaces, in llama.cpp's three passes over the bytes (each pass compacts in place and
// reads the bytes it has not yet overwritten).
void clean_spaces(std::string& text) {
  // " ?", " !", " .", " ,"  ->  "?", "!", ".", ","
  size_t total = text.empty() ? 0 : 1;
  for (size_t i = 1, n = text.size(); i < n; ++i) {
    const char x = text[i];
    if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) --total;
    text[total++] = x;
  }
  text.resize(total);
  // " ' "  ->  "'"
  total = text.empty() ? 0 : 1;
  for (size_t i = 1, n = text.size(); i < n; ++i) {
    const char x = text[i];
    if (x == '\'' && i + 1 < n && text[i - 1] == ' ' && text[i + 1] == ' ') {
      --total;
      text[++i] = '\0';
    }
    text[total++] = x;
  }
  text.resize(total);
  // " 's", " 'm", " 're", " 've"  ->  "'s", "'m", "'re", "'ve"
  total = text.empty() ? 0 : 1;
  for (size_t i = 1, n = text.size(); i < n; ++i) {
    const char x = text[i];
    if (text[i - 1] == ' ' && x == '\'' && i + 1 < n) {
      const char x1 = text[i + 1];
      if (x1 == 's' || x1 == 'm') {
        --total;
      } else if (i + 2 < n && ((x1 == 'r' && text[i + 2] == 'e') || (x1 == 'v' && text[i + 2] == 'e'))) {
        --total;
      }
    }
    text[total++] = x;
  }
  text.resize(total);
}

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  const Impl& t = *impl_;
  std::vector<int32_t> out;
  const auto fragments = tok::partition_special(text, t.vocab, t.specials, parse_special);
  if (add_special && t.add_bos && t.bos >= 0) out.push_back(t.bos);
  bool prev_special = true;  // spm: a space goes before the text at the start and after a special token
  for (const tok::Fragment& f : fragments) {
    if (f.token >= 0) {
      out.push_back(f.token);
      prev_special = true;
      continue;
    }
    const std::string_view piece = text.substr(f.offset, f.length);
    if (t.spm) {
      std::string s = (t.add_space_prefix && prev_special) ? " " : "";
      s.append(piece);
      tok::spm_encode(t.vocab, escape_spaces(s), out);
    } else {
      tok::bpe_encode(t.vocab, t.ranks, *t.pre, piece, out);
    }
    prev_special = false;
  }
  if (add_special && t.add_eos && t.eos >= 0) out.push_back(t.eos);
  return out;
}

std::string Tokenizer::token_to_piece(int32_t id, bool render_special) const {
  const Impl& t = *impl_;
  if (!t.vocab.valid(id)) return "";
  if (!render_special && (t.vocab.attr(id) & (tok::kAttrUnknown | tok::kAttrControl))) return "";
  return t.pieces[static_cast<size_t>(id)];
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool render_special) const {
  const Impl& t = *impl_;
  std::string text;
  bool strip_space = t.add_space_prefix;  // the first token loses one leading space
  for (int32_t id : ids) {
    std::string piece = token_to_piece(id, render_special);
    if (strip_space && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    strip_space = false;
    text += piece;
  }
  if (t.clean_spaces) clean_spaces(text);
  return text;
}

int32_t Tokenizer::n_vocab() const { return impl_->vocab.n(); }
int32_t Tokenizer::bos() const { return impl_->bos; }
int32_t Tokenizer::eos() const { return impl_->eos; }
int32_t Tokenizer::eot() const { return impl_->eot; }
bool Tokenizer::is_eog(int32_t id) const { return id >= 0 && impl_->eog.count(id) > 0; }
bool Tokenizer::add_bos() const { return impl_->add_bos; }
bool Tokenizer::add_eos() const { return impl_->add_eos; }
bool Tokenizer::is_control(int32_t id) const {
  return impl_->vocab.valid(id) && (impl_->vocab.attr(id) & tok::kAttrControl);
}
std::string_view Tokenizer::model_kind() const { return impl_->model; }
std::string_view Tokenizer::pre() const { return impl_->pre_name; }

const std::string& Tokenizer::token_text(int32_t id) const {
  static const std::string kNone;
  return impl_->vocab.valid(id) ? impl_->vocab.tokens[static_cast<size_t>(id)].text : kNone;
}

}  // namespace pocketlm
