#include "peer_args.h"

#include <charconv>
#include <stdexcept>
#include <string_view>
#include <system_error>

namespace pocketlm::peer {
namespace {

int to_int(std::string_view flag, std::string_view v) {
  int out = 0;
  const auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || ptr != v.data() + v.size()) {
    throw std::invalid_argument(std::string(flag) + ": expected an integer, got '" + std::string(v) + "'");
  }
  return out;
}

}  // namespace

const char* usage() {
  return "usage: pocketlm-peer SUBCOMMAND [flags]   (prints one JSON object on stdout)\n"
         "  tokenize -m MODEL (-p TEXT | -f FILE) [--no-bos] [--parse-special]\n"
         "  greedy   -m MODEL (-p TEXT | -f FILE) -n N [-c CTX] [--no-bos] [--parse-special]\n"
         "  top1     -m MODEL -f TEXTFILE --positions N [-c CTX] [--logits-out FILE]\n"
         "  info     -m MODEL\n"
         "  bench    -m MODEL [-p N] [-n N] [-r R] [--serve]   (llama-bench's pp/tg tests; repack on, fa auto)\n"
         "common flags: -t THREADS (default 2), --fa (flash attention; off by default; bench: auto, --no-fa off),\n"
         "  -ctk TYPE / -ctv TYPE (KV cache types: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1; default f16),\n"
         "  --repack (use llama.cpp's repacked/AMX weight buffers; off by default, as with its --no-repack;\n"
         "    bench: on, as llama-bench, --no-repack turns it off),\n"
         "  --verbose (llama.cpp's log on stderr)\n"
         "text given with -p or -f is used byte for byte (no escape processing).\n";
}

std::optional<PeerArgs> parse_args(int argc, char** argv) {
  PeerArgs a;
  if (argc < 2) throw std::invalid_argument("missing subcommand");
  a.command = argv[1];
  if (a.command == "-h" || a.command == "--help") return std::nullopt;
  if (a.command != "tokenize" && a.command != "greedy" && a.command != "top1" && a.command != "info" &&
      a.command != "bench") {
    throw std::invalid_argument("unknown subcommand '" + a.command + "'");
  }
  for (int i = 2; i < argc; ++i) {
    const std::string_view f = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(std::string(f) + ": missing value");
      return argv[++i];
    };
    if (f == "-h" || f == "--help")
      return std::nullopt;
    else if (f == "-m" || f == "--model")
      a.model = value();
    else if ((f == "-p" || f == "--n-prompt") && a.command == "bench")
      a.n_prompt = to_int(f, value());
    else if (f == "-p" || f == "--prompt")
      a.prompt = value();
    else if (f == "-r" || f == "--repetitions")
      a.repetitions = to_int(f, value());
    else if (f == "--serve")
      a.serve = true;
    else if (f == "--no-fa")
      a.fa_mode = "off";
    else if (f == "-f" || f == "--file")
      a.text_file = value();
    else if (f == "-n" || f == "--n-predict")
      a.n_predict = to_int(f, value());
    else if (f == "-c" || f == "--ctx-size")
      a.n_ctx = to_int(f, value());
    else if (f == "-t" || f == "--threads")
      a.n_threads = to_int(f, value());
    else if (f == "--positions")
      a.positions = to_int(f, value());
    else if (f == "--logits-out")
      a.logits_out = value();
    else if (f == "--no-bos")
      a.no_bos = true;
    else if (f == "--parse-special")
      a.parse_special = true;
    else if (f == "--fa" || f == "--flash-attn") {
      a.flash_attn = true;
      a.fa_mode = "on";
    } else if (f == "-ctk" || f == "--cache-type-k")
      a.cache_type_k = value();
    else if (f == "-ctv" || f == "--cache-type-v")
      a.cache_type_v = value();
    else if (f == "--repack")
      a.repack = a.repack_set = true;
    else if (f == "--no-repack") {
      a.repack = false;
      a.repack_set = true;
    } else if (f == "--verbose")
      a.verbose = true;
    else
      throw std::invalid_argument("unknown flag '" + std::string(f) + "'");
  }
  if (a.model.empty()) throw std::invalid_argument("-m MODEL is required");
  if (a.n_threads < 1) throw std::invalid_argument("-t: must be at least 1");
  if (a.n_ctx < 0) throw std::invalid_argument("-c: must not be negative");
  const bool needs_text = a.command == "tokenize" || a.command == "greedy";
  if (needs_text && a.prompt.has_value() == a.text_file.has_value()) {
    throw std::invalid_argument(a.command + ": give exactly one of -p TEXT or -f FILE");
  }
  if (a.command == "greedy" && a.n_predict < 1) throw std::invalid_argument("greedy: -n N (N >= 1) is required");
  if (a.command == "bench") {
    if (a.repetitions < 1) throw std::invalid_argument("-r: must be at least 1");
    if (a.n_prompt < 0) throw std::invalid_argument("-p: must not be negative");
    if (!a.serve && a.n_prompt == 0 && a.n_predict <= 0)
      throw std::invalid_argument("bench: give -p N and/or -n N, or --serve");
  }
  if (a.command == "top1") {
    if (!a.text_file) throw std::invalid_argument("top1: -f TEXTFILE is required");
    if (a.positions < 1) throw std::invalid_argument("top1: --positions N (N >= 1) is required");
  }
  return a;
}

}  // namespace pocketlm::peer
