// The pocketlm-only Q4_0 group sizes, q4_0_g64 and q4_0_g128 (formats/legacy.h): the type table,
// the layout (a G-block is G/32 q4_0 blocks sharing one scale: same decode, same dot), the encoder (every
// value on its nearest grid point, importance steering the search, error growing with the group), the
// kernels (every path's GEMM equals its own q4_0 GEMM on the equivalent rows), the GGUF reader and writer,
// and stories260K quantized through rules and the CLI: it loads and generates in pocketlm, records
// pocketlm.only_types, and llama.cpp refuses it with a clear message.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "e2e/cli_runner.h"
#include "e2e/process_runner.h"
#include "formats/dequantize.h"
#include "formats/float.h"
#include "formats/legacy.h"
#include "formats/quantize.h"
#include "gguf/gguf_bytes.h"
#include "gguf/reader.h"
#include "gguf/writer.h"
#include "kernels/dispatch.h"
#include "kernels/kernel_table.h"
#include "kernels/ref/vec_dot.h"
#include "model/model.h"
#include "quant/model_agreement.h"
#include "quant/quantize_model.h"
#include "runtime/session.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

namespace fs = std::filesystem;

const GgmlType kGroupTypes[] = {GgmlType::Q4_0_G64, GgmlType::Q4_0_G128};

std::vector<float> gaussian(size_t n, float sigma, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, sigma);
  std::vector<float> x(n);
  for (auto& v : x) v = normal(rng);
  return x;
}

std::vector<uint8_t> encode(GgmlType t, const std::vector<float>& x, int64_t rows, int64_t cols,
                            const float* importance = nullptr) {
  std::vector<uint8_t> out(row_size(t, cols) * static_cast<size_t>(rows));
  auto r = quantize_rows(t, x.data(), out.data(), rows, cols, importance, nullptr);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
  return out;
}

