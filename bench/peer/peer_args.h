#pragma once
// Command line of pocketlm-peer: `pocketlm-peer SUBCOMMAND [flags]`. Flag names follow llama.cpp's tools
// (-m -p -f -n -c -t -ctk -ctv --fa) so a run can be repeated with them by hand.
#include <optional>
#include <string>

namespace pocketlm::peer {

struct PeerArgs {
  std::string command;                   // tokenize | greedy | top1 | info | bench
  std::string model;                     // -m
  std::optional<std::string> prompt;     // -p TEXT (verbatim: no escape processing)
  std::optional<std::string> text_file;  // -f FILE (verbatim bytes)
  int n_predict = -1;                    // -n
  int n_ctx = 0;                         // -c (0: per-subcommand default)
  int n_threads = 2;                     // -t
  int positions = -1;                    // --positions
  std::string logits_out;                // --logits-out
  bool no_bos = false;                   // --no-bos
  bool parse_special = false;            // --parse-special
  bool flash_attn = false;               // --fa
  std::string cache_type_k = "f16";      // -ctk
  std::string cache_type_v = "f16";      // -ctv
  bool repack = false;                   // --repack: llama.cpp's weight repacking / AMX buffers
  bool repack_set = false;               // --repack or --no-repack given (bench defaults to repack on)
  std::string fa_mode = "auto";          // bench: --fa → on, --no-fa → off, else auto (llama-bench's default)
  int n_prompt = 0;                      // bench: -p N (pp N)
  int repetitions = 5;                   // bench: -r
  bool serve = false;                    // bench: --serve (commands on stdin, see peer_bench.h)
  bool verbose = false;                  // --verbose: keep llama.cpp's log on stderr
};

// Throws std::invalid_argument with a message naming the bad flag. Returns nullopt for -h/--help.
std::optional<PeerArgs> parse_args(int argc, char** argv);
const char* usage();

}  // namespace pocketlm::peer
