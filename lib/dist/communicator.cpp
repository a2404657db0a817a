// c10d underneath the Communicator: a TCPStore hosted by rank 0 for the rendezvous (and the
// heartbeats that name a lost rank), one ProcessGroupGloo or ProcessGroupNCCL for the collectives.
#include "dist/communicator.h"

#include <fmt/format.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include <torch/csrc/distributed/c10d/TCPStore.hpp>

// Debian's libgloo-dev provides the Gloo headers the wheel leaves out; libtorch_cpu carries the
// compiled Gloo and ProcessGroupGloo. USE_C10D_* are libtorch's switches for these headers (its
// CMake config defines them for the backends the wheel was built with).
#if HFKIT_HAVE_GLOO && defined(USE_C10D_GLOO)
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#define HFKIT_GLOO 1
#endif
#if HFKIT_HAVE_NCCL && defined(USE_C10D_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#define HFKIT_NCCL 1
#endif

#include "core/env.h"
#include "core/error.h"
#include "core/log.h"
#include "dist/buckets.h"

namespace hf::dist {

std::vector<std::vector<std::size_t>> buckets(const std::vector<torch::Tensor>& tensors) {
  std::vector<std::vector<std::size_t>> out;
  std::map<std::pair<int, std::string>, std::size_t> open;  // (dtype, device) -> bucket being filled
  std::vector<std::int64_t> bytes;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const torch::Tensor& t = tensors[i];
    const auto key = std::make_pair(static_cast<int>(t.scalar_type()), t.device().str());
    const std::int64_t size = t.numel() * static_cast<std::int64_t>(t.element_size());
    auto it = open.find(key);
    if (it == open.end() || bytes[it->second] + size > kBucketBytes) {
      out.emplace_back();
      bytes.push_back(0);
      it = open.insert_or_assign(key, out.size() - 1).first;
    }
    out[it->second].push_back(i);
    bytes[it->second] += size;
  }
  return out;
}

namespace {
// How often a rank bumps its heartbeat counter, and how long the error path watches the counters
// before it calls a rank lost (three beats).
constexpr auto kBeat = std::chrono::seconds(1);
constexpr auto kWatch = std::chrono::seconds(3);

std::string heartbeat_key(int rank) { return fmt::format("hfkit/heartbeat/{}", rank); }

// The first line of an exception from c10d or Gloo (they carry C++ stack traces after it).
std::string first_line(const std::exception& e) {
  const auto* c10 = dynamic_cast<const c10::Error*>(&e);
  std::string text = c10 ? c10->what_without_backtrace() : e.what();
  const std::size_t nl = text.find('\n');
  return nl == std::string::npos ? text : text.substr(0, nl);
}

bool loopback(const std::string& host) { return host == "localhost" || host.starts_with("127.") || host == "::1"; }

}  // namespace

struct Communicator::Impl {
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<c10d::Backend> group;
  // Heartbeats go through their own client connection: the loop's thread may be blocked in a
  // collective while they beat.
  c10::intrusive_ptr<c10d::Store> beat_store;
  std::thread beat_thread;
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  bool broken = false;  // a collective failed: c10d's objects may be stuck; never wait on them

  void beat(int rank) {
    std::unique_lock<std::mutex> lock(mu);
    while (!stopping) {
      lock.unlock();
      try {
        beat_store->add(heartbeat_key(rank), 1);
      } catch (const std::exception&) {
        return;  // the store (rank 0) is gone: the next collective reports it
      }
      lock.lock();
      cv.wait_for(lock, kBeat, [&] { return stopping; });
    }
  }
};

Communicator::Communicator() = default;

