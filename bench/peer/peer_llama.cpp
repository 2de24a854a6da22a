#include "peer_llama.h"

#include <climits>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace pocketlm::peer {
namespace {

void quiet_log(ggml_log_level /*level*/, const char* /*text*/, void* /*user_data*/) {}

struct BatchFree {
  void operator()(llama_batch* b) const {
    llama_batch_free(*b);
    delete b;
  }
};

}  // namespace

void init_backend(bool verbose) {
  if (!verbose) llama_log_set(quiet_log, nullptr);
  llama_backend_init();
}

ModelPtr load_model(const std::string& path, bool vocab_only, bool repack) {
  llama_model_params p = llama_model_default_params();
  p.n_gpu_layers = 0;
  p.vocab_only = vocab_only;
  p.use_extra_bufts = repack;
  ModelPtr m(llama_model_load_from_file(path.c_str(), p));
  if (!m) throw std::runtime_error(path + ": llama.cpp could not load the model (run with --verbose for why)");
  return m;
}

ContextPtr new_context(llama_model* model, const ContextOptions& opts) {
  llama_context_params p = llama_context_default_params();
  p.n_ctx = opts.n_ctx;
  p.n_batch = opts.n_batch;
  p.n_seq_max = 1;
  p.n_threads = opts.n_threads;
  p.n_threads_batch = opts.n_threads;
  p.flash_attn_type = opts.flash_attn ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED;
  p.type_k = opts.type_k;
  p.type_v = opts.type_v;
  p.no_perf = true;
  ContextPtr c(llama_init_from_model(model, p));
  if (!c) {
    throw std::runtime_error("llama.cpp could not create a context (n_ctx " + std::to_string(opts.n_ctx) +
                             "; run with --verbose for why)");
  }
  return c;
}

std::vector<llama_token> tokenize(const llama_vocab* vocab, const std::string& text, bool add_special,
                                  bool parse_special) {
  if (text.size() > static_cast<size_t>(INT32_MAX) - 16) throw std::runtime_error("text too long to tokenize");
  const auto len = static_cast<int32_t>(text.size());
  std::vector<llama_token> ids(text.size() + 16);
  int32_t n =
      llama_tokenize(vocab, text.data(), len, ids.data(), static_cast<int32_t>(ids.size()), add_special, parse_special);
  if (n == INT32_MIN) throw std::runtime_error("llama_tokenize: too many tokens");
  if (n < 0) {
    ids.resize(static_cast<size_t>(-n));
    n = llama_tokenize(vocab, text.data(), len, ids.data(), static_cast<int32_t>(ids.size()), add_special,
                       parse_special);
    if (n < 0) throw std::runtime_error("llama_tokenize failed");
  }
  ids.resize(static_cast<size_t>(n));
  return ids;
}

std::string token_piece(const llama_vocab* vocab, llama_token token) {
  std::string out(64, '\0');
  int32_t n = llama_token_to_piece(vocab, token, out.data(), static_cast<int32_t>(out.size()), 0, true);
  if (n < 0) {
    out.resize(static_cast<size_t>(-n));
    n = llama_token_to_piece(vocab, token, out.data(), static_cast<int32_t>(out.size()), 0, true);
    if (n < 0) throw std::runtime_error("llama_token_to_piece failed for token " + std::to_string(token));
  }
  out.resize(static_cast<size_t>(n));
  return out;
}

void decode(llama_context* ctx, std::span<const llama_token> tokens, int32_t pos0, bool all_logits) {
  const auto n = static_cast<int32_t>(tokens.size());
  std::unique_ptr<llama_batch, BatchFree> batch(new llama_batch(llama_batch_init(n, 0, 1)));
  for (int32_t i = 0; i < n; ++i) {
    batch->token[i] = tokens[static_cast<size_t>(i)];
    batch->pos[i] = pos0 + i;
    batch->n_seq_id[i] = 1;
    batch->seq_id[i][0] = 0;
    batch->logits[i] = static_cast<int8_t>(all_logits || i == n - 1);
  }
  batch->n_tokens = n;
  const int32_t rc = llama_decode(ctx, *batch);
  if (rc != 0) {
    throw std::runtime_error("llama_decode failed with code " + std::to_string(rc) + " (" + std::to_string(n) +
                             " tokens at position " + std::to_string(pos0) + ")");
  }
}

llama_token argmax(const float* logits, int32_t n_vocab) {
  llama_token best = 0;
  for (llama_token i = 1; i < n_vocab; ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return best;
}

ggml_type cache_type_from_name(const std::string& name) {
  static const std::pair<const char*, ggml_type> kTypes[] = {
      {"f32", GGML_TYPE_F32},   {"f16", GGML_TYPE_F16},   {"bf16", GGML_TYPE_BF16}, {"q8_0", GGML_TYPE_Q8_0},
      {"q4_0", GGML_TYPE_Q4_0}, {"q4_1", GGML_TYPE_Q4_1}, {"q5_0", GGML_TYPE_Q5_0}, {"q5_1", GGML_TYPE_Q5_1},
  };
  for (const auto& [n, t] : kTypes) {
    if (name == n) return t;
  }
  throw std::invalid_argument("unknown KV cache type '" + name + "' (f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1)");
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw std::runtime_error(path + ": read error");
  return std::move(ss).str();
}

}  // namespace pocketlm::peer
