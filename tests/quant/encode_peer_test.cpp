// Our encoders against llama.cpp's own quantizer (ggml_quantize_chunk through bench/peer's
// pocketlm-peer-quantize) on the same rows: our weighted RMSE must be <= llama.cpp's, per type, with and
// without importance weights. Prints the ratios and both wall times (timing is reported, not asserted).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "e2e/peer_client.h"
#include "formats/dequantize.h"
#include "formats/quantize.h"
#include "gguf/reader.h"
#include "quant/encode_rows.h"
#include "quant/imatrix.h"
#include "test_paths.h"
#include "util/thread_pool.h"

namespace pocketlm {
namespace {

namespace fs = std::filesystem;

fs::path peer_quantize_bin() { return test::peer_quantize_binary(); }

void write_floats(const fs::path& p, const float* v, size_t n) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v), static_cast<std::streamsize>(n * sizeof(float)));
}

std::vector<uint8_t> read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

struct PeerResult {
  std::vector<uint8_t> blocks;
  double seconds = 0;
};

PeerResult run_ggml(GgmlType type, const std::vector<float>& rows, int64_t n_per_row, const float* importance) {
  const fs::path dir = fs::temp_directory_path() / ("plm_enc_peer_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  write_floats(dir / "rows.f32", rows.data(), rows.size());
  std::string cmd = peer_quantize_bin().string() + " " + std::to_string(static_cast<uint32_t>(type)) + " " +
                    std::to_string(n_per_row) + " " + (dir / "rows.f32").string() + " " + (dir / "out.bin").string();
  if (importance) {
    write_floats(dir / "imp.f32", importance, static_cast<size_t>(n_per_row));
    cmd += " " + (dir / "imp.f32").string();
  }
  cmd += " > " + (dir / "out.json").string();
  PeerResult r;
  if (std::system(cmd.c_str()) != 0) {
    ADD_FAILURE() << "failed: " << cmd;
    return r;
  }
  r.blocks = read_bytes(dir / "out.bin");
  std::ifstream js(dir / "out.json");
  std::string text((std::istreambuf_iterator<char>(js)), std::istreambuf_iterator<char>());
  const auto pos = text.find("\"seconds\": ");
  if (pos != std::string::npos) r.seconds = std::stod(text.substr(pos + 11));
  fs::remove_all(dir);
  return r;
}

struct Case {
  GgmlType type;
};

TEST(EncodePeer, WeightedRmseAtMostLlamaCpps) {
  if (!fs::exists(peer_quantize_bin()))
    GTEST_SKIP() << "no pocketlm-peer-quantize (scripts/build-peer.sh builds llama.cpp into .peer/, then re-run cmake)";
  const bool slow = std::getenv("POCKETLM_SANITIZED") != nullptr;
  const int64_t n_per_row = 1024, n_rows = slow ? 16 : 256;
  const GgmlType types[] = {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0,   GgmlType::Q5_1,
                            GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K,   GgmlType::Q4_K,
                            GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::IQ4_NL, GgmlType::IQ4_XS};
  const std::vector<float> imp = test::lognormal_importance(n_per_row, 7);
  ThreadPool pool(1);  // one thread, as the peer call: the times compare like with like
  for (bool heavy : {false, true}) {
    const std::vector<float> rows = test::gaussian_rows(n_rows, n_per_row, heavy ? 11u : 10u, heavy);
    for (GgmlType type : types)
      for (bool use_imp : {false, true}) {
        const float* importance = use_imp ? imp.data() : nullptr;
        std::vector<uint8_t> ours(row_size(type, n_per_row) * static_cast<size_t>(n_rows));
        const auto t0 = std::chrono::steady_clock::now();
        auto written = quantize_rows(type, rows.data(), ours.data(), n_rows, n_per_row, importance, &pool);
        const double our_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        ASSERT_TRUE(written.ok()) << written.error().message();
        const PeerResult peer = run_ggml(type, rows, n_per_row, importance);
        ASSERT_EQ(peer.blocks.size(), ours.size()) << type_traits(type).name;
        // The metric weights are the importance itself (the expected squared matmul error per column) or 1.
        const double e_ours = test::reconstruction_error(type, ours, rows.data(), n_rows, n_per_row, importance).rmse();
        const double e_ggml =
            test::reconstruction_error(type, peer.blocks, rows.data(), n_rows, n_per_row, importance).rmse();
        const double ratio = e_ours / e_ggml;
        std::printf("[ratio] %-5s %-6s %-8s rmse ours %.4e ggml %.4e ratio %.4f  time ours %.1f ms ggml %.1f ms\n",
                    std::string(type_traits(type).name).c_str(), heavy ? "heavy" : "gauss",
                    use_imp ? "imatrix" : "plain", e_ours, e_ggml, ratio, our_s * 1e3, peer.seconds * 1e3);
        if (type == GgmlType::Q8_0) {
          EXPECT_EQ(ours, peer.blocks) << "Q8_0 must be byte-identical to ggml's";
        } else {
          EXPECT_LE(ratio, 1.0) << type_traits(type).name << (heavy ? " heavy-tailed" : " gaussian")
                                << (use_imp ? " with importance" : " without importance");
        }
      }
  }
}

// Real weights: SmolLM2-135M's blk.0 and blk.10 ffn_down (1536 wide) and attn_q (576 wide: legacy types only),
// dequantized from the Q4_1 release (so their base is itself quantized), with an importance vector from llama-imatrix
// run on the same model over wiki.test.raw.
TEST(EncodePeer, RealWeightsAtMostLlamaCpps) {
  if (!fs::exists(peer_quantize_bin())) GTEST_SKIP() << "no pocketlm-peer-quantize (scripts/build-peer.sh)";
  if (!fs::exists(test::smollm2_path())) GTEST_SKIP() << "no SmolLM2 (scripts/fetch-models.sh)";
  if (std::getenv("POCKETLM_SANITIZED")) GTEST_SKIP() << "slow under sanitizers; the release job runs it";
  const fs::path imatrix_bin = test::peer_dir() / "build/bin/llama-imatrix";
  if (!fs::exists(imatrix_bin)) GTEST_SKIP() << "no llama-imatrix";
  const fs::path dir = fs::temp_directory_path() / ("plm_enc_real_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string cmd = imatrix_bin.string() + " -m " + test::smollm2_path().string() + " -f " +
                          (test::shared_dir() / "testdata/text/wiki.test.raw").string() +
                          " -c 256 --chunks 4 -t 2 --no-ppl -o " + (dir / "im.gguf").string() + " > " +
                          (dir / "log").string() + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  auto im = read_imatrix((dir / "im.gguf").string());
  ASSERT_TRUE(im.ok()) << im.error().message();
  auto model = GgufFile::open(test::smollm2_path().string());
  ASSERT_TRUE(model.ok());
  ASSERT_TRUE(validate_imatrix(*im, *model).ok());
  ThreadPool pool(1);
  for (const char* name : {"blk.0.ffn_down.weight", "blk.10.ffn_down.weight", "blk.0.attn_q.weight"}) {
    const GgufTensor* t = model->tensor(name);
    ASSERT_NE(t, nullptr) << name;
    const int64_t n_per_row = t->ne[0], n_rows = t->n_rows();
    std::vector<float> rows(static_cast<size_t>(n_per_row * n_rows));
    for (int64_t r = 0; r < n_rows; ++r)
      dequantize_row(t->type, t->data + static_cast<size_t>(r) * row_size(t->type, n_per_row),
                     rows.data() + r * n_per_row, n_per_row);
    const ImatrixEntry* e = im->find(name);
    ASSERT_NE(e, nullptr) << name;
    const std::vector<float> imp = e->importance();
    // Q4_1 and Q5_1 are left out: their grids contain the base's (both find it: zero error).
    for (GgmlType type : {GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K,
                          GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::IQ4_NL, GgmlType::IQ4_XS}) {
      if (n_per_row % type_traits(type).block_size != 0) continue;
      for (bool use_imp : {false, true}) {
        const float* importance = use_imp ? imp.data() : nullptr;
        std::vector<uint8_t> ours(row_size(type, n_per_row) * static_cast<size_t>(n_rows));
        const auto t0 = std::chrono::steady_clock::now();
        ASSERT_TRUE(quantize_rows(type, rows.data(), ours.data(), n_rows, n_per_row, importance, &pool).ok());
        const double our_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const PeerResult peer = run_ggml(type, rows, n_per_row, importance);
        ASSERT_EQ(peer.blocks.size(), ours.size());
        const double e_ours = test::reconstruction_error(type, ours, rows.data(), n_rows, n_per_row, importance).rmse();
        const double e_ggml =
            test::reconstruction_error(type, peer.blocks, rows.data(), n_rows, n_per_row, importance).rmse();
        std::printf("[real] %-22s %-5s %-7s rmse ours %.4e ggml %.4e ratio %.4f  time ours %.1f ms ggml %.1f ms\n",
                    name, std::string(type_traits(type).name).c_str(), use_imp ? "imatrix" : "plain", e_ours, e_ggml,
                    e_ours / e_ggml, our_s * 1e3, peer.seconds * 1e3);
        if (type == GgmlType::Q8_0)
          EXPECT_EQ(ours, peer.blocks);
        else
          EXPECT_LE(e_ours, e_ggml) << name << " " << type_traits(type).name << (use_imp ? " with imatrix" : "");
      }
    }
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace pocketlm