std::vector<float> decode(GgmlType t, const std::vector<uint8_t>& q, int64_t rows, int64_t cols) {
  std::vector<float> y(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    dequantize_row(t, q.data() + static_cast<size_t>(r) * row_size(t, cols), y.data() + r * cols, cols);
  return y;
}

// sqrt(sum w (x - y)^2 / sum w), w = importance of the column (1 without).
double weighted_rmse(const std::vector<float>& x, const std::vector<float>& y, int64_t cols, const float* imp) {
  double e = 0, ws = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double w = imp ? imp[i % static_cast<size_t>(cols)] : 1.0;
    e += w * (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
    ws += w;
  }
  return std::sqrt(e / ws);
}

double bits_per_weight(GgmlType t) {
  const TypeTraits& tt = type_traits(t);
  return 8.0 * static_cast<double>(tt.type_size) / static_cast<double>(tt.block_size);
}

// A q4_0 row holding the same values as a row of G-blocks: each part becomes a q4_0 block with the shared d.
template <int G>
std::vector<uint8_t> as_q4_0(const std::vector<uint8_t>& row) {
  const size_t nb = row.size() / sizeof(block_q4_0_g<G>);
  std::vector<block_q4_0_g<G>> g(nb);
  std::memcpy(g.data(), row.data(), row.size());
  std::vector<block_q4_0> q(nb * (G / 32));
  for (size_t b = 0; b < nb; ++b)
    for (int p = 0; p < G / 32; ++p) {
      q[b * (G / 32) + p].d = g[b].d;
      std::memcpy(q[b * (G / 32) + p].qs, g[b].qs + 16 * p, 16);
    }
  std::vector<uint8_t> out(q.size() * sizeof(block_q4_0));
  std::memcpy(out.data(), q.data(), out.size());
  return out;
}

// Random quant bytes with random f16 scales (some negative, some zero), `rows` rows of k values.
template <int G>
std::vector<uint8_t> random_blocks(int64_t k, int64_t rows, std::mt19937& rng) {
  std::vector<block_q4_0_g<G>> b(static_cast<size_t>(k / G * rows));
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> mag(-0.05f, 0.05f);
  for (size_t i = 0; i < b.size(); ++i) {
    b[i].d = fp32_to_fp16(i % 11 == 5 ? 0.0f : mag(rng));
    for (auto& q : b[i].qs) q = static_cast<uint8_t>(byte(rng));
  }
  std::vector<uint8_t> out(b.size() * sizeof(block_q4_0_g<G>));
  std::memcpy(out.data(), b.data(), out.size());
  return out;
}

TEST(GroupSizeTypes, TableNamesIdsAndBitsPerWeight) {
  struct Want {
    GgmlType t;
    uint32_t id;
    const char* name;
    int64_t block;
    size_t bytes;
  };
  for (const Want& w :
       {Want{GgmlType::Q4_0_G64, 1064, "q4_0_g64", 64, 34}, Want{GgmlType::Q4_0_G128, 1128, "q4_0_g128", 128, 66}}) {
    SCOPED_TRACE(w.name);
    EXPECT_EQ(static_cast<uint32_t>(w.t), w.id);
    const auto tr = type_traits(w.id);
    ASSERT_TRUE(tr.has_value());
    EXPECT_EQ(tr->type, w.t);
    EXPECT_EQ(tr->name, w.name);
    EXPECT_EQ(tr->block_size, w.block);
    EXPECT_EQ(tr->type_size, w.bytes);
    EXPECT_TRUE(tr->can_dequantize);
    EXPECT_TRUE(tr->pocketlm_only);
    EXPECT_TRUE(is_pocketlm_only(w.t));
    EXPECT_EQ(type_from_name(w.name), w.t);
    std::string upper(w.name);
    std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
    EXPECT_EQ(type_from_name(upper), w.t);
    EXPECT_TRUE(can_quantize(w.t));
    EXPECT_TRUE(has_vec_dot(w.t));
    EXPECT_EQ(vec_dot_type(w.t), GgmlType::Q8_0);
    EXPECT_EQ(activation_row_size(w.t, 256), row_size(GgmlType::Q8_0, 256));
    // A dense kernel-table slot of its own, and a scalar GEMM in it.
    const int slot = kernels::type_slot(w.t);
    EXPECT_GE(slot, kernels::kGgmlTypeSlots);
    EXPECT_LT(slot, kernels::kTypeSlots);
    EXPECT_NE(kernels::scalar_table()->find(w.t), nullptr);
  }
  EXPECT_NE(kernels::type_slot(GgmlType::Q4_0_G64), kernels::type_slot(GgmlType::Q4_0_G128));
  EXPECT_FALSE(type_traits(GgmlType::Q4_0).pocketlm_only);
  EXPECT_FALSE(type_traits(1000u).has_value());
  EXPECT_FALSE(type_from_name("q4_0_g32").has_value());
  // 4.5 > 4.25 > 4.125 bits per weight.
  EXPECT_DOUBLE_EQ(bits_per_weight(GgmlType::Q4_0), 4.5);
  EXPECT_DOUBLE_EQ(bits_per_weight(GgmlType::Q4_0_G64), 4.25);
  EXPECT_DOUBLE_EQ(bits_per_weight(GgmlType::Q4_0_G128), 4.125);
}

// A G-block decodes, and dots with q8_0 activations, exactly as the G/32 q4_0 blocks holding its parts with
// its d: the layout is Q4_0's packing per 32-element part.
template <int G>
void check_parts_are_q4_0_blocks(GgmlType t) {
  std::mt19937 rng(G);
  const int64_t k = 512;
  const std::vector<uint8_t> row = random_blocks<G>(k, 1, rng);
  const std::vector<uint8_t> q = as_q4_0<G>(row);
  std::vector<float> a(static_cast<size_t>(k)), b(static_cast<size_t>(k));
  dequantize_row(t, row.data(), a.data(), k);
  dequantize_row(GgmlType::Q4_0, q.data(), b.data(), k);
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
  // Element 32p + j of block 0: part p's nibble j (low nibbles j < 16, high nibbles j >= 16), minus 8, times d.
  block_q4_0_g<G> b0;
  std::memcpy(&b0, row.data(), sizeof(b0));
  for (int p = 0; p < G / 32; ++p)
    for (int j = 0; j < 32; ++j) {
      const uint8_t byte = b0.qs[16 * p + (j % 16)];
      const int nib = j < 16 ? byte & 0x0F : byte >> 4;
      EXPECT_EQ(a[static_cast<size_t>(32 * p + j)], static_cast<float>(nib - 8) * fp16_to_fp32(b0.d));
    }
  const std::vector<float> x = gaussian(static_cast<size_t>(k), 1.0f, 7);
  std::vector<uint8_t> act(row_size(GgmlType::Q8_0, k));
  quantize_activations(GgmlType::Q8_0, x.data(), act.data(), k);
  const float dg = vec_dot(t, k, row.data(), act.data());
  const float d4 = vec_dot(GgmlType::Q4_0, k, q.data(), act.data());
  EXPECT_EQ(dg, d4);  // bit for bit: the same float steps per part
}

TEST(GroupSizeTypes, ABlockIsQ4_0BlocksSharingOneScale) {
  check_parts_are_q4_0_blocks<64>(GgmlType::Q4_0_G64);
  check_parts_are_q4_0_blocks<128>(GgmlType::Q4_0_G128);
}

// Encoding then decoding: every value lands on the grid point of its block's stored d nearest to it (the
// encoder re-rounds against the stored scale), and the error is bounded.
TEST(GroupSizeTypes, RoundTripPutsEveryValueOnItsNearestGridPoint) {
  const int64_t rows = 16, cols = 512;
  std::vector<float> x = gaussian(static_cast<size_t>(rows * cols), 0.02f, 3);
  x[5] = 0.5f;                                                                  // an outlier
  for (int64_t j = 128; j < 256; ++j) x[static_cast<size_t>(cols + j)] = 0.0f;  // an all-zero group
  for (GgmlType t : kGroupTypes) {
    SCOPED_TRACE(type_traits(t).name);
    const int64_t G = type_traits(t).block_size;
    const std::vector<uint8_t> q = encode(t, x, rows, cols);
    const std::vector<float> y = decode(t, q, rows, cols);
    double e = 0, s = 0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < cols; ++j) {
        const size_t i = static_cast<size_t>(r * cols + j);
        const size_t blk =
            static_cast<size_t>(r) * row_size(t, cols) + static_cast<size_t>(j / G) * type_traits(t).type_size;
        uint16_t dh;
        std::memcpy(&dh, q.data() + blk, 2);
        const double d = fp16_to_fp32(dh);
        ASSERT_TRUE(std::isfinite(y[i]));
        const double err = std::fabs(static_cast<double>(x[i]) - y[i]);
        for (int l = -8; l <= 7; ++l)
          ASSERT_LE(err, std::fabs(static_cast<double>(x[i]) - d * l) + 1e-6 * std::fabs(d) + 1e-12)
              << "row " << r << " col " << j << ": " << x[i] << " decoded " << y[i] << ", d " << d;
        if (x[i] == 0.0f) {
          EXPECT_EQ(y[i], 0.0f);
        }
        e += err * err;
        s += static_cast<double>(x[i]) * x[i];
      }
    const double rel = std::sqrt(e / s);
    std::printf("[group] %s round trip: relative RMSE %.4f\n", std::string(type_traits(t).name).c_str(), rel);
    EXPECT_LT(rel, 0.2);  // (the 25-sigma outlier costs its group most of its levels)
  }
}

