// The C API (include/pocketlm/pocketlm.h) over Model, Session and the Generator: handles own the C++
// objects, every entry point catches what could throw, and errors become a status and a message kept per
// thread.
#include "pocketlm/pocketlm.h"

#include <algorithm>
#include <exception>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <vector>

#include "gguf/reader.h"
#include "model/model.h"
#include "runtime/generator.h"
#include "runtime/sampler.h"
#include "runtime/session.h"
#include "runtime/speculative/draft_setup.h"
#include "tokenizer/chat_template.h"
#include "util/mapped_file.h"
#include "util/stats.h"

struct plm_model {
  std::unique_ptr<pocketlm::Model> model;
  double load_seconds = 0;
};

struct plm_context {
  const plm_model* model = nullptr;
  std::unique_ptr<pocketlm::DraftSource> draft;  // null: plain decoding
  pocketlm::DraftParams draft_params;
  pocketlm::SpeculativeStats draft_stats;  // of the last plm_generate
  std::unique_ptr<pocketlm::Session> session;
};

namespace {

thread_local std::string g_last_error;

plm_status fail(plm_status s, const std::string& message) {
  g_last_error = message;
  return s;
}

// Runs `f` (returning plm_status), turning an escaping exception into PLM_ERR_INTERNAL.
template <class F>
plm_status guarded(const char* where, F&& f) noexcept {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return fail(PLM_ERR_INTERNAL, std::string(where) + ": out of memory");
  } catch (const std::exception& e) {
    return fail(PLM_ERR_INTERNAL, std::string(where) + ": " + e.what());
  } catch (...) {
    return fail(PLM_ERR_INTERNAL, std::string(where) + ": unknown exception");
  }
}

plm_status load(pocketlm::Expected<std::shared_ptr<pocketlm::MappedFile>> file, double t0, plm_model** out) {
  if (!file) return fail(PLM_ERR_IO, file.error().message());
  auto gguf = pocketlm::GgufFile::parse(std::move(file).value());
  if (!gguf) return fail(PLM_ERR_FORMAT, gguf.error().message());
  auto model = pocketlm::Model::load(std::move(gguf).value());
  if (!model) return fail(PLM_ERR_FORMAT, model.error().message());
  auto m = std::make_unique<plm_model>();
  m->model = std::move(model).value();
  m->load_seconds = pocketlm::now_seconds() - t0;
  *out = m.release();
  return PLM_OK;
}

}  // namespace

