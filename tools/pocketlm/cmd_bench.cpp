// pocketlm bench: llama-bench's pp/tg tests on pocketlm, optionally against llama.cpp in the same run
// (interleaved repetition by repetition), with the decode roofline of this machine's memory bandwidth.
// The flags become a BenchConfig; the run itself is the library's run_bench (src/bench/bench_run.h).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_run.h"
#include "bench_speculative.h"
#include "commands.h"
#include "common.h"
#include "util/atomic_file.h"
#include "util/progress.h"

namespace pocketlm::cli {
namespace {

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

std::string peer_binary(const BenchFlags& f) {
  if (!f.peer_bin.empty()) return f.peer_bin;
  if (const char* env = std::getenv("POCKETLM_PEER_BIN")) return env;
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "pocketlm-peer" : (self.parent_path() / "pocketlm-peer").string();
}

// The flags as a BenchConfig; false (the error printed, naming the flag) on a bad list.
bool config_from_flags(const BenchFlags& f, BenchConfig& c) {
  c.models = f.models;
  c.n_prompt.clear();
  c.n_gen.clear();
  c.depths.clear();
  if (!parse_list(f.n_prompt, "-p", 0, c.n_prompt) || !parse_list(f.n_gen, "-n", 0, c.n_gen)) return false;
  if (!f.threads.empty() && !parse_list(f.threads, "-t", 1, c.threads)) return false;
  if (!parse_list(f.n_depth, "-d", 0, c.depths)) return false;
  // -ctk/-ctv lists pair up by position (a single value applies to every entry of the other list).
  std::vector<KvType> ks, vs;
  for (auto [src, dst] : {std::pair{&f.cache_type_k, &ks}, std::pair{&f.cache_type_v, &vs}}) {
    size_t start = 0;
    while (start <= src->size()) {
      const size_t comma = std::min(src->find(',', start), src->size());
      auto t = parse_kv_type(src->substr(start, comma - start));
      if (!t) {
        std::fprintf(stderr, "error: %s: %s\n", dst == &ks ? "-ctk" : "-ctv", t.error().message().c_str());
        return false;
      }
      dst->push_back(*t);
      start = comma + 1;
    }
  }
  if (ks.size() != vs.size() && ks.size() != 1 && vs.size() != 1) {
    std::fprintf(stderr, "error: -ctk has %zu types and -ctv %zu: give lists of the same length, or one type\n",
                 ks.size(), vs.size());
    return false;
  }
  c.kv.clear();
  for (size_t i = 0; i < std::max(ks.size(), vs.size()); ++i)
    c.kv.push_back({ks[ks.size() == 1 ? 0 : i], vs[vs.size() == 1 ? 0 : i]});
  if (std::all_of(c.n_prompt.begin(), c.n_prompt.end(), [](int n) { return n == 0; }) &&
      std::all_of(c.n_gen.begin(), c.n_gen.end(), [](int n) { return n == 0; })) {
    std::fprintf(stderr, "error: no tests: every -p and -n is 0\n");
    return false;
  }
  c.repetitions = f.reps;
  c.bandwidth = !f.no_bandwidth;
  c.bandwidth_mib = f.bandwidth_mib;
  const bool with_draft = !f.draft.model.empty() || !f.draft.self_type.empty() || f.draft.lookup;
  if (!f.peer.empty() && !with_draft) {  // with a draft, the peer is llama.cpp's speculative tools (bench_speculative)
    c.peer = BenchPeer{peer_binary(f), f.peer_fa, f.peer_no_repack};
    if (access(c.peer->harness.c_str(), X_OK) != 0) {
      std::fprintf(stderr,
                   "error: --peer llamacpp: no llama.cpp harness at %s (scripts/build-peer.sh builds llama.cpp, "
                   "then `ninja -C build pocketlm-peer`; or give --peer-bin PATH)\n",
                   c.peer->harness.c_str());
      return false;
    }
    if (c.kv.size() > 1 || c.depths != std::vector<int>{0}) {
      std::fprintf(stderr, "error: --peer runs one KV configuration at depth 0: drop the -ctk/-ctv lists and -d\n");
      return false;
    }
  }
  return true;
}

int bench(const BenchFlags& f) {
  BenchConfig c;
  if (!config_from_flags(f, c)) return 1;
  if (!f.draft.model.empty() || !f.draft.self_type.empty() || f.draft.lookup) {
    std::vector<int> tg;
    for (int n : c.n_gen)
      if (n > 0) tg.push_back(n);
    if (tg.size() != 1 || tg[0] < 2 || c.threads.size() > 1) {
      std::fprintf(stderr,
                   "error: with a draft, bench runs one generation length (-n N, N >= 2) and one thread count\n");
      return 1;
    }
    SpeculativeBenchFlags s;
    s.models = f.models;
    s.n_gen = tg[0];
    s.threads = c.threads.empty() ? physical_cores() : c.threads[0];
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
  std::unique_ptr<Progress> progress;
  BenchEvents ev;
  ev.note = [](const std::string& line) {
    if (line.rfind("warning: ", 0) == 0)
      std::fprintf(stderr, "%s\n", line.c_str());
    else
      std::fprintf(stderr, "bench: %s\n", line.c_str());
  };
  ev.start = [&](int64_t total) { progress = std::make_unique<Progress>("bench", total, "runs"); };
  ev.run_done = [&] { progress->add(); };
  auto rep = run_bench(c, ev);
  if (progress) progress->finish();
  if (!rep) {
    print_error(rep.error());
    return 1;
  }
  if (!f.json_out.empty()) {
    auto file = AtomicFile::create(f.json_out);
    const std::string text = rep->rows.dump(2) + "\n";
    Status s = file ? file->write(text.data(), text.size()) : Status(file.error());
    if (s.ok()) s = file->commit();
    if (!s.ok()) {
      std::fprintf(stderr, "error: --json-out: %s\n", s.error().message().c_str());
      return 1;
    }
  }
  if (f.output == "json")
    std::printf("%s\n", rep->rows.dump(2).c_str());
  else
    std::fputs(format_bench_markdown(*rep).c_str(), stdout);
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& root) {
  auto f = std::make_shared<BenchFlags>();
  CLI::App* app = root.add_subcommand(
      "bench",
      "llama-bench's pp/tg tests (medians, spread, decode roofline); --peer llamacpp runs llama.cpp in the same run");
  app->add_option("-m,--model", f->models, "GGUF model (repeat for several)")->required()->check(CLI::ExistingFile);
  app->add_option("-p,--n-prompt", f->n_prompt, "prompt sizes: pp N (comma list; 0 skips)")->capture_default_str();
  app->add_option("-n,--n-gen", f->n_gen, "generation lengths: tg N (comma list; 0 skips)")->capture_default_str();
  app->add_option("-t,--threads", f->threads, "thread counts (comma list; default: physical cores)");
  app->add_option("-r,--repetitions", f->reps, "timed repetitions per test (after one warm-up)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app->add_option("--cache-type-k", f->cache_type_k,
                  "KV cache types for K (-ctk): comma list of f16 | f32 | q8 | q4, each benchmarked in the same run")
      ->capture_default_str();
  app->add_option("--cache-type-v", f->cache_type_v, "KV cache types for V (-ctv), paired with -ctk's by position")
      ->capture_default_str();
  app->add_option("-d,--n-depth", f->n_depth,
                  "positions already cached before each test (comma list, llama-bench's -d)")
      ->capture_default_str();
  app->add_option("-o,--output", f->output, "md (table) | json (one object per model, test and thread count)")
      ->capture_default_str()
      ->check(CLI::IsMember({"md", "json"}));
  app->add_option("--json-out", f->json_out, "also write the JSON array to this file (atomically)");
  app->add_option("--peer", f->peer, "llamacpp: run the same tests through llama.cpp, interleaved, and print the ratio")
      ->check(CLI::IsMember({"llamacpp"}));
  app->add_option("--peer-bin", f->peer_bin, "the pocketlm-peer harness (default: beside this pocketlm binary)");
  app->add_option("--peer-fa", f->peer_fa, "llama.cpp flash attention: auto (llama-bench's default) | on | off")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "on", "off"}));
  app->add_flag("--peer-no-repack", f->peer_no_repack,
                "llama.cpp without weight repacking (llama-bench uses it by default)");
  app->add_flag("--no-bandwidth", f->no_bandwidth, "skip the memory bandwidth probe (no roofline column)");
  app->add_option("--bandwidth-mib", f->bandwidth_mib, "buffer size of the bandwidth probe")
      ->capture_default_str()
      ->check(CLI::Range(16, 1 << 16));
  add_draft_flags(*app, f->draft);
  app->add_option("--spec-prompt", f->spec_prompt, "with a draft: the prompt generation starts from")
      ->capture_default_str();
  app->add_option("--spec-prompt-file", f->spec_prompt_file, "with a draft: read the prompt from a file")
      ->check(CLI::ExistingFile);
  app->add_option("--spec-ctx", f->spec_ctx, "with a draft: context size")
      ->capture_default_str()
      ->check(CLI::Range(64, 1 << 20));
  app->add_option(
      "--peer-tools", f->peer_tools,
      "with a draft and --peer: folder of llama-speculative-simple / llama-lookup (default .peer/build/bin)");
  app->callback([f] {
    const int rc = bench(*f);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace pocketlm::cli
