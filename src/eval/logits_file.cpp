#include "eval/logits_file.h"

#include "util/splitmix64.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "eval/log_probs.h"

namespace pocketlm::eval {
namespace {

constexpr char kMagic[8] = {'P', 'L', 'M', 'L', 'O', 'G', 'P', '1'};
constexpr char kLlamaMagic[8] = {'_', 'l', 'o', 'g', 'i', 't', 's', '_'};
constexpr uint32_t kVersion = 1;
constexpr size_t kLlamaHeaderBytes = 20;
constexpr int64_t kMaxCtx = int64_t{1} << 20;
constexpr int64_t kMaxVocab = int64_t{1} << 24;

uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
uint64_t finalize(uint64_t h) { return splitmix64_mix(h); }

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class T>
void store(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

std::string format_name(LogitsFileInfo::Format f) {
  return f == LogitsFileInfo::Format::Pocketlm ? "pocketlm logits file" : "llama.cpp logits file";
}

// Rows of every chunk, plus each pocketlm chunk's trailing hash.
uint64_t chunk_bytes(const LogitsFileInfo& i) {
  return static_cast<uint64_t>(i.n_scored) * i.row_bytes + (i.format == LogitsFileInfo::Format::Pocketlm ? 8 : 0);
}

}  // namespace

uint64_t hash_bytes(const void* data, size_t n, uint64_t seed) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint64_t h = seed ^ (0x9e3779b97f4a7c15ULL * (n + 1));
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    h ^= rotl(load<uint64_t>(p + i) * 0x87c37b91114253d5ULL, 31) * 0x4cf5ad432745937fULL;
    h = rotl(h, 27) * 5 + 0x52dce729;
  }
  if (i < n) {
    uint64_t w = 0;
    std::memcpy(&w, p + i, n - i);
    h ^= rotl(w * 0x87c37b91114253d5ULL, 31) * 0x4cf5ad432745937fULL;
  }
  return finalize(h);
}

uint64_t hash_tokens(std::span<const int32_t> ids) {
  return hash_bytes(ids.data(), ids.size_bytes(), 0x746f6b656e73ULL);
}

uint64_t tokenizer_fingerprint(const Tokenizer& tok) {
  uint64_t h = hash_bytes(tok.model_kind().data(), tok.model_kind().size(), 1);
  h = hash_bytes(tok.pre().data(), tok.pre().size(), h);
  const int32_t fixed[3] = {tok.n_vocab(), tok.bos(), tok.add_bos() ? 1 : 0};
  h = hash_bytes(fixed, sizeof fixed, h);
  for (int32_t id = 0; id < tok.n_vocab(); ++id) {
    const std::string& t = tok.token_text(id);
    h = hash_bytes(t.data(), t.size(), h);
  }
  return h;
}

uint64_t logits_file_bytes(int64_t n_ctx, int64_t n_vocab, int64_t n_chunk) {
  const auto chunk = static_cast<uint64_t>(scored_positions(n_ctx)) * log_prob_row_bytes(n_vocab) + 8;
  return kLogitsHeaderBytes + 4 * static_cast<uint64_t>(n_chunk * n_ctx) + static_cast<uint64_t>(n_chunk) * chunk;
}

// ---- writer ----

Expected<LogitsWriter> LogitsWriter::create(const std::string& path, const LogitsFileInfo& in,
                                            std::span<const int32_t> tokens) {
  LogitsFileInfo info = in;
  info.format = LogitsFileInfo::Format::Pocketlm;
  info.n_scored = scored_positions(info.n_ctx);
  info.row_bytes = log_prob_row_bytes(info.n_vocab);
  if (info.n_scored < 1 || info.n_ctx > kMaxCtx || info.n_vocab < 1 || info.n_vocab > kMaxVocab || info.n_chunk < 1)
    return Error(path + ": cannot save logits for n_ctx " + std::to_string(info.n_ctx) + ", n_vocab " +
                 std::to_string(info.n_vocab) + ", " + std::to_string(info.n_chunk) + " chunks");
  if (static_cast<int64_t>(tokens.size()) != info.n_chunk * info.n_ctx)
    return Error(path + ": " + std::to_string(tokens.size()) + " token ids given for " + std::to_string(info.n_chunk) +
                 " chunks of " + std::to_string(info.n_ctx));
  info.tokens_hash = hash_tokens(tokens);

  uint8_t h[kLogitsHeaderBytes] = {};
  std::memcpy(h, kMagic, 8);
  store<uint32_t>(h + 8, kVersion);
  store<uint32_t>(h + 12, static_cast<uint32_t>(kLogitsHeaderBytes));
  store<uint32_t>(h + 16, static_cast<uint32_t>(info.n_ctx));
  store<uint32_t>(h + 20, static_cast<uint32_t>(info.n_vocab));
  store<uint32_t>(h + 24, static_cast<uint32_t>(info.n_chunk));
  store<uint32_t>(h + 28, static_cast<uint32_t>(info.n_scored));
  store<uint32_t>(h + 32, static_cast<uint32_t>(info.row_bytes));
  store<uint32_t>(h + 36, info.bos_replaced ? 1u : 0u);
  store<int32_t>(h + 40, info.bos);
  store<uint64_t>(h + 48, info.tokenizer_fingerprint);
  store<uint64_t>(h + 56, info.tokens_hash);
  store<uint64_t>(h + 64, hash_bytes(tokens.data(), tokens.size_bytes(), hash_bytes(h, 64)));

  PLM_TRY(AtomicFile f, AtomicFile::create(path));
  PLM_CHECK(f.write(h, sizeof h));
  PLM_CHECK(f.write(tokens.data(), tokens.size_bytes()));
  LogitsWriter w(std::move(f), info);
  w.path_ = path;
  return w;
}