// Importance steers the search over the G values as it does for q4_0: the importance-weighted error of an
// encoding made with the importance is below that of one made without.
TEST(GroupSizeTypes, ImportanceLowersTheWeightedError) {
  const int64_t rows = 64, cols = 512;
  const std::vector<float> x = gaussian(static_cast<size_t>(rows * cols), 0.02f, 11);
  std::mt19937 rng(5);
  std::lognormal_distribution<float> ln(0.0f, 1.5f);
  std::vector<float> imp(static_cast<size_t>(cols));
  for (auto& v : imp) v = ln(rng);
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q4_0_G64, GgmlType::Q4_0_G128}) {
    const double with = weighted_rmse(x, decode(t, encode(t, x, rows, cols, imp.data()), rows, cols), cols, imp.data());
    const double without = weighted_rmse(x, decode(t, encode(t, x, rows, cols), rows, cols), cols, imp.data());
    std::printf("[group] %s importance-weighted RMSE: %.4e with the importance, %.4e without\n",
                std::string(type_traits(t).name).c_str(), with, without);
    EXPECT_LT(with, without) << type_traits(t).name;
  }
}

// One scale per 32, 64, 128 values: on the same Gaussian matrix the error grows with the group while the
// bits per weight fall (4.5 > 4.25 > 4.125).
TEST(GroupSizeTypes, ErrorGrowsWithTheGroupAsBitsFall) {
  const int64_t rows = 256, cols = 1024;
  const std::vector<float> x = gaussian(static_cast<size_t>(rows * cols), 1.0f, 2024);
  double rmse[3];
  const GgmlType types[3] = {GgmlType::Q4_0, GgmlType::Q4_0_G64, GgmlType::Q4_0_G128};
  for (int i = 0; i < 3; ++i) {
    rmse[i] = weighted_rmse(x, decode(types[i], encode(types[i], x, rows, cols), rows, cols), cols, nullptr);
    std::printf("[group] N(0,1) %lld x %lld: %-9s %.3f bits/weight, RMSE %.5f\n", static_cast<long long>(rows),
                static_cast<long long>(cols), std::string(type_traits(types[i]).name).c_str(),
                bits_per_weight(types[i]), rmse[i]);
  }
  EXPECT_LE(rmse[0], rmse[1] * 1.005);
  EXPECT_LE(rmse[1], rmse[2] * 1.005);
  EXPECT_GT(bits_per_weight(types[0]), bits_per_weight(types[1]));
  EXPECT_GT(bits_per_weight(types[1]), bits_per_weight(types[2]));
}