Communicator::Communicator(const Placement& where, const torch::Device& device, const CommOptions& options)
    : place_(where), impl_(std::make_unique<Impl>()) {
  backend_ = options.backend.empty() ? (device.is_cuda() ? "nccl" : "gloo") : options.backend;
  if (backend_ != "gloo" && backend_ != "nccl")
    throw Error(ErrorKind::kUsage, fmt::format("--ddp-backend: unknown value '{}' (expected gloo or nccl)", backend_));
  if (backend_ == "nccl" && !device.is_cuda())
    throw Error(ErrorKind::kUsage, "--ddp-backend nccl needs a CUDA device (use gloo on CPU)");
  const auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(options.timeout);
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(where.master_port);
    so.isServer = where.rank == 0;
    so.numWorkers = static_cast<std::size_t>(where.world_size);
    so.waitWorkers = true;
    so.timeout = timeout;
    impl_->store = c10::make_intrusive<c10d::TCPStore>(where.master_addr, so);
    impl_->beat_store = impl_->store->clone();
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kUnavailable,
                fmt::format("rank {} of {}: rendezvous at {}:{} failed within {} s: {}", where.rank, where.world_size,
                            where.master_addr, where.master_port, options.timeout.count(), first_line(e)));
  }
  try {
    if (backend_ == "gloo") {
#if HFKIT_GLOO
      auto gloo = c10d::ProcessGroupGloo::Options::create(timeout);
      if (auto ifname = env("GLOO_SOCKET_IFNAME"))
        gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(*ifname));
      else if (loopback(where.master_addr))  // every rank on this machine: no need to resolve our name
        gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        gloo->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, where.rank, where.world_size, gloo);
#else
      throw Error(ErrorKind::kUsage, "--ddp-backend gloo: this hfkit was built without the Gloo headers (libgloo-dev)");
#endif
    } else {
#if HFKIT_NCCL
      auto nccl = c10d::ProcessGroupNCCL::Options::create();
      nccl->timeout = timeout;
      impl_->group = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, where.rank, where.world_size, nccl);
#else
      throw Error(ErrorKind::kUsage, "--ddp-backend nccl: this hfkit was built without NCCL (a CUDA build has it)");
#endif
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kUnavailable, fmt::format("rank {} of {}: cannot create the {} process group: {}", where.rank,
                                                     where.world_size, backend_, first_line(e)));
  }
  impl_->beat_thread = std::thread([this] { impl_->beat(place_.rank); });
}

Communicator::~Communicator() {
  if (!impl_) return;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->beat_thread.joinable()) impl_->beat_thread.join();
  if (impl_->broken) {
    // After a lost peer, c10d's destructors may wait on transfers that never end; the process is
    // about to exit with the error, so these are left to it.
    (void)impl_->group.release();
    (void)impl_->beat_store.release();
    (void)impl_->store.release();
  }
}

void Communicator::lost(const char* what, const std::string& cause) {
  impl_->broken = true;
  // Which peers stopped beating: their counters do not move while we watch.
  std::vector<int> silent;
  try {
    // A client of its own with a short timeout: when rank 0 (the store's host) is gone, connecting
    // fails in seconds rather than after --ddp-timeout.
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(place_.master_port);
    so.waitWorkers = false;
    so.timeout = kWatch;
    auto store = c10::make_intrusive<c10d::TCPStore>(place_.master_addr, so);
    auto counts = [&] {
      std::vector<std::int64_t> c;
      for (int r = 0; r < place_.world_size; ++r) c.push_back(store->add(heartbeat_key(r), 0));
      return c;
    };
    const std::vector<std::int64_t> before = counts();
    std::this_thread::sleep_for(kWatch);
    const std::vector<std::int64_t> after = counts();
    for (int r = 0; r < place_.world_size; ++r)
      if (r != place_.rank && after[r] == before[r]) silent.push_back(r);
  } catch (const std::exception&) {
    if (place_.rank != 0) silent = {0};  // the store lives in rank 0: it is gone
  }
  std::string who;
  for (int r : silent) who += (who.empty() ? "" : ", ") + std::to_string(r);
  const std::string ranks = silent.empty() ? "a peer rank" : fmt::format("rank{} {}", silent.size() > 1 ? "s" : "", who);
  throw Error(ErrorKind::kUnavailable, fmt::format("rank {} of {}: lost {} during {} ({}): {}", place_.rank,
                                                   place_.world_size, ranks, what,
                                                   silent.empty() ? "alive but not answering" : "no heartbeat", cause));
}

template <class F>
void Communicator::guarded(const char* what, F&& f) {
  try {
    f();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    lost(what, first_line(e));
  }
}

