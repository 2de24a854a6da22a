#include "common.h"

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "util/thread_pool.h"

namespace pocketlm::cli {

void add_model_flags(CLI::App& app, ModelFlags& f) {
  app.add_option("-m,--model", f.model, "GGUF model file")->required()->check(CLI::ExistingFile);
  app.add_option("-c,--ctx-size", f.n_ctx, "context size in tokens (KV cache capacity)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("-t,--threads", f.threads, "threads (default: physical cores)")->check(CLI::Range(1, 1024));
  const auto types = CLI::IsMember({"f16", "f32", "q8", "q4", "q8_0", "q4_0"});
  app.add_option("--cache-type-k", f.cache_type_k,
                 "KV cache type for K (-ctk): f16 | f32 | q8 | q4 (int8/int4, one scale per token and KV head)")
      ->capture_default_str()
      ->check(types);
  app.add_option("--cache-type-v", f.cache_type_v, "KV cache type for V (-ctv): f16 | f32 | q8 | q4")
      ->capture_default_str()
      ->check(types);
  app.add_option("--kv-budget", f.kv_budget,
                 "hard limit on KV cache bytes (K/M/G suffix); a full cache is an error (default: what -c needs)");
  app.add_option("--kv-block", f.kv_block, "tokens per KV cache block")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
}

void add_sampler_flags(CLI::App& app, SamplerParams& p) {
  app.add_option("--temp", p.temp, "temperature; <= 0 is greedy")->capture_default_str();
  app.add_option("--top-k", p.top_k, "top-k sampling (0 = off)")->capture_default_str();
  app.add_option("--top-p", p.top_p, "top-p sampling (1.0 = off)")->capture_default_str();
  app.add_option("--min-p", p.min_p, "min-p sampling (0.0 = off)")->capture_default_str();
  app.add_option("--repeat-penalty", p.repeat_penalty, "penalize repeated tokens (1.0 = off)")->capture_default_str();
  app.add_option("--repeat-last-n", p.repeat_last_n, "tokens considered for penalties (0 = off, -1 = context)")
      ->capture_default_str();
  app.add_option("--frequency-penalty", p.frequency_penalty, "frequency penalty (0.0 = off)")->capture_default_str();
  app.add_option("--presence-penalty", p.presence_penalty, "presence penalty (0.0 = off)")->capture_default_str();
  app.add_option("-s,--seed", p.seed, "RNG seed (default: random)");
}

std::unique_ptr<Model> load_model(const std::string& path) {
  auto m = Model::load(path);
  if (!m) {
    print_error(m.error());
    return nullptr;
  }
  return std::move(m).value();
}

Expected<size_t> parse_byte_size(const std::string& s, const std::string& flag) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(s, &used);
  } catch (const std::exception&) {
    return Error(flag + " '" + s + "': not a size (e.g. 64M, 1.5G, 300000000)");
  }
  std::string suffix = s.substr(used);
  if (!suffix.empty() && (suffix.back() == 'B' || suffix.back() == 'b')) suffix.pop_back();
  if (!suffix.empty() && (suffix.back() == 'i')) suffix.pop_back();
  double mult = 1;
  if (suffix == "K" || suffix == "k")
    mult = 1024.0;
  else if (suffix == "M" || suffix == "m")
    mult = 1024.0 * 1024;
  else if (suffix == "G" || suffix == "g")
    mult = 1024.0 * 1024 * 1024;
  else if (!suffix.empty())
    return Error(flag + " '" + s + "': unknown unit '" + suffix + "' (use K, M or G)");
  if (!(v > 0) || v * mult > 1e15) return Error(flag + " '" + s + "': out of range");
  return static_cast<size_t>(v * mult);
}

Expected<SessionOptions> session_options(const ModelFlags& f) {
  SessionOptions o;
  o.n_ctx = f.n_ctx;
  o.n_threads = f.threads > 0 ? f.threads : physical_cores();
  PLM_TRY(o.kv_type, parse_kv_type(f.cache_type_k));
  PLM_TRY(KvType v, parse_kv_type(f.cache_type_v));
  o.kv_type_v = v;
  if (!f.kv_budget.empty()) {
    PLM_TRY(o.kv_budget, parse_byte_size(f.kv_budget, "--kv-budget"));
  }
  o.kv_block = f.kv_block;
  return o;
}

