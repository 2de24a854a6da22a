// The outlier branch (`pocketlm quantize --outliers K`, quant/methods/outliers.h, kernels/matmul.h): the side
// product on every kernel path against the dense float product (and a batch against one column at a time);
// matmul_many with a side equals the quantized product of the input with those channels zeroed plus the side
// product, whatever the grid makes of the zeroed columns; with K channels that carry the activation energy the
// outlier branch's error is far below the plain quantization's; on stories260K a file with outliers reloads, runs
// like the dense dequantized reference and is closer to F32 than the plain file; bad K and broken side tensors
// are clear errors; the CLI refuses --outliers without calibration; llama.cpp refuses the file (peer).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "e2e/cli_runner.h"
#include "e2e/process_runner.h"
#include "formats/dequantize.h"
#include "formats/float.h"
#include "formats/quantize.h"
#include "gguf/reader.h"
#include "gguf/writer.h"
#include "kernels/dispatch.h"
#include "kernels/matmul.h"
#include "model/model.h"
#include "prune/prune_model.h"
#include "quant/methods/calib_stats.h"
#include "quant/methods/outliers.h"
#include "quant/quantize_model.h"
#include "runtime/session.h"
#include "test_paths.h"
#include "util/thread_pool.h"

namespace pocketlm {
namespace {

namespace fs = std::filesystem;

std::vector<float> gaussian(size_t n, float sd, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// ------------------------------------------------------------------------------------------- the kernel

TEST(OutlierKernel, EveryPathEqualsTheDenseFloatProductAndABatchEqualsOneColumnAtATime) {
  for (const int64_t k : {1, 7, 8, 32, 45, 256}) {
    const int64_t rows = 37, cols = 5;
    const std::vector<float> wf = gaussian(static_cast<size_t>(rows * k), 0.5f, static_cast<unsigned>(k));
    std::vector<uint16_t> w(wf.size());
    for (size_t i = 0; i < w.size(); ++i) w[i] = fp32_to_fp16(wf[i]);
    const std::vector<float> x = gaussian(static_cast<size_t>(cols * k), 3.0f, static_cast<unsigned>(k + 1));
    const std::vector<float> base = gaussian(static_cast<size_t>(rows * cols), 1.0f, 5);
    std::vector<float> scalar;
    for (const kernels::KernelTable* table : kernels::runnable_tables()) {
      SCOPED_TRACE(std::string(table->name) + " k=" + std::to_string(k));
      ASSERT_NE(table->outlier_gemm, nullptr);
      std::vector<float> out = base;  // the product is added
      table->outlier_gemm(k, w.data(), rows, x.data(), cols, out.data(), rows);
      for (int64_t c = 0; c < cols; ++c)
        for (int64_t r = 0; r < rows; ++r) {
          double want = base[static_cast<size_t>(c * rows + r)], mag = 0;
          for (int64_t j = 0; j < k; ++j) {
            const double t = static_cast<double>(fp16_to_fp32(w[static_cast<size_t>(r * k + j)])) *
                             static_cast<double>(x[static_cast<size_t>(c * k + j)]);
            want += t;
            mag += std::fabs(t);
          }
          ASSERT_NEAR(out[static_cast<size_t>(c * rows + r)], want, 1e-6 * (mag + 1)) << "row " << r << " col " << c;
        }
      // One column at a time gives the batch's bits (batch invariance, as the speculative verifier needs).
      for (int64_t c = 0; c < cols; ++c) {
        std::vector<float> one(base.begin() + c * rows, base.begin() + (c + 1) * rows);
        table->outlier_gemm(k, w.data(), rows, x.data() + c * k, 1, one.data(), rows);
        for (int64_t r = 0; r < rows; ++r)
          ASSERT_EQ(one[static_cast<size_t>(r)], out[static_cast<size_t>(c * rows + r)]);
      }
      if (scalar.empty()) {
        scalar = out;  // runnable_tables() lists the scalar path last; compare the SIMD ones below
      }
    }
    // The SIMD paths against the scalar oracle.
    std::vector<float> ref = base;
    kernels::scalar_table()->outlier_gemm(k, w.data(), rows, x.data(), cols, ref.data(), rows);
    for (const kernels::KernelTable* table : kernels::runnable_tables()) {
      std::vector<float> out = base;
      table->outlier_gemm(k, w.data(), rows, x.data(), cols, out.data(), rows);
      for (size_t i = 0; i < out.size(); ++i)
        ASSERT_NEAR(out[i], ref[i], 1e-5 * (std::fabs(ref[i]) + 1)) << table->name << " k=" << k << " output " << i;
    }
  }
}

// ------------------------------------------------------------------------------------------- matmul_many

// A weight matrix held in memory as a GgufTensor.
struct MemTensor {
  std::vector<uint8_t> bytes;
  GgufTensor t;
  MemTensor(GgmlType type, const std::vector<float>& w, int64_t n_out, int64_t n_in) {
    bytes.resize(row_size(type, n_in) * static_cast<size_t>(n_out));
    auto q = quantize_rows(type, w.data(), bytes.data(), n_out, n_in, nullptr, nullptr);
    EXPECT_TRUE(q.ok());
    t.name = "w";
    t.type = type;
    t.n_dims = 2;
    t.ne[0] = n_in;
    t.ne[1] = n_out;
    t.data = bytes.data();
    t.nbytes = bytes.size();
  }
  std::vector<float> dequantized() const {
    std::vector<float> out(static_cast<size_t>(t.ne[0] * t.ne[1]));
    const size_t rs = row_size(t.type, t.ne[0]);
    for (int64_t r = 0; r < t.ne[1]; ++r)
      dequantize_row(t.type, bytes.data() + static_cast<size_t>(r) * rs, out.data() + r * t.ne[0], t.ne[0]);
    return out;
  }
};

// y = W x in double (n_tokens rows of x).
std::vector<double> dense(const std::vector<float>& w, const std::vector<float>& x, int64_t n_out, int64_t n_in,
                          int64_t n_tokens) {
  std::vector<double> y(static_cast<size_t>(n_out * n_tokens));
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int64_t r = 0; r < n_out; ++r) {
      double s = 0;
      for (int64_t j = 0; j < n_in; ++j)
        s += static_cast<double>(w[static_cast<size_t>(r * n_in + j)]) * x[static_cast<size_t>(t * n_in + j)];
      y[static_cast<size_t>(t * n_out + r)] = s;
    }
  return y;
}

double rel_error(const std::vector<float>& got, const std::vector<double>& want) {
  double e = 0, s = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    e += (got[i] - want[i]) * (got[i] - want[i]);
    s += want[i] * want[i];
  }
  return std::sqrt(e / s);
}

constexpr int64_t kOut = 48, kIn = 256;
const std::vector<int32_t> kIdx = {3, 17, 40, 41, 100, 130, 200, 255};

// Activations whose channels kIdx are `outlier` times larger than the rest.
std::vector<float> activations(int64_t n_tokens, float outlier, unsigned seed) {
  std::vector<float> x = gaussian(static_cast<size_t>(n_tokens * kIn), 1.0f, seed);
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int32_t j : kIdx) x[static_cast<size_t>(t * kIn + j)] *= outlier;
  return x;
}

