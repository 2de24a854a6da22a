#pragma once
// A base model's per-position distributions for KL divergence (`pocketlm perplexity --save-logits FILE`).
//
// Layout (little-endian; docs/evaluation.md has the table):
//   header  72 bytes   magic "PLMLOGP1", u32 version (1), u32 header size (72), u32 n_ctx, u32 n_vocab,
//                      u32 n_chunk, u32 scored positions per chunk, u32 row bytes, u32 flags (bit 0: BOS
//                      replaced each chunk's first token), i32 BOS id, u32 0, u64 tokenizer fingerprint,
//                      u64 token-id hash, u64 hash of the 64 bytes before it and of the token ids
//   tokens  4 × n_chunk × n_ctx     the evaluated token ids (as in the text, before the BOS substitution)
//   chunks  n_chunk × (n_scored × row_bytes + 8)   the quantized log-prob rows of positions n_ctx/2 ..
//                      n_ctx-2 (eval/log_probs.h; llama.cpp's row layout), then a u64 hash of those rows
// Size per scored position: 8 + 2 × n_vocab bytes (n_vocab rounded up to even): 98,312 B for a 49,152-token
// vocabulary. The writer streams chunk by chunk through an AtomicFile; the reader maps the file and checks
// every chunk's hash before its rows are used.
//
// The reader also takes llama-perplexity's own --kl-divergence-base files ("_logits_" magic; same rows,
// no fingerprint and no hashes): their vocabulary size and token ids are still checked.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace pocketlm::eval {

// 64-bit hash of bytes (word-at-a-time multiply-xor; not cryptographic).
uint64_t hash_bytes(const void* data, size_t n, uint64_t seed = 0);
uint64_t hash_tokens(std::span<const int32_t> ids);
// Identity of a tokenizer: kind, pre-tokenizer, vocabulary size, every token's text in id order, BOS and
// whether it is added. Two models with the same fingerprint turn the same text into the same ids.
uint64_t tokenizer_fingerprint(const Tokenizer& tok);

struct LogitsFileInfo {
  enum class Format { Pocketlm, LlamaCpp };
  Format format = Format::Pocketlm;
  int64_t n_ctx = 0;
  int64_t n_vocab = 0;
  int64_t n_chunk = 0;
  int64_t n_scored = 0;  // rows per chunk: n_ctx - 1 - n_ctx/2
  size_t row_bytes = 0;
  bool bos_replaced = false;
  int32_t bos = -1;
  uint64_t tokenizer_fingerprint = 0;  // 0 for llama.cpp files
  uint64_t tokens_hash = 0;
};

inline constexpr size_t kLogitsHeaderBytes = 72;
inline int64_t scored_positions(int64_t n_ctx) { return n_ctx - 1 - n_ctx / 2; }
// Exact size of a pocketlm logits file.
uint64_t logits_file_bytes(int64_t n_ctx, int64_t n_vocab, int64_t n_chunk);

class LogitsWriter {
 public:
  // `tokens` are the n_chunk × n_ctx ids evaluated. Writes the header and tokens at once.
  static Expected<LogitsWriter> create(const std::string& path, const LogitsFileInfo& info,
                                       std::span<const int32_t> tokens);
  // Appends one position's row (log_prob_row_bytes(n_vocab) bytes); rows of a chunk are hashed as they come.
  Status add_row(const uint8_t* row);
  // Ends the current chunk (writes its hash). Every chunk must get exactly n_scored rows.
  Status end_chunk();
  // After n_chunk chunks: fsync and rename onto the path.
  Status commit();
  uint64_t bytes_written() const { return file_.bytes_written(); }
  // Where the bytes go until commit() (a signal handler may remove it on Ctrl-C).
  const std::string& temp_path() const { return file_.temp_path(); }

 private:
  LogitsWriter(AtomicFile f, LogitsFileInfo info) : file_(std::move(f)), info_(info) {}
  AtomicFile file_;
  LogitsFileInfo info_;
  int64_t rows_in_chunk_ = 0, chunks_done_ = 0;
  uint64_t chunk_hash_ = 0;
  std::string path_;
};

class LogitsReader {
 public:
  static Expected<LogitsReader> open(const std::string& path);
  // Parses and validates the header and token ids (the file's size must be exactly what they imply).
  static Expected<LogitsReader> parse(std::shared_ptr<MappedFile> file);

  const LogitsFileInfo& info() const { return info_; }
  std::span<const int32_t> tokens() const { return tokens_; }
  const std::string& path() const { return file_->path(); }
  // The rows of chunk c (n_scored × row_bytes), after checking the chunk's hash (pocketlm files) and each
  // row's scale and offset (finite, scale >= 0, offset <= 0).
  Expected<std::span<const uint8_t>> chunk(int64_t c) const;

 private:
  std::shared_ptr<MappedFile> file_;
  LogitsFileInfo info_;
  std::vector<int32_t> tokens_;
  size_t rows_offset_ = 0;
};

}  // namespace pocketlm::eval