TEST(GroupSizeTypes, RowsNotAMultipleOfTheGroupAreAnError) {
  const std::vector<float> x(96, 1.0f);
  std::vector<uint8_t> out(1024);
  auto r = quantize_rows(GgmlType::Q4_0_G64, x.data(), out.data(), 1, 96, nullptr, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("a row of 96 values cannot be stored as q4_0_g64 (rows must be a positive "
                                     "multiple of 64 values)"),
            std::string::npos)
      << r.error().message();
  r = quantize_rows(GgmlType::Q4_0_G128, x.data(), out.data(), 1, 64, nullptr, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("q4_0_g128"), std::string::npos) << r.error().message();
}

// Every kernel path (scalar, and each SIMD path this CPU runs) computes a G-block GEMM exactly as its own
// q4_0 GEMM on the equivalent q4_0 rows: the parts run q4_0's block dot with the shared scale. (Each SIMD
// path against the scalar one: SimdConformance, which lists these types with the others.)
template <int G>
void check_gemm_equals_q4_0(GgmlType t) {
  std::mt19937 rng(100 + G);
  for (const int64_t k : {int64_t{G}, int64_t{512}}) {
    const int64_t rows = 7, cols = 5;
    const std::vector<uint8_t> w = random_blocks<G>(k, rows, rng);
    const std::vector<uint8_t> wq = as_q4_0<G>(w);
    const std::vector<float> x = gaussian(static_cast<size_t>(k * cols), 1.0f, static_cast<unsigned>(k));
    const size_t as = row_size(GgmlType::Q8_0, k);
    std::vector<uint8_t> a(as * static_cast<size_t>(cols));
    for (int64_t c = 0; c < cols; ++c) quantize_activations(GgmlType::Q8_0, x.data() + c * k, a.data() + c * as, k);
    for (const kernels::KernelTable* table : kernels::runnable_tables()) {
      SCOPED_TRACE(std::string(table->name) + " " + std::string(type_traits(t).name) + " k=" + std::to_string(k));
      const kernels::GemmFn g = table->find(t), q = table->find(GgmlType::Q4_0);
      ASSERT_NE(g, nullptr);
      ASSERT_NE(q, nullptr);
      std::vector<float> got(static_cast<size_t>(rows * cols), -1.0f), want(got.size(), -2.0f);
      g(k, w.data(), row_size(t, k), rows, a.data(), as, cols, got.data(), rows);
      q(k, wq.data(), row_size(GgmlType::Q4_0, k), rows, a.data(), as, cols, want.data(), rows);
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_TRUE(got[i] == want[i] || (std::isnan(got[i]) && std::isnan(want[i])))
            << "output " << i << ": " << got[i] << " vs q4_0 " << want[i];
    }
  }
}