void add_draft_flags(CLI::App& app, DraftFlags& f) {
  auto* d = app.add_option("--draft,--model-draft,--spec-draft-model", f.model,
                           "speculative decoding with this draft model (same vocabulary, smaller)")
                ->check(CLI::ExistingFile);
  auto* s =
      app.add_option("--draft-self", f.self_type,
                     "speculative decoding with the target requantized in memory to TYPE (q4_0, q8_0, q2_K, ...)");
  app.add_option("--draft-layers", f.self_layers, "with --draft-self: draft with the first N layers only")
      ->check(CLI::Range(int64_t{1}, int64_t{512}))
      ->needs(s);
  auto* l =
      app.add_flag("--lookup", f.lookup, "speculative decoding with prompt lookup (n-grams of the prompt and output)");
  app.add_option("--lookup-ngram-min", f.lookup_ngram_min, "with --lookup: shortest n-gram matched")
      ->capture_default_str()
      ->check(CLI::Range(1, 16))
      ->needs(l);
  app.add_option("--lookup-ngram-max", f.lookup_ngram_max, "with --lookup: longest n-gram matched (tried first)")
      ->capture_default_str()
      ->check(CLI::Range(1, 16))
      ->needs(l);
  d->excludes(s)->excludes(l);
  s->excludes(l);
  app.add_option("--draft-max,--draft-n,--spec-draft-n-max", f.params.max, "most tokens drafted per round")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--draft-min,--draft-n-min,--spec-draft-n-min", f.params.min, "a shorter draft is not verified")
      ->capture_default_str()
      ->check(CLI::Range(0, 256));
  app.add_option("--draft-p-min,--spec-draft-p-min", f.params.p_min,
                 "stop drafting when the draft's top probability is below P")
      ->capture_default_str()
      ->check(CLI::Range(0.0f, 1.0f));
  app.add_flag(
      "--draft-fixed", [&f](int64_t) { f.params.adaptive = false; },
      "always draft --draft-max tokens (default: adapt the length to the acceptance rate)");
}

bool make_draft(const Model& m, const DraftFlags& df, SessionOptions& o, std::unique_ptr<DraftSource>& draft) {
  auto fail = [](const std::string& msg) {
    std::fprintf(stderr, "error: %s\n", msg.c_str());
    return false;
  };
  DraftConfig c;
  c.model_path = df.model;
  c.self_layers = df.self_layers;
  c.lookup = df.lookup;
  c.lookup_ngram_min = df.lookup_ngram_min;
  c.lookup_ngram_max = df.lookup_ngram_max;
  if (!df.self_type.empty()) {
    c.self_type = type_from_name(df.self_type);
    if (!c.self_type) return fail("--draft-self " + df.self_type + ": not a GGUF type (q4_0, q8_0, q2_K, q4_K, ...)");
  }
  if (c.enabled()) {
    if (df.params.min > df.params.max)
      return fail("--draft-min " + std::to_string(df.params.min) + " is above --draft-max " +
                  std::to_string(df.params.max));
    if (Status st = check_draft_params(df.params); !st) return fail(st.error().message());
  }
  auto d = make_draft_source(m, c, o);
  if (!d) return fail(d.error().message());
  draft = std::move(d).value();
  return true;
}

bool make_draft_and_session(const Model& m, const ModelFlags& mf, const DraftFlags& df,
                            std::unique_ptr<DraftSource>& draft, std::unique_ptr<Session>& session) {
  auto o = session_options(mf);
  if (!o) {
    print_error(o.error());
    return false;
  }
  if (!make_draft(m, df, *o, draft)) return false;
  auto s = Session::create(m, *o);
  if (!s) {
    print_error(s.error());
    return false;
  }
  session = std::move(s).value();
  return true;
}

std::string draft_summary(const SpeculativeStats& s) {
  char buf[200];
  std::snprintf(
      buf, sizeof buf,
      "draft: accepted %lld/%lld (%.1f %%), mean accepted length %.2f | %lld rounds, draft %.0f %% of the time",
      static_cast<long long>(s.accepted), static_cast<long long>(s.drafted), 100.0 * s.acceptance_rate(),
      s.mean_accepted_length(), static_cast<long long>(s.rounds), 100.0 * s.draft_share());
  return buf;
}

std::unique_ptr<Session> make_session(const Model& m, const ModelFlags& f) {
  auto o = session_options(f);
  if (!o) {
    print_error(o.error());
    return nullptr;
  }
  auto s = Session::create(m, *o);
  if (!s) {
    print_error(s.error());
    return nullptr;
  }
  return std::move(s).value();
}

void print_error(const Error& e) {
  // The library's setting names (Error::about) → this CLI's flags.
  static const std::map<std::string, std::string> flags = {{"n_ctx", "-c/--ctx-size"},
                                                           {"max_chunks", "--chunks"},
                                                           {"chat_template", "--chat-template NAME"},
                                                           {"output", "-o/--output"},
                                                           {"max_tokens", "--max-tokens"},
                                                           {"bits_per_weight", "--bits-per-weight"},
                                                           {"kv_type", "-ctk/-ctv"},
                                                           {"labels", "--labels"},
                                                           {"kld", "--kld"},
                                                           {"line", "--line"},
                                                           {"tests", "-p/-n"},
                                                           {"repetitions", "-r"},
                                                           {"peer", "--peer"},
                                                           {"kv_budget", "--kv-budget"},
                                                           {"n_threads", "-t/--threads"},
                                                           {"drop_layers", "--drop-layers"},
                                                           {"keep_layers", "--layers"},
                                                           {"heads_keep", "--heads-keep"},
                                                           {"ffn_keep", "--ffn-keep"},
                                                           {"repair", "--repair"},
                                                           {"budget", "--budget/--device"},
                                                           {"calib", "--calib"}};
  const auto it = flags.find(e.setting());
  if (it == flags.end())
    std::fprintf(stderr, "error: %s\n", e.message().c_str());
  else
    std::fprintf(stderr, "error: %s (set with %s)\n", e.message().c_str(), it->second.c_str());
}

bool read_text_file(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "error: %s: cannot open\n", path.c_str());
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

}  // namespace pocketlm::cli
