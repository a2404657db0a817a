// A fixed-size thread pool with a blocking parallel_for; the calling thread takes part, so a pool
// of size 1 runs everything inline (no threads are started).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace hf {

class ThreadPool {
 public:
  // threads <= 0 means default_thread_count(). More than kMaxThreadsPerCore per core
  // is capped (with a warning): beyond that threads only add contention, and a huge count
  // (--threads 100000) would exhaust the process limit. Throws Error(kUnavailable) when the
  // system refuses to start a thread (EAGAIN: `ulimit -u` or memory), after joining those started.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return size_; }
  // Calls fn(begin, end) on disjoint chunks covering [0, n), at most `grain` items a chunk, and
  // returns when all are done. The first exception thrown by fn is rethrown here.
  // Not reentrant: one parallel_for at a time per pool.
  void parallel_for(std::size_t n, std::size_t grain,
                    const std::function<void(std::size_t, std::size_t)>& fn);

 private:
  void worker_loop();
  void stop_workers();
  void run_chunks();

  int size_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable done_cv_;
  const std::function<void(std::size_t, std::size_t)>* job_ = nullptr;
  std::size_t n_ = 0, grain_ = 1, next_ = 0;
  std::size_t generation_ = 0;
  int active_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

// The thread count to use for "--threads 0/auto": the CPUs in this process's affinity mask
// (sched_getaffinity), else every core.
int default_thread_count();
inline constexpr int kMaxThreadsPerCore = 4;
// The most threads a pool starts: kMaxThreadsPerCore × default_thread_count().
int max_thread_count();

}  // namespace hf