TEST(OutlierMatmul, EqualsTheZeroedInputsProductPlusTheSideWhateverTheGridMakesOfTheZeroedColumns) {
  ThreadPool pool(2);
  std::vector<uint8_t> scratch;
  for (const GgmlType type : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q4_K, GgmlType::Q8_0}) {
    // Positive-leaning weights: an affine grid's block then need not hold 0 exactly (q4_1, q4_K).
    std::vector<float> w = gaussian(static_cast<size_t>(kOut * kIn), 0.1f, 11);
    for (float& v : w) v += 0.15f;
    std::vector<uint16_t> side(static_cast<size_t>(kOut) * kIdx.size());
    split_outlier_columns(w.data(), kOut, kIn, kIdx, side.data());
    for (int64_t r = 0; r < kOut; ++r)
      for (int32_t j : kIdx) ASSERT_EQ(w[static_cast<size_t>(r * kIn + j)], 0.0f);
    const MemTensor m(type, w, kOut, kIn);
    const OutlierColumns oc{static_cast<int64_t>(kIdx.size()), kIdx.data(), side.data()};
    for (const int64_t n_tokens : {1, 3, 9}) {
      SCOPED_TRACE(std::string(type_traits(type).name) + " tokens=" + std::to_string(n_tokens));
      const std::vector<float> x = activations(n_tokens, 1000.0f, 7);
      std::vector<float> got(static_cast<size_t>(kOut * n_tokens));
      matmul(m.t, &oc, x.data(), n_tokens, got.data(), pool, scratch);
      // The quantized product of x with the side channels zeroed, plus the scalar side product.
      std::vector<float> xz = x, xg;
      for (int64_t t = 0; t < n_tokens; ++t)
        for (int32_t j : kIdx)
          xg.push_back(xz[static_cast<size_t>(t * kIn + j)]), xz[static_cast<size_t>(t * kIn + j)] = 0;
      std::vector<float> want(got.size());
      matmul(m.t, xz.data(), n_tokens, want.data(), pool, scratch);
      kernels::scalar_table()->outlier_gemm(static_cast<int64_t>(kIdx.size()), side.data(), kOut, xg.data(), n_tokens,
                                            want.data(), kOut);
      for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-4 * (std::fabs(want[i]) + 1)) << i;
      // Against the dense float product of the dequantized matrix with the side columns put back: the side
      // channels are 1000x the others, so any grid value of a zeroed column meeting them would show.
      std::vector<float> full = m.dequantized();
      for (int64_t r = 0; r < kOut; ++r)
        for (size_t j = 0; j < kIdx.size(); ++j)
          full[static_cast<size_t>(r * kIn + kIdx[j])] = fp16_to_fp32(side[static_cast<size_t>(r) * kIdx.size() + j]);
      EXPECT_LT(rel_error(got, dense(full, x, kOut, kIn, n_tokens)), 1e-2);
    }
  }
}

