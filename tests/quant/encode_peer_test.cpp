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

#include "quant/formats/quantize.h"
#include "quant/encode_rows.h"
#include "util/thread_pool.h"

namespace pocketlm {
namespace {

namespace fs = std::filesystem;

#ifndef POCKETLM_PEER_QUANTIZE_BIN
#define POCKETLM_PEER_QUANTIZE_BIN ""
#endif

fs::path peer_quantize_bin() {
  if (const char* env = std::getenv("POCKETLM_PEER_QUANTIZE_BIN")) return env;
  return POCKETLM_PEER_QUANTIZE_BIN;
}

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
  const GgmlType types[] = {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0,
                            GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};
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
                    std::string(type_traits(type).name).c_str(), heavy ? "heavy" : "gauss", use_imp ? "imatrix" : "plain",
                    e_ours, e_ggml, ratio, our_s * 1e3, peer.seconds * 1e3);
        if (type == GgmlType::Q8_0) {
          EXPECT_EQ(ours, peer.blocks) << "Q8_0 must be byte-identical to ggml's";
        } else {
          EXPECT_LE(ratio, 1.0) << type_traits(type).name << (heavy ? " heavy-tailed" : " gaussian")
                                << (use_imp ? " with importance" : " without importance");
        }
      }
  }
}

}  // namespace
}  // namespace pocketlm
