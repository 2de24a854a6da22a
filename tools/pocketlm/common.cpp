#include "common.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include "util/thread_pool.h"

namespace pocketlm::cli {

void add_model_flags(CLI::App& app, ModelFlags& f) {
  app.add_option("-m,--model", f.model, "GGUF model file")->required()->check(CLI::ExistingFile);
  app.add_option("-c,--ctx-size", f.n_ctx, "context size in tokens (KV cache capacity)")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  app.add_option("-t,--threads", f.threads, "threads (default: physical cores)")->check(CLI::Range(1, 1024));
  app.add_option("--cache-type-k", f.cache_type_k, "KV cache type for K (-ctk): f16 | f32")->capture_default_str()->check(CLI::IsMember({"f16", "f32"}));
  app.add_option("--cache-type-v", f.cache_type_v, "KV cache type for V (-ctv): f16 | f32")->capture_default_str()->check(CLI::IsMember({"f16", "f32"}));
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
    std::fprintf(stderr, "error: %s\n", m.error().message().c_str());
    return nullptr;
  }
  return std::move(m).value();
}

std::unique_ptr<Session> make_session(const Model& m, const ModelFlags& f) {
  if (f.cache_type_k != f.cache_type_v) {
    std::fprintf(stderr, "error: -ctk %s and -ctv %s differ; mixed K/V cache types are not supported yet\n",
                 f.cache_type_k.c_str(), f.cache_type_v.c_str());
    return nullptr;
  }
  SessionOptions o;
  o.n_ctx = f.n_ctx;
  o.n_threads = f.threads > 0 ? f.threads : physical_cores();
  o.kv_type = f.cache_type_k == "f32" ? KvType::F32 : KvType::F16;
  auto s = Session::create(m, o);
  if (!s) {
    std::fprintf(stderr, "error: %s\n", s.error().message().c_str());
    return nullptr;
  }
  return std::move(s).value();
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

std::string human_bytes(double b) {
  char buf[32];
  if (b >= 1024.0 * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1024.0 * 1024 * 1024));
  else if (b >= 1024.0 * 1024) std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1024.0 * 1024));
  else std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  return buf;
}

}  // namespace pocketlm::cli