TEST(OutlierMatmul, WithTheActivationEnergyInTheSideChannelsTheErrorIsFarBelowThePlainQuantization) {
  ThreadPool pool(2);
  std::vector<uint8_t> scratch;
  const int64_t n_tokens = 16;
  const std::vector<float> w = gaussian(static_cast<size_t>(kOut * kIn), 0.1f, 3);
  const std::vector<float> x = activations(n_tokens, 50.0f, 4);  // ~97 % of the energy in 8 of 256 channels
  const std::vector<double> exact = dense(w, x, kOut, kIn, n_tokens);
  // Importance = mean x^2 per channel, as the quantizer's imatrix method gives it.
  std::vector<float> imp(static_cast<size_t>(kIn), 0.0f);
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int64_t j = 0; j < kIn; ++j)
      imp[static_cast<size_t>(j)] += x[static_cast<size_t>(t * kIn + j)] * x[static_cast<size_t>(t * kIn + j)];
  InputStats st;
  st.n = kIn;
  st.count = n_tokens;
  st.sq_sum.assign(imp.begin(), imp.end());
  EXPECT_EQ(select_outlier_channels(st, 8, nullptr), kIdx);
  for (const GgmlType type : {GgmlType::Q4_0, GgmlType::Q3_K}) {
    std::vector<uint8_t> plain_bytes(row_size(type, kIn) * kOut);
    ASSERT_TRUE(quantize_rows(type, w.data(), plain_bytes.data(), kOut, kIn, imp.data(), nullptr).ok());
    const MemTensor plain(type, w, kOut, kIn);
    std::vector<float> wz = w;
    std::vector<uint16_t> side(static_cast<size_t>(kOut) * kIdx.size());
    split_outlier_columns(wz.data(), kOut, kIn, kIdx, side.data());
    const MemTensor rest(type, wz, kOut, kIn);
    const OutlierColumns oc{static_cast<int64_t>(kIdx.size()), kIdx.data(), side.data()};
    std::vector<float> y_plain(static_cast<size_t>(kOut * n_tokens)), y_side(y_plain.size());
    matmul(plain.t, x.data(), n_tokens, y_plain.data(), pool, scratch);
    matmul(rest.t, &oc, x.data(), n_tokens, y_side.data(), pool, scratch);
    const double e_plain = rel_error(y_plain, exact), e_side = rel_error(y_side, exact);
    std::printf("[outliers] %s: relative output error plain %.4f, with 8 outlier columns %.4f\n",
                std::string(type_traits(type).name).c_str(), e_plain, e_side);
    EXPECT_LT(e_side, 0.25 * e_plain) << type_traits(type).name;
  }
}

TEST(OutlierMatmul, TargetsSharingAnInputWithDifferentChannelsRunOneAtATime) {
  ThreadPool pool(2);
  std::vector<uint8_t> scratch;
  std::vector<float> w = gaussian(static_cast<size_t>(kOut * kIn), 0.1f, 21);
  std::vector<uint16_t> side(static_cast<size_t>(kOut) * kIdx.size());
  split_outlier_columns(w.data(), kOut, kIn, kIdx, side.data());
  const MemTensor a(GgmlType::Q4_0, w, kOut, kIn), b(GgmlType::Q4_0, w, kOut, kIn);
  const OutlierColumns oc{static_cast<int64_t>(kIdx.size()), kIdx.data(), side.data()};
  const std::vector<float> x = activations(4, 100.0f, 8);
  std::vector<float> ya(static_cast<size_t>(kOut * 4)), yb(ya.size()), ref(ya.size());
  const MatmulTarget mixed[] = {{&a.t, 0, kOut, ya.data(), &oc}, {&b.t, 0, kOut, yb.data(), nullptr}};
  matmul_many(mixed, x.data(), 4, pool, scratch);
  matmul(a.t, &oc, x.data(), 4, ref.data(), pool, scratch);
  EXPECT_EQ(ya, ref);
  matmul(b.t, x.data(), 4, ref.data(), pool, scratch);
  EXPECT_EQ(yb, ref);
}

