#include "peer_bench.h"

#include <ggml-backend.h>
#include <ggml-cpu.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>

#include "peer_llama.h"

namespace pocketlm::peer {
namespace {

using nlohmann::json;

std::mutex g_log_mu;
std::string g_log;  // llama.cpp's log since the last take_log()
bool g_log_echo = false;

void capture_cb(ggml_log_level /*level*/, const char* text, void* /*user*/) {
  std::lock_guard<std::mutex> lock(g_log_mu);
  g_log += text;
  if (g_log_echo) std::fputs(text, stderr);
}

std::string take_log() {
  std::lock_guard<std::mutex> lock(g_log_mu);
  std::string s;
  s.swap(g_log);
  return s;
}

// "enabled" / "disabled" as llama.cpp resolved flash attention for the last context (from its log).
std::string resolved_flash_attn(const std::string& log, const std::string& asked) {
  if (asked != "auto") return asked == "on" ? "enabled" : "disabled";
  if (log.find("Flash Attention enabled") != std::string::npos) return "enabled";
  if (log.find("Flash Attention not supported") != std::string::npos) return "disabled";
  return "unknown";
}

// "CPU_REPACK model buffer size = 12.3 MiB" lines: which buffers hold the weights.
json weight_buffers(const std::string& log) {
  json out = json::array();
  size_t pos = 0;
  while ((pos = log.find("model buffer size", pos)) != std::string::npos) {
    const size_t start = log.rfind(':', pos) == std::string::npos ? 0 : log.rfind(':', pos) + 1;
    const size_t end = log.find('\n', pos);
    std::string line = log.substr(start, end - start);
    while (!line.empty() && line.front() == ' ') line.erase(0, 1);
    out.push_back(line);
    pos = end == std::string::npos ? log.size() : end;
  }
  return out;
}

struct Threadpool {
  ggml_threadpool* tp = nullptr;
  decltype(ggml_threadpool_free)* free_fn = nullptr;
  ~Threadpool() {
    if (tp && free_fn) free_fn(tp);
  }
};

class PeerBench {
 public:
  explicit PeerBench(const PeerArgs& a) : a_(a), rng_(1234) {
    repack_ = a.repack_set ? a.repack : true;  // llama-bench keeps llama.cpp's default: extra buffers on
    take_log();
    model_ = load_model(a.model, /*vocab_only=*/false, repack_);
    buffers_ = weight_buffers(take_log());
    vocab_ = llama_model_get_vocab(model_.get());
    n_vocab_ = llama_vocab_n_tokens(vocab_);
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (!cpu) throw std::runtime_error("no CPU backend");
    ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(cpu);
    tp_new_ =
        reinterpret_cast<decltype(ggml_threadpool_new)*>(ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_new"));
    pool_.free_fn = reinterpret_cast<decltype(ggml_threadpool_free)*>(
        ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_free"));
    if (!tp_new_ || !pool_.free_fn) throw std::runtime_error("the CPU backend has no thread pool API");
  }

  json setup() const {
    char desc[256] = {};
    llama_model_desc(model_.get(), desc, sizeof(desc));
    return {{"llama_cpp", llama_version()},
            {"desc", desc},
            {"model_size", llama_model_size(model_.get())},
            {"n_threads", a_.n_threads},
            {"repack", repack_},
            {"flash_attn_asked", a_.fa_mode},
            {"cache_type_k", a_.cache_type_k},
            {"cache_type_v", a_.cache_type_v},
            {"weight_buffers", buffers_},
            {"n_batch", 2048},
            {"n_ubatch", 512},
            {"poll", 50}};
  }

  // One timed run: "pp" or "tg" of n tokens from an empty cache; warm-up runs as llama-bench's do.
  json run(const std::string& kind, int n, bool warmup) {
    if (kind != "pp" && kind != "tg") throw std::invalid_argument("unknown test '" + kind + "' (pp or tg)");
    if (n < 1) throw std::invalid_argument("test size must be at least 1");
    ensure_context(kind, n);
    llama_memory_clear(llama_get_memory(ctx_.get()), false);
    const auto t0 = std::chrono::steady_clock::now();
    if (kind == "pp")
      prompt(n);
    else
      generate(warmup ? 1 : n);
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
    return {{"test", kind + std::to_string(n)},
            {"warmup", warmup},
            {"ns", ns},
            {"n_ctx", n_ctx_},
            {"flash_attn", flash_attn_}};
  }

 private:
  llama_token random_token() { return static_cast<llama_token>(rng_() % static_cast<uint32_t>(n_vocab_)); }

  void ensure_context(const std::string& kind, int n) {
    const std::string key = kind + std::to_string(n);
    if (ctx_ && key == ctx_key_) return;
    ctx_.reset();
    take_log();
    llama_context_params p = llama_context_default_params();
    p.n_ctx = static_cast<uint32_t>(n);  // llama-bench: n_prompt + n_gen of the test
    p.n_batch = 2048;
    p.n_ubatch = 512;
    p.n_seq_max = 1;
    p.n_threads = a_.n_threads;
    p.n_threads_batch = a_.n_threads;
    p.type_k = cache_type_from_name(a_.cache_type_k);
    p.type_v = cache_type_from_name(a_.cache_type_v);
    p.flash_attn_type = a_.fa_mode == "on"    ? LLAMA_FLASH_ATTN_TYPE_ENABLED
                        : a_.fa_mode == "off" ? LLAMA_FLASH_ATTN_TYPE_DISABLED
                                              : LLAMA_FLASH_ATTN_TYPE_AUTO;
    p.no_perf = true;
    ctx_.reset(llama_init_from_model(model_.get(), p));
    if (!ctx_) throw std::runtime_error("llama.cpp could not create a context of " + std::to_string(n) + " tokens");
    n_ctx_ = static_cast<int>(llama_n_ctx(ctx_.get()));
    flash_attn_ = resolved_flash_attn(take_log(), a_.fa_mode);
    if (!pool_.tp) {
      ggml_threadpool_params tpp = ggml_threadpool_params_default(a_.n_threads);
      tpp.poll = 50;
      pool_.tp = tp_new_(&tpp);
      if (!pool_.tp) throw std::runtime_error("could not create a ggml thread pool of " + std::to_string(a_.n_threads));
    }
    llama_attach_threadpool(ctx_.get(), pool_.tp, nullptr);
    ctx_key_ = key;
  }

  void prompt(int n) {
    std::vector<llama_token> tokens(static_cast<size_t>(n));
    for (auto& t : tokens) t = random_token();
    if (llama_vocab_get_add_bos(vocab_)) tokens[0] = llama_vocab_bos(vocab_);
    for (int done = 0; done < n;) {
      const int k = std::min(n - done, 2048);
      const int rc = llama_decode(ctx_.get(), llama_batch_get_one(tokens.data() + done, k));
      if (rc != 0) throw std::runtime_error("llama_decode of the prompt failed with " + std::to_string(rc));
      done += k;
    }
    llama_synchronize(ctx_.get());
  }

  void generate(int n) {
    llama_token t = llama_vocab_get_add_bos(vocab_) ? llama_vocab_bos(vocab_) : random_token();
    for (int i = 0; i < n; ++i) {
      const int rc = llama_decode(ctx_.get(), llama_batch_get_one(&t, 1));
      if (rc != 0)
        throw std::runtime_error("llama_decode of token " + std::to_string(i) + " failed with " + std::to_string(rc));
      llama_synchronize(ctx_.get());
      t = random_token();
    }
  }

  const PeerArgs& a_;
  std::mt19937 rng_;
  bool repack_ = true;
  ModelPtr model_;
  json buffers_;
  const llama_vocab* vocab_ = nullptr;
  int32_t n_vocab_ = 0;
  decltype(ggml_threadpool_new)* tp_new_ = nullptr;
  Threadpool pool_;
  ContextPtr ctx_;
  std::string ctx_key_;
  int n_ctx_ = 0;
  std::string flash_attn_;
};

json serve(PeerBench& b) {
  json ready = b.setup();
  ready["ready"] = true;
  std::cout << ready.dump() << std::endl;
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    if (line == "quit") break;
    json reply;
    try {
      std::string kind, size;
      bool warmup = false;
      std::istringstream in(line);
      in >> kind;
      if (kind == "warmup") {
        warmup = true;
        in >> kind;
      }
      in >> size;
      reply = b.run(kind, std::stoi(size), warmup);
    } catch (const std::exception& e) {
      reply = {{"error", std::string(e.what())}, {"command", line}};
    }
    std::cout << reply.dump() << std::endl;
  }
  return nullptr;
}

}  // namespace

void capture_llama_log(bool verbose) {
  g_log_echo = verbose;
  llama_log_set(capture_cb, nullptr);
}

json run_bench(const PeerArgs& a) {
  PeerBench b(a);
  if (a.serve) return serve(b);
  json out = b.setup();
  json tests = json::array();
  const auto one = [&](const std::string& kind, int n) {
    b.run(kind, n, /*warmup=*/true);
    json samples_ns = json::array(), samples_ts = json::array();
    for (int r = 0; r < a.repetitions; ++r) {
      const json t = b.run(kind, n, false);
      const double ns = t.at("ns").get<double>();
      samples_ns.push_back(t.at("ns"));
      samples_ts.push_back(1e9 * n / ns);
      out["flash_attn"] = t.at("flash_attn");
    }
    tests.push_back({{"test", kind + std::to_string(n)}, {"samples_ns", samples_ns}, {"samples_ts", samples_ts}});
  };
  if (a.n_prompt > 0) one("pp", a.n_prompt);
  if (a.n_predict > 0) one("tg", a.n_predict);
  out["tests"] = tests;
  return out;
}

}  // namespace pocketlm::peer
