// The logits file: round trip, exact size, every validation error, llama.cpp's format, atomic writes.
#include "eval/logits_file.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "eval/log_probs.h"

namespace pocketlm::eval {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kCtx = 10, kVocab = 7, kChunks = 3;  // 4 scored positions per chunk

std::vector<int32_t> ids() {
  std::vector<int32_t> v(kCtx * kChunks);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int32_t>((i * 5 + 1) % kVocab);
  return v;
}

std::vector<uint8_t> row_for(int64_t chunk, int64_t pos) {
  std::vector<float> l(kVocab);
  std::mt19937 rng(static_cast<uint32_t>(chunk * 100 + pos));
  std::normal_distribution<float> d(0, 2);
  for (auto& x : l) x = d(rng);
  std::vector<uint8_t> row(log_prob_row_bytes(kVocab));
  encode_log_prob_row(l, 0, row.data());
  return row;
}

LogitsFileInfo info() {
  LogitsFileInfo i;
  i.n_ctx = kCtx;
  i.n_vocab = kVocab;
  i.n_chunk = kChunks;
  i.bos_replaced = true;
  i.bos = 1;
  i.tokenizer_fingerprint = 0xfeedface12345678ULL;
  return i;
}

std::vector<uint8_t> write_file(const std::string& path) {
  auto w = LogitsWriter::create(path, info(), ids());
  EXPECT_TRUE(w.ok()) << w.error().message();
  for (int64_t c = 0; c < kChunks; ++c) {
    for (int64_t p = 0; p < scored_positions(kCtx); ++p) EXPECT_TRUE(w->add_row(row_for(c, p).data()).ok());
    EXPECT_TRUE(w->end_chunk().ok());
  }
  EXPECT_TRUE(w->commit().ok());
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

Expected<LogitsReader> parse(const std::vector<uint8_t>& bytes, const std::string& name = "x.plm") {
  return LogitsReader::parse(MappedFile::from_bytes(bytes, name));
}

class LogitsFile : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (fs::temp_directory_path() / ("plm_logits_" + std::to_string(::getpid()) + ".plm")).string();
    bytes_ = write_file(path_);
  }
  void TearDown() override { fs::remove(path_); }
  std::string path_;
  std::vector<uint8_t> bytes_;
};

TEST_F(LogitsFile, RoundTrip) {
  EXPECT_EQ(bytes_.size(), logits_file_bytes(kCtx, kVocab, kChunks));
  auto r = LogitsReader::open(path_);
  ASSERT_TRUE(r.ok()) << r.error().message();
  const LogitsFileInfo& i = r->info();
  EXPECT_EQ(i.format, LogitsFileInfo::Format::Pocketlm);
  EXPECT_EQ(i.n_ctx, kCtx);
  EXPECT_EQ(i.n_vocab, kVocab);
  EXPECT_EQ(i.n_chunk, kChunks);
  EXPECT_EQ(i.n_scored, 4);
  EXPECT_TRUE(i.bos_replaced);
  EXPECT_EQ(i.bos, 1);
  EXPECT_EQ(i.tokenizer_fingerprint, 0xfeedface12345678ULL);
  EXPECT_EQ(i.tokens_hash, hash_tokens(ids()));
  EXPECT_EQ(std::vector<int32_t>(r->tokens().begin(), r->tokens().end()), ids());
  for (int64_t c = 0; c < kChunks; ++c) {
    auto rows = r->chunk(c);
    ASSERT_TRUE(rows.ok()) << rows.error().message();
    for (int64_t p = 0; p < 4; ++p) {
      const auto want = row_for(c, p);
      EXPECT_EQ(0, std::memcmp(rows->data() + p * i.row_bytes, want.data(), want.size()));
    }
  }
  EXPECT_FALSE(r->chunk(kChunks).ok());
}

TEST_F(LogitsFile, TruncatedOrLongerFilesNameTheSizes) {
  for (size_t cut : {size_t{1}, size_t{50}, bytes_.size() - 40}) {
    auto b = bytes_;
    b.resize(b.size() - cut);
    auto r = parse(b);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("x.plm: truncated"), std::string::npos) << r.error().message();
  }
  auto b = bytes_;
  b.push_back(0);
  auto r = parse(b);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("trailing bytes"), std::string::npos) << r.error().message();
}

TEST_F(LogitsFile, EveryFlippedBitIsCaught) {
  // Flip one bit in each byte (step 3 to keep it quick): parse or the chunk read must fail, never pass.
  for (size_t at = 0; at < bytes_.size(); at += 3) {
    auto b = bytes_;
    b[at] ^= 0x04;
    auto r = parse(b);
    if (!r.ok()) continue;
    bool failed = false;
    for (int64_t c = 0; c < r->info().n_chunk; ++c) failed |= !r->chunk(c).ok();
    EXPECT_TRUE(failed) << "flip at byte " << at << " went unnoticed";
  }
}