TEST(GroupSizeTypes, EveryPathsGemmEqualsItsQ4_0GemmOnTheSameValues) {
  check_gemm_equals_q4_0<64>(GgmlType::Q4_0_G64);
  check_gemm_equals_q4_0<128>(GgmlType::Q4_0_G128);
}

Expected<GgufFile> parse_bytes(const std::vector<uint8_t>& b) {
  return GgufFile::parse(MappedFile::from_bytes(b, "mem.gguf"));
}

TEST(GroupSizeTypesGguf, ReaderAcceptsTheIdsAndRejectsRowsNotAMultipleOfTheGroup) {
  test::GgufBytes ok;
  ok.header(1, 0).tensor("w", {128, 2}, 1128, 0).align().zeros(2 * 66);
  auto f = parse_bytes(ok.b);
  ASSERT_TRUE(f.ok()) << f.error().message();
  EXPECT_EQ(f->tensor("w")->type, GgmlType::Q4_0_G128);
  EXPECT_EQ(f->tensor("w")->nbytes, 132u);

  test::GgufBytes bad;
  bad.header(1, 0).tensor("w", {64, 2}, 1128, 0).align().zeros(2 * 66);
  auto e = parse_bytes(bad.b);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(
      e.error().message().find("tensor 'w' at byte 53: row length 64 is not a multiple of q4_0_g128's block size 128"),
      std::string::npos)
      << e.error().message();

  test::GgufBytes g64;
  g64.header(1, 0).tensor("w", {96}, 1064, 0).align().zeros(64);
  e = parse_bytes(g64.b);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message().find("not a multiple of q4_0_g64's block size 64"), std::string::npos)
      << e.error().message();
}

TEST(GroupSizeTypesGguf, WriterWritesThemAndRefusesRowsThatDoNotFit) {
  const fs::path path = fs::temp_directory_path() / ("plm_group_writer_" + std::to_string(::getpid()) + ".gguf");
  const std::vector<float> x = gaussian(128 * 3, 1.0f, 9);
  const std::vector<uint8_t> q64 = encode(GgmlType::Q4_0_G64, x, 3, 128);
  const std::vector<uint8_t> q128 = encode(GgmlType::Q4_0_G128, x, 3, 128);
  GgufWriter w;
  ASSERT_TRUE(w.add_tensor("a", GgmlType::Q4_0_G64, {128, 3}, q64).ok());
  ASSERT_TRUE(w.add_tensor("b", GgmlType::Q4_0_G128, {128, 3}, q128).ok());
  const Status bad = w.add_tensor("c", GgmlType::Q4_0_G128, {64, 2}, std::span<const uint8_t>(q128.data(), 132));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("row length 64 is not a multiple of q4_0_g128's block size 128"),
            std::string::npos);
  ASSERT_TRUE(w.write(path.string()).ok());
  auto f = GgufFile::open(path.string());
  ASSERT_TRUE(f.ok()) << f.error().message();
  EXPECT_EQ(f->tensor("a")->type, GgmlType::Q4_0_G64);
  EXPECT_EQ(f->tensor("b")->type, GgmlType::Q4_0_G128);
  EXPECT_EQ(std::vector<uint8_t>(f->tensor("a")->data, f->tensor("a")->data + f->tensor("a")->nbytes), q64);
  EXPECT_EQ(std::vector<uint8_t>(f->tensor("b")->data, f->tensor("b")->data + f->tensor("b")->nbytes), q128);
  std::error_code ec;
  fs::remove(path, ec);
}

