// Our encoded blocks decode identically through gguf-py's numpy dequantizer (read back through gguf-py's own
// GGUF reader from a file our GgufWriter wrote), and for the types gguf-py can quantize (its reference
// round-to-nearest: Q4_0..Q8_0) Q8_0 is byte-identical and the others' error is <= the reference's.
// Runs scripts/gguf-py-encode-oracle.py; skips when python3 cannot `import gguf`.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "formats/dequantize.h"
#include "formats/quantize.h"
#include "gguf/writer.h"
#include "quant/encode_rows.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

namespace fs = std::filesystem;

bool have_gguf_py() { return std::system("python3 -c 'import gguf, numpy' >/dev/null 2>&1") == 0; }

std::vector<uint8_t> read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

TEST(EncodeGgufPy, OurBlocksDecodeIdenticallyThroughGgufPy) {
  if (!have_gguf_py()) GTEST_SKIP() << "python3 cannot import gguf (scripts/install-deps.sh installs it)";
  const int64_t n_per_row = 512, n_rows = 24;
  std::vector<float> rows = test::gaussian_rows(n_rows, n_per_row, 21, true);
  // Adversarial rows among them: all zero, constant, one huge value, tiny values.
  std::fill(rows.begin(), rows.begin() + n_per_row, 0.0f);
  std::fill(rows.begin() + n_per_row, rows.begin() + 2 * n_per_row, -0.75f);
  rows[2 * n_per_row + 100] = 3000.0f;
  for (int64_t j = 0; j < n_per_row; ++j) rows[3 * n_per_row + j] *= 1e-28f;
  const std::vector<float> imp = test::lognormal_importance(n_per_row, 22);
  const GgmlType types[] = {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0,   GgmlType::Q5_1,
                            GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K,   GgmlType::Q4_K,
                            GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::IQ4_NL, GgmlType::IQ4_XS};
  std::vector<std::vector<uint8_t>> encoded;
  GgufWriter w;
  w.set("general.architecture", GgufValue::of_string("pocketlm-test"));
  const auto* src_bytes = reinterpret_cast<const uint8_t*>(rows.data());
  ASSERT_TRUE(w.add_tensor("src", GgmlType::F32, {n_per_row, n_rows}, {src_bytes, rows.size() * sizeof(float)}).ok());
  for (GgmlType t : types) {
    // Half the types with importance, so both search paths are covered.
    const bool use_imp = static_cast<int>(t) % 2 == 0;
    encoded.emplace_back(row_size(t, n_per_row) * n_rows);
    auto r = quantize_rows(t, rows.data(), encoded.back().data(), n_rows, n_per_row, use_imp ? imp.data() : nullptr,
                           nullptr);
    ASSERT_TRUE(r.ok()) << r.error().message();
    ASSERT_TRUE(w.add_tensor("enc." + std::string(type_traits(t).name), t, {n_per_row, n_rows},
                             {encoded.back().data(), encoded.back().size()})
                    .ok());
  }
  const fs::path dir = fs::temp_directory_path() / ("plm_enc_ggufpy_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  ASSERT_TRUE(w.write((dir / "enc.gguf").string()).ok());
  const std::string cmd = "python3 " + (test::source_dir() / "scripts/gguf-py-encode-oracle.py").string() + " " +
                          (dir / "enc.gguf").string() + " " + (dir / "out").string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  for (size_t k = 0; k < std::size(types); ++k) {
    const GgmlType t = types[k];
    const std::string name(type_traits(t).name);
    // gguf-py's dequantization of our blocks, bit for bit against ours.
    const std::vector<uint8_t> deq = read_bytes(dir / "out" / (name + ".deq.f32"));
    ASSERT_EQ(deq.size(), rows.size() * sizeof(float)) << name;
    std::vector<float> theirs(rows.size()), ours(rows.size());
    std::memcpy(theirs.data(), deq.data(), deq.size());
    for (int64_t r = 0; r < n_rows; ++r)
      dequantize_row(t, encoded[k].data() + r * row_size(t, n_per_row), ours.data() + r * n_per_row, n_per_row);
    for (size_t i = 0; i < ours.size(); ++i)
      ASSERT_EQ(std::memcmp(&ours[i], &theirs[i], 4), 0)
          << name << " element " << i << ": ours " << ours[i] << " gguf-py " << theirs[i];
    // gguf-py's reference encoder, where it has one.
    const fs::path ref_path = dir / "out" / (name + ".ref.bin");
    if (!fs::exists(ref_path)) continue;
    const std::vector<uint8_t> ref = read_bytes(ref_path);
    ASSERT_EQ(ref.size(), encoded[k].size()) << name;
    if (t == GgmlType::Q8_0) {
      EXPECT_EQ(ref, encoded[k]) << "Q8_0 must be byte-identical to the reference";
      continue;
    }
    const double e_ours = test::reconstruction_error(t, encoded[k], rows.data(), n_rows, n_per_row, nullptr).rmse();
    const double e_ref = test::reconstruction_error(t, ref, rows.data(), n_rows, n_per_row, nullptr).rmse();
    const bool weighted = static_cast<int>(t) % 2 == 0;
    const double w_ours = test::reconstruction_error(t, encoded[k], rows.data(), n_rows, n_per_row, imp.data()).rmse();
    const double w_ref = test::reconstruction_error(t, ref, rows.data(), n_rows, n_per_row, imp.data()).rmse();
    size_t same = 0;
    const size_t bs = type_traits(t).type_size;
    for (size_t b = 0; b < ref.size() / bs; ++b) same += std::memcmp(&ref[b * bs], &encoded[k][b * bs], bs) == 0;
    std::printf(
        "[gguf-py] %-5s rmse ours %.4e ref %.4e (%.3f) weighted ours %.4e ref %.4e (%.3f); %zu/%zu blocks identical\n",
        name.c_str(), e_ours, e_ref, e_ours / e_ref, w_ours, w_ref, w_ours / w_ref, same, ref.size() / bs);
    // Encoded with importance, the importance-weighted error is the one searched; else the plain one.
    if (weighted)
      EXPECT_LE(w_ours, w_ref) << name;
    else
      EXPECT_LE(e_ours, e_ref) << name;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace pocketlm
