// The planner's memory and speed model on synthetic shapes and the fetched models' tensor tables: the KV
// formula (the lesson's exercise and its 7B example), weights from the tensor table and from the quantizer's
// dry-run plan, the largest context and the best KV type against a budget, the speed bounds.
#include <gtest/gtest.h>

#include <filesystem>

#include "gguf/reader.h"
#include "plan/device_plan.h"
#include "plan/memory_plan.h"
#include "plan/plan_model.h"
#include "quant/quantize_model.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

DeviceProfile device(double ram_gb, double share = 1.0) {
  DeviceProfile d;
  d.name = "test";
  d.ram_gb = ram_gb;
  d.app_share = share;
  d.bandwidth_gbps = 50;
  d.cores = 4;
  d.int8_tops = 10;
  d.cpu_int8_tops = 2;
  d.power_w = 5;
  return d;
}

// The on-device lesson's exercise: "a 3B model, 24 layers, 16 heads, d=64, T=1024, int8: can this fit in
// 512 MB?" KV = 2 x 24 x 16 x 64 x 1024 x 1 B = 48 MiB fits; the int8 weights (3.2 GB) do not.
TEST(PlanMemory, LessonExerciseThreeBillionInt8In512MB) {
  auto m = plan_model_from_shape("layers=24,heads=16,head_dim=64,params=3B", {"Q8_0", ""});
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_NEAR(static_cast<double>(m->matmul_params()), 3e9, 0.02e9);
  MemoryOptions o;
  o.n_ctx = 1024;
  o.type_k = o.type_v = KvType::Q8;
  auto p = plan_for_device(*m, o, device(0.512));
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(p->memory.kv_formula_bytes, 2ull * 24 * 16 * 64 * 1024 * 1);  // 48 MiB
  EXPECT_EQ(p->memory.kv_bytes, 2ull * 24 * 16 * 1024 * (64 + 2));        // + a 2-byte scale per row
  EXPECT_LT(p->memory.kv_bytes, p->budget_bytes);
  EXPECT_GT(p->memory.weights_bytes, 3'000'000'000ull);  // q8_0: 34 bytes per 32 weights
  EXPECT_FALSE(p->fits);
  EXPECT_EQ(p->max_context, 0);
  EXPECT_FALSE(p->best_kv_type.has_value());
}

// The 7B example: LLaMA 2 7B (32 layers, 32 KV heads, d = 128) at 4096 tokens in f16 is 2 GiB of KV.
TEST(PlanMemory, SevenBillionKvExampleMatchesTheFormula) {
  auto m = plan_model_from_shape("llama-7b", {"Q4_K_M", ""});
  ASSERT_TRUE(m.ok()) << m.error().message();
  MemoryOptions o;
  o.n_ctx = 4096;
  auto p = plan_memory(*m, o);
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(p->kv_bytes, 2ull * 32 * 32 * 128 * 4096 * 2);
  EXPECT_EQ(p->kv_formula_bytes, p->kv_bytes);
  o.type_k = o.type_v = KvType::Q4;
  auto q = plan_memory(*m, o);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->kv_bytes, 2ull * 32 * 32 * 4096 * (64 + 2));
  // Q4_K_M of LLaMA 2 7B is about 3.9 GiB of tensors (llama.cpp's 3.80 GiB file of 6.74 B params).
  EXPECT_NEAR(static_cast<double>(p->weights_bytes) / (1 << 30), 3.8, 0.2);
}

TEST(PlanMemory, ContextBeyondTrainingIsAnError) {
  auto m = plan_model_from_shape("llama-7b", {"Q4_K_M", ""});
  ASSERT_TRUE(m.ok());
  MemoryOptions o;
  o.n_ctx = 8192;
  auto p = plan_memory(*m, o);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message().find("larger than the model's trained context of 4096"), std::string::npos)
      << p.error().message();
}

TEST(PlanMemory, BadShapesAreErrors) {
  EXPECT_FALSE(plan_model_from_shape("llama-9z", {"Q4_K_M", ""}).ok());
  EXPECT_FALSE(plan_model_from_shape("layers=24,heads=16,head_dim=64,params=3B", {"", ""}).ok());      // no recipe
  EXPECT_FALSE(plan_model_from_shape("layers=24,heads=16,head_dim=64,params=1M", {"Q8_0", ""}).ok());  // too small
  auto bad = plan_model_from_shape("layers=24,heads=16,head_dim=64,foo=3", {"Q8_0", ""});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("unknown key 'foo'"), std::string::npos);
  EXPECT_FALSE(plan_model_from_shape("layers=-2,heads=16,head_dim=64,ff=256", {"Q8_0", ""}).ok());
}

