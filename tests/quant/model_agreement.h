#pragma once
// How close a quantized model is to its base, for the quantizer tests: top-1 agreement of the next-token
// argmax over the first 250 tokens of a text (one batched pass per model, f32 KV), and the TinyStories sample
// those tests score on, and greedy continuations.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "gguf/reader.h"
#include "model/model.h"
#include "test_paths.h"

namespace pocketlm::test {

double top1_agreement(const Model& a, const Model& b, const std::string& text);
// The first 1,500 bytes of shared/testdata/text/tinystories-val.dev.txt (a fixed sentence if it is missing).
std::string tinystories_sample();
// Greedy continuation of `prompt` (n tokens) with pocketlm (f32 KV, 2 threads).
std::vector<int32_t> greedy(const Model& m, const std::string& prompt, int n);

// A quantizer test on stories260K: the model opened as a GgufFile (`in_`) and a fresh directory per test
// (`dir_`, named PREFIX_<pid>_<test>, removed afterwards); skipped when the shared data is missing.
class StoriesQuantizeTest : public ::testing::Test {
 protected:
  explicit StoriesQuantizeTest(std::string prefix) : prefix_(std::move(prefix)) {}
  void SetUp() override {
    if (!std::filesystem::exists(stories_path())) GTEST_SKIP() << stories_path() << " missing (shared/ data folder)";
    auto f = GgufFile::open(stories_path().string());
    ASSERT_TRUE(f.ok()) << f.error().message();
    in_ = std::make_unique<GgufFile>(std::move(*f));
    dir_ = std::filesystem::temp_directory_path() / (prefix_ + "_" + std::to_string(::getpid()) + "_" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  std::unique_ptr<GgufFile> in_;
  std::filesystem::path dir_;

 private:
  std::string prefix_;
};

}  // namespace pocketlm::test
