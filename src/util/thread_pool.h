#pragma once
// One pool of worker threads, sized once (CLI -t; default = physical cores). parallel_for splits a range
// into contiguous chunks (a few per thread) that threads claim as they go; the calling thread works too.
// Claiming, not a fixed split, matters on a shared machine: if the OS deschedules one thread, the others
// finish its share instead of waiting for it.
//
// One pool serves many callers: sessions decoding at the same time share it (shared_thread_pool()), and
// their jobs run one after the other, each on every thread, instead of 2 x N threads fighting for N cores.
// A job must not start another job on the same pool (that is an error caught at run time, not a deadlock).
//
// Waking a sleeping thread costs tens of microseconds, and a decode step runs a few hundred parallel_for
// calls: so after a job a worker polls for the next one for a short, bounded time (kSpinMicros) before it
// blocks on a condition variable. A pool with no work sleeps: it never keeps a core busy while idle.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace pocketlm {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  // Calls fn(begin, end, thread_index) over [0, n) in contiguous chunks; returns when all are done.
  // thread_index < size() names the thread running the chunk (for per-thread scratch).
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn);

 private:
  void worker(int index);
  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex submit_mu_;  // one job at a time: held by the caller for the whole of parallel_for
  std::mutex mu_;
  std::condition_variable start_cv_, done_cv_;
  void run_chunks(uint32_t generation, int thread);

  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0;
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> claim_{0};  // (generation << 32) | (chunks << 16) | next chunk to hand out
  std::atomic<uint32_t> chunks_done_{0};
  std::atomic<int> sleepers_{0};  // workers blocked (or about to block) on start_cv_
  std::atomic<bool> caller_asleep_{false};
  std::atomic<bool> stop_{false};

 public:
  static constexpr int kSpinMicros = 200;
};

// The process's pool of n_threads threads (0: physical cores), made on first use and shared by every caller
// asking for that size while any of them holds it. Thread-safe.
std::shared_ptr<ThreadPool> shared_thread_pool(int n_threads = 0);

// Physical cores of this machine (hyper-threads not counted), at least 1.
int physical_cores();

}  // namespace pocketlm