TEST(PlanMemory, BudgetGivesLargestContextAndBestKvType) {
  auto m = plan_model_from_shape("llama-1b", {"Q4_K_M", ""});
  ASSERT_TRUE(m.ok());
  MemoryOptions o;
  o.n_ctx = 32768;
  o.n_threads = 4;
  auto f16 = plan_memory(*m, o);
  o.type_k = o.type_v = KvType::Q8;
  auto q8 = plan_memory(*m, o);
  ASSERT_TRUE(f16.ok() && q8.ok());
  ASSERT_LT(q8->peak_rss_bytes, f16->peak_rss_bytes);
  const uint64_t budget = (q8->peak_rss_bytes + f16->peak_rss_bytes) / 2;
  EXPECT_EQ(best_kv_type(*m, o, budget), KvType::Q8);
  o.type_k = o.type_v = KvType::F16;
  const int64_t n = max_context(*m, o, budget);
  ASSERT_GT(n, 0);
  ASSERT_LT(n, 32768);
  o.n_ctx = n;
  EXPECT_LE(plan_memory(*m, o)->peak_rss_bytes, budget);
  o.n_ctx = n + 1;
  EXPECT_GT(plan_memory(*m, o)->peak_rss_bytes, budget);
}

TEST(PlanMemory, WeightsComeFromTheTensorTable) {
  if (!std::filesystem::exists(test::smollm2_path())) GTEST_SKIP() << "run scripts/fetch-models.sh";
  auto f = GgufFile::open(test::smollm2_path().string());
  ASSERT_TRUE(f.ok());
  uint64_t bytes = 0;
  for (const GgufTensor& t : f->tensors()) bytes += t.nbytes;
  auto m = plan_model_from_gguf(test::smollm2_path().string());
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_EQ(m->weight_bytes(), bytes);
  EXPECT_EQ(m->metadata_bytes, f->data_offset());
  // A recipe: the quantizer's dry-run plan, nothing written.
  auto r = plan_model_from_gguf(test::smollm2_path().string(), {"Q4_K_M", ""});
  ASSERT_TRUE(r.ok()) << r.error().message();
  QuantizeOptions o;
  o.target = "Q4_K_M";
  auto qp = plan_quantization(*f, o);
  ASSERT_TRUE(qp.ok());
  EXPECT_EQ(r->weight_bytes(), qp->out_bytes);
  EXPECT_EQ(r->recipe, "Q4_K_M");
  EXPECT_FALSE(plan_model_from_gguf(test::smollm2_path().string(), {"Q9_Z", ""}).ok());
}

TEST(PlanMemory, SlidingWindowSavesKv) {
  if (!std::filesystem::exists(test::gemma3_path())) GTEST_SKIP() << "run scripts/fetch-models.sh";
  auto m = plan_model_from_gguf(test::gemma3_path().string());
  ASSERT_TRUE(m.ok());
  MemoryOptions o;
  o.n_ctx = 8192;
  auto p = plan_memory(*m, o);
  ASSERT_TRUE(p.ok());
  EXPECT_LT(p->kv_bytes, p->kv.without_window);
  EXPECT_LT(p->kv_bytes, p->kv_formula_bytes);
}

TEST(PlanSpeed, RooflineScalesWithBandwidthAndEnergyWithPower) {
  auto m = plan_model_from_shape("llama-7b", {"Q4_K_M", ""});
  ASSERT_TRUE(m.ok());
  MemoryOptions o;
  o.n_ctx = 2048;
  DeviceProfile a = device(16), b = device(16);
  b.bandwidth_gbps = 2 * a.bandwidth_gbps;
  b.power_w = 2 * a.power_w;
  auto pa = plan_for_device(*m, o, a), pb = plan_for_device(*m, o, b);
  ASSERT_TRUE(pa.ok() && pb.ok());
  EXPECT_NEAR(pb->speed.decode_roofline_tps, 2 * pa->speed.decode_roofline_tps, 1e-9 * pa->speed.decode_roofline_tps);
  // 3.9 GiB of weights at 50 GB/s: about 12 t/s at the roofline.
  EXPECT_NEAR(pa->speed.decode_roofline_tps, 50e9 / static_cast<double>(m->decode_weight_bytes()), 0.5);
  EXPECT_NEAR(pa->speed.joules_per_token, a.power_w / pa->speed.decode_tps, 1e-9);
  EXPECT_GT(pa->speed.decode_tps, pa->speed.decode_tps_full_context);
  EXPECT_GT(pa->speed.prefill_tps, pa->speed.decode_tps);
}

}  // namespace
}  // namespace pocketlm