// ------------------------------------------------------------------------------------------- stories260K

class OutlierModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(test::stories_path())) return;
    auto file = GgufFile::open(test::stories_path().string());
    ASSERT_TRUE(file.ok());
    file_ = new GgufFile(std::move(*file));
    auto m = Model::load(test::stories_path().string());
    ASSERT_TRUE(m.ok());
    model_ = m->release();
    seq_ = new std::vector<int32_t>(model_->tokenizer().encode(test_text(), true, false));
    if (seq_->size() > 120) seq_->resize(120);
    auto session = Session::create(*model_, SessionOptions{128, KvType::F32, 2});
    ASSERT_TRUE(session.ok());
    CalibCollector c(CalibCollectOptions{false, 16});
    ThreadPool pool(2);
    const std::vector<std::vector<int32_t>> seqs = {*seq_};
    ASSERT_TRUE(collect_calib_stats(**session, seqs, 64, c, pool).ok());
    stats_ = new CalibStats(c.result());
  }
  static void TearDownTestSuite() {
    delete stats_;
    delete model_;
    delete file_;
    delete seq_;
    stats_ = nullptr, model_ = nullptr, file_ = nullptr, seq_ = nullptr;
  }
  static std::string test_text() {
    return "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun. One day, "
           "she saw a big red ball in the park. She ran to the ball and kicked it very high. Her friend Tom came to "
           "play with her. They played all day and had a lot of fun together.";
  }
  void SetUp() override {
    if (!file_) GTEST_SKIP() << test::stories_path() << " missing (shared/ data folder)";
    dir_ = fs::temp_directory_path() / ("plm_outliers_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  Expected<QuantizePlan> plan(const std::string& target, int64_t k) const {
    QuantizeOptions o;
    o.target = target;
    o.outliers = k;
    o.outlier_stats = stats_;
    return plan_quantization(*file_, o);
  }
  std::string write(const std::string& target, int64_t k, const std::string& name) const {
    QuantizeOptions o;
    o.target = target;
    o.outliers = k;
    o.outlier_stats = stats_;
    o.progress = false;
    o.n_threads = 2;
    auto p = plan_quantization(*file_, o);
    EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message());
    if (!p.ok()) return "";
    auto r = quantize_model(*file_, *p, o, path(name));
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
    return r.ok() ? path(name) : "";
  }
  static std::vector<float> logits(const std::string& model_path) {
    auto m = Model::load(model_path);
    EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message());
    if (!m.ok()) return {};
    auto s = Session::create(**m, SessionOptions{128, KvType::F32, 2});
    auto l = (*s)->eval(*seq_, /*all_logits=*/true);
    EXPECT_TRUE(l.ok());
    return std::vector<float>(l->begin(), l->end());
  }
  // Copies `in` to `out`, letting `edit` replace a tensor (name, type, shape, bytes) or drop it (return false).
  using Edit = std::function<bool(std::string&, GgmlType&, std::vector<int64_t>&, std::vector<uint8_t>&)>;
  static void rewrite(const std::string& in, const std::string& out, const Edit& edit) {
    auto f = GgufFile::open(in);
    ASSERT_TRUE(f.ok());
    GgufWriter w;
    for (const auto& [key, value] : f->metadata())
      if (key != "general.alignment") w.set(key, value);
    std::vector<std::vector<uint8_t>> keep;
    keep.reserve(f->tensors().size());
    for (const GgufTensor& t : f->tensors()) {
      std::string name = t.name;
      GgmlType type = t.type;
      std::vector<int64_t> ne(t.ne, t.ne + t.n_dims);
      std::vector<uint8_t> bytes(t.data, t.data + t.nbytes);
      if (!edit(name, type, ne, bytes)) continue;
      keep.push_back(std::move(bytes));
      ASSERT_TRUE(w.add_tensor(name, type, ne, keep.back()).ok()) << name;
    }
    ASSERT_TRUE(w.write(out).ok());
  }
  std::string load_error(const std::string& p) const {
    auto m = Model::load(p);
    return m.ok() ? "" : m.error().message();
  }

  static inline GgufFile* file_ = nullptr;
  static inline Model* model_ = nullptr;
  static inline CalibStats* stats_ = nullptr;
  static inline std::vector<int32_t>* seq_ = nullptr;
  fs::path dir_;
};