// ---------------------------------------------------------------- stories260K through rules and the CLI
class GroupSizeModel : public test::StoriesQuantizeTest {
 protected:
  GroupSizeModel() : StoriesQuantizeTest("plm_group") {}
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string write_text(const std::string& name, const std::string& text) const {
    std::ofstream(dir_ / name) << text;
    return path(name);
  }
  // Quantizes `in` (default: stories260K) to `target` with `rules` (YAML text) into dir_/name.
  std::string write(const std::string& target, const std::string& rules_yaml, const std::string& name,
                    const GgufFile* in = nullptr, bool pure = false) {
    QuantizeOptions o;
    o.target = target;
    o.pure = pure;
    o.progress = false;
    o.n_threads = 2;
    if (!rules_yaml.empty()) {
      auto rules = parse_quantize_rules_yaml(rules_yaml, "rules.yaml");
      EXPECT_TRUE(rules.ok()) << (rules.ok() ? "" : rules.error().message());
      if (!rules.ok()) return "";
      o.rules = *rules;
    }
    auto p = plan_quantization(in ? *in : *in_, o);
    EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message());
    if (!p.ok()) return "";
    auto r = quantize_model(in ? *in : *in_, *p, o, path(name));
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
    return r.ok() ? path(name) : "";
  }
};

const char* kFfnRules = "rules:\n  - pattern: ffn_(gate|up)\n    type: q4_0_g64\n";

TEST_F(GroupSizeModel, RulesFileGivesFfnGateUpG64AndTheModelRuns) {
  const std::string out = write("f32", kFfnRules, "ffn-g64.gguf");
  ASSERT_FALSE(out.empty());
  auto q = GgufFile::open(out);
  ASSERT_TRUE(q.ok()) << q.error().message();
  for (int l = 0; l < 5; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    EXPECT_EQ(q->tensor(p + "ffn_gate.weight")->type, GgmlType::Q4_0_G64);
    EXPECT_EQ(q->tensor(p + "ffn_up.weight")->type, GgmlType::Q4_0_G64);
    EXPECT_EQ(q->tensor(p + "ffn_down.weight")->type, GgmlType::F32);
    EXPECT_EQ(q->tensor(p + "attn_q.weight")->type, GgmlType::F32);
  }
  auto only = q->get_string_array(kPocketlmOnlyTypesKey);
  ASSERT_TRUE(only.ok()) << only.error().message();
  EXPECT_EQ(*only, std::vector<std::string>{"q4_0_g64"});

  auto base = Model::load(test::stories_path().string());
  auto m = Model::load(out);
  ASSERT_TRUE(base.ok());
  ASSERT_TRUE(m.ok()) << m.error().message();
  const auto g = test::greedy(**m, "Once upon a time", 16);
  ASSERT_EQ(g.size(), 16u);
  const double agree = test::top1_agreement(**base, **m, test::tinystories_sample());
  std::printf("[group] stories260K ffn_gate/up q4_0_g64 (rest f32) vs F32: top-1 agreement %.2f %%, continuation: %s\n",
              100 * agree, (*m)->tokenizer().decode(g).c_str());
  EXPECT_GE(agree, 0.85);
}

