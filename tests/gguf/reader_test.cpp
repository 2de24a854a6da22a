#include "gguf/reader.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "gguf/writer.h"
#include "gguf_bytes.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

using test::GgufBytes;

Expected<GgufFile> parse_bytes(const std::vector<uint8_t>& b, const std::string& name = "mem.gguf") {
  return GgufFile::parse(MappedFile::from_bytes(b, name));
}

std::string error_of(const std::vector<uint8_t>& b) {
  auto r = parse_bytes(b);
  return r.ok() ? std::string("<parsed OK>") : r.error().message();
}

TEST(GgufReader, ReadsStories260K) {
  auto f = GgufFile::open(test::stories_path().string());
  ASSERT_TRUE(f.ok()) << f.error().message();
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->tensors().size(), 48u);
  EXPECT_EQ(*f->get_string("general.architecture"), "llama");
  EXPECT_EQ(*f->get_int("llama.embedding_length"), 64);
  EXPECT_EQ(f->get_string_array("tokenizer.ggml.tokens")->size(), 512u);
  const GgufTensor* emb = f->tensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->type, GgmlType::F32);
  EXPECT_EQ(emb->ne[0], 64);
  EXPECT_EQ(emb->ne[1], 512);
  EXPECT_EQ(emb->nbytes, 64u * 512u * 4u);
  // Zero-copy: the tensor points into the mapping.
  EXPECT_GE(emb->data, f->mapped()->data() + f->data_offset());
  EXPECT_LE(emb->data + emb->nbytes, f->mapped()->data() + f->file_size());
}

TEST(GgufReader, TypedGetterErrorsNameFileAndKey) {
  auto f = GgufFile::open(test::stories_path().string());
  ASSERT_TRUE(f.ok());
  auto missing = f->get_int("llama.no_such_key");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("stories260K.gguf"), std::string::npos);
  EXPECT_NE(missing.error().message().find("llama.no_such_key"), std::string::npos);
  auto wrong = f->get_int("general.architecture");
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.error().message().find("expected an integer, found string"), std::string::npos);
  EXPECT_EQ(*f->get_int_or("llama.no_such_key", 7), 7);
}

TEST(GgufReader, RejectsBadMagicAndVersions) {
  GgufBytes b;
  b.header(0, 0);
  auto bad = b.b;
  bad[0] = 'X';
  EXPECT_NE(error_of(bad).find("not a GGUF file"), std::string::npos);
  GgufBytes v1;
  v1.header(0, 0, 1);
  EXPECT_NE(error_of(v1.b).find("version 1 is not supported"), std::string::npos);
  GgufBytes v9;
  v9.header(0, 0, 9);
  EXPECT_NE(error_of(v9.b).find("unsupported GGUF version 9"), std::string::npos);
  GgufBytes be;
  be.header(0, 0, 0x03000000);
  EXPECT_NE(error_of(be.b).find("big-endian"), std::string::npos);
  GgufBytes v2;
  v2.header(0, 1, 2).kv_u32("a", 1);
  EXPECT_TRUE(parse_bytes(v2.b).ok());
}

TEST(GgufReader, RejectsHugeCounts) {
  GgufBytes kv;
  kv.header(0, uint64_t{1} << 60);
  EXPECT_NE(error_of(kv.b).find("metadata_kv_count"), std::string::npos);
  GgufBytes tn;
  tn.header(uint64_t{1} << 62, 0);
  EXPECT_NE(error_of(tn.b).find("tensor_count"), std::string::npos);
  GgufBytes s;
  s.header(0, 1).pod<uint64_t>(uint64_t{1} << 40).zeros(32);  // key length larger than the file
  EXPECT_NE(error_of(s.b).find("exceeds the file"), std::string::npos);
  GgufBytes arr;
  arr.header(0, 1).str("k").pod<uint32_t>(9).pod<uint32_t>(4).pod<uint64_t>(uint64_t{1} << 50);
  EXPECT_NE(error_of(arr.b).find("cannot fit in the file"), std::string::npos);
}

