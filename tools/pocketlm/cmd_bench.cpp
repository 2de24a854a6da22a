// pocketlm bench: llama-bench's pp/tg tests on pocketlm, optionally against llama.cpp in the same run
// (interleaved repetition by repetition), with the decode roofline of this machine's memory bandwidth.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "bench/bandwidth.h"
#include "bench_speculative.h"
#include "bench/child_process.h"
#include "bench/roofline.h"
#include "bench/speed_test.h"
#include "commands.h"
#include "common.h"
#include "util/atomic_file.h"
#include "util/progress.h"
#include "util/thread_pool.h"

namespace pocketlm::cli {
namespace {

using nlohmann::json;

struct BenchFlags {
  std::vector<std::string> models;
  std::vector<std::string> n_prompt = {"512"}, n_gen = {"128"}, threads;
  int reps = 5;
  std::string cache_type_k = "f16", cache_type_v = "f16";  // comma lists
  std::vector<std::string> n_depth = {"0"};
  std::string output = "md";
  std::string json_out;  // also write the JSON here
  std::string peer;      // "" or "llamacpp"
  std::string peer_bin;  // default: pocketlm-peer beside this executable
  std::string peer_fa = "auto";
  bool peer_no_repack = false;
  bool no_bandwidth = false;
  int bandwidth_mib = 256;
  // Speculative decoding (bench_speculative.h): with a draft, bench compares it with plain generation.
  DraftFlags draft;
  std::string spec_prompt = "Once upon a time", spec_prompt_file, peer_tools;
  int64_t spec_ctx = 2048;
};

// "512,1024" and repeated flags → numbers; an error names the flag and the bad item.
bool parse_list(const std::vector<std::string>& items, const char* flag, int min, std::vector<int>& out) {
  for (const std::string& item : items) {
    size_t start = 0;
    while (start <= item.size()) {
      const size_t comma = std::min(item.find(',', start), item.size());
      const std::string s = item.substr(start, comma - start);
      char* end = nullptr;
      const long v = std::strtol(s.c_str(), &end, 10);
      if (s.empty() || *end != '\0' || v < min || v > (1 << 20)) {
        std::fprintf(stderr, "error: %s: '%s' is not a whole number in [%d, %d]\n", flag, s.c_str(), min, 1 << 20);
        return false;
      }
      out.push_back(static_cast<int>(v));
      start = comma + 1;
    }
  }
  return true;
}

// The 1-minute load average (/proc/loadavg), or -1 when unknown.
double load_average() {
  std::FILE* fp = std::fopen("/proc/loadavg", "r");
  if (!fp) return -1;
  double v = -1;
  if (std::fscanf(fp, "%lf", &v) != 1) v = -1;
  std::fclose(fp);
  return v;
}

std::string peer_binary(const BenchFlags& f) {
  if (!f.peer_bin.empty()) return f.peer_bin;
  if (const char* env = std::getenv("POCKETLM_PEER_BIN")) return env;
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "pocketlm-peer" : (self.parent_path() / "pocketlm-peer").string();
}

// llama.cpp's name for the nearest cache type (its q8_0/q4_0 carry a scale per 32 values, ours per row).
std::string peer_kv_type(const std::string& t) {
  if (t == "q8") return "q8_0";
  if (t == "q4") return "q4_0";
  return t;
}

json stats_json(const std::vector<double>& ts) {
  const SampleStats s = summarize(ts);
  return {{"median_ts", s.median}, {"min_ts", s.min}, {"max_ts", s.max}, {"mean_ts", s.mean}, {"stdev_ts", s.stdev},
          {"samples_ts", ts}};
}

std::string ts_cell(const json& r) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%.2f (%.2f–%.2f)", r.at("median_ts").get<double>(), r.at("min_ts").get<double>(),
                r.at("max_ts").get<double>());
  return buf;
}

std::string size_cell(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f MiB", bytes / (1024.0 * 1024.0));
  return buf;
}