TEST_F(OutlierModel, PlanPicksTheLargestMeanSquareChannelsPerInputAndCountsTheSideBytes) {
  auto p = plan("q4_0", 8);
  ASSERT_TRUE(p.ok()) << p.error().message();
  auto p0 = plan("q4_0", 0);
  ASSERT_TRUE(p0.ok());
  EXPECT_EQ(p->outliers, 8);
  // q, k, v, output, gate, up in 5 layers; ffn_down's rows of 172 fall back to f16 in the Q4_0 recipe, and a
  // float matrix gets no outlier branch.
  EXPECT_EQ(p->n_outlier_matrices(), 5 * 6);
  uint64_t side = 0;
  for (const auto& t : p->tensors) {
    side += t.outlier_bytes;
    if (!takes_outliers(t.name) || t.type == GgmlType::F16) {
      EXPECT_TRUE(t.outlier_idx.empty()) << t.name;
      continue;
    }
    ASSERT_EQ(t.outlier_idx.size(), 8u) << t.name;
    EXPECT_EQ(t.outlier_bytes, 8u * (2u * static_cast<uint64_t>(t.ne[1]) + 4u));
    const InputStats* st = stats_->find(t.name);
    ASSERT_NE(st, nullptr);
    double least_kept = 1e300, most_left = 0;
    for (int64_t j = 0; j < st->n; ++j) {
      const bool kept = std::find(t.outlier_idx.begin(), t.outlier_idx.end(), j) != t.outlier_idx.end();
      (kept ? least_kept : most_left) =
          kept ? std::min(least_kept, st->mean_sq(j)) : std::max(most_left, st->mean_sq(j));
    }
    EXPECT_GE(least_kept, most_left) << t.name;
    EXPECT_TRUE(std::is_sorted(t.outlier_idx.begin(), t.outlier_idx.end()));
  }
  // Q, K and V read one input: the same channels.
  const auto find = [&](const std::string& n) {
    return std::find_if(p->tensors.begin(), p->tensors.end(), [&](const auto& t) { return t.name == n; })->outlier_idx;
  };
  EXPECT_EQ(find("blk.2.attn_q.weight"), find("blk.2.attn_k.weight"));
  EXPECT_EQ(find("blk.2.attn_q.weight"), find("blk.2.attn_v.weight"));
  EXPECT_EQ(p->out_bytes, p0->out_bytes + side);
}

