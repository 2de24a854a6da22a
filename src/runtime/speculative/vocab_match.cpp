#include "runtime/speculative/vocab_match.h"

#include <algorithm>
#include <cstdlib>

namespace pocketlm {

namespace {
std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[(c >> 4) & 0xf];
      out += hex[c & 0xf];
    } else {
      out += c;
    }
  }
  return out + "'";
}
}  // namespace

Status check_draft_vocabulary(const Tokenizer& target, const Tokenizer& draft, const std::string& target_name,
                              const std::string& draft_name) {
  const std::string pre = "draft model " + draft_name + " cannot draft for " + target_name + ": ";
  if (target.model_kind() != draft.model_kind())
    return Error(pre + "its tokenizer is '" + std::string(draft.model_kind()) + "', the target's '" +
                 std::string(target.model_kind()) + "'");
  if (target.add_bos() != draft.add_bos() || (target.add_bos() && target.bos() != draft.bos()))
    return Error(pre + "BOS differs (draft: add " + std::to_string(draft.add_bos()) + ", id " +
                 std::to_string(draft.bos()) + "; target: add " + std::to_string(target.add_bos()) + ", id " +
                 std::to_string(target.bos()) + ")");
  if (target.add_eos() != draft.add_eos() || (target.add_eos() && target.eos() != draft.eos()))
    return Error(pre + "EOS differs (draft: add " + std::to_string(draft.add_eos()) + ", id " +
                 std::to_string(draft.eos()) + "; target: add " + std::to_string(target.add_eos()) + ", id " +
                 std::to_string(target.eos()) + ")");
  const int nt = target.n_vocab(), nd = draft.n_vocab();
  if (std::abs(nt - nd) > kDraftVocabMaxSizeDifference)
    return Error(pre + "its vocabulary has " + std::to_string(nd) + " tokens, the target's " + std::to_string(nt) +
                 " (at most " + std::to_string(kDraftVocabMaxSizeDifference) + " may differ)");
  for (int i = kDraftVocabCheckFrom; i < std::min(nt, nd); ++i)
    if (target.token_text(i) != draft.token_text(i))
      return Error(pre + "token " + std::to_string(i) + " is " + quoted(draft.token_text(i)) + " in the draft but " +
                   quoted(target.token_text(i)) + " in the target (the vocabularies must match)");
  return Status::Ok();
}

}  // namespace pocketlm