void print_markdown(const json& rows, bool with_peer) {
  if (with_peer) {
    std::printf("| model | size | params | threads | KV | test | pocketlm t/s | llama.cpp t/s | ratio | roofline |\n");
    std::printf("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |\n");
  } else {
    std::printf("| model | size | params | threads | KV | test | t/s | vs first KV | roofline |\n");
    std::printf("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |\n");
  }
  for (const json& r : rows) {
    char params[32];
    std::snprintf(params, sizeof params, "%.2f M", r.at("n_params").get<double>() / 1e6);
    std::string roof = "";
    if (r.contains("roofline_pct")) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.0f %% of %.1f, %.1f GB/s", r.at("roofline_pct").get<double>(),
                    r.at("roofline_ts").get<double>(), r.at("effective_gbs").get<double>());
      roof = buf;
      if (with_peer && r.contains("peer") && r.at("peer").contains("roofline_pct")) {
        std::snprintf(buf, sizeof buf, " (llama.cpp %.0f %%, %.1f GB/s)", r.at("peer").at("roofline_pct").get<double>(),
                      r.at("peer").at("effective_gbs").get<double>());
        roof += buf;
      }
    }
    const std::string name = std::filesystem::path(r.at("model").get<std::string>()).filename().string();
    const std::string kv = r.at("type_k").get<std::string>() + "/" + r.at("type_v").get<std::string>();
    std::printf("| %s | %s | %s | %d | %s | %s | %s", name.c_str(), size_cell(r.at("model_size").get<double>()).c_str(), params,
                r.at("threads").get<int>(), kv.c_str(), r.at("test").get<std::string>().c_str(), ts_cell(r).c_str());
    if (!with_peer) {
      char rel[32] = "";
      if (r.contains("ratio_to_first_kv")) std::snprintf(rel, sizeof rel, "%.3f×", r.at("ratio_to_first_kv").get<double>());
      std::printf(" | %s", rel);
    }
    if (with_peer) {
      char ratio[32];
      std::snprintf(ratio, sizeof ratio, "%.2f×", r.at("ratio").get<double>());
      std::printf(" | %s | %s", ts_cell(r.at("peer")).c_str(), ratio);
    }
    std::printf(" | %s |\n", roof.c_str());
  }
}

