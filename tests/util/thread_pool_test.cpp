#include "util/thread_pool.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace pocketlm {
namespace {

TEST(ThreadPool, CoversRangeExactlyOnceWithContiguousChunks) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 2, 7, 100, 1001}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      std::atomic<int> calls{0};
      pool.parallel_for(n, [&](int64_t b, int64_t e, int t) {
        EXPECT_LT(t, threads);
        EXPECT_LT(b, e);
        ++calls;
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
      });
      for (auto& h : hits) EXPECT_EQ(h.load(), 1);
      EXPECT_LE(calls.load(), 4 * threads);  // a few chunks per thread, claimed dynamically
    }
  }
}

TEST(ThreadPool, ManyRoundsDoNotDeadlock) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  for (int round = 0; round < 2000; ++round) pool.parallel_for(10, [&](int64_t b, int64_t e, int) { sum += e - b; });
  EXPECT_EQ(sum.load(), 20000);
}

// Jobs of different sizes back to back: a worker still leaving one job must never take a chunk of the
// next (each index is covered exactly once, every round, and the call returns only when all are done).
TEST(ThreadPool, BackToBackJobsOfDifferentSizes) {
  for (int threads : {2, 3, 4}) {
    ThreadPool pool(threads);
    for (int round = 0; round < 3000; ++round) {
      const int64_t n = (round % 3 == 0) ? 2 : (round % 3 == 1) ? 37 : 5;
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.parallel_for(n, [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
      });
      for (auto& h : hits) ASSERT_EQ(h.load(), 1) << "round " << round << " n " << n << " threads " << threads;
    }
  }
}

// The process's pool: one per size while anyone holds it, so sessions asking for the same threads share.
TEST(ThreadPool, SharedPoolIsOnePerSizeWhileHeld) {
  std::shared_ptr<ThreadPool> a = shared_thread_pool(3), b = shared_thread_pool(3), c = shared_thread_pool(2);
  EXPECT_EQ(a.get(), b.get());
  EXPECT_NE(a.get(), c.get());
  EXPECT_EQ(a->size(), 3);
  EXPECT_EQ(c->size(), 2);
  EXPECT_EQ(shared_thread_pool(0)->size(), physical_cores());
  std::weak_ptr<ThreadPool> gone = c;
  c.reset();
  EXPECT_TRUE(gone.expired());  // nobody holds it: its threads are gone
}

// Two threads submitting to one pool at once: their jobs take turns, each covered exactly once.
TEST(ThreadPool, TwoCallersTakeTurnsOnOnePool) {
  ThreadPool pool(3);
  auto caller = [&](int64_t n, int rounds) {
    for (int round = 0; round < rounds; ++round) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      std::atomic<int> inside{0};
      pool.parallel_for(n, [&](int64_t b, int64_t e, int t) {
        EXPECT_LT(t, 3);
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
        ++inside;
      });
      for (auto& h : hits) ASSERT_EQ(h.load(), 1) << "n " << n << " round " << round;
    }
  };
  std::thread x([&] { caller(37, 1500); });
  std::thread y([&] { caller(101, 1500); });
  x.join();
  y.join();
}

TEST(ThreadPoolDeathTest, AJobStartingAJobOnItsOwnPoolIsAnErrorNotADeadlock) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        ThreadPool pool(2);
        pool.parallel_for(8, [&](int64_t, int64_t, int) { pool.parallel_for(8, [](int64_t, int64_t, int) {}); });
      },
      "called from inside one of its own jobs");
}

// After a job, workers poll for a bounded time, then sleep: an idle pool must not keep a core busy.
TEST(ThreadPool, IdleWorkersSleep) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  for (int round = 0; round < 10; ++round) pool.parallel_for(2, [&](int64_t b, int64_t e, int) { sum += e - b; });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  // Every thread of this process but the main one must be in an interruptible sleep (state S).
  int others = 0, sleeping = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) {
    if (entry.path().filename() == std::to_string(getpid())) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    std::getline(stat, line);
    const auto close = line.rfind(')');
    ASSERT_NE(close, std::string::npos);
    ++others;
    sleeping += line[close + 2] == 'S';
  }
  EXPECT_GE(others, 1);
  EXPECT_EQ(sleeping, others);
}

TEST(ThreadPool, PhysicalCoresIsPositive) { EXPECT_GE(physical_cores(), 1); }

}  // namespace
}  // namespace pocketlm