TEST_F(GroupSizeModel, SingleTypeG64FallsBackWhereRowsDoNotFitAndStaysCloseToQ4_0) {
  QuantizeOptions o;
  o.target = "q4_0_g128";
  auto p = plan_quantization(*in_, o);
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(p->ftype, 2u);  // llama.cpp has no file type for it: Q4_0's, the nearest
  for (const auto& t : p->tensors) {
    if (t.name == "blk.0.attn_q.weight") {  // rows of 64: q4_0_g128 -> q4_0_g64
      EXPECT_EQ(t.type, GgmlType::Q4_0_G64);
      EXPECT_TRUE(t.fallback);
      EXPECT_NE(t.reason.find("row width 64 is not a multiple of 128 (q4_0_g128's block): q4_0_g64 instead"),
                std::string::npos)
          << t.reason;
    }
    if (t.name == "blk.0.ffn_down.weight") {
      EXPECT_EQ(t.type, GgmlType::F16);  // rows of 172
    }
  }
  EXPECT_EQ(p->pocketlm_only_types(), std::vector<std::string>{"q4_0_g64"});

  auto base = Model::load(test::stories_path().string());
  ASSERT_TRUE(base.ok());
  double agree[2];
  const char* targets[2] = {"q4_0_g64", "q4_0"};
  for (int i = 0; i < 2; ++i) {
    const std::string out = write(targets[i], "", std::string(targets[i]) + ".gguf", nullptr, /*pure=*/true);
    ASSERT_FALSE(out.empty());
    auto m = Model::load(out);
    ASSERT_TRUE(m.ok()) << m.error().message();
    agree[i] = test::top1_agreement(**base, **m, test::tinystories_sample());
    std::printf("[group] stories260K %s (single type) vs F32: %ju bytes, top-1 agreement %.2f %%, continuation: %s\n",
                targets[i], static_cast<uintmax_t>(fs::file_size(out)), 100 * agree[i],
                (*m)->tokenizer().decode(test::greedy(**m, "Once upon a time", 16)).c_str());
  }
  EXPECT_GE(agree[0], 0.6);
  EXPECT_GE(agree[0], agree[1] - 0.1);  // a quarter bit less per weight than q4_0, not a different model
}

TEST_F(GroupSizeModel, RecipesNeverProduceThem) {
  for (const QuantRecipe& r : all_recipes()) {
    QuantizeOptions o;
    o.target = std::string(r.name);
    auto p = plan_quantization(*in_, o);
    ASSERT_TRUE(p.ok()) << r.name << ": " << p.error().message();
    EXPECT_TRUE(p->pocketlm_only_types().empty()) << r.name;
  }
  // ... nor does a file without them get the key.
  const std::string out = write("q4_0", "", "q4_0.gguf");
  ASSERT_FALSE(out.empty());
  auto q = GgufFile::open(out);
  ASSERT_TRUE(q.ok());
  EXPECT_FALSE(q->has(kPocketlmOnlyTypesKey));
}

TEST_F(GroupSizeModel, RequantizingDropsTheKeyWhenNoneIsLeft) {
  const std::string g64 = write("f32", kFfnRules, "ffn-g64.gguf");
  ASSERT_FALSE(g64.empty());
  auto in = GgufFile::open(g64);
  ASSERT_TRUE(in.ok());
  const std::string out = write("q8_0", "", "q8_0.gguf", &*in, /*pure=*/true);
  ASSERT_FALSE(out.empty());
  auto q = GgufFile::open(out);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->tensor("blk.0.ffn_gate.weight")->type, GgmlType::Q8_0);
  EXPECT_FALSE(q->has(kPocketlmOnlyTypesKey));
}

TEST_F(GroupSizeModel, RuleWhoseGroupDoesNotDivideTheRowsIsAnErrorNamingATypeThatFits) {
  for (const auto& [rules, message] : std::vector<std::pair<std::string, std::string>>{
           {"- {pattern: ffn_gate, type: q4_0_g128}\n",
            "rule 1 ('ffn_gate'): tensor 'blk.0.ffn_gate.weight' [64, 172] has rows of 64 values, not a "
            "multiple of q4_0_g128's block of 128 (q4_0_g64 fits)"},
           {"- {pattern: attn_q, type: q4_0_g64}\n- {pattern: ffn_down, type: q4_0_g64}\n",
            "rule 2 ('ffn_down'): tensor 'blk.0.ffn_down.weight' [172, 64] has rows of 172 values, not a multiple of "
            "q4_0_g64's block of 64 (f16 fits)"}}) {
    auto parsed = parse_quantize_rules_yaml(rules, "rules.yaml");
    ASSERT_TRUE(parsed.ok()) << parsed.error().message();
    QuantizeOptions o;
    o.target = "f32";
    o.rules = *parsed;
    auto p = plan_quantization(*in_, o);
    ASSERT_FALSE(p.ok());
    EXPECT_NE(p.error().message().find(message), std::string::npos) << p.error().message();
  }
}

