#pragma once
// pocketlm's C++ API: RAII handles over the stable C API (pocketlm.h), so a C++ app and a C app run the same
// code. Errors are values (Status: the C status and its message); nothing here throws but std::bad_alloc.
//
//   auto model = pocketlm::api::Model::load("model.gguf");
//   if (!model) { std::cerr << model.status().message << "\n"; return 1; }
//   pocketlm::api::Context ctx;
//   if (auto st = pocketlm::api::Context::create(*model, {.n_ctx = 2048}, ctx); !st) ...
//   pocketlm::api::GenerateParams p;  p.chat = true;  p.temperature = 0;  p.stop = {"\n\n"};
//   auto r = ctx.generate("Hello!", p, [](std::string_view text) { std::cout << text << std::flush; return true; });
//   std::cerr << r.stats.tokens_per_second << " t/s\n";
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pocketlm/pocketlm.h"

namespace pocketlm::api {

struct Status {
  plm_status code = PLM_OK;
  std::string message;
  explicit operator bool() const { return code == PLM_OK; }
  static Status last(plm_status code) { return {code, code == PLM_OK ? std::string() : plm_last_error()}; }
};

using Stats = plm_stats;

class Model {
 public:
  Model() = default;
  // Loads a GGUF file, or `length` bytes at `offset` of an open descriptor (0: to the end).
  static Model load(const std::string& path) {
    Model m;
    m.status_ = Status::last(plm_model_load(path.c_str(), &m.h_));
    return m;
  }
  static Model load_fd(int fd, uint64_t offset = 0, uint64_t length = 0) {
    Model m;
    m.status_ = Status::last(plm_model_load_fd(fd, offset, length, &m.h_));
    return m;
  }
  Model(Model&& o) noexcept : h_(std::exchange(o.h_, nullptr)), status_(std::move(o.status_)) {}
  Model& operator=(Model&& o) noexcept {
    std::swap(h_, o.h_);
    std::swap(status_, o.status_);
    return *this;
  }
  ~Model() { plm_model_free(h_); }
  explicit operator bool() const { return h_ != nullptr; }
  const Status& status() const { return status_; }  // why load failed
  const plm_model* handle() const { return h_; }

 private:
  plm_model* h_ = nullptr;
  Status status_;
};

struct ContextParams {
  int32_t n_ctx = 0;      // 0: min(the model's training context, 4096)
  int32_t n_threads = 0;  // 0: the physical cores
};

// Speculative decoding (docs/speculative.md): exactly one of draft_model, self_type, lookup.
struct DraftParams {
  std::string draft_model;  // a draft model file (same vocabulary, smaller)
  std::string self_type;    // a self-draft: the model requantized in memory to this type ("q4_0")
  int32_t self_layers = 0;  // with self_type: its first N layers (0: all)
  bool lookup = false;      // prompt lookup (n-grams)
  int32_t draft_max = 16;
  int32_t draft_min = 0;
  float draft_p_min = 0.0f;
};

struct GenerateParams {
  int32_t max_tokens = -1;
  bool chat = false;  // the prompt is a user message, rendered through the model's chat template
  float temperature = 0.8f;
  int32_t top_k = 40;
  float top_p = 0.95f;
  float min_p = 0.05f;
  float repeat_penalty = 1.0f;
  uint32_t seed = 0xFFFFFFFFu;
  std::vector<std::string> stop;
};

struct GenerateResult {
  Status status;     // PLM_ERR_CANCELLED when the callback returned false
  std::string text;  // everything streamed
  Stats stats{};
};

// Receives the text as it is generated; return false to cancel.
using TextCallback = std::function<bool(std::string_view text)>;

// One sequence over a model (which must outlive it); one thread at a time.
class Context {
 public:
  Context() = default;
  static Status create(const Model& model, const ContextParams& p, Context& out) {
    const plm_context_params cp{p.n_ctx, p.n_threads};
    plm_context* h = nullptr;
    Status st = Status::last(plm_context_create(model.handle(), &cp, &h));
    out = Context(h);
    return st;
  }
  // A context whose generate() runs speculative decoding with `draft`.
  static Status create_speculative(const Model& model, const ContextParams& p, const DraftParams& draft, Context& out) {
    const plm_context_params cp{p.n_ctx, p.n_threads};
    plm_draft_params dp = plm_draft_default_params();
    dp.draft_model = draft.draft_model.empty() ? nullptr : draft.draft_model.c_str();
    dp.self_type = draft.self_type.empty() ? nullptr : draft.self_type.c_str();
    dp.self_layers = draft.self_layers;
    dp.lookup = draft.lookup ? 1 : 0;
    dp.draft_max = draft.draft_max;
    dp.draft_min = draft.draft_min;
    dp.draft_p_min = draft.draft_p_min;
    plm_context* h = nullptr;
    Status st = Status::last(plm_context_create_speculative(model.handle(), &cp, &dp, &h));
    out = Context(h);
    return st;
  }
  // The last generate()'s speculative figures (zeros without a draft).
  plm_draft_stats draft_stats() const {
    plm_draft_stats s{};
    plm_context_draft_stats(h_, &s);
    return s;
  }
  Context(Context&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  Context& operator=(Context&& o) noexcept {
    std::swap(h_, o.h_);
    return *this;
  }
  ~Context() { plm_context_free(h_); }
  explicit operator bool() const { return h_ != nullptr; }

  // Generates from `prompt` in a fresh sequence, streaming through `on_text` (may be empty).
  GenerateResult generate(const std::string& prompt, const GenerateParams& p, const TextCallback& on_text = {}) {
    plm_generate_params gp = plm_generate_default_params();
    gp.max_tokens = p.max_tokens;
    gp.chat = p.chat ? 1 : 0;
    gp.temperature = p.temperature;
    gp.top_k = p.top_k;
    gp.top_p = p.top_p;
    gp.min_p = p.min_p;
    gp.repeat_penalty = p.repeat_penalty;
    gp.seed = p.seed;
    std::vector<const char*> stops;
    for (const std::string& s : p.stop) stops.push_back(s.c_str());
    gp.stop = stops.data();
    gp.n_stop = stops.size();
    struct Sink {
      GenerateResult* r;
      const TextCallback* cb;
    };
    GenerateResult r;
    Sink sink{&r, &on_text};
    const plm_status st = plm_generate(
        h_, prompt.c_str(), &gp,
        [](const char* text, size_t len, void* user) -> int {
          auto* s = static_cast<Sink*>(user);
          const std::string_view t(text, len);
          s->r->text.append(t);
          return (*s->cb && !(*s->cb)(t)) ? 1 : 0;
        },
        &sink, &r.stats);
    r.status = Status::last(st);
    return r;
  }

 private:
  explicit Context(plm_context* h) : h_(h) {}
  plm_context* h_ = nullptr;
};

}  // namespace pocketlm::api
