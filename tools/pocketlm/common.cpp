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
  app.add_option("-c,--ctx-size", f.n_ctx, "context size in tokens (KV cache capacity)")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  app.add_option("-t,--threads", f.threads, "threads (default: physical cores)")->check(CLI::Range(1, 1024));
  const auto types = CLI::IsMember({"f16", "f32", "q8", "q4", "q8_0", "q4_0"});
  app.add_option("--cache-type-k", f.cache_type_k, "KV cache type for K (-ctk): f16 | f32 | q8 | q4 (int8/int4, one scale per token and KV head)")
      ->capture_default_str()->check(types);
  app.add_option("--cache-type-v", f.cache_type_v, "KV cache type for V (-ctv): f16 | f32 | q8 | q4")->capture_default_str()->check(types);
  app.add_option("--kv-budget", f.kv_budget, "hard limit on KV cache bytes (K/M/G suffix); a full cache is an error (default: what -c needs)");
  app.add_option("--kv-block", f.kv_block, "tokens per KV cache block")->capture_default_str()->check(CLI::Range(1, 4096));
}

void add_sampler_flags(CLI::App& app, SamplerParams& p) {
  app.add_option("--temp", p.temp, "temperature; <= 0 is greedy")->capture_default_str();
  app.add_option("--top-k", p.top_k, "top-k sampling (0 = off)")->capture_default_str();
  app.add_option("--top-p", p.top_p, "top-p sampling (1.0 = off)")->capture_default_str();
  app.add_option("--min-p", p.min_p, "min-p sampling (0.0 = off)")->capture_default_str();
  app.add_option("--repeat-penalty", p.repeat_penalty, "penalize repeated tokens (1.0 = off)")->capture_default_str();
  app.add_option("--repeat-last-n", p.repeat_last_n, "tokens considered for penalties (0 = off, -1 = context)")->capture_default_str();
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
  if (suffix == "K" || suffix == "k") mult = 1024.0;
  else if (suffix == "M" || suffix == "m") mult = 1024.0 * 1024;
  else if (suffix == "G" || suffix == "g") mult = 1024.0 * 1024 * 1024;
  else if (!suffix.empty()) return Error(flag + " '" + s + "': unknown unit '" + suffix + "' (use K, M or G)");
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
  static const std::map<std::string, std::string> flags = {
      {"n_ctx", "-c/--ctx-size"},       {"max_chunks", "--chunks"},      {"chat_template", "--chat-template NAME"},
      {"output", "-o/--output"},        {"max_tokens", "--max-tokens"},  {"bits_per_weight", "--bits-per-weight"},
      {"kv_type", "-ctk/-ctv"},         {"labels", "--labels"},          {"kld", "--kld"},
      {"tests", "-p/-n"},               {"repetitions", "-r"},           {"peer", "--peer"},         {"kv_budget", "--kv-budget"},    {"n_threads", "-t/--threads"}};
  const auto it = flags.find(e.setting());
  if (it == flags.end()) std::fprintf(stderr, "error: %s\n", e.message().c_str());
  else std::fprintf(stderr, "error: %s (set with %s)\n", e.message().c_str(), it->second.c_str());
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