TEST_F(LogitsFile, HeaderFieldsAreChecked) {
  auto with = [&](size_t off, uint32_t v) {
    auto b = bytes_;
    std::memcpy(b.data() + off, &v, 4);
    return parse(b);
  };
  auto r = with(8, 2);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("version at byte 8: 2"), std::string::npos) << r.error().message();
  r = with(16, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("n_ctx 0"), std::string::npos) << r.error().message();
  r = with(24, 0xffffffffu);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("chunk count"), std::string::npos) << r.error().message();
  r = with(28, 5);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("scored positions"), std::string::npos) << r.error().message();
  r = with(0, 0x41414141);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("not a logits file"), std::string::npos) << r.error().message();
}

TEST_F(LogitsFile, ReadsLlamaCppFiles) {
  // llama-perplexity --kl-divergence-base: "_logits_", u32 n_ctx, i32 n_vocab, i32 n_chunk, ids, rows.
  std::vector<uint8_t> b(8);
  std::memcpy(b.data(), "_logits_", 8);
  auto put = [&](const void* p, size_t n) {
    b.insert(b.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
  };
  const uint32_t n_ctx = kCtx;
  const int32_t n_vocab = kVocab, n_chunk = kChunks;
  put(&n_ctx, 4);
  put(&n_vocab, 4);
  put(&n_chunk, 4);
  const auto t = ids();
  put(t.data(), t.size() * 4);
  for (int64_t c = 0; c < kChunks; ++c)
    for (int64_t p = 0; p < 4; ++p) {
      const auto row = row_for(c, p);
      put(row.data(), row.size());
    }
  auto r = parse(b, "base.kld");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->info().format, LogitsFileInfo::Format::LlamaCpp);
  EXPECT_EQ(r->info().n_scored, 4);
  EXPECT_EQ(r->info().tokenizer_fingerprint, 0u);
  auto rows = r->chunk(2);
  ASSERT_TRUE(rows.ok()) << rows.error().message();
  EXPECT_EQ(0, std::memcmp(rows->data() + 3 * r->info().row_bytes, row_for(2, 3).data(), r->info().row_bytes));
  b.pop_back();
  auto bad = parse(b, "base.kld");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("base.kld: truncated"), std::string::npos) << bad.error().message();
}

TEST_F(LogitsFile, InvalidRowScaleIsCaught) {
  // A llama.cpp file has no hashes: a NaN scale is caught by the row check.
  std::vector<uint8_t> b(8);
  std::memcpy(b.data(), "_logits_", 8);
  const uint32_t hdr[3] = {4, 3, 1};
  b.insert(b.end(), reinterpret_cast<const uint8_t*>(hdr), reinterpret_cast<const uint8_t*>(hdr) + 12);
  const int32_t t[4] = {0, 1, 2, 0};
  b.insert(b.end(), reinterpret_cast<const uint8_t*>(t), reinterpret_cast<const uint8_t*>(t) + 16);
  std::vector<uint8_t> row(log_prob_row_bytes(3), 0);
  const float nan = std::nanf("");
  std::memcpy(row.data(), &nan, 4);
  b.insert(b.end(), row.begin(), row.end());
  auto r = parse(b, "nan.kld");
  ASSERT_TRUE(r.ok()) << r.error().message();
  auto rows = r->chunk(0);
  ASSERT_FALSE(rows.ok());
  EXPECT_NE(rows.error().message().find("nan.kld: chunk 0, row 0"), std::string::npos) << rows.error().message();
}

TEST(LogitsWriterTest, UncommittedWriterLeavesNothing) {
  const std::string path =
      (fs::temp_directory_path() / ("plm_uncommitted_" + std::to_string(::getpid()) + ".plm")).string();
  {
    auto w = LogitsWriter::create(path, info(), ids());
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE(w->add_row(row_for(0, 0).data()).ok());
    EXPECT_FALSE(w->end_chunk().ok());  // 1 of 4 rows
    EXPECT_FALSE(w->commit().ok());     // 0 of 3 chunks
  }
  EXPECT_FALSE(fs::exists(path));
  for (const auto& e : fs::directory_iterator(fs::temp_directory_path()))
    EXPECT_EQ(e.path().string().find(path + ".tmp"), std::string::npos) << e.path();
}

TEST(LogitsWriterTest, RejectsATokenCountThatDoesNotMatch) {
  auto w = LogitsWriter::create("/tmp/never-written.plm", info(), std::vector<int32_t>(5, 0));
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.error().message().find("5 token ids given for 3 chunks of 10"), std::string::npos) << w.error().message();
}

}  // namespace
}  // namespace pocketlm::eval
