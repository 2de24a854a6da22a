#include "util/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <utility>

namespace pocketlm {

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
  }
  start_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

static std::pair<int64_t, int64_t> chunk(int64_t n, int parts, int index) {
  const int64_t per = n / parts, extra = n % parts;
  const int64_t begin = index * per + (index < extra ? index : extra);
  return {begin, begin + per + (index < extra ? 1 : 0)};
}

namespace {
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Polls `done()` for at most ThreadPool::kSpinMicros; true if it became true.
template <typename Pred>
bool spin_until(Pred done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(ThreadPool::kSpinMicros);
  for (int i = 0;; ++i) {
    if (done()) return true;
    cpu_relax();
    if ((i & 63) == 63 && std::chrono::steady_clock::now() > deadline) return false;
  }
}
}  // namespace

// The claim word is (generation << 32) | (chunk count << 16) | next chunk. Everything a claimer needs to
// decide is in that one word: reading the chunk count from a separate field could see the next job's value
// while the word still belongs to the previous job, and hand out a chunk that does not exist.
void ThreadPool::run_chunks(uint32_t gen, int thread) {
  for (;;) {
    uint64_t c = claim_.load(std::memory_order_acquire);
    const auto n_chunks = static_cast<uint32_t>((c >> 16) & 0xFFFF), index = static_cast<uint32_t>(c & 0xFFFF);
    if (static_cast<uint32_t>(c >> 32) != gen || index >= n_chunks) return;
    if (!claim_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel)) continue;
    // A successful claim proves job `gen` is unfinished, so job_ and job_n_ are still its own.
    const auto [b, e] = chunk(job_n_, static_cast<int>(n_chunks), static_cast<int>(index));
    if (b < e) (*job_)(b, e, thread);
    if (chunks_done_.fetch_add(1) + 1 == n_chunks && caller_asleep_.load()) {
      std::lock_guard<std::mutex> lock(mu_);
      done_cv_.notify_one();
    }
  }
}

namespace {
thread_local const ThreadPool* tl_running_job_of = nullptr;  // the pool whose job this thread is running

// Marks the calling thread as inside a job of `pool` for its lifetime.
struct InJob {
  explicit InJob(const ThreadPool* pool) : saved(tl_running_job_of) { tl_running_job_of = pool; }
  ~InJob() { tl_running_job_of = saved; }
  const ThreadPool* saved;
};
}  // namespace

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  if (tl_running_job_of == this) {
    std::fprintf(stderr, "pocketlm: internal error: ThreadPool::parallel_for called from inside one of its own jobs\n");
    std::abort();
  }
  if (n_threads_ == 1 || n == 1) {
    fn(0, n, 0);
    return;
  }
  std::lock_guard<std::mutex> submit(submit_mu_);
  InJob in_job(this);
  const auto n_chunks =
      static_cast<uint32_t>(std::min<int64_t>({n, 4 * static_cast<int64_t>(n_threads_), int64_t{0xFFFF}}));
  const auto gen = static_cast<uint32_t>(generation_.load() + 1);
  job_ = &fn;
  job_n_ = n;
  chunks_done_.store(0);
  claim_.store(static_cast<uint64_t>(gen) << 32 | static_cast<uint64_t>(n_chunks) << 16);
  generation_.store(gen);  // wakes the workers (seq_cst: pairs with sleepers_)
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    start_cv_.notify_all();
  }
  run_chunks(gen, 0);
  if (!spin_until([&] { return chunks_done_.load(std::memory_order_acquire) == n_chunks; })) {
    std::unique_lock<std::mutex> lock(mu_);
    caller_asleep_.store(true);
    done_cv_.wait(lock, [&] { return chunks_done_.load() == n_chunks; });
    caller_asleep_.store(false);
  }
}

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    if (!spin_until([&] { return generation_.load(std::memory_order_acquire) != seen || stop_.load(); })) {
      std::unique_lock<std::mutex> lock(mu_);
      sleepers_.fetch_add(1);
      start_cv_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
      sleepers_.fetch_sub(1);
    }
    if (stop_.load()) return;
    seen = generation_.load();
    InJob in_job(this);
    run_chunks(static_cast<uint32_t>(seen), index);
  }
}

std::shared_ptr<ThreadPool> shared_thread_pool(int n_threads) {
  if (n_threads <= 0) n_threads = physical_cores();
  static std::mutex mu;
  static std::map<int, std::weak_ptr<ThreadPool>> pools;  // by size; a pool lives while someone holds it
  std::lock_guard<std::mutex> lock(mu);
  std::shared_ptr<ThreadPool> pool = pools[n_threads].lock();
  if (!pool) {
    pool = std::make_shared<ThreadPool>(n_threads);
    pools[n_threads] = pool;
  }
  return pool;
}

int physical_cores() {
  // Count distinct (physical id, core id) pairs; fall back to hardware_concurrency.
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::set<std::pair<std::string, std::string>> cores;
  std::string line, phys = "0";
  while (std::getline(cpuinfo, line)) {
    auto value = [&] {
      auto p = line.find(':');
      return p == std::string::npos ? std::string() : line.substr(p + 2);
    };
    if (line.rfind("physical id", 0) == 0)
      phys = value();
    else if (line.rfind("core id", 0) == 0)
      cores.emplace(phys, value());
  }
  int n = static_cast<int>(cores.size());
  if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
  return n > 0 ? n : 1;
}

}  // namespace pocketlm
