#include "gguf/writer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "gguf/reader.h"

namespace pocketlm {
namespace {

std::filesystem::path tmp(const std::string& name) { return std::filesystem::temp_directory_path() / name; }

TEST(GgufWriter, RoundTripsEveryValueType) {
  GgufWriter w;
  w.set_alignment(64);
  w.set("u8", GgufValue::of_u8(200));
  w.set("i8", GgufValue::of_i8(-100));
  w.set("u16", GgufValue::of_u16(60000));
  w.set("i16", GgufValue::of_i16(-30000));
  w.set("u32", GgufValue::of_u32(4000000000u));
  w.set("i32", GgufValue::of_i32(-2000000000));
  w.set("u64", GgufValue::of_u64(uint64_t{1} << 63));
  w.set("i64", GgufValue::of_i64(-(int64_t{1} << 62)));
  w.set("f32", GgufValue::of_f32(1.5f));
  w.set("f64", GgufValue::of_f64(-2.25));
  w.set("bool", GgufValue::of_bool(true));
  w.set("str", GgufValue::of_string("héllo\nworld"));
  w.set("strs", GgufValue::of_strings({"a", "", "ccc"}));
  w.set("nested", GgufValue::of_array(GgufType::ARRAY, {GgufValue::of_i32s({1, 2}), GgufValue::of_i32s({3})}));
  std::vector<float> a(32 * 3);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i) * 0.5f;
  std::vector<uint8_t> q(18 * 2, 0x5A);  // two q4_0 blocks
  std::span<const uint8_t> abytes(reinterpret_cast<const uint8_t*>(a.data()), a.size() * 4);
  ASSERT_TRUE(w.add_tensor("a", GgmlType::F32, {32, 3}, abytes).ok());
  ASSERT_TRUE(w.add_tensor("q", GgmlType::Q4_0, {64}, q).ok());
  ASSERT_TRUE(w.add_tensor_lazy("lazy", GgmlType::F16, {8}, [](std::vector<uint8_t>& out) {
                 out.assign(16, 7);
                 return Status::Ok();
               }).ok());
  const auto path = tmp("plm_rt.gguf");
  ASSERT_TRUE(w.write(path.string()).ok());

  auto f = GgufFile::open(path.string());
  ASSERT_TRUE(f.ok()) << f.error().message();
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->find("u8")->u, 200u);
  EXPECT_EQ(f->find("i8")->i, -100);
  EXPECT_EQ(f->find("u16")->u, 60000u);
  EXPECT_EQ(f->find("i16")->i, -30000);
  EXPECT_EQ(f->find("u32")->u, 4000000000u);
  EXPECT_EQ(f->find("i32")->i, -2000000000);
  EXPECT_EQ(f->find("u64")->u, uint64_t{1} << 63);
  EXPECT_EQ(f->find("i64")->i, -(int64_t{1} << 62));
  EXPECT_EQ(f->find("f32")->f, 1.5);
  EXPECT_EQ(f->find("f64")->f, -2.25);
  EXPECT_TRUE(*f->get_bool("bool"));
  EXPECT_EQ(*f->get_string("str"), "héllo\nworld");
  EXPECT_EQ(*f->get_string_array("strs"), (std::vector<std::string>{"a", "", "ccc"}));
  const GgufValue* nested = f->find("nested");
  ASSERT_EQ(nested->arr.size(), 2u);
  EXPECT_EQ(nested->arr[0].arr[1].i, 2);
  EXPECT_EQ(nested->arr[1].arr[0].i, 3);
  const GgufTensor* ta = f->tensor("a");
  ASSERT_NE(ta, nullptr);
  EXPECT_EQ(ta->n_dims, 2);
  EXPECT_EQ(std::memcmp(ta->data, a.data(), abytes.size()), 0);
  EXPECT_EQ(f->tensor("q")->nbytes, 36u);
  EXPECT_EQ(f->tensor("q")->offset % 64, 0u);
  EXPECT_EQ(f->tensor("lazy")->data[15], 7);
  std::filesystem::remove(path);
}

TEST(GgufWriter, RejectsWrongSizesAndShapes) {
  GgufWriter w;
  std::vector<uint8_t> bytes(10);
  auto s = w.add_tensor("x", GgmlType::F32, {4}, bytes);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("10 bytes given, the shape needs 16"), std::string::npos);
  s = w.add_tensor("y", GgmlType::Q4_0, {30}, bytes);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("not a multiple"), std::string::npos);
}

// A failing producer aborts the write: neither the target nor the temp file is left behind, and an
// existing file at the target is untouched.
TEST(GgufWriter, FailedWriteLeavesNoPartialFile) {
  const auto path = tmp("plm_atomic.gguf");
  std::filesystem::remove(path);
  {
    std::ofstream keep(path);
    keep << "previous";
  }
  GgufWriter w;
  ASSERT_TRUE(w.add_tensor_lazy("boom", GgmlType::F32, {4}, [](std::vector<uint8_t>&) {
                 return Status(Error("producer failed"));
               }).ok());
  auto s = w.write(path.string());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("producer failed"), std::string::npos);
  std::ifstream in(path);
  std::string content;
  in >> content;
  EXPECT_EQ(content, "previous");
  for (const auto& e : std::filesystem::directory_iterator(path.parent_path()))
    EXPECT_EQ(e.path().filename().string().rfind("plm_atomic.gguf.tmp", 0), std::string::npos) << e.path();
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace pocketlm