Status LogitsWriter::add_row(const uint8_t* row) {
  if (chunks_done_ >= info_.n_chunk || rows_in_chunk_ >= info_.n_scored)
    return Error(path_ + ": more rows than the header announces");
  chunk_hash_ = hash_bytes(row, info_.row_bytes, chunk_hash_ ^ static_cast<uint64_t>(rows_in_chunk_));
  ++rows_in_chunk_;
  return file_.write(row, info_.row_bytes);
}

Status LogitsWriter::end_chunk() {
  if (rows_in_chunk_ != info_.n_scored)
    return Error(path_ + ": chunk " + std::to_string(chunks_done_) + " got " + std::to_string(rows_in_chunk_) +
                 " rows, expected " + std::to_string(info_.n_scored));
  PLM_CHECK(file_.write(&chunk_hash_, sizeof chunk_hash_));
  ++chunks_done_;
  rows_in_chunk_ = 0;
  chunk_hash_ = 0;
  return Status::Ok();
}

Status LogitsWriter::commit() {
  if (chunks_done_ != info_.n_chunk)
    return Error(path_ + ": " + std::to_string(chunks_done_) + " of " + std::to_string(info_.n_chunk) +
                 " chunks written");
  return file_.commit();
}

// ---- reader ----

Expected<LogitsReader> LogitsReader::open(const std::string& path) {
  PLM_TRY(auto file, MappedFile::open(path));
  return parse(std::move(file));
}