int bench(const BenchFlags& f) {
  std::vector<int> pp, tg, threads;
  if (!parse_list(f.n_prompt, "-p", 0, pp) || !parse_list(f.n_gen, "-n", 0, tg)) return 1;
  if (f.threads.empty()) threads.push_back(physical_cores());
  else if (!parse_list(f.threads, "-t", 1, threads)) return 1;
  if (!f.draft.model.empty() || !f.draft.self_type.empty() || f.draft.lookup) {
    if (tg.size() != 1 || tg[0] < 2 || threads.size() != 1) {
      std::fprintf(stderr, "error: with a draft, bench runs one generation length (-n N, N >= 2) and one thread count\n");
      return 1;
    }
    SpeculativeBenchFlags s;
    s.models = f.models;
    s.n_gen = tg[0];
    s.threads = threads[0];
    s.reps = f.reps;
    s.n_ctx = f.spec_ctx;
    s.prompt = f.spec_prompt;
    s.prompt_file = f.spec_prompt_file;
    s.draft = f.draft;
    s.peer = f.peer;
    s.peer_tools = f.peer_tools;
    s.json_out = f.json_out;
    return bench_speculative_main(s);
  }
  // -ctk/-ctv lists pair up by position (a single value applies to every entry of the other list).
  std::vector<std::string> ks, vs;
  for (auto [src, dst] : {std::pair{&f.cache_type_k, &ks}, std::pair{&f.cache_type_v, &vs}}) {
    size_t start = 0;
    while (start <= src->size()) {
      const size_t comma = std::min(src->find(',', start), src->size());
      const std::string item = src->substr(start, comma - start);
      if (auto t = parse_kv_type(item); !t) {
        std::fprintf(stderr, "error: %s: %s\n", dst == &ks ? "-ctk" : "-ctv", t.error().message().c_str());
        return 1;
      }
      dst->push_back(item);
      start = comma + 1;
    }
  }
  if (ks.size() != vs.size() && ks.size() != 1 && vs.size() != 1) {
    std::fprintf(stderr, "error: -ctk has %zu types and -ctv %zu: give lists of the same length, or one type\n", ks.size(), vs.size());
    return 1;
  }
  std::vector<std::pair<std::string, std::string>> kv_configs;
  for (size_t i = 0; i < std::max(ks.size(), vs.size()); ++i)
    kv_configs.emplace_back(ks[ks.size() == 1 ? 0 : i], vs[vs.size() == 1 ? 0 : i]);
  std::vector<int> depths;
  if (!parse_list(f.n_depth, "-d", 0, depths)) return 1;
  std::vector<SpeedTest> tests;
  for (int d : depths) {
    for (int n : pp) if (n > 0) tests.push_back({SpeedTest::Kind::Prompt, n, d});
    for (int n : tg) if (n > 0) tests.push_back({SpeedTest::Kind::Generate, n, d});
  }
  if (tests.empty()) {
    std::fprintf(stderr, "error: no tests: every -p and -n is 0\n");
    return 1;
  }
  const bool with_peer = !f.peer.empty();
  const std::string peer_bin = with_peer ? peer_binary(f) : "";
  if (with_peer && access(peer_bin.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "error: --peer llamacpp: no llama.cpp harness at %s (scripts/build-peer.sh builds llama.cpp, "
                         "then `ninja -C build pocketlm-peer`; or give --peer-bin PATH)\n", peer_bin.c_str());
    return 1;
  }
  if (with_peer && (kv_configs.size() > 1 || depths != std::vector<int>{0})) {
    std::fprintf(stderr, "error: --peer runs one KV configuration at depth 0: drop the -ctk/-ctv lists and -d\n");
    return 1;
  }

  // Timings on a shared machine are noise: say so before starting (and record the load in the JSON).
  const double load_before = load_average();
  if (load_before > 0.5) {
    std::fprintf(stderr, "warning: the machine is busy (1-minute load average %.2f on %u logical CPUs) before the "
                         "benchmark starts: other processes compete for the cores, so timings will be noisy%s\n",
                 load_before, std::thread::hardware_concurrency(),
                 with_peer ? "; llama.cpp's spin-waiting thread pool suffers most when cores are oversubscribed" : "");
  }

  // Bandwidth once per thread count, before any model is loaded.
  std::map<int, Bandwidth> bw;
  if (!f.no_bandwidth) {
    for (int t : threads) {
      if (bw.count(t)) continue;
      std::fprintf(stderr, "bench: measuring memory read bandwidth with %d thread%s (%d MiB buffer)...\n", t,
                   t == 1 ? "" : "s", f.bandwidth_mib);
      bw[t] = measure_read_bandwidth(t, static_cast<size_t>(f.bandwidth_mib) << 20);
      std::fprintf(stderr, "bench: read bandwidth, %d thread%s: %.1f GB/s\n", t, t == 1 ? "" : "s", bw[t].gb_per_s);
    }
  }

  const int64_t per_rep = with_peer ? 2 : 1;
  const int64_t total = static_cast<int64_t>(f.models.size() * threads.size() * tests.size()) * f.reps *
                        (static_cast<int64_t>(kv_configs.size()) + per_rep - 1);
  Progress progress("bench", total, "runs");
  std::mt19937 rng(42);
  json rows = json::array();
  for (const std::string& path : f.models) {
    auto model = load_model(path);
    if (!model) return 1;
    for (int nt : threads) {
      std::unique_ptr<ChildProcess> peer;
      json peer_setup;
      if (with_peer) {
        std::vector<std::string> argv = {peer_bin, "bench", "-m", path, "-t", std::to_string(nt), "--serve",
                                         "-ctk", peer_kv_type(kv_configs[0].first), "-ctv", peer_kv_type(kv_configs[0].second)};
        if (f.peer_fa == "on") argv.push_back("--fa");
        if (f.peer_fa == "off") argv.push_back("--no-fa");
        if (f.peer_no_repack) argv.push_back("--no-repack");
        auto child = ChildProcess::spawn(argv);
        if (!child) {
          std::fprintf(stderr, "error: %s\n", child.error().message().c_str());
          return 1;
        }
        peer = std::move(child).value();
        auto ready = peer->read_line();
        if (!ready) {
          std::fprintf(stderr, "error: llama.cpp could not load %s: %s\n", path.c_str(), ready.error().message().c_str());
          return 1;
        }
        peer_setup = json::parse(*ready, nullptr, false);
        if (peer_setup.is_discarded() || !peer_setup.value("ready", false)) {
          std::fprintf(stderr, "error: unexpected answer from %s: %s\n", peer_bin.c_str(), ready->c_str());
          return 1;
        }
      }
      auto peer_run = [&](const SpeedTest& t, bool warmup) -> std::optional<json> {
        const std::string cmd = std::string(warmup ? "warmup " : "") + (t.kind == SpeedTest::Kind::Prompt ? "pp " : "tg ") + std::to_string(t.n);
        if (Status s = peer->write_line(cmd); !s.ok()) {
          std::fprintf(stderr, "error: %s\n", s.error().message().c_str());
          return std::nullopt;
        }
        auto line = peer->read_line();
        if (!line) {
          const std::string why = line.error().message();
          // 132 = killed by SIGILL: llama.cpp's AMX/repacked kernels on a CPU that reports more than it runs.
          const bool sigill = why.find("exit status 132") != std::string::npos;
          std::fprintf(stderr, "error: llama.cpp %s on %s: %s%s\n", cmd.c_str(), path.c_str(), why.c_str(),
                       sigill ? " (illegal instruction: try --peer-no-repack)" : "");
          return std::nullopt;
        }
        json j = json::parse(*line, nullptr, false);
        if (j.is_discarded() || j.contains("error") || !j.contains("ns")) {
          std::fprintf(stderr, "error: llama.cpp %s on %s: %s\n", cmd.c_str(), path.c_str(), line->c_str());
          return std::nullopt;
        }
        return j;
      };

      for (const SpeedTest& t : tests) {
        // One session per KV configuration; the timed repetitions alternate between them (and the peer),
        // so a slow stretch of the shared machine hits every configuration alike.
        std::vector<std::unique_ptr<Session>> sessions;
        for (const auto& [ck, cv] : kv_configs) {
          ModelFlags mf;
          mf.threads = nt;
          mf.n_ctx = t.n + t.depth;  // as llama-bench: the context holds exactly the test
          mf.cache_type_k = ck;
          mf.cache_type_v = cv;
          auto session = make_session(*model, mf);
          if (!session) return 1;
          // Warm-up (not timed).
          if (auto w = time_speed_test(*model, *session, t, true, rng); !w) {
            std::fprintf(stderr, "error: %s %s: %s\n", path.c_str(), t.name().c_str(), w.error().message().c_str());
            return 1;
          }
          sessions.push_back(std::move(session));
        }
        std::optional<json> last_peer;
        if (peer && !(last_peer = peer_run(t, true))) return 1;
        std::vector<std::vector<double>> ours_ts(kv_configs.size());
        std::vector<std::vector<int64_t>> ours_ns(kv_configs.size());
        std::vector<double> peer_ts;
        std::vector<int64_t> peer_ns;
        for (int r = 0; r < f.reps; ++r) {
          for (size_t k = 0; k < kv_configs.size(); ++k) {
            // A short pause lets the other engine's threads finish polling and go to sleep before a timed run.
            if (peer) std::this_thread::sleep_for(std::chrono::milliseconds(50));
            auto secs = time_speed_test(*model, *sessions[k], t, false, rng);
            if (!secs) {
              std::fprintf(stderr, "error: %s %s: %s\n", path.c_str(), t.name().c_str(), secs.error().message().c_str());
              return 1;
            }
            ours_ns[k].push_back(static_cast<int64_t>(*secs * 1e9));
            ours_ts[k].push_back(static_cast<double>(t.n) / *secs);
            progress.add();
          }
          if (peer) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            last_peer = peer_run(t, false);
            if (!last_peer) return 1;
            const auto ns = last_peer->at("ns").get<int64_t>();
            peer_ns.push_back(ns);
            peer_ts.push_back(static_cast<double>(t.n) * 1e9 / static_cast<double>(ns));
            progress.add();
          }
        }
        for (size_t k = 0; k < kv_configs.size(); ++k) {
          const auto& [ck, cv] = kv_configs[k];
          const KvType tk = *parse_kv_type(ck), tv = *parse_kv_type(cv);
          const DecodeBytes db = decode_bytes(*model, tk, tv);
          json row = {{"model", path},
                      {"model_type", model->config().name},
                      {"model_size", model->weights().total_bytes()},
                      {"n_params", [&] {
                         int64_t n = 0;
                         for (const auto& ten : model->gguf().tensors()) n += ten.n_elements();
                         return n;
                       }()},
                      {"test", t.name()},
                      {"n_prompt", t.kind == SpeedTest::Kind::Prompt ? t.n : 0},
                      {"n_gen", t.kind == SpeedTest::Kind::Generate ? t.n : 0},
                      {"n_depth", t.depth},
                      {"threads", nt},
                      {"type_k", ck},
                      {"type_v", cv},
                      {"repetitions", f.reps},
                      {"samples_ns", ours_ns[k]}};
          row.update(stats_json(ours_ts[k]));
          if (k > 0) row["ratio_to_first_kv"] = row["median_ts"].get<double>() / summarize(ours_ts[0]).median;
          const bool roof = t.kind == SpeedTest::Kind::Generate && bw.count(nt);
          double roof_ts = 0;
          if (roof) {
            const double ctx = tg_mean_context(t.n, t.depth);
            const double bytes = db.per_token(ctx);
            roof_ts = roofline_tokens_per_s(bw[nt].gb_per_s, bytes);
            row["bandwidth_gbs"] = bw[nt].gb_per_s;
            row["bytes_per_token"] = bytes;
            row["weight_bytes_per_token"] = db.weights;
            row["kv_bytes_per_token"] = static_cast<double>(db.kv_per_position) * ctx;
            row["mean_context"] = ctx;
            row["roofline_ts"] = roof_ts;
            row["roofline_pct"] = 100.0 * row["median_ts"].get<double>() / roof_ts;
            row["effective_gbs"] = row["median_ts"].get<double>() * bytes / 1e9;  // bytes read per second
          }
          if (peer) {
            json pj = {{"engine", "llama.cpp"},
                       {"llama_cpp", peer_setup.value("llama_cpp", "")},
                       {"model_type", peer_setup.value("desc", "")},
                       {"flash_attn", last_peer->value("flash_attn", "")},
                       {"flash_attn_asked", peer_setup.value("flash_attn_asked", "")},
                       {"repack", peer_setup.value("repack", false)},
                       {"weight_buffers", peer_setup.value("weight_buffers", json::array())},
                       {"n_ctx", last_peer->value("n_ctx", 0)},
                       {"samples_ns", peer_ns}};
            pj.update(stats_json(peer_ts));
            if (roof) {
              pj["roofline_pct"] = 100.0 * pj["median_ts"].get<double>() / roof_ts;
              pj["effective_gbs"] = pj["median_ts"].get<double>() * row["bytes_per_token"].get<double>() / 1e9;
            }
            row["ratio"] = row["median_ts"].get<double>() / pj["median_ts"].get<double>();
            row["peer"] = pj;
          }
          rows.push_back(row);
        }
      }
      if (peer) {
        const int st = peer->finish("quit");
        if (st != 0) std::fprintf(stderr, "warning: %s exited with status %d\n", peer_bin.c_str(), st);
      }
    }
  }
  progress.finish();
  const double load_after = load_average();
  for (json& row : rows) {
    row["load_average_before"] = load_before;
    row["load_average_after"] = load_after;
  }

  if (!f.json_out.empty()) {
    auto file = AtomicFile::create(f.json_out);
    const std::string text = rows.dump(2) + "\n";
    Status s = file ? file->write(text.data(), text.size()) : Status(file.error());
    if (s.ok()) s = file->commit();
    if (!s.ok()) {
      std::fprintf(stderr, "error: --json-out: %s\n", s.error().message().c_str());
      return 1;
    }
  }
  if (f.output == "json") {
    std::printf("%s\n", rows.dump(2).c_str());
    return 0;
  }
  print_markdown(rows, with_peer);
  std::printf("\n");
  if (!bw.empty()) {
    std::printf("read bandwidth:");
    for (const auto& [t, b] : bw) std::printf(" %.1f GB/s (%d thread%s)", b.gb_per_s, t, t == 1 ? "" : "s");
    std::printf("; roofline = bandwidth ÷ bytes read per generated token (weights + KV cache at the mean context); "
                "GB/s = t/s × those bytes, what each engine streams\n");
  }
  std::printf("1-minute load average: %.2f before, %.2f after (%u logical CPUs)\n", load_before, load_after,
              std::thread::hardware_concurrency());
  if (with_peer && !rows.empty()) {
    const json& p = rows[0].at("peer");
    std::printf("llama.cpp %s: flash attention %s (asked: %s), weight repacking %s; t/s are medians of %d (min–max)\n",
                p.value("llama_cpp", "").c_str(), p.value("flash_attn", "").c_str(),
                p.value("flash_attn_asked", "").c_str(), p.value("repack", false) ? "on" : "off", f.reps);
  } else {
    std::printf("t/s are medians of %d repetition%s (min–max)\n", f.reps, f.reps == 1 ? "" : "s");
  }
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& root) {
  auto f = std::make_shared<BenchFlags>();
  CLI::App* app = root.add_subcommand(
      "bench", "llama-bench's pp/tg tests (medians, spread, decode roofline); --peer llamacpp runs llama.cpp in the same run");
  app->add_option("-m,--model", f->models, "GGUF model (repeat for several)")->required()->check(CLI::ExistingFile);
  app->add_option("-p,--n-prompt", f->n_prompt, "prompt sizes: pp N (comma list; 0 skips)")->capture_default_str();
  app->add_option("-n,--n-gen", f->n_gen, "generation lengths: tg N (comma list; 0 skips)")->capture_default_str();
  app->add_option("-t,--threads", f->threads, "thread counts (comma list; default: physical cores)");
  app->add_option("-r,--repetitions", f->reps, "timed repetitions per test (after one warm-up)")
      ->capture_default_str()->check(CLI::Range(1, 1000));
  app->add_option("--cache-type-k", f->cache_type_k, "KV cache types for K (-ctk): comma list of f16 | f32 | q8 | q4, each benchmarked in the same run")
      ->capture_default_str();
  app->add_option("--cache-type-v", f->cache_type_v, "KV cache types for V (-ctv), paired with -ctk's by position")
      ->capture_default_str();
  app->add_option("-d,--n-depth", f->n_depth, "positions already cached before each test (comma list, llama-bench's -d)")
      ->capture_default_str();
  app->add_option("-o,--output", f->output, "md (table) | json (one object per model, test and thread count)")
      ->capture_default_str()->check(CLI::IsMember({"md", "json"}));
  app->add_option("--json-out", f->json_out, "also write the JSON array to this file (atomically)");
  app->add_option("--peer", f->peer, "llamacpp: run the same tests through llama.cpp, interleaved, and print the ratio")
      ->check(CLI::IsMember({"llamacpp"}));
  app->add_option("--peer-bin", f->peer_bin, "the pocketlm-peer harness (default: beside this pocketlm binary)");
  app->add_option("--peer-fa", f->peer_fa, "llama.cpp flash attention: auto (llama-bench's default) | on | off")
      ->capture_default_str()->check(CLI::IsMember({"auto", "on", "off"}));
  app->add_flag("--peer-no-repack", f->peer_no_repack, "llama.cpp without weight repacking (llama-bench uses it by default)");
  app->add_flag("--no-bandwidth", f->no_bandwidth, "skip the memory bandwidth probe (no roofline column)");
  app->add_option("--bandwidth-mib", f->bandwidth_mib, "buffer size of the bandwidth probe")
      ->capture_default_str()->check(CLI::Range(16, 1 << 16));
  add_draft_flags(*app, f->draft);
  app->add_option("--spec-prompt", f->spec_prompt, "with a draft: the prompt generation starts from")->capture_default_str();
  app->add_option("--spec-prompt-file", f->spec_prompt_file, "with a draft: read the prompt from a file")
      ->check(CLI::ExistingFile);
  app->add_option("--spec-ctx", f->spec_ctx, "with a draft: context size")->capture_default_str()->check(CLI::Range(64, 1 << 20));
  app->add_option("--peer-tools", f->peer_tools,
                  "with a draft and --peer: folder of llama-speculative-simple / llama-lookup (default .peer/build/bin)");
  app->callback([f] {
    const int rc = bench(*f);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace pocketlm::cli