TEST_F(OutlierModel, FileReloadsRunsLikeItsDenseDequantizedReferenceAndIsCloserToF32ThanThePlainFile) {
  const std::string k8 = write("q4_0", 8, "k8.gguf"), k0 = write("q4_0", 0, "k0.gguf");
  ASSERT_FALSE(k8.empty());
  ASSERT_FALSE(k0.empty());
  auto f = GgufFile::open(k8);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f->get_int(kPocketlmOutliersKey), 8);
  EXPECT_EQ(f->tensor("blk.1.ffn_down.outlier_w"), nullptr);  // f16 (rows of 172): no branch
  const GgufTensor* sw = f->tensor("blk.1.ffn_gate.outlier_w");
  const GgufTensor* si = f->tensor("blk.1.ffn_gate.outlier_idx");
  ASSERT_TRUE(sw && si);
  EXPECT_EQ(sw->type, GgmlType::F16);
  EXPECT_EQ(sw->shape_string(), "[8, 172]");
  EXPECT_EQ(si->type, GgmlType::I32);
  auto m = Model::load(k8);
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_EQ((*m)->weights().outlier_k, 8);
  EXPECT_EQ((*m)->weights().outlier_tensors.size(), 2u * 30);
  size_t side = 0;
  for (const GgufTensor* t : (*m)->weights().outlier_tensors) side += t->nbytes;
  auto m0 = Model::load(k0);
  ASSERT_TRUE(m0.ok());
  EXPECT_EQ((*m)->weights().total_bytes(), (*m0)->weights().total_bytes() + side);

  // The dense reference: every matrix dequantized to F32 with its side columns put back.
  const std::string ref = path("dense.gguf");
  rewrite(k8, ref, [&](std::string& name, GgmlType& type, std::vector<int64_t>& ne, std::vector<uint8_t>& bytes) {
    if (is_outlier_tensor(name)) return false;
    if (type == GgmlType::F32 || ne.size() != 2) return true;
    std::vector<float> full(static_cast<size_t>(ne[0] * ne[1]));
    const size_t rs = row_size(type, ne[0]);
    for (int64_t r = 0; r < ne[1]; ++r)
      dequantize_row(type, bytes.data() + static_cast<size_t>(r) * rs, full.data() + r * ne[0], ne[0]);
    if (const GgufTensor* w = f->tensor(outlier_w_name(name)); w != nullptr) {
      const auto* idx = reinterpret_cast<const int32_t*>(f->tensor(outlier_idx_name(name))->data);
      const auto* sv = reinterpret_cast<const uint16_t*>(w->data);
      for (int64_t r = 0; r < ne[1]; ++r)
        for (int64_t j = 0; j < w->ne[0]; ++j)
          full[static_cast<size_t>(r * ne[0] + idx[j])] = fp16_to_fp32(sv[r * w->ne[0] + j]);
    }
    type = GgmlType::F32;
    bytes.assign(reinterpret_cast<const uint8_t*>(full.data()),
                 reinterpret_cast<const uint8_t*>(full.data()) + full.size() * sizeof(float));
    return true;
  });
  const std::vector<float> l8 = logits(k8), lr = logits(ref), l0 = logits(k0),
                           lf = logits(test::stories_path().string());
  ASSERT_EQ(l8.size(), lr.size());
  ASSERT_EQ(l8.size(), lf.size());
  double d_ref = 0, d8 = 0, d0 = 0, worst_ref = 0;
  for (size_t i = 0; i < l8.size(); ++i) {
    d_ref += std::fabs(l8[i] - lr[i]);
    worst_ref = std::max(worst_ref, static_cast<double>(std::fabs(l8[i] - lr[i])));
    d8 += std::fabs(l8[i] - lf[i]);
    d0 += std::fabs(l0[i] - lf[i]);
  }
  const double n = static_cast<double>(l8.size());
  std::printf(
      "[outliers] stories260K q4_0, mean |logit - reference|: dense dequantized reference %.4f (worst %.3f); "
      "vs F32: plain %.4f, 8 outlier columns %.4f\n",
      d_ref / n, worst_ref, d0 / n, d8 / n);
  // The run-time product differs from the dense one only by the q8_0 rounding of the (non-outlier) activations.
  EXPECT_LT(d_ref / n, 0.25 * d8 / n);
  EXPECT_LT(d8, 0.9 * d0);
}

// Decode (one token a step: the x16 GEMVs over interleaved rows, several bands per call) and a prompt batch
// (the batch GEMMs) add the same side product.
TEST_F(OutlierModel, DecodeStepsGiveTheBatchLogits) {
  const std::string k8 = write("q4_0", 8, "k8.gguf");
  ASSERT_FALSE(k8.empty());
  auto m = Model::load(k8);
  ASSERT_TRUE(m.ok()) << m.error().message();
  const std::vector<int32_t> seq(seq_->begin(), seq_->begin() + 24);
  auto batch = Session::create(**m, SessionOptions{128, KvType::F32, 2});
  auto steps = Session::create(**m, SessionOptions{128, KvType::F32, 2});
  ASSERT_TRUE(batch.ok() && steps.ok());
  auto lb = (*batch)->eval(seq, /*all_logits=*/true);
  ASSERT_TRUE(lb.ok());
  const std::vector<float> all(lb->begin(), lb->end());
  const size_t nv = all.size() / seq.size();
  double worst = 0;
  for (size_t t = 0; t < seq.size(); ++t) {
    auto l = (*steps)->eval(std::span<const int32_t>(&seq[t], 1));
    ASSERT_TRUE(l.ok());
    for (size_t i = 0; i < nv; ++i) worst = std::max(worst, static_cast<double>(std::fabs((*l)[i] - all[t * nv + i])));
  }
  EXPECT_LT(worst, 2e-3);
}