TEST(GgufReader, RejectsUnknownValueAndTensorTypes) {
  GgufBytes v;
  v.header(0, 1).str("k").pod<uint32_t>(13).pod<uint32_t>(0);
  EXPECT_NE(error_of(v.b).find("unknown metadata value type 13"), std::string::npos);
  GgufBytes t;
  t.header(1, 0).tensor("w", {32}, 4, 0).align().zeros(64);  // type 4 was removed from ggml
  const std::string e = error_of(t.b);
  EXPECT_NE(e.find("tensor 'w' type"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown tensor type id 4"), std::string::npos) << e;
}

TEST(GgufReader, RejectsBadShapes) {
  GgufBytes zero;
  zero.header(1, 0).tensor("w", {0}, 0, 0);
  EXPECT_NE(error_of(zero.b).find("invalid dimension 0"), std::string::npos);
  GgufBytes dims;
  dims.header(1, 0).tensor("w", {1, 1, 1, 1, 1}, 0, 0);
  EXPECT_NE(error_of(dims.b).find("n_dims"), std::string::npos);
  GgufBytes overflow;
  overflow.header(1, 0).tensor("w", {uint64_t{1} << 40, uint64_t{1} << 40}, 0, 0);
  EXPECT_NE(error_of(overflow.b).find("overflows"), std::string::npos);
  GgufBytes block;
  block.header(1, 0).tensor("w", {33}, 2, 0).align().zeros(64);  // q4_0 rows must be multiples of 32
  EXPECT_NE(error_of(block.b).find("not a multiple of q4_0's block size 32"), std::string::npos);
}

TEST(GgufReader, RejectsOverlappingAndOutOfFileTensors) {
  GgufBytes overlap;
  overlap.header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {16}, 0, 32).align().zeros(128);
  EXPECT_NE(error_of(overlap.b).find("tensor 'b' data"), std::string::npos);
  EXPECT_NE(error_of(overlap.b).find("overlaps tensor 'a'"), std::string::npos);
  GgufBytes outside;
  outside.header(1, 0).tensor("a", {16}, 0, 1024).align().zeros(64);
  EXPECT_NE(error_of(outside.b).find("extends past the end of the file"), std::string::npos);
  GgufBytes misaligned;
  misaligned.header(1, 0).tensor("a", {4}, 0, 8).align().zeros(64);
  EXPECT_NE(error_of(misaligned.b).find("not a multiple of the alignment"), std::string::npos);
  GgufBytes dup;
  dup.header(2, 0).tensor("a", {8}, 0, 0).tensor("a", {8}, 0, 32).align().zeros(64);
  EXPECT_NE(error_of(dup.b).find("duplicate tensor name"), std::string::npos);
}

TEST(GgufReader, RejectsBadAlignmentAndDuplicateKeys) {
  GgufBytes a;
  a.header(0, 1).kv_u32("general.alignment", 48);
  EXPECT_NE(error_of(a.b).find("power of two"), std::string::npos);
  GgufBytes d;
  d.header(0, 2).kv_u32("x", 1).kv_u32("x", 2);
  EXPECT_NE(error_of(d.b).find("duplicate key"), std::string::npos);
  GgufBytes bad_bool;
  bad_bool.header(0, 1).str("b").pod<uint32_t>(7).pod<uint8_t>(7);
  EXPECT_NE(error_of(bad_bool.b).find("neither 0 nor 1"), std::string::npos);
}

TEST(GgufReader, DeeplyNestedArraysAreBounded) {
  GgufBytes b;
  b.header(0, 1).str("deep").pod<uint32_t>(9);
  for (int i = 0; i < 20; ++i) b.pod<uint32_t>(9).pod<uint64_t>(1);
  b.pod<uint32_t>(4).pod<uint64_t>(1).pod<uint32_t>(5);
  EXPECT_NE(error_of(b.b).find("nested deeper"), std::string::npos);
}

// Every strict prefix of a valid file is rejected with a message naming the file; none crashes.
TEST(GgufReader, TruncatedAtEveryOffset) {
  const auto path = std::filesystem::temp_directory_path() / "plm_trunc.gguf";
  GgufWriter w;
  w.set("general.architecture", GgufValue::of_string("llama"));
  w.set("a.list", GgufValue::of_strings({"x", "yy", "zzz"}));
  std::vector<uint8_t> data(64 * 4, 1);
  ASSERT_TRUE(w.add_tensor("t0", GgmlType::F32, {64}, data).ok());
  ASSERT_TRUE(w.add_tensor("t1", GgmlType::F32, {16, 4}, data).ok());
  ASSERT_TRUE(w.write(path.string()).ok());
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> full((std::istreambuf_iterator<char>(in)), {});
  auto whole = parse_bytes(full, "trunc.gguf");
  ASSERT_TRUE(whole.ok()) << whole.error().message();
  const size_t needed = whole->data_offset() + whole->tensors().back().offset + whole->tensors().back().nbytes;
  for (size_t n = 0; n < needed; ++n) {
    std::vector<uint8_t> cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    auto r = parse_bytes(cut, "trunc.gguf");
    ASSERT_FALSE(r.ok()) << "prefix of " << n << " bytes parsed";
    EXPECT_EQ(r.error().message().rfind("trunc.gguf: ", 0), 0u) << r.error().message();
  }
  std::filesystem::remove(path);
}

// Flipping any byte of the header and metadata either parses or fails cleanly (run under ASan/UBSan in CI).
TEST(GgufReader, FlippedBytesNeverCrash) {
  auto f = GgufFile::open(test::stories_path().string());
  ASSERT_TRUE(f.ok());
  std::ifstream in(test::stories_path(), std::ios::binary);
  std::vector<uint8_t> full((std::istreambuf_iterator<char>(in)), {});
  const size_t head = static_cast<size_t>(f->data_offset());
  int failures = 0;
  for (size_t i = 0; i < head; i += 7) {
    for (uint8_t mask : {uint8_t{0xFF}, uint8_t{0x80}}) {
      auto copy = full;
      copy[i] ^= mask;
      auto r = parse_bytes(copy, "flip.gguf");
      if (!r.ok()) {
        ++failures;
        EXPECT_EQ(r.error().message().rfind("flip.gguf: ", 0), 0u);
      }
    }
  }
  EXPECT_GT(failures, 0);
}

}  // namespace
}  // namespace pocketlm
