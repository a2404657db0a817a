// Chunks are handed out under one mutex: parallel_for is used for coarse batches (thousands of
// items), so contention is negligible and the code stays obviously correct.
#include "core/thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <system_error>

#include "core/error.h"
#include "core/log.h"

namespace hf {

int default_thread_count() {
  // The CPUs this process may run on: a Slurm step, `taskset` or a container's cpuset grants a few
  // of the machine's cores, and hardware_concurrency() counts them all.
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) == 0 && CPU_COUNT(&allowed) > 0) return CPU_COUNT(&allowed);
  return std::max(1u, std::thread::hardware_concurrency());
}
int max_thread_count() { return kMaxThreadsPerCore * default_thread_count(); }

ThreadPool::ThreadPool(int threads) : size_(threads > 0 ? threads : default_thread_count()) {
  if (size_ > max_thread_count()) {
    log::warn("{} threads asked for, {} cores: using {}", size_, default_thread_count(), max_thread_count());
    size_ = max_thread_count();
  }
  try {
    for (int i = 1; i < size_; ++i) workers_.emplace_back([this] { worker_loop(); });
  } catch (const std::system_error& e) {
    // A constructor that throws runs no destructor: stop and join the started workers here, or
    // their std::thread objects would terminate the process.
    const auto started = workers_.size();
    stop_workers();
    throw Error(ErrorKind::kUnavailable, "cannot start thread " + std::to_string(started + 2) + " of " +
                                             std::to_string(size_) + ": " + e.code().message() +
                                             " (lower --threads or raise the process limit)");
  }
}

void ThreadPool::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

ThreadPool::~ThreadPool() { stop_workers(); }

void ThreadPool::run_chunks() {
  std::unique_lock<std::mutex> lock(mu_);
  while (job_ != nullptr && next_ < n_) {
    std::size_t begin = next_;
    std::size_t end = std::min(n_, begin + grain_);
    next_ = end;
    const auto* job = job_;
    lock.unlock();
    try {
      (*job)(begin, end);
    } catch (...) {
      lock.lock();
      if (!error_) error_ = std::current_exception();
      next_ = n_;  // stop handing out work
      continue;
    }
    lock.lock();
  }
}

void ThreadPool::worker_loop() {
  std::size_t seen = 0;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
    if (stop_) return;
    seen = generation_;
    ++active_;
    lock.unlock();
    run_chunks();
    lock.lock();
    if (--active_ == 0) done_cv_.notify_all();
  }
}

void ThreadPool::parallel_for(std::size_t n, std::size_t grain,
                              const std::function<void(std::size_t, std::size_t)>& fn) {
  if (n == 0) return;
  grain = std::max<std::size_t>(grain, 1);
  if (size_ == 1 || n <= grain) {
    fn(0, n);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &fn;
    n_ = n;
    grain_ = grain;
    next_ = 0;
    error_ = nullptr;
    ++generation_;
  }
  cv_.notify_all();
  run_chunks();
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [&] { return active_ == 0; });
  job_ = nullptr;
  if (error_) std::rethrow_exception(error_);
}

}  // namespace hf
