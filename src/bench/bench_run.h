#pragma once
// `pocketlm bench` as a library call: llama-bench's pp/tg tests on every model × thread count × KV
// configuration, repetitions interleaved (and with llama.cpp's harness, when a peer is given, in the same
// run), medians and spread, and the decode roofline of this machine's measured read bandwidth. Nothing is
// printed: progress comes through the events, the figures come back as rows (the JSON `bench -o json` prints).
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "bench/bandwidth.h"
#include "formats/kv_types.h"
#include "util/error.h"

namespace pocketlm {

struct BenchKv {
  KvType k = KvType::F16, v = KvType::F16;
};

struct BenchPeer {
  std::string harness;              // the pocketlm-peer binary (llama.cpp's bench loop behind a line protocol)
  std::string flash_attn = "auto";  // auto | on | off
  bool no_repack = false;           // llama.cpp without its weight repacking
};

struct BenchConfig {
  std::vector<std::string> models;
  std::vector<int> n_prompt = {512};  // pp N tests (0s are skipped)
  std::vector<int> n_gen = {128};     // tg N tests (0s are skipped)
  std::vector<int> threads;           // empty: physical cores
  std::vector<int> depths = {0};      // positions cached before each test
  std::vector<BenchKv> kv = {BenchKv{}};
  int repetitions = 5;            // timed, after one warm-up
  std::optional<BenchPeer> peer;  // llama.cpp in the same run (one KV configuration, depth 0)
  bool bandwidth = true;          // measure the read bandwidth (roofline columns)
  int bandwidth_mib = 256;
};

struct BenchEvents {
  std::function<void(const std::string& line)> note;  // what is happening (bandwidth probe, warnings)
  std::function<void(int64_t total_runs)> start;      // once the number of timed runs is known
  std::function<void()> run_done;                     // after each timed run
};

struct BenchReport {
  nlohmann::json rows = nlohmann::json::array();  // one object per model, thread count, test and KV configuration
  std::map<int, Bandwidth> bandwidth;             // by thread count
  double load_before = -1, load_after = -1;       // 1-minute load average around the run (-1: unknown)
  bool with_peer = false;
  int repetitions = 0;
};

// An error names the model or test and the problem (a model that does not load, a test the context cannot
// hold, a peer harness that is missing or fails).
Expected<BenchReport> run_bench(const BenchConfig& config, const BenchEvents& events = {});

// The markdown table and the footer lines `pocketlm bench` prints.
std::string format_bench_markdown(const BenchReport& report);

// The 1-minute load average (/proc/loadavg), or -1 when unknown.
double load_average();

}  // namespace pocketlm
