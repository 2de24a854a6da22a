#include "bench_speculative.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "bench/child_process.h"
#include "bench/speculative_bench.h"
#include "bench/speed_test.h"
#include "runtime/speculative/model_draft.h"
#include "util/atomic_file.h"

namespace pocketlm::cli {
namespace {

using nlohmann::json;

// What llama.cpp's speculative tools print at the end (after a log prefix): "decoded N tokens in S seconds,
// speed: X t/s", "n_drafted = D", "n_accept = A".
struct PeerRun {
  double tokens_per_second = 0;
  long drafted = 0, accepted = 0;
};

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::optional<PeerRun> run_peer(const std::vector<std::string>& argv) {
  std::string cmd;
  for (const std::string& a : argv) cmd += shell_quote(a) + " ";
  auto child = ChildProcess::spawn({"/bin/sh", "-c", cmd + "2>&1 </dev/null"});
  if (!child) {
    std::fprintf(stderr, "error: %s\n", child.error().message().c_str());
    return std::nullopt;
  }
  PeerRun r;
  bool seen = false;
  std::string tail;
  for (;;) {
    auto line = (*child)->read_line();
    if (!line) break;
    tail = *line;
    int n = 0;
    double secs = 0, speed = 0;
    long v = 0;
    if (const size_t at = line->find("decoded ");
        at != std::string::npos &&
        std::sscanf(line->c_str() + at, "decoded %d tokens in %lf seconds, speed: %lf t/s", &n, &secs, &speed) == 3) {
      r.tokens_per_second = speed;
      seen = true;
    } else if (const size_t d = line->find("n_drafted");
               d != std::string::npos && std::sscanf(line->c_str() + d, "n_drafted = %ld", &v) == 1) {
      r.drafted = v;
    } else if (const size_t a = line->find("n_accept");
               a != std::string::npos && std::sscanf(line->c_str() + a, "n_accept = %ld", &v) == 1) {
      r.accepted = v;
    }
  }
  const int status = (*child)->finish();
  if (status != 0 || !seen) {
    std::fprintf(stderr, "error: %s failed (status %d); last line: %s\n", argv[0].c_str(), status, tail.c_str());
    return std::nullopt;
  }
  return r;
}

std::string peer_tools_dir(const SpeculativeBenchFlags& f) {
  if (!f.peer_tools.empty()) return f.peer_tools;
  if (const char* env = std::getenv("POCKETLM_PEER_TOOLS")) return env;
  return ".peer/build/bin";
}

}  // namespace

int bench_speculative_main(const SpeculativeBenchFlags& f) {
  std::string prompt = f.prompt;
  if (!f.prompt_file.empty() && !read_text_file(f.prompt_file, prompt)) return 1;
  const std::string tools = peer_tools_dir(f);
  const bool with_peer = f.peer == "llamacpp";
  if (with_peer) {
    const char* tool = f.draft.lookup ? "llama-lookup" : "llama-speculative-simple";
    if (access((tools + "/" + tool).c_str(), X_OK) != 0) {
      std::fprintf(stderr,
                   "error: --peer llamacpp: no %s in %s (add it to TOOLS in scripts/build-peer.sh and rebuild the "
                   "peer, or give --peer-tools DIR)\n",
                   tool, tools.c_str());
      return 1;
    }
  }
  json rows = json::array();
  std::printf(
      "| model | draft | n | plain t/s | speculative t/s | ratio | accepted | mean accepted length | draft time | "
      "predicted |%s\n",
      with_peer ? " llama.cpp t/s | vs llama.cpp |" : "");
  std::printf("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |%s\n",
              with_peer ? " ---: | ---: |" : "");
  for (const std::string& path : f.models) {
    auto model = load_model(path);
    if (!model) return 1;
    ModelFlags mf;
    mf.model = path;
    mf.n_ctx = f.n_ctx;
    mf.threads = f.threads;
    std::unique_ptr<DraftSource> draft;
    std::unique_ptr<Session> session;
    if (!make_draft_and_session(*model, mf, f.draft, draft, session)) return 1;
    if (!draft) {
      std::fprintf(stderr, "error: no draft source\n");
      return 1;
    }
    SpeculativeBenchOptions o;
    o.prompt = model->tokenizer().encode(prompt, true, true);
    o.n_gen = f.n_gen;
    o.reps = f.reps;
    o.draft = f.draft.params;
    if (static_cast<int64_t>(o.prompt.size()) + f.n_gen + o.draft.max + 2 > session->n_ctx()) {
      std::fprintf(stderr, "error: the prompt (%zu tokens) and -n %d do not fit -c %lld\n", o.prompt.size(), f.n_gen,
                   static_cast<long long>(session->n_ctx()));
      return 1;
    }
    auto r = bench_speculative(*model, *session, *draft, o);
    if (!r) {
      std::fprintf(stderr, "error: %s\n", r.error().message().c_str());
      return 1;
    }
    const double plain = summarize(r->plain_ts).median, spec = summarize(r->spec_ts).median;
    json row = {{"model", path},
                {"draft", draft->name()},
                {"n_gen", f.n_gen},
                {"prompt_tokens", o.prompt.size()},
                {"plain_ts", r->plain_ts},
                {"spec_ts", r->spec_ts},
                {"plain_median_ts", plain},
                {"spec_median_ts", spec},
                {"ratio", plain > 0 ? spec / plain : 0},
                {"drafted", r->stats.drafted},
                {"accepted", r->stats.accepted},
                {"rounds", r->stats.rounds},
                {"acceptance", r->acceptance()},
                {"mean_accepted_length", r->stats.mean_accepted_length()},
                {"draft_share", r->stats.draft_share()},
                {"draft_cost", r->draft_cost()},
                {"mean_draft_length", r->draft_length()},
                {"predicted_speedup", r->predicted_speedup()},
                {"identical_outputs", r->identical}};
    std::printf(
        "| %s | %s | %d | %.2f | %.2f | %.2fx | %lld/%lld (%.1f %%) | %.2f | %.0f %% | %.2fx (a %.2f, k %.1f, c %.2f) "
        "|",
        std::filesystem::path(path).filename().c_str(), draft->name().c_str(), f.n_gen, plain, spec,
        plain > 0 ? spec / plain : 0.0, static_cast<long long>(r->stats.accepted),
        static_cast<long long>(r->stats.drafted), 100 * r->acceptance(), r->stats.mean_accepted_length(),
        100 * r->stats.draft_share(), r->predicted_speedup(), r->acceptance(), r->draft_length(), r->draft_cost());
    if (with_peer) {
      // The same pair: a self-draft is written out as the GGUF image it was loaded from.
      std::string draft_file = f.draft.model, tmp;
      if (!f.draft.self_type.empty()) {
        const auto* md = dynamic_cast<const ModelDraft*>(draft.get());
        tmp = (std::filesystem::temp_directory_path() / ("pocketlm-self-draft-" + std::to_string(getpid()) + ".gguf"))
                  .string();
        const auto& mapped = *md->model().gguf().mapped();
        std::ofstream(tmp, std::ios::binary)
            .write(reinterpret_cast<const char*>(mapped.data()), static_cast<std::streamsize>(mapped.size()));
        draft_file = tmp;
      }
      const std::string prompt_path =
          (std::filesystem::temp_directory_path() / ("pocketlm-spec-prompt-" + std::to_string(getpid()) + ".txt"))
              .string();
      std::ofstream(prompt_path, std::ios::binary) << prompt;
      std::vector<double> peer_ts;
      PeerRun last;
      for (int rep = 0; rep < f.reps; ++rep) {
        std::vector<std::string> argv = {tools + "/" + (f.draft.lookup ? "llama-lookup" : "llama-speculative-simple"),
                                         "-m",
                                         path,
                                         "-f",
                                         prompt_path,
                                         "-n",
                                         std::to_string(f.n_gen),
                                         "--temp",
                                         "0",
                                         "-c",
                                         std::to_string(f.n_ctx),
                                         "--spec-draft-n-max",
                                         std::to_string(o.draft.max),
                                         "--spec-draft-n-min",
                                         std::to_string(o.draft.min),
                                         "-s",
                                         "1",
                                         "--ignore-eos"};
        if (f.threads > 0) argv.insert(argv.end(), {"-t", std::to_string(f.threads)});
        if (!f.draft.lookup)
          argv.insert(argv.end(), {"-md", draft_file, "--spec-type", "draft-simple", "--draft-p-min",
                                   std::to_string(o.draft.p_min)});
        auto pr = run_peer(argv);
        if (!pr) return 1;
        peer_ts.push_back(pr->tokens_per_second);
        last = *pr;
      }
      if (!tmp.empty()) std::filesystem::remove(tmp);
      std::filesystem::remove(prompt_path);
      const double peer = summarize(peer_ts).median;
      row["peer"] = {{"tool", f.draft.lookup ? "llama-lookup" : "llama-speculative-simple"},
                     {"ts", peer_ts},
                     {"median_ts", peer},
                     {"drafted", last.drafted},
                     {"accepted", last.accepted}};
      std::printf(" %.2f (%ld/%ld accepted) | %.2fx |", peer, last.accepted, last.drafted,
                  peer > 0 ? spec / peer : 0.0);
    }
    std::printf("\n");
    if (!r->identical) std::printf("WARNING: a greedy speculative output differed from plain decoding's\n");
    rows.push_back(row);
  }
  std::printf(
      "\nt/s: generation tokens per second, medians of %d alternating repetitions; predicted: (1 - a^(k+1)) / "
      "((1 - a)(k c + 1)) with a the acceptance rate, k the mean draft length, c the draft's time per token "
      "over a plain decode step (docs/speculative.md)\n",
      f.reps);
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
  return 0;
}

}  // namespace pocketlm::cli