Expected<LogitsReader> LogitsReader::parse(std::shared_ptr<MappedFile> file) {
  const std::string& name = file->path();
  const uint8_t* p = file->data();
  const uint64_t size = file->size();
  auto fail = [&](const std::string& what) { return Error(name + ": " + what); };
  LogitsReader r;
  LogitsFileInfo& info = r.info_;
  size_t header = 0;
  if (size >= 8 && std::memcmp(p, kMagic, 8) == 0) {
    if (size < kLogitsHeaderBytes)
      return fail("truncated: " + std::to_string(size) + " bytes, shorter than the " +
                  std::to_string(kLogitsHeaderBytes) + "-byte header");
    const auto version = load<uint32_t>(p + 8);
    if (version != kVersion)
      return fail("version at byte 8: " + std::to_string(version) + " (this pocketlm reads version " +
                  std::to_string(kVersion) + ")");
    if (load<uint32_t>(p + 12) != kLogitsHeaderBytes)
      return fail("header size at byte 12: " + std::to_string(load<uint32_t>(p + 12)) + ", expected " +
                  std::to_string(kLogitsHeaderBytes));
    info.format = LogitsFileInfo::Format::Pocketlm;
    info.n_ctx = load<uint32_t>(p + 16);
    info.n_vocab = load<uint32_t>(p + 20);
    info.n_chunk = load<uint32_t>(p + 24);
    info.n_scored = load<uint32_t>(p + 28);
    info.row_bytes = load<uint32_t>(p + 32);
    const auto flags = load<uint32_t>(p + 36);
    if (flags > 1) return fail("flags at byte 36: unknown bits set (" + std::to_string(flags) + ")");
    info.bos_replaced = (flags & 1) != 0;
    info.bos = load<int32_t>(p + 40);
    info.tokenizer_fingerprint = load<uint64_t>(p + 48);
    info.tokens_hash = load<uint64_t>(p + 56);
    header = kLogitsHeaderBytes;
  } else if (size >= 8 && std::memcmp(p, kLlamaMagic, 8) == 0) {
    if (size < kLlamaHeaderBytes) return fail("truncated: " + std::to_string(size) + " bytes, shorter than the header");
    info.format = LogitsFileInfo::Format::LlamaCpp;
    info.n_ctx = load<uint32_t>(p + 8);
    info.n_vocab = load<int32_t>(p + 12);
    info.n_chunk = load<int32_t>(p + 16);
    info.n_scored = scored_positions(info.n_ctx);
    if (info.n_vocab >= 1 && info.n_vocab <= kMaxVocab) info.row_bytes = log_prob_row_bytes(info.n_vocab);
    header = kLlamaHeaderBytes;
  } else {
    return fail(
        "not a logits file (no \"PLMLOGP1\" or llama.cpp \"_logits_\" magic at byte 0); make one with "
        "`pocketlm perplexity --save-logits`");
  }
  const std::string fmt = format_name(info.format);
  if (info.n_ctx < 3 || info.n_ctx > kMaxCtx)
    return fail("n_ctx " + std::to_string(info.n_ctx) + " out of range [3, 1048576]");
  if (info.n_vocab < 1 || info.n_vocab > kMaxVocab)
    return fail("n_vocab " + std::to_string(info.n_vocab) + " out of range");
  if (info.n_chunk < 1 || info.n_chunk > (int64_t{1} << 31) / info.n_ctx)
    return fail("chunk count " + std::to_string(info.n_chunk) + " out of range");
  if (info.n_scored != scored_positions(info.n_ctx))
    return fail("scored positions per chunk " + std::to_string(info.n_scored) + " do not match n_ctx " +
                std::to_string(info.n_ctx) + " (expected " + std::to_string(scored_positions(info.n_ctx)) + ")");
  if (info.row_bytes != log_prob_row_bytes(info.n_vocab))
    return fail("row size " + std::to_string(info.row_bytes) + " does not match n_vocab " +
                std::to_string(info.n_vocab));

  const uint64_t n_tokens = static_cast<uint64_t>(info.n_chunk * info.n_ctx);
  uint64_t rows_total = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(info.n_chunk), chunk_bytes(info), &rows_total) ||
      rows_total > (uint64_t{1} << 62))
    return fail("its header (n_ctx " + std::to_string(info.n_ctx) + ", n_vocab " + std::to_string(info.n_vocab) + ", " +
                std::to_string(info.n_chunk) + " chunks) implies an impossible size");
  const uint64_t expect = header + 4 * n_tokens + rows_total;
  if (size != expect)
    return fail(std::string(size < expect ? "truncated" : "has trailing bytes") + ": " + std::to_string(size) +
                " bytes, but its header (" + fmt + ", n_ctx " + std::to_string(info.n_ctx) + ", n_vocab " +
                std::to_string(info.n_vocab) + ", " + std::to_string(info.n_chunk) + " chunks) implies " +
                std::to_string(expect));
  r.tokens_.resize(n_tokens);
  std::memcpy(r.tokens_.data(), p + header, 4 * n_tokens);
  if (info.format == LogitsFileInfo::Format::Pocketlm) {
    const uint64_t want = hash_bytes(p + header, 4 * n_tokens, hash_bytes(p, 64));
    if (load<uint64_t>(p + 64) != want) return fail("header or token ids corrupt (hash at byte 64 does not match)");
    if (hash_tokens(r.tokens_) != info.tokens_hash)
      return fail("token ids corrupt (token hash at byte 56 does not match)");
  } else {
    info.tokens_hash = hash_tokens(r.tokens_);
  }
  for (size_t i = 0; i < r.tokens_.size(); ++i)
    if (r.tokens_[i] < 0 || r.tokens_[i] >= info.n_vocab)
      return fail("token id " + std::to_string(r.tokens_[i]) + " at byte " + std::to_string(header + 4 * i) +
                  " out of range [0, " + std::to_string(info.n_vocab) + ")");
  r.rows_offset_ = header + 4 * n_tokens;
  r.file_ = std::move(file);
  return r;
}

Expected<std::span<const uint8_t>> LogitsReader::chunk(int64_t c) const {
  if (c < 0 || c >= info_.n_chunk)
    return Error(path() + ": chunk " + std::to_string(c) + " out of range (" + std::to_string(info_.n_chunk) +
                 " chunks)");
  const uint64_t off = rows_offset_ + static_cast<uint64_t>(c) * chunk_bytes(info_);
  const size_t n = static_cast<size_t>(info_.n_scored) * info_.row_bytes;
  const uint8_t* rows = file_->data() + off;
  if (info_.format == LogitsFileInfo::Format::Pocketlm) {
    uint64_t h = 0;
    for (int64_t i = 0; i < info_.n_scored; ++i)
      h = hash_bytes(rows + static_cast<size_t>(i) * info_.row_bytes, info_.row_bytes, h ^ static_cast<uint64_t>(i));
    if (load<uint64_t>(rows + n) != h)
      return Error(path() + ": chunk " + std::to_string(c) + " (bytes " + std::to_string(off) + ".." +
                   std::to_string(off + n + 8) + ") is corrupt: its hash does not match");
  }
  const float max_scale = 16.001f / 65535.0f;
  for (int64_t i = 0; i < info_.n_scored; ++i) {
    const uint8_t* row = rows + static_cast<size_t>(i) * info_.row_bytes;
    const auto scale = load<float>(row), offset = load<float>(row + 4);
    if (!std::isfinite(scale) || !std::isfinite(offset) || scale < 0 || scale > max_scale || offset > 1e-3f)
      return Error(path() + ": chunk " + std::to_string(c) + ", row " + std::to_string(i) + " (byte " +
                   std::to_string(off + static_cast<uint64_t>(i) * info_.row_bytes) + "): invalid scale " +
                   std::to_string(scale) + " / offset " + std::to_string(offset));
  }
  return std::span<const uint8_t>(rows, n);
}

}  // namespace pocketlm::eval
