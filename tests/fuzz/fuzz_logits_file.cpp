// libFuzzer target: the logits-file reader (pocketlm's and llama.cpp's KL base formats) on arbitrary bytes,
// then every chunk a --kl-divergence run would read, and a decode of each row's first and last entry.
#include <cstddef>
#include <cstdint>

#include "eval/log_probs.h"
#include "eval/logits_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = pocketlm::eval::LogitsReader::parse(pocketlm::MappedFile::from_bytes({data, size}, "fuzz.plm"));
  if (!r.ok()) return 0;
  const auto& info = r->info();
  volatile float sink = 0;
  for (int64_t c = 0; c < info.n_chunk; ++c) {
    auto rows = r->chunk(c);
    if (!rows.ok()) continue;
    for (int64_t i = 0; i < info.n_scored; ++i) {
      const uint8_t* row = rows->data() + static_cast<size_t>(i) * info.row_bytes;
      sink = sink + pocketlm::eval::decode_log_prob(row, 0) + pocketlm::eval::decode_log_prob(row, info.n_vocab - 1);
    }
  }
  for (int32_t t : r->tokens()) sink = sink + static_cast<float>(t);
  return 0;
}