void Communicator::allreduce_sum(std::vector<torch::Tensor>& tensors) {
  if (place_.world_size == 1 || tensors.empty()) return;
  for (const std::vector<std::size_t>& bucket : buckets(tensors)) {
    std::vector<torch::Tensor> parts;
    for (std::size_t i : bucket) parts.push_back(tensors[i].reshape(-1));
    std::vector<torch::Tensor> flat = {torch::cat(parts)};
    guarded("allreduce", [&] { impl_->group->allreduce(flat)->wait(); });
    std::int64_t at = 0;
    for (std::size_t i : bucket) {
      const std::int64_t n = tensors[i].numel();
      tensors[i].copy_(flat[0].narrow(0, at, n).view_as(tensors[i]));
      at += n;
    }
  }
}

std::function<void()> Communicator::allreduce_sum_start(torch::Tensor flat) {
  if (place_.world_size == 1) return [] {};
  std::vector<torch::Tensor> one = {std::move(flat)};
  c10::intrusive_ptr<c10d::Work> work;
  guarded("allreduce", [&] { work = impl_->group->allreduce(one); });
  return [this, work] { guarded("allreduce", [&] { work->wait(); }); };
}

void Communicator::broadcast(std::vector<torch::Tensor>& tensors, int root) {
  if (place_.world_size == 1 || tensors.empty()) return;
  for (const std::vector<std::size_t>& bucket : buckets(tensors)) {
    std::vector<torch::Tensor> parts;
    for (std::size_t i : bucket) parts.push_back(tensors[i].reshape(-1));
    std::vector<torch::Tensor> flat = {torch::cat(parts)};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    guarded("broadcast", [&] { impl_->group->broadcast(flat, opts)->wait(); });
    std::int64_t at = 0;
    for (std::size_t i : bucket) {
      const std::int64_t n = tensors[i].numel();
      torch::NoGradGuard no_grad;  // parameters are leaves that require grad
      tensors[i].copy_(flat[0].narrow(0, at, n).view_as(tensors[i]));
      at += n;
    }
  }
}

std::string Communicator::broadcast(const std::string& text, int root) {
  if (place_.world_size == 1) return text;
  std::vector<torch::Tensor> size = {torch::tensor({static_cast<std::int64_t>(text.size())}, torch::kInt64)};
  broadcast(size, root);
  std::vector<torch::Tensor> bytes = {torch::zeros({size[0].item<std::int64_t>()}, torch::kUInt8)};
  if (place_.rank == root) std::memcpy(bytes[0].data_ptr(), text.data(), text.size());
  if (bytes[0].numel() > 0) broadcast(bytes, root);
  return std::string(static_cast<const char*>(bytes[0].data_ptr()), static_cast<std::size_t>(bytes[0].numel()));
}

std::vector<std::string> Communicator::allgather(const std::string& text) {
  if (place_.world_size == 1) return {text};
  const auto world = static_cast<std::size_t>(place_.world_size);
  // Equal sizes are what allgather moves: the lengths first, then every text padded to the longest.
  std::vector<torch::Tensor> sizes = {torch::zeros({place_.world_size}, torch::kInt64)};
  sizes[0][place_.rank] = static_cast<std::int64_t>(text.size());
  allreduce_sum(sizes);
  const std::int64_t longest = std::max<std::int64_t>(1, sizes[0].max().item<std::int64_t>());
  std::vector<torch::Tensor> mine = {torch::zeros({longest}, torch::kUInt8)};
  std::memcpy(mine[0].data_ptr(), text.data(), text.size());
  std::vector<std::vector<torch::Tensor>> all(1);
  for (std::size_t r = 0; r < world; ++r) all[0].push_back(torch::empty({longest}, torch::kUInt8));
  guarded("allgather", [&] { impl_->group->allgather(all, mine)->wait(); });
  std::vector<std::string> out;
  for (std::size_t r = 0; r < world; ++r)
    out.emplace_back(static_cast<const char*>(all[0][r].data_ptr()),
                     static_cast<std::size_t>(sizes[0][static_cast<std::int64_t>(r)].item<std::int64_t>()));
  return out;
}

std::unique_ptr<Communicator> open_communicator(const Placement& where, const torch::Device& device,
                                                const CommOptions& options) {
  log::info("data parallel: rank {} of {} (local rank {}), {} rendezvous at {}:{}", where.rank, where.world_size,
            where.local_rank, where.source, where.master_addr, where.master_port);
  auto comm = std::make_unique<Communicator>(where, device, options);
  log::info("data parallel: {} process group of {} ranks ready", comm->backend(), comm->world_size());
  return comm;
}

}  // namespace hf::dist