extern "C" {

const char* plm_last_error(void) { return g_last_error.c_str(); }

const char* plm_status_name(plm_status status) {
  switch (status) {
    case PLM_OK: return "ok";
    case PLM_ERR_INVALID_ARGUMENT: return "invalid argument";
    case PLM_ERR_IO: return "i/o error";
    case PLM_ERR_FORMAT: return "bad model file";
    case PLM_ERR_CONTEXT_FULL: return "context full";
    case PLM_ERR_CANCELLED: return "cancelled";
    case PLM_ERR_RUNTIME: return "generation failed";
    case PLM_ERR_INTERNAL: return "internal error";
  }
  return "unknown status";
}

plm_status plm_model_load(const char* path, plm_model** out) {
  return guarded("plm_model_load", [&] {
    if (out == nullptr) return fail(PLM_ERR_INVALID_ARGUMENT, "plm_model_load: out is NULL");
    *out = nullptr;
    if (path == nullptr) return fail(PLM_ERR_INVALID_ARGUMENT, "plm_model_load: path is NULL");
    const double t0 = pocketlm::now_seconds();
    return load(pocketlm::MappedFile::open(path), t0, out);
  });
}

plm_status plm_model_load_fd(int fd, uint64_t offset, uint64_t length, plm_model** out) {
  return guarded("plm_model_load_fd", [&] {
    if (out == nullptr) return fail(PLM_ERR_INVALID_ARGUMENT, "plm_model_load_fd: out is NULL");
    *out = nullptr;
    if (fd < 0) return fail(PLM_ERR_INVALID_ARGUMENT, "plm_model_load_fd: fd " + std::to_string(fd) + " is not open");
    // GGUF aligns tensor data to 32 bytes from the start of the file: an offset that is not a multiple of 32
    // would put every tensor at a misaligned address.
    if (offset % 32 != 0)
      return fail(PLM_ERR_INVALID_ARGUMENT, "plm_model_load_fd: offset " + std::to_string(offset) +
                                                " is not a multiple of 32, so the tensors would be misaligned in "
                                                "memory; store the model uncompressed at an aligned offset "
                                                "(zipalign -p aligns to pages)");
    const double t0 = pocketlm::now_seconds();
    return load(pocketlm::MappedFile::open_fd(fd, offset, length, "fd " + std::to_string(fd)), t0, out);
  });
}

void plm_model_free(plm_model* model) { delete model; }

plm_context_params plm_context_default_params(void) { return plm_context_params{0, 0}; }

namespace {

plm_status create_context(const char* where, const plm_model* model, const plm_context_params* params,
                          const plm_draft_params* draft, plm_context** out) {
  return guarded(where, [&] {
    const std::string w = where;
    if (out == nullptr) return fail(PLM_ERR_INVALID_ARGUMENT, w + ": out is NULL");
    *out = nullptr;
    if (model == nullptr) return fail(PLM_ERR_INVALID_ARGUMENT, w + ": model is NULL");
    const plm_context_params p = params ? *params : plm_context_default_params();
    if (p.n_ctx < 0) return fail(PLM_ERR_INVALID_ARGUMENT, w + ": n_ctx " + std::to_string(p.n_ctx) + " < 0");
    if (p.n_threads < 0)
      return fail(PLM_ERR_INVALID_ARGUMENT, w + ": n_threads " + std::to_string(p.n_threads) + " < 0");
    pocketlm::SessionOptions o;
    o.n_ctx = p.n_ctx;
    o.n_threads = p.n_threads;
    auto c = std::make_unique<plm_context>();
    c->model = model;
    if (draft != nullptr) {
      pocketlm::DraftConfig dc;
      if (draft->draft_model != nullptr) dc.model_path = draft->draft_model;
      if (draft->self_type != nullptr) {
        dc.self_type = pocketlm::type_from_name(draft->self_type);
        if (!dc.self_type)
          return fail(PLM_ERR_INVALID_ARGUMENT, w + ": self_type '" + draft->self_type + "' is not a GGUF type");
      }
      dc.self_layers = draft->self_layers;
      dc.lookup = draft->lookup != 0;
      if (!dc.enabled())
        return fail(PLM_ERR_INVALID_ARGUMENT, w + ": no draft source (draft_model, self_type or lookup)");
      c->draft_params.max = draft->draft_max;
      c->draft_params.min = draft->draft_min;
      c->draft_params.p_min = draft->draft_p_min;
      if (pocketlm::Status st = pocketlm::check_draft_params(c->draft_params); !st)
        return fail(PLM_ERR_INVALID_ARGUMENT, w + ": " + st.error().message());
      if (!dc.model_path.empty()) {
        // A missing or malformed draft file is the file's problem, not the parameters'.
        auto f = pocketlm::GgufFile::open(dc.model_path);
        if (!f) return fail(PLM_ERR_IO, w + ": " + f.error().message());
      }
      auto d = pocketlm::make_draft_source(*model->model, dc, o);
      if (!d) return fail(PLM_ERR_INVALID_ARGUMENT, w + ": " + d.error().message());
      c->draft = std::move(d).value();
    }
    auto s = pocketlm::Session::create(*model->model, o);
    if (!s) return fail(PLM_ERR_INVALID_ARGUMENT, w + ": " + s.error().message());
    c->session = std::move(s).value();
    *out = c.release();
    return PLM_OK;
  });
}

}  // namespace

plm_status plm_context_create(const plm_model* model, const plm_context_params* params, plm_context** out) {
  return create_context("plm_context_create", model, params, nullptr, out);
}

plm_draft_params plm_draft_default_params(void) {
  const pocketlm::DraftParams d;
  plm_draft_params p{};
  p.draft_max = d.max;
  p.draft_min = d.min;
  p.draft_p_min = d.p_min;
  return p;
}

plm_status plm_context_create_speculative(const plm_model* model, const plm_context_params* params,
                                          const plm_draft_params* draft, plm_context** out) {
  if (draft == nullptr) {
    if (out != nullptr) *out = nullptr;
    return fail(PLM_ERR_INVALID_ARGUMENT, "plm_context_create_speculative: draft is NULL");
  }
  return create_context("plm_context_create_speculative", model, params, draft, out);
}

plm_status plm_context_draft_stats(const plm_context* ctx, plm_draft_stats* out) {
  if (ctx == nullptr || out == nullptr)
    return fail(PLM_ERR_INVALID_ARGUMENT, "plm_context_draft_stats: ctx or out is NULL");
  const pocketlm::SpeculativeStats& s = ctx->draft_stats;
  *out = plm_draft_stats{s.rounds, s.drafted, s.accepted, s.draft_seconds, s.verify_seconds};
  return PLM_OK;
}

void plm_context_free(plm_context* ctx) { delete ctx; }

plm_generate_params plm_generate_default_params(void) {
  const pocketlm::SamplerParams s;
  plm_generate_params p{};
  p.max_tokens = -1;
  p.chat = 0;
  p.temperature = s.temp;
  p.top_k = s.top_k;
  p.top_p = s.top_p;
  p.min_p = s.min_p;
  p.repeat_penalty = s.repeat_penalty;
  p.seed = s.seed;
  p.stop = nullptr;
  p.n_stop = 0;
  return p;
}

plm_status plm_generate(plm_context* ctx, const char* prompt, const plm_generate_params* params,
                        plm_token_callback callback, void* user_data, plm_stats* stats) {
  return guarded("plm_generate", [&] {
    if (ctx == nullptr) return fail(PLM_ERR_INVALID_ARGUMENT, "plm_generate: ctx is NULL");
    if (prompt == nullptr) return fail(PLM_ERR_INVALID_ARGUMENT, "plm_generate: prompt is NULL");
    const plm_generate_params p = params ? *params : plm_generate_default_params();
    if (p.n_stop > 0 && p.stop == nullptr)
      return fail(PLM_ERR_INVALID_ARGUMENT,
                  "plm_generate: n_stop is " + std::to_string(p.n_stop) + " but stop is NULL");
    pocketlm::GenerateOptions opts;
    opts.max_tokens = p.max_tokens;
    for (size_t i = 0; i < p.n_stop; ++i) {
      if (p.stop[i] == nullptr)
        return fail(PLM_ERR_INVALID_ARGUMENT, "plm_generate: stop[" + std::to_string(i) + "] is NULL");
      opts.stop.emplace_back(p.stop[i]);
    }
    const pocketlm::Model& model = *ctx->model->model;
    std::string text = prompt;
    if (p.chat) {
      auto tmpl = model.gguf().get_string("tokenizer.chat_template");
      if (!tmpl)
        return fail(PLM_ERR_FORMAT, "plm_generate: " + model.gguf().path() + " has no tokenizer.chat_template");
      auto rendered = pocketlm::render_prompt(*tmpl, pocketlm::PromptTurn{.user = text});
      if (!rendered) return fail(PLM_ERR_FORMAT, "plm_generate: " + rendered.error().message());
      text = std::move(rendered).value();
    }
    const pocketlm::Tokenizer& tok = model.tokenizer();
    const std::vector<int32_t> ids = tok.encode(text, /*add_special=*/true, /*parse_special=*/true);
    if (ids.empty())
      return fail(PLM_ERR_INVALID_ARGUMENT, "plm_generate: the prompt is empty (and the model adds no BOS)");
    pocketlm::Session& session = *ctx->session;
    if (static_cast<int64_t>(ids.size()) >= session.n_ctx())
      return fail(PLM_ERR_CONTEXT_FULL, "plm_generate: the prompt is " + std::to_string(ids.size()) +
                                            " tokens, which does not fit the context of " +
                                            std::to_string(session.n_ctx()) + " tokens");
    session.reset();
    pocketlm::SamplerParams sp;
    sp.temp = p.temperature;
    sp.top_k = p.top_k;
    sp.top_p = p.top_p;
    sp.min_p = p.min_p;
    sp.repeat_penalty = p.repeat_penalty;
    sp.seed = p.seed;
    pocketlm::Sampler sampler(sp);
    for (int32_t id : ids) sampler.accept(id);
    opts.draft = ctx->draft_params;
    bool cancelled = false;
    auto r = pocketlm::Generator(session, tok, ctx->draft.get())
                 .generate(ids, sampler, opts, [&](int32_t, std::string_view piece) {
                   if (callback == nullptr || piece.empty()) return true;
                   cancelled = callback(piece.data(), piece.size(), user_data) != 0;
                   return !cancelled;
                 });
    if (!r) return fail(PLM_ERR_RUNTIME, "plm_generate: " + r.error().message());
    ctx->draft_stats = r->stats.speculative;
    if (stats) {
      const pocketlm::GenerateStats& st = r->stats;
      stats->load_seconds = ctx->model->load_seconds;
      stats->prompt_tokens = st.prompt_tokens;
      stats->prompt_tokens_per_second = st.prompt_tokens_per_second();
      stats->generated_tokens = st.tokens;
      stats->tokens_per_second = st.tokens_per_second();
      stats->kv_bytes = st.kv_bytes;
      stats->peak_rss_bytes = st.peak_rss_bytes;
      stats->stop_reason = pocketlm::stop_reason_name(st.stop);
    }
    if (cancelled)
      return fail(PLM_ERR_CANCELLED,
                  "plm_generate: cancelled by the token callback after " + std::to_string(r->stats.tokens) + " tokens");
    return PLM_OK;
  });
}

int32_t plm_model_n_vocab(const plm_model* model) {
  return model ? static_cast<int32_t>(model->model->config().n_vocab) : 0;
}

int32_t plm_model_n_ctx_train(const plm_model* model) {
  return model ? static_cast<int32_t>(model->model->config().n_ctx_train) : 0;
}

int32_t plm_model_bos(const plm_model* model) { return model ? model->model->tokenizer().bos() : -1; }

plm_status plm_tokenize(const plm_model* model, const char* text, size_t len, int add_special, int parse_special,
                        int32_t* out, size_t capacity, size_t* n_tokens) {
  return guarded("plm_tokenize", [&]() -> plm_status {
    if (model == nullptr) return fail(PLM_ERR_INVALID_ARGUMENT, "plm_tokenize: model is NULL");
    if (text == nullptr && len > 0) return fail(PLM_ERR_INVALID_ARGUMENT, "plm_tokenize: text is NULL");
    if (n_tokens == nullptr) return fail(PLM_ERR_INVALID_ARGUMENT, "plm_tokenize: n_tokens is NULL");
    if (out == nullptr && capacity > 0) return fail(PLM_ERR_INVALID_ARGUMENT, "plm_tokenize: out is NULL");
    const std::vector<int32_t> ids =
        model->model->tokenizer().encode(std::string_view(text ? text : "", len), add_special != 0, parse_special != 0);
    *n_tokens = ids.size();
    if (ids.size() > capacity)
      return fail(PLM_ERR_INVALID_ARGUMENT, "plm_tokenize: " + std::to_string(ids.size()) +
                                                " tokens do not fit a buffer of " + std::to_string(capacity));
    std::copy(ids.begin(), ids.end(), out);
    return PLM_OK;
  });
}

plm_status plm_token_to_piece(const plm_model* model, int32_t token, char* out, size_t capacity, size_t* len) {
  return guarded("plm_token_to_piece", [&]() -> plm_status {
    if (model == nullptr || len == nullptr)
      return fail(PLM_ERR_INVALID_ARGUMENT, "plm_token_to_piece: model or len is NULL");
    const int64_t n_vocab = model->model->config().n_vocab;
    if (token < 0 || token >= n_vocab)
      return fail(PLM_ERR_INVALID_ARGUMENT, "plm_token_to_piece: token " + std::to_string(token) + " is outside [0, " +
                                                std::to_string(n_vocab) + ")");
    const std::string piece = model->model->tokenizer().token_to_piece(token);
    *len = piece.size();
    if (piece.size() > capacity || (out == nullptr && !piece.empty()))
      return fail(PLM_ERR_INVALID_ARGUMENT, "plm_token_to_piece: the piece is " + std::to_string(piece.size()) +
                                                " bytes, the buffer " + std::to_string(capacity));
    std::copy(piece.begin(), piece.end(), out);
    return PLM_OK;
  });
}

plm_status plm_context_eval(plm_context* ctx, const int32_t* tokens, size_t n, int all_logits, const float** logits) {
  return guarded("plm_context_eval", [&]() -> plm_status {
    if (ctx == nullptr || logits == nullptr)
      return fail(PLM_ERR_INVALID_ARGUMENT, "plm_context_eval: ctx or logits is NULL");
    if (tokens == nullptr || n == 0) return fail(PLM_ERR_INVALID_ARGUMENT, "plm_context_eval: no tokens");
    pocketlm::Session& s = *ctx->session;
    if (s.n_past() + static_cast<int64_t>(n) > s.n_ctx())
      return fail(PLM_ERR_CONTEXT_FULL, "plm_context_eval: " + std::to_string(s.n_past()) + " tokens + " +
                                            std::to_string(n) + " new do not fit the context of " +
                                            std::to_string(s.n_ctx()));
    const int64_t n_vocab = ctx->model->model->config().n_vocab;
    for (size_t i = 0; i < n; ++i)
      if (tokens[i] < 0 || tokens[i] >= n_vocab)
        return fail(PLM_ERR_INVALID_ARGUMENT, "plm_context_eval: tokens[" + std::to_string(i) +
                                                  "] = " + std::to_string(tokens[i]) + " is outside [0, " +
                                                  std::to_string(n_vocab) + ")");
    auto r = s.eval(std::span<const int32_t>(tokens, n), all_logits != 0);
    if (!r) return fail(PLM_ERR_RUNTIME, "plm_context_eval: " + r.error().message());
    *logits = r->data();
    return PLM_OK;
  });
}

plm_status plm_context_reset(plm_context* ctx) {
  if (ctx == nullptr) return fail(PLM_ERR_INVALID_ARGUMENT, "plm_context_reset: ctx is NULL");
  ctx->session->reset();
  return PLM_OK;
}

int64_t plm_context_n_past(const plm_context* ctx) { return ctx ? ctx->session->n_past() : -1; }
int64_t plm_context_n_ctx(const plm_context* ctx) { return ctx ? ctx->session->n_ctx() : -1; }

}  // extern "C"
