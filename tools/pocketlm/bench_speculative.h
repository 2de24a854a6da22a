#pragma once
// pocketlm bench with a draft (--draft, --draft-self, --lookup): speculative generation next to plain
// generation of the same target in the same run, with the acceptance figures and the predicted speedup;
// --peer llamacpp runs llama.cpp's llama-speculative-simple / llama-lookup on the same pair and prompt.
#include <string>
#include <vector>

#include "common.h"

namespace pocketlm::cli {

struct SpeculativeBenchFlags {
  std::vector<std::string> models;
  int n_gen = 128;
  int threads = 0;
  int reps = 5;
  int64_t n_ctx = 2048;
  std::string prompt = "Once upon a time";  // --spec-prompt
  std::string prompt_file;                  // --spec-prompt-file (overrides)
  DraftFlags draft;
  std::string peer;        // "" | "llamacpp"
  std::string peer_tools;  // folder of llama-speculative-simple / llama-lookup
  std::string json_out;
};

int bench_speculative_main(const SpeculativeBenchFlags& f);

}  // namespace pocketlm::cli
