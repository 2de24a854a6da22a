// Paged KV: the pool's budget and all-or-nothing allocation, several sequences sharing a pool while growing,
// rolling back and freeing in random order (contents checked after every step; the ASan job runs this too),
// sliding-window layers whose memory stops growing, and the memory report's arithmetic.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

#include "model/kv_cache.h"
#include "model/kv_memory.h"

namespace pocketlm {
namespace {

KvLayout small_layout(KvType t = KvType::F32, int64_t block = 4, std::vector<int64_t> windows = {}) {
  KvLayout l;
  l.n_layer = 3;
  l.n_head_kv = 2;
  l.head_dim = 8;
  l.type_k = l.type_v = t;
  l.block_tokens = block;
  l.windows = std::move(windows);
  return l;
}

// The value a test writes for (sequence, layer, position, element): K positive, V negative.
float pattern(int seq, int64_t layer, int64_t pos, int64_t i, bool v) {
  const float x = static_cast<float>(seq * 100000 + layer * 10000 + pos * 16 + i);
  return v ? -x : x;
}

void write_tokens(KvCache& kv, int seq, int64_t pos, int64_t n) {
  const int64_t dim = kv.layout().n_head_kv * kv.layout().head_dim;
  std::vector<float> k(static_cast<size_t>(dim)), v(static_cast<size_t>(dim));
  for (int64_t p = pos; p < pos + n; ++p)
    for (int64_t l = 0; l < kv.layout().n_layer; ++l) {
      for (int64_t i = 0; i < dim; ++i) {
        k[static_cast<size_t>(i)] = pattern(seq, l, p, i, false);
        v[static_cast<size_t>(i)] = pattern(seq, l, p, i, true);
      }
      kv.store(l, p, k.data(), v.data());
    }
}

// Every position the cache still holds reads back as written.
void check_tokens(const KvCache& kv, int seq) {
  const int64_t hd = kv.layout().head_dim;
  std::vector<float> row(static_cast<size_t>(hd));
  for (int64_t l = 0; l < kv.layout().n_layer; ++l) {
    const KvLayerView view = kv.view(l);
    const int64_t w = kv.window(l);
    // A window layer still holds at least what the next token sees.
    if (w > 0)
      ASSERT_LE(view.first_pos, std::max<int64_t>(0, kv.end_pos() - w + 1)) << "layer " << l;
    else
      ASSERT_EQ(view.first_pos, 0);
    ASSERT_EQ(view.end_pos, kv.end_pos());
    for (int64_t p = view.first_pos; p < view.end_pos; ++p)
      for (int64_t h = 0; h < kv.layout().n_head_kv; ++h) {
        kv.read_k(l, p, h, row.data());
        for (int64_t i = 0; i < hd; ++i)
          ASSERT_EQ(row[static_cast<size_t>(i)], pattern(seq, l, p, h * hd + i, false))
              << "seq " << seq << " layer " << l << " pos " << p;
        kv.read_v(l, p, h, row.data());
        for (int64_t i = 0; i < hd; ++i) ASSERT_EQ(row[static_cast<size_t>(i)], pattern(seq, l, p, h * hd + i, true));
      }
  }
}

TEST(KvPool, BudgetAllOrNothingAndReuse) {
  auto pool = KvPool::create(1000, 4500);
  ASSERT_TRUE(pool) << pool.error().message();
  EXPECT_EQ((*pool)->n_blocks(), 4u);
  std::vector<int32_t> a(3), b(2), c(1);
  ASSERT_TRUE((*pool)->allocate(a));
  EXPECT_FALSE((*pool)->allocate(b));  // only one left: nothing taken
  EXPECT_EQ((*pool)->n_used(), 3u);
  ASSERT_TRUE((*pool)->allocate(c));
  (*pool)->release(std::span<const int32_t>(a.data() + 1, 1));
  std::vector<int32_t> d(1);
  ASSERT_TRUE((*pool)->allocate(d));
  EXPECT_EQ(d[0], a[1]);  // the block just freed comes back first (its pages are already resident)
  EXPECT_EQ((*pool)->peak_used(), 4u);
  auto tiny = KvPool::create(1000, 999);
  ASSERT_FALSE(tiny);
  EXPECT_NE(tiny.error().message().find("smaller than one KV block"), std::string::npos);
}

TEST(KvCache, FullPoolIsAnErrorAndChangesNothing) {
  const KvLayout l = small_layout();
  auto pool = KvPool::create(l.block_bytes(), l.block_bytes() * 3 * 2);  // two blocks per layer: 8 tokens
  ASSERT_TRUE(pool);
  KvCache kv(l, 64, *pool);
  ASSERT_TRUE(kv.reserve(0, 6).ok());
  write_tokens(kv, 0, 0, 6);
  const Status st = kv.reserve(6, 5);  // would need a third block per layer
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("KV budget exhausted"), std::string::npos) << st.error().message();
  EXPECT_EQ(kv.end_pos(), 6);
  EXPECT_EQ(kv.blocks_held(), 6);
  check_tokens(kv, 0);
  ASSERT_TRUE(kv.reserve(6, 2).ok());  // still fits in the second block
  EXPECT_FALSE(kv.reserve(9, 1).ok()) << "a gap after the last position must be refused";
  EXPECT_FALSE(kv.reserve(60, 10).ok()) << "past n_ctx";
}

// Sequences sharing one pool grow, roll back and finish in random order; every step re-checks all of them.
void shared_pool_soak(std::vector<int64_t> windows, uint32_t seed) {
  const KvLayout l = small_layout(KvType::F32, 4, std::move(windows));
  auto pool = KvPool::create(l.block_bytes(), l.block_bytes() * 90);
  ASSERT_TRUE(pool);
  std::mt19937 rng(seed);
  std::map<int, std::unique_ptr<KvCache>> live;
  std::map<int, int64_t> last_pos;  // the furthest batch start of each sequence: the margin counts from it
  int next_id = 0, failures = 0;
  for (int step = 0; step < 400; ++step) {
    const int action = static_cast<int>(rng() % 10);
    if (live.size() < 2 || action == 0) {
      live[next_id++] = std::make_unique<KvCache>(l, 200, *pool);
    } else if (action == 1) {
      auto it = std::next(live.begin(), static_cast<long>(rng() % live.size()));
      live.erase(it);  // its blocks go back to the pool
    } else {
      auto it = std::next(live.begin(), static_cast<long>(rng() % live.size()));
      KvCache& kv = *it->second;
      if (action == 2 && kv.end_pos() > 0) {
        // The guaranteed roll-back: to the last batch's first position minus the margin (one block).
        const int64_t back = static_cast<int64_t>(rng() % 6);
        const int64_t to = std::max(kv.end_pos() - back, last_pos[it->first] - l.keep());
        const Status st = kv.truncate(to);
        if (!st.ok()) ADD_FAILURE() << "a roll-back within the margin was refused: " << st.error().message();
      } else {
        const int64_t n = 1 + static_cast<int64_t>(rng() % 9);
        if (kv.end_pos() + n > kv.n_ctx()) continue;
        const int64_t pos = kv.end_pos();
        if (kv.reserve(pos, n).ok()) {
          write_tokens(kv, it->first, pos, n);
          last_pos[it->first] = std::max(last_pos[it->first], pos);
        } else
          ++failures;
      }
    }
    size_t held = 0;
    for (auto& [id, kv] : live) {
      check_tokens(*kv, id);
      held += static_cast<size_t>(kv->blocks_held());
    }
    ASSERT_EQ(held, (*pool)->n_used()) << "blocks leaked or double-counted at step " << step;
  }
  live.clear();
  EXPECT_EQ((*pool)->n_used(), 0u);
  EXPECT_GT(failures, 0) << "the soak never filled the pool: raise the load";
}

TEST(KvCache, SequencesSharingAPoolGrowAndFreeInRandomOrder) { shared_pool_soak({}, 7); }
TEST(KvCache, WindowSequencesSharingAPool) { shared_pool_soak({5, 0, 9}, 11); }

TEST(KvCache, WindowLayerMemoryStopsGrowing) {
  const KvLayout l = small_layout(KvType::F16, 8, {16, 0, 16});
  auto pool = KvPool::create(l.block_bytes(), l.block_bytes() * 1000);
  ASSERT_TRUE(pool);
  KvCache kv(l, 1000, *pool);
  const int64_t bound = l.max_blocks(0, 1000, 3);
  for (int64_t pos = 0; pos < 900; pos += 3) {
    ASSERT_TRUE(kv.reserve(pos, 3).ok());
    write_tokens(kv, 0, pos, 3);
    const KvLayerView local = kv.view(0), global = kv.view(1);
    ASSERT_LE((local.end_pos - local.first_pos + 7) / 8, bound) << "at " << pos;
    ASSERT_EQ(global.first_pos, 0);
  }
  // 2 window layers hold <= bound blocks each; the global one holds all 900 positions.
  EXPECT_LE(kv.bytes_held(true), static_cast<size_t>(2 * bound) * l.block_bytes());
  EXPECT_EQ(kv.bytes_held(false), static_cast<size_t>((900 + 7) / 8) * l.block_bytes());
  // Rolling back within the margin works; further back is refused and changes nothing.
  ASSERT_TRUE(kv.truncate(895).ok());
  const Status st = kv.truncate(500);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("sliding-window layer 0"), std::string::npos) << st.error().message();
  EXPECT_EQ(kv.end_pos(), 895);
  ASSERT_TRUE(kv.truncate(0).ok());
  EXPECT_EQ(kv.blocks_held(), 0);
  EXPECT_EQ((*pool)->n_used(), 0u);
}