TEST_F(OutlierModel, BadKIsAnErrorNamingTheLimit) {
  for (const int64_t k : {int64_t{-1}, int64_t{257}}) {
    auto p = plan("q4_0", k);
    ASSERT_FALSE(p.ok());
    EXPECT_NE(p.error().message().find("K must be 1 to 256"), std::string::npos) << p.error().message();
  }
  auto half = plan("q4_0", 33);  // attn_q has 64 inputs
  ASSERT_FALSE(half.ok());
  EXPECT_NE(half.error().message().find("[64, 64] has 64 inputs, so at most 32 (half) can be outlier channels"),
            std::string::npos)
      << half.error().message();
  QuantizeOptions o;
  o.target = "q4_0";
  o.outliers = 8;  // no statistics
  auto none = plan_quantization(*file_, o);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message().find("needs calibration data"), std::string::npos) << none.error().message();
  // A file that already has an outlier branch is not quantized again.
  const std::string k8 = write("q4_0", 8, "k8.gguf");
  auto f = GgufFile::open(k8);
  ASSERT_TRUE(f.ok());
  QuantizeOptions again;
  again.target = "q8_0";
  auto p2 = plan_quantization(*f, again);
  ASSERT_FALSE(p2.ok());
  EXPECT_NE(p2.error().message().find("already has an outlier branch"), std::string::npos) << p2.error().message();
  // Nor pruned: that would cut the matrices under their side columns.
  auto m = Model::load(k8);
  ASSERT_TRUE(m.ok());
  PruneOptions po;
  po.ffn_keep = 0.5;
  auto pp = plan_pruning(**m, nullptr, po);
  ASSERT_FALSE(pp.ok());
  EXPECT_NE(pp.error().message().find("the file has an outlier branch"), std::string::npos) << pp.error().message();
}

TEST_F(OutlierModel, BrokenSideTensorsAreLoadErrorsNamingTheTensor) {
  const std::string k8 = write("q4_0", 8, "k8.gguf");
  ASSERT_FALSE(k8.empty());
  struct Case {
    const char* what;
    Edit edit;
    const char* want;
  };
  const std::string q = "blk.0.attn_q.";
  const Case cases[] = {
      {"wrong shape",
       [&](std::string& n, GgmlType&, std::vector<int64_t>& ne, std::vector<uint8_t>& b) {
         if (n == q + "outlier_w") ne = {8, 32}, b.resize(8 * 32 * 2);
         return true;
       },
       "tensor 'blk.0.attn_q.outlier_w': f16 [8, 32], expected f16 [8, 64]"},
      {"wrong type",
       [&](std::string& n, GgmlType& t, std::vector<int64_t>&, std::vector<uint8_t>& b) {
         if (n == q + "outlier_w") t = GgmlType::F32, b.resize(b.size() * 2);
         return true;
       },
       "tensor 'blk.0.attn_q.outlier_w': f32 [8, 64], expected f16 [8, 64]"},
      {"idx missing",
       [&](std::string& n, GgmlType&, std::vector<int64_t>&, std::vector<uint8_t>&) { return n != q + "outlier_idx"; },
       "tensor 'blk.0.attn_q.outlier_idx': missing"},
      {"idx out of range",
       [&](std::string& n, GgmlType&, std::vector<int64_t>&, std::vector<uint8_t>& b) {
         if (n == q + "outlier_idx") reinterpret_cast<int32_t*>(b.data())[7] = 64;
         return true;
       },
       "tensor 'blk.0.attn_q.outlier_idx': channel 64 at index 7 (channels must be strictly increasing, in [0, 64))"},
      {"idx repeated",
       [&](std::string& n, GgmlType&, std::vector<int64_t>&, std::vector<uint8_t>& b) {
         if (n == q + "outlier_idx") reinterpret_cast<int32_t*>(b.data())[1] = reinterpret_cast<int32_t*>(b.data())[0];
         return true;
       },
       "tensor 'blk.0.attn_q.outlier_idx': channel"},
      {"too many channels",
       [&](std::string& n, GgmlType&, std::vector<int64_t>& ne, std::vector<uint8_t>& b) {
         if (n == q + "outlier_idx") {
           ne = {40};
           b.resize(40 * 4);
           for (int32_t j = 0; j < 40; ++j) reinterpret_cast<int32_t*>(b.data())[j] = j;
         }
         if (n == q + "outlier_w") ne = {40, 64}, b.resize(40 * 64 * 2);
         return true;
       },
       "tensor 'blk.0.attn_q.outlier_idx': 40 outlier channels for a matrix of 64 inputs (1 to 32 allowed)"},
      {"orphan",
       [&](std::string& n, GgmlType&, std::vector<int64_t>&, std::vector<uint8_t>&) {
         if (n == q + "outlier_w") n = "blk.0.attn_z.outlier_w";
         if (n == q + "outlier_idx") n = "blk.0.attn_z.outlier_idx";
         return true;
       },
       "tensor 'blk.0.attn_z.outlier_w': an outlier branch for no matrix of this model"},
  };
  for (const Case& c : cases) {
    const std::string out = path("broken.gguf");
    rewrite(k8, out, c.edit);
    const std::string err = load_error(out);
    EXPECT_NE(err.find(c.want), std::string::npos) << c.what << ": " << err;
  }
}