TEST_F(GroupSizeModel, CliNotesThemInspectMarksThemAndLlamaCppRefusesTheFile) {
  const std::string rules = write_text("rules.yaml", kFfnRules);
  const std::string out = path("ffn-g64.gguf");
  auto r = test::run_cli({"quantize", test::stories_path().string(), out, "f32", "--rules", rules, "-t", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("note: " + out +
                       " holds pocketlm-only tensor types (q4_0_g64, listed in its "
                       "pocketlm.only_types metadata): llama.cpp-based tools cannot read it"),
            std::string::npos)
      << r.err;
  auto dry = test::run_cli({"quantize", test::stories_path().string(), "q4_0_g64", "--dry-run"});
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_NE(dry.err.find("note: the plan uses pocketlm-only tensor types (q4_0_g64)"), std::string::npos) << dry.err;
  // No note for a file llama.cpp can read.
  auto plain = test::run_cli({"quantize", test::stories_path().string(), "q4_0", "--dry-run"});
  EXPECT_EQ(plain.err.find("pocketlm-only"), std::string::npos) << plain.err;
  auto unknown = test::run_cli({"quantize", test::stories_path().string(), "q4_0_g32", "--dry-run"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("pocketlm-only, which llama.cpp cannot read: q4_0_g64 q4_0_g128"), std::string::npos)
      << unknown.err;

  auto inspect = test::run_cli({"inspect", out});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_NE(inspect.out.find("| blk.0.ffn_gate.weight | q4_0_g64 (pocketlm-only) | [64, 172] | 5848 |"),
            std::string::npos)
      << inspect.out;
  EXPECT_NE(inspect.out.find("pocketlm-only tensor types: q4_0_g64 (10 tensors); llama.cpp-based tools cannot read "
                             "this file"),
            std::string::npos)
      << inspect.out;
  EXPECT_NE(inspect.out.find("| pocketlm.only_types | array<string> |"), std::string::npos);

  auto run = test::run_cli({"run", "-m", out, "-p", "Once upon a time", "-n", "8", "--temp", "0"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("Once upon a time"), std::string::npos) << run.out;

  const fs::path llama = test::peer_dir() / "build/bin/llama-completion";
  if (!fs::exists(llama))
    GTEST_SKIP() << llama << " missing (scripts/build-peer.sh builds it): llama.cpp's refusal not checked";
  // llama.cpp's gguf reader: "tensor 'blk.0.ffn_gate.weight' has invalid ggml type 1064. should be in [0, 43)".
  // llama-completion's logger writes from a background thread and loses everything at this early exit on most
  // runs here (about 3 in 4 print nothing; see perplexity_cli_test.cpp): rerun, checking the exit status each
  // time, until the lines are printed (each run takes ~20 ms).
  const std::string want = "tensor 'blk.0.ffn_gate.weight' has invalid ggml type 1064";
  test::CliResult peer;
  for (int attempt = 0; attempt < 64 && peer.err.find(want) == std::string::npos; ++attempt) {
    peer = test::run_process({llama.string(), "-m", out, "-p", "Once upon a time", "-n", "4", "-no-cnv"});
    ASSERT_NE(peer.exit_code, 0) << peer.out << peer.err;
  }
  EXPECT_NE(peer.err.find(want), std::string::npos) << peer.err;
  // llama-simple logs through ggml's synchronous default: the same message on every run.
  const fs::path simple = test::peer_dir() / "build/bin/llama-simple";
  if (fs::exists(simple)) {
    const auto r2 = test::run_process({simple.string(), "-m", out, "-n", "4", "Once upon a time"});
    EXPECT_NE(r2.exit_code, 0);
    EXPECT_NE(r2.err.find(want), std::string::npos) << r2.err;
  }
  const size_t at = peer.err.find("tensor 'blk.0.ffn_gate");
  std::printf("[group] llama-completion on the file: exit %d, %s\n", peer.exit_code,
              at == std::string::npos ? "" : peer.err.substr(at, peer.err.find('\n', at) - at).c_str());
}

}  // namespace
}  // namespace pocketlm
