#pragma once
// Thin RAII layer over llama.cpp's C API for pocketlm-peer. Every failure throws std::runtime_error with
// a message naming what failed; main() turns it into a non-zero exit.
#include <llama.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace pocketlm::peer {

struct ModelFree {
  void operator()(llama_model* m) const { llama_model_free(m); }
};
struct ContextFree {
  void operator()(llama_context* c) const { llama_free(c); }
};
using ModelPtr = std::unique_ptr<llama_model, ModelFree>;
using ContextPtr = std::unique_ptr<llama_context, ContextFree>;

struct ContextOptions {
  uint32_t n_ctx = 512;
  uint32_t n_batch = 512;  // largest llama_decode call; n_ubatch stays llama.cpp's default (512)
  int32_t n_threads = 2;
  bool flash_attn = false;  // off unless --fa
  ggml_type type_k = GGML_TYPE_F16;
  ggml_type type_v = GGML_TYPE_F16;
};

// Initializes the backend once; silences llama.cpp's log unless `verbose`.
void init_backend(bool verbose);

// CPU only (no layers offloaded). vocab_only skips the weights (enough for tokenizing). repack keeps
// llama.cpp's "extra buffer types" (weight repacking, AMX); off by default, like its --no-repack, because
// the AMX path dies with SIGILL on VMs that advertise AMX without enabling it.
ModelPtr load_model(const std::string& path, bool vocab_only, bool repack = false);
ContextPtr new_context(llama_model* model, const ContextOptions& opts);

// llama_tokenize over the whole text; add_special adds BOS/EOS when the vocabulary asks for them.
std::vector<llama_token> tokenize(const llama_vocab* vocab, const std::string& text, bool add_special,
                                  bool parse_special);
// The text of one token as generation prints it (special tokens rendered).
std::string token_piece(const llama_vocab* vocab, llama_token token);

// llama_decode of `tokens` at positions pos0.. in sequence 0; with all_logits every position gets an
// output row, otherwise only the last.
void decode(llama_context* ctx, std::span<const llama_token> tokens, int32_t pos0, bool all_logits);

// Index of the largest logit; ties go to the lowest id.
llama_token argmax(const float* logits, int32_t n_vocab);

// "f16", "q8_0", ... → ggml_type (the KV cache types llama.cpp's -ctk/-ctv accept on CPU).
ggml_type cache_type_from_name(const std::string& name);

std::string read_file(const std::string& path);

}  // namespace pocketlm::peer