// ------------------------------------------------------------------------------------------- the CLI

class OutlierCli : public OutlierModel {};

TEST_F(OutlierCli, NeedsCalibrationRefusesBadKAndNotesTheFile) {
  const std::string s = test::stories_path().string(), out = path("o.gguf");
  auto none = test::run_cli({"quantize", s, out, "q4_0", "--outliers", "8"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("--outliers 8 needs calibration data: --calib FILE (plain text) or --tasks FILE.jsonl"),
            std::string::npos)
      << none.err;
  for (const char* k : {"0", "300"}) {
    auto bad = test::run_cli({"quantize", s, out, "q4_0", "--outliers", k, "--calib", s});
    EXPECT_EQ(bad.exit_code, 1);
    EXPECT_NE(bad.err.find(std::string("--outliers ") + k + ": K must be 1 to 256"), std::string::npos) << bad.err;
  }
  EXPECT_FALSE(fs::exists(out));
  const std::string calib = path("calib.txt");
  {
    std::ofstream c(calib);
    for (int i = 0; i < 20; ++i) c << test_text() << "\n";
  }
  auto half = test::run_cli({"quantize", s, out, "q4_0", "--outliers", "40", "--calib", calib, "--calib-ctx", "64",
                             "--calib-tokens", "256", "--calib-cache", path("c.cache")});
  EXPECT_EQ(half.exit_code, 1);
  EXPECT_NE(half.err.find("at most 32 (half) can be outlier channels"), std::string::npos) << half.err;
  EXPECT_FALSE(fs::exists(out));
  auto ok = test::run_cli({"quantize", s, out, "q4_0", "--outliers", "8", "--calib", calib, "--calib-ctx", "64",
                           "--calib-tokens", "256", "--calib-cache", path("c.cache"), "--method", "rtn", "-t", "2"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.err.find("has an outlier branch (8 f16 columns for 30 matrices, metadata pocketlm.outliers)"),
            std::string::npos)
      << ok.err;
  auto inspect = test::run_cli({"inspect", out, "--no-tensors"});
  EXPECT_NE(inspect.out.find("292800 parameters"), std::string::npos) << inspect.out;
  EXPECT_NE(inspect.out.find("outlier branch (pocketlm.outliers = 8): 30 matrices"), std::string::npos) << inspect.out;

  const fs::path llama = test::peer_dir() / "build/bin/llama-simple";
  if (!fs::exists(llama)) GTEST_SKIP() << llama << " missing (scripts/build-peer.sh builds it): llama.cpp not checked";
  // llama.cpp loads the architecture's tensors, then finds the file holds more than it asked for.
  const auto r = test::run_process({llama.string(), "-m", out, "-n", "4", "Once upon a time"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("done_getting_tensors: wrong number of tensors; expected 108, got 48"), std::string::npos)
      << r.err;
}

// `pocketlm eval plot`, which the evidence script draws its KLD-against-bits chart with.
TEST(EvalPlotCli, WritesEachSeriesAndRefusesABadPoint) {
  const fs::path dir = fs::temp_directory_path() / ("plm_evalplot_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string svg = (dir / "p.svg").string();
  auto ok = test::run_cli({"eval", "plot", "--series", "uniform=6.15:0.0287:Q5_0,5.36:0.1095:Q4_0", "--series",
                           "Q4_0 + outliers=5.36:0.1095,5.51:0.0551:K=8", "--svg", svg, "--title", "T"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  std::ifstream in(svg);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const char* want : {">uniform</text>", ">Q4_0 + outliers</text>", ">Q5_0</text>", ">K=8</text>", ">T</text>"})
    EXPECT_NE(text.find(want), std::string::npos) << want;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n') > 10, true);
  for (const char* bad : {"a=5.3:x", "a=5.3", "noname", "a=1:2,,3:4"}) {
    auto r = test::run_cli({"eval", "plot", "--series", bad, "--svg", (dir / "bad.svg").string()});
    EXPECT_EQ(r.exit_code, 1) << bad;
    EXPECT_NE(r.err.find("--series"), std::string::npos) << bad << ": " << r.err;
  }
  EXPECT_FALSE(fs::exists(dir / "bad.svg"));
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace
}  // namespace pocketlm