TEST(KvMemory, ReportMatchesTheFormulaAndWhatIsHeld) {
  // Gemma-3-270M-like: 18 layers, 1 KV head of 256, 5 of every 6 layers with a 512 window.
  KvLayout l;
  l.n_layer = 18;
  l.n_head_kv = 1;
  l.head_dim = 256;
  for (int il = 0; il < 18; ++il) l.windows.push_back(il % 6 == 5 ? 0 : 512);
  const KvMemoryReport r = kv_memory_report(l, 8192, 512);
  ASSERT_EQ(r.kinds.size(), 2u);
  EXPECT_EQ(r.kinds[0].window, 0);
  EXPECT_EQ(r.kinds[0].layers, 3);
  EXPECT_EQ(r.kinds[0].bytes, size_t{2} * 3 * 1 * 256 * 8192 * 2);
  EXPECT_EQ(r.kinds[1].layers, 15);
  EXPECT_LT(r.kinds[1].tokens, 512 + 512 + 32 + 64);
  EXPECT_EQ(r.without_window, size_t{2} * 18 * 256 * 8192 * 2);
  // Feeding 8192 tokens in 512-token batches never holds more than the report says.
  auto pool = KvPool::create(l.block_bytes(), r.total);
  ASSERT_TRUE(pool) << pool.error().message();
  KvCache kv(l, 8192, *pool);
  for (int64_t pos = 0; pos < 8192; pos += 512) ASSERT_TRUE(kv.reserve(pos, 512).ok()) << pos;
  EXPECT_LE(kv.peak_bytes_held(), r.total);
  EXPECT_EQ(kv.bytes_held(false), r.kinds[0].bytes);
  // q8 rows: 2 + 256 bytes instead of 512 for f16.
  l.type_k = l.type_v = KvType::Q8;
  EXPECT_EQ(kv_memory_report(l, 8192, 512).kinds[0].bytes, size_t{2} * 3 * 8192 * (256 + 2));
  EXPECT_NE(format_kv_memory(r).find("window saves"), std::string::npos);
}

TEST(KvLayout, ValidateNamesTheFlag) {
  KvLayout l = small_layout(KvType::Q4);
  const Status st = l.validate();  // head_dim 8
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("--cache-type-k q4"), std::string::npos) << st.error().message();
}

}  // namespace
}  // namespace pocketlm
