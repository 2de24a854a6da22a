#include "bench/bench_run.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <thread>

#include "bench/child_process.h"
#include "bench/roofline.h"
#include "bench/speed_test.h"
#include "model/model.h"
#include "runtime/session.h"
#include "util/byte_size.h"
#include "util/thread_pool.h"

namespace pocketlm {

namespace {

using nlohmann::json;

// llama.cpp's name for the nearest cache type (its q8_0/q4_0 carry a scale per 32 values, ours per row).
std::string peer_kv_type(KvType t) {
  if (t == KvType::Q8) return "q8_0";
  if (t == KvType::Q4) return "q4_0";
  return kv_type_name(t);
}

json stats_json(const std::vector<double>& ts) {
  const SampleStats s = summarize(ts);
  return {{"median_ts", s.median}, {"min_ts", s.min},     {"max_ts", s.max},
          {"mean_ts", s.mean},     {"stdev_ts", s.stdev}, {"samples_ts", ts}};
}

void note(const BenchEvents& ev, const std::string& line) {
  if (ev.note) ev.note(line);
}

// llama.cpp's bench loop in a child process (bench/peer): one line per command, one JSON answer per line.
class PeerHarness {
 public:
  static Expected<std::unique_ptr<PeerHarness>> start(const BenchPeer& p, const std::string& model, int threads,
                                                      BenchKv kv) {
    std::vector<std::string> argv = {
        p.harness, "bench",           "-m", model, "-t", std::to_string(threads), "--serve", "-ctk", peer_kv_type(kv.k),
        "-ctv",    peer_kv_type(kv.v)};
    if (p.flash_attn == "on") argv.push_back("--fa");
    if (p.flash_attn == "off") argv.push_back("--no-fa");
    if (p.no_repack) argv.push_back("--no-repack");
    PLM_TRY(auto child, ChildProcess::spawn(argv));
    std::unique_ptr<PeerHarness> h(new PeerHarness);
    h->child_ = std::move(child);
    h->model_ = model;
    auto ready = h->child_->read_line();
    if (!ready) return Error("llama.cpp could not load " + model + ": " + ready.error().message());
    h->setup_ = json::parse(*ready, nullptr, false);
    if (h->setup_.is_discarded() || !h->setup_.value("ready", false))
      return Error("unexpected answer from " + p.harness + ": " + *ready);
    return h;
  }
  const json& setup() const { return setup_; }

  Expected<json> run(const SpeedTest& t, bool warmup) {
    const std::string cmd = std::string(warmup ? "warmup " : "") + (t.kind == SpeedTest::Kind::Prompt ? "pp " : "tg ") +
                            std::to_string(t.n);
    PLM_CHECK(child_->write_line(cmd));
    auto line = child_->read_line();
    if (!line) {
      const std::string why = line.error().message();
      // 132 = killed by SIGILL: llama.cpp's AMX/repacked kernels on a CPU that reports more than it runs.
      const bool sigill = why.find("exit status 132") != std::string::npos;
      return Error("llama.cpp " + cmd + " on " + model_ + ": " + why +
                   (sigill ? " (illegal instruction: try llama.cpp without weight repacking)" : ""));
    }
    json j = json::parse(*line, nullptr, false);
    if (j.is_discarded() || j.contains("error") || !j.contains("ns"))
      return Error("llama.cpp " + cmd + " on " + model_ + ": " + *line);
    return j;
  }
  int finish() { return child_->finish("quit"); }

