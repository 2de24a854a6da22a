#pragma once
// `pocketlm-peer bench`: llama.cpp's side of `pocketlm bench --peer llamacpp`, run the way llama-bench runs
// its tests (see docs/peer.md): pp N = one prompt of N random tokens into an empty cache, tg N = N
// single-token decodes from an empty cache; a context of n_ctx = N per test, n_batch 2048, n_ubatch 512,
// a ggml thread pool with llama-bench's polling, weight repacking ("extra buffers") on and flash attention
// "auto" unless told otherwise.
#include <nlohmann/json.hpp>

#include "peer_args.h"

namespace pocketlm::peer {

// With --serve: prints a "ready" line, then answers each stdin line ("pp N", "tg N", "warmup pp N",
// "warmup tg N", "quit") with one JSON line. Otherwise runs -p/-n with -r repetitions after a warm-up and
// returns one JSON object.
nlohmann::json run_bench(const PeerArgs& a);

// Called by main() before init_backend: llama.cpp's log is captured (and echoed with --verbose) so the
// bench can report what llama.cpp resolved (flash attention, repacked buffers).
void capture_llama_log(bool verbose);

}  // namespace pocketlm::peer
