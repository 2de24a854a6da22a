#pragma once
// The state behind Tokenizer (tokenizer.h), filled by tokenizer_load.cpp and used by tokenizer.cpp.
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "tokenizer/bpe.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

namespace pocketlm {

struct Tokenizer::Impl {
  std::string path;
  std::string model;  // tokenizer.ggml.model: "llama" | "gpt2"
  std::string pre_name;
  bool spm = true;

  tok::Vocab vocab;
  std::optional<PreTokenizer> pre;  // bpe only
  tok::BpeRanks ranks;              // bpe only

  int32_t bos = -1, eos = -1, eot = -1, eom = -1, sep = -1, pad = -1, mask = -1;
  int32_t fim_pre = -1, fim_suf = -1, fim_mid = -1, fim_pad = -1, fim_rep = -1, fim_sep = -1;
  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = false;
  bool clean_spaces = false;

  std::set<int32_t> eog;
  std::vector<int32_t> specials;    // control / user-defined / unknown ids, longest text first
  std::vector<std::string> pieces;  // token_to_piece(id, render_special = true)
};

}  // namespace pocketlm