 private:
  PeerHarness() = default;
  std::unique_ptr<ChildProcess> child_;
  std::string model_;
  json setup_;
};

int64_t n_params(const Model& m) {
  int64_t n = 0;
  for (const auto& t : m.gguf().tensors()) n += t.n_elements();
  return n;
}

}  // namespace

double load_average() {
  std::FILE* fp = std::fopen("/proc/loadavg", "r");
  if (!fp) return -1;
  double v = -1;
  if (std::fscanf(fp, "%lf", &v) != 1) v = -1;
  std::fclose(fp);
  return v;
}

Expected<BenchReport> run_bench(const BenchConfig& c, const BenchEvents& ev) {
  std::vector<int> threads = c.threads;
  if (threads.empty()) threads.push_back(physical_cores());
  std::vector<SpeedTest> tests;
  for (int d : c.depths) {
    for (int n : c.n_prompt)
      if (n > 0) tests.push_back({SpeedTest::Kind::Prompt, n, d});
    for (int n : c.n_gen)
      if (n > 0) tests.push_back({SpeedTest::Kind::Generate, n, d});
  }
  if (tests.empty()) return Error("no tests: every prompt and generation size is 0").about("tests");
  if (c.models.empty()) return Error("no model to benchmark");
  if (c.kv.empty()) return Error("no KV cache configuration").about("kv_type");
  if (c.repetitions < 1) return Error("at least one timed repetition is needed").about("repetitions");
  const bool with_peer = c.peer.has_value();
  if (with_peer && access(c.peer->harness.c_str(), X_OK) != 0)
    return Error("no llama.cpp harness at " + c.peer->harness +
                 " (scripts/build-peer.sh builds llama.cpp, then `ninja -C build pocketlm-peer`)")
        .about("peer");
  if (with_peer && (c.kv.size() > 1 || c.depths != std::vector<int>{0}))
    return Error("llama.cpp runs one KV configuration at depth 0: give one KV configuration and no depths")
        .about("peer");

  BenchReport rep;
  rep.with_peer = with_peer;
  rep.repetitions = c.repetitions;
  // Timings on a shared machine are noise: say so before starting (and record the load in the JSON).
  rep.load_before = load_average();
  if (rep.load_before > 0.5) {
    char buf[400];
    std::snprintf(buf, sizeof buf,
                  "warning: the machine is busy (1-minute load average %.2f on %u logical CPUs) before the benchmark "
                  "starts: other processes compete for the cores, so timings will be noisy%s",
                  rep.load_before, std::thread::hardware_concurrency(),
                  with_peer ? "; llama.cpp's spin-waiting thread pool suffers most when cores are oversubscribed" : "");
    note(ev, buf);
  }
  // Bandwidth once per thread count, before any model is loaded.
  if (c.bandwidth) {
    for (int t : threads) {
      if (rep.bandwidth.count(t)) continue;
      note(ev, "measuring memory read bandwidth with " + std::to_string(t) + " thread" + (t == 1 ? "" : "s") + " (" +
                   std::to_string(c.bandwidth_mib) + " MiB buffer)...");
      rep.bandwidth[t] = measure_read_bandwidth(t, static_cast<size_t>(c.bandwidth_mib) << 20);
      char buf[96];
      std::snprintf(buf, sizeof buf, "read bandwidth, %d thread%s: %.1f GB/s", t, t == 1 ? "" : "s",
                    rep.bandwidth[t].gb_per_s);
      note(ev, buf);
    }
  }

  const int64_t per_rep = with_peer ? 2 : 1;
  const int64_t total = static_cast<int64_t>(c.models.size() * threads.size() * tests.size()) * c.repetitions *
                        (static_cast<int64_t>(c.kv.size()) + per_rep - 1);
  if (ev.start) ev.start(total);
  std::mt19937 rng(42);
  for (const std::string& path : c.models) {
    PLM_TRY(std::unique_ptr<Model> model, Model::load(path));
    const int64_t model_params = n_params(*model);
    for (int nt : threads) {
      std::unique_ptr<PeerHarness> peer;
      if (with_peer) {
        PLM_TRY(peer, PeerHarness::start(*c.peer, path, nt, c.kv[0]));
      }
      for (const SpeedTest& t : tests) {
        // One session per KV configuration; the timed repetitions alternate between them (and the peer),
        // so a slow stretch of the shared machine hits every configuration alike.
        std::vector<std::unique_ptr<Session>> sessions;
        for (const BenchKv& kv : c.kv) {
          SessionOptions so;
          so.n_threads = nt;
          so.n_ctx = t.n + t.depth;  // as llama-bench: the context holds exactly the test
          so.kv_type = kv.k;
          so.kv_type_v = kv.v;
          PLM_TRY(auto session, Session::create(*model, so));
          // Warm-up (not timed).
          if (auto w = time_speed_test(*model, *session, t, true, rng); !w)
            return w.error().with_context(path + " " + t.name());
          sessions.push_back(std::move(session));
        }
        json last_peer;
        if (peer) {
          PLM_TRY(last_peer, peer->run(t, true));
        }
        std::vector<std::vector<double>> ours_ts(c.kv.size());
        std::vector<std::vector<int64_t>> ours_ns(c.kv.size());
        std::vector<double> peer_ts;
        std::vector<int64_t> peer_ns;
        for (int r = 0; r < c.repetitions; ++r) {
          for (size_t k = 0; k < c.kv.size(); ++k) {
            // A short pause lets the other engine's threads finish polling and go to sleep before a timed run.
            if (peer) std::this_thread::sleep_for(std::chrono::milliseconds(50));
            auto secs = time_speed_test(*model, *sessions[k], t, false, rng);
            if (!secs) return secs.error().with_context(path + " " + t.name());
            ours_ns[k].push_back(static_cast<int64_t>(*secs * 1e9));
            ours_ts[k].push_back(static_cast<double>(t.n) / *secs);
            if (ev.run_done) ev.run_done();
          }
          if (peer) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            PLM_TRY(last_peer, peer->run(t, false));
            const auto ns = last_peer.at("ns").get<int64_t>();
            peer_ns.push_back(ns);
            peer_ts.push_back(static_cast<double>(t.n) * 1e9 / static_cast<double>(ns));
            if (ev.run_done) ev.run_done();
          }
        }
        for (size_t k = 0; k < c.kv.size(); ++k) {
          const BenchKv& kv = c.kv[k];
          const DecodeBytes db = decode_bytes(*model, kv.k, kv.v);
          json row = {{"model", path},
                      {"model_type", model->config().name},
                      {"model_size", model->weights().total_bytes()},
                      {"n_params", model_params},
                      {"test", t.name()},
                      {"n_prompt", t.kind == SpeedTest::Kind::Prompt ? t.n : 0},
                      {"n_gen", t.kind == SpeedTest::Kind::Generate ? t.n : 0},
                      {"n_depth", t.depth},
                      {"threads", nt},
                      {"type_k", kv_type_name(kv.k)},
                      {"type_v", kv_type_name(kv.v)},
                      {"repetitions", c.repetitions},
                      {"samples_ns", ours_ns[k]}};
          row.update(stats_json(ours_ts[k]));
          if (k > 0) row["ratio_to_first_kv"] = row["median_ts"].get<double>() / summarize(ours_ts[0]).median;
          const bool roof = t.kind == SpeedTest::Kind::Generate && rep.bandwidth.count(nt);
          double roof_ts = 0;
          if (roof) {
            const double ctx = tg_mean_context(t.n, t.depth);
            const double bytes = db.per_token(ctx);
            const double gbs = rep.bandwidth[nt].gb_per_s;
            roof_ts = roofline_tokens_per_s(gbs, bytes);
            row["bandwidth_gbs"] = gbs;
            row["bytes_per_token"] = bytes;
            row["weight_bytes_per_token"] = db.weights;
            row["kv_bytes_per_token"] = static_cast<double>(db.kv_per_position) * ctx;
            row["mean_context"] = ctx;
            row["roofline_ts"] = roof_ts;
            row["roofline_pct"] = 100.0 * row["median_ts"].get<double>() / roof_ts;
            row["effective_gbs"] = row["median_ts"].get<double>() * bytes / 1e9;  // bytes read per second
          }
          if (peer) {
            const json& setup = peer->setup();
            json pj = {{"engine", "llama.cpp"},
                       {"llama_cpp", setup.value("llama_cpp", "")},
                       {"model_type", setup.value("desc", "")},
                       {"flash_attn", last_peer.value("flash_attn", "")},
                       {"flash_attn_asked", setup.value("flash_attn_asked", "")},
                       {"repack", setup.value("repack", false)},
                       {"weight_buffers", setup.value("weight_buffers", json::array())},
                       {"n_ctx", last_peer.value("n_ctx", 0)},
                       {"samples_ns", peer_ns}};
            pj.update(stats_json(peer_ts));
            if (roof) {
              pj["roofline_pct"] = 100.0 * pj["median_ts"].get<double>() / roof_ts;
              pj["effective_gbs"] = pj["median_ts"].get<double>() * row["bytes_per_token"].get<double>() / 1e9;
            }
            row["ratio"] = row["median_ts"].get<double>() / pj["median_ts"].get<double>();
            row["peer"] = pj;
          }
          rep.rows.push_back(row);
        }
      }
      if (peer) {
        const int st = peer->finish();
        if (st != 0) note(ev, "warning: " + c.peer->harness + " exited with status " + std::to_string(st));
      }
    }
  }
  rep.load_after = load_average();
  for (json& row : rep.rows) {
    row["load_average_before"] = rep.load_before;
    row["load_average_after"] = rep.load_after;
  }
  return rep;
}

namespace {

std::string ts_cell(const json& r) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%.2f (%.2f–%.2f)", r.at("median_ts").get<double>(), r.at("min_ts").get<double>(),
                r.at("max_ts").get<double>());
  return buf;
}

}  // namespace

std::string format_bench_markdown(const BenchReport& rep) {
  const bool with_peer = rep.with_peer;
  std::string s;
  char buf[512];
  if (with_peer) {
    s += "| model | size | params | threads | KV | test | pocketlm t/s | llama.cpp t/s | ratio | roofline |\n";
    s += "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |\n";
  } else {
    s += "| model | size | params | threads | KV | test | t/s | vs first KV | roofline |\n";
    s += "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |\n";
  }
  for (const json& r : rep.rows) {
    char params[32];
    std::snprintf(params, sizeof params, "%.2f M", r.at("n_params").get<double>() / 1e6);
    std::string roof;
    if (r.contains("roofline_pct")) {
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
    std::snprintf(buf, sizeof buf, "| %s | %s | %s | %d | %s | %s | %s", name.c_str(),
                  format_mib(r.at("model_size").get<double>(), 2).c_str(), params, r.at("threads").get<int>(),
                  kv.c_str(), r.at("test").get<std::string>().c_str(), ts_cell(r).c_str());
    s += buf;
    if (!with_peer) {
      char rel[32] = "";
      if (r.contains("ratio_to_first_kv"))
        std::snprintf(rel, sizeof rel, "%.3f×", r.at("ratio_to_first_kv").get<double>());
      s += std::string(" | ") + rel;
    } else {
      std::snprintf(buf, sizeof buf, " | %s | %.2f×", ts_cell(r.at("peer")).c_str(), r.at("ratio").get<double>());
      s += buf;
    }
    s += " | " + roof + " |\n";
  }
  s += "\n";
  if (!rep.bandwidth.empty()) {
    s += "read bandwidth:";
    for (const auto& [t, b] : rep.bandwidth) {
      std::snprintf(buf, sizeof buf, " %.1f GB/s (%d thread%s)", b.gb_per_s, t, t == 1 ? "" : "s");
      s += buf;
    }
    s += "; roofline = bandwidth ÷ bytes read per generated token (weights + KV cache at the mean context); "
         "GB/s = t/s × those bytes, what each engine streams\n";
  }
  std::snprintf(buf, sizeof buf, "1-minute load average: %.2f before, %.2f after (%u logical CPUs)\n", rep.load_before,
                rep.load_after, std::thread::hardware_concurrency());
  s += buf;
  if (with_peer && !rep.rows.empty()) {
    const json& p = rep.rows[0].at("peer");
    std::snprintf(
        buf, sizeof buf,
        "llama.cpp %s: flash attention %s (asked: %s), weight repacking %s; t/s are medians of %d (min–max)\n",
        p.value("llama_cpp", "").c_str(), p.value("flash_attn", "").c_str(), p.value("flash_attn_asked", "").c_str(),
        p.value("repack", false) ? "on" : "off", rep.repetitions);
  } else {
    std::snprintf(buf, sizeof buf, "t/s are medians of %d repetition%s (min–max)\n", rep.repetitions,
                  rep.repetitions == 1 ? "" : "s");
  }
  s += buf;
  return s;
}

}  // namespace pocketlm
