// dist: the gradient reducer on 2 real ranks (two threads, each with its own Communicator: a
// TCPStore on loopback and a ProcessGroupGloo), against sums computed here.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <torch/torch.h>
#include <unistd.h>

#include <exception>
#include <functional>
#include <thread>
#include <vector>

#include "dist/communicator.h"
#include "dist/gradients.h"

namespace {

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// Runs body(rank, communicator) on 2 ranks at once; rethrows the first failure.
void two_ranks(const std::function<void(int, hf::dist::Communicator&)>& body) {
  const int port = free_port();
  std::vector<std::exception_ptr> errors(2);
  std::vector<std::thread> ranks;
  for (int r = 0; r < 2; ++r) {
    ranks.emplace_back([&, r] {
      try {
        hf::dist::Placement where;
        where.rank = r;
        where.world_size = 2;
        where.local_rank = r;
        where.local_world_size = 2;
        where.master_addr = "127.0.0.1";
        where.master_port = port;
        where.source = "test";
        hf::dist::Communicator comm(where, torch::Device(torch::kCPU), {"gloo", std::chrono::seconds(30)});
        body(r, comm);
      } catch (...) {
        errors[static_cast<std::size_t>(r)] = std::current_exception();
      }
    });
  }
  for (auto& t : ranks) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// The loss of one micro-batch is sum(w * x) + sum(b * y); `unused` takes no part in it.
struct Toy {
  torch::Tensor w = torch::zeros({3, 4}, torch::requires_grad());
  torch::Tensor b = torch::zeros({5}, torch::requires_grad());
  torch::Tensor unused = torch::zeros({2}, torch::requires_grad());
  std::vector<torch::Tensor> params() const { return {w, b}; }
  std::vector<torch::Tensor> with_unused() const { return {w, b, unused}; }
  void backward(float scale) const {
    (w * torch::full({3, 4}, scale)).sum().add((b * torch::arange(5, torch::kFloat) * scale).sum()).backward();
  }
};

// What one rank saw: its parameters' gradients after finish(), per step, and the buckets started
// inside backward. Checked on the test's thread (doctest counts assertions there).
struct Seen {
  std::vector<std::vector<torch::Tensor>> grads;
  std::vector<std::size_t> started;
};

std::vector<torch::Tensor> grads_of(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> out;
  for (const torch::Tensor& p : params) out.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
  return out;
}

}  // namespace

TEST_CASE("dist: gradients are summed over 2 ranks, accumulation included, and start during backward") {
  std::vector<Seen> seen(2);
  two_ranks([&](int rank, hf::dist::Communicator& comm) {
    Toy toy;
    hf::dist::GradientReducer reducer(comm, toy.params());
    for (int step = 0; step < 2; ++step) {  // the buckets are reused from step to step
      for (const torch::Tensor& p : toy.params()) p.mutable_grad() = torch::Tensor();
      // Rank r: two micro-batches scaled 1 and 2 (+10r); only the last one is armed.
      toy.backward(1.0F + 10.0F * static_cast<float>(rank));
      reducer.arm();
      toy.backward(2.0F + 10.0F * static_cast<float>(rank));
      seen[static_cast<std::size_t>(rank)].started.push_back(reducer.started_in_backward());
      reducer.finish();
      seen[static_cast<std::size_t>(rank)].grads.push_back(grads_of(toy.params()));
    }
  });
  for (const Seen& rank : seen) {
    REQUIRE(rank.grads.size() == 2);
    for (std::size_t step = 0; step < 2; ++step) {
      CHECK(rank.started[step] == 1);  // the one bucket left before backward returned
      // Sum over ranks and micro-batches of the scales: (1 + 2) + (11 + 12) = 26.
      CHECK(torch::equal(rank.grads[step][0], torch::full({3, 4}, 26.0F)));
      CHECK(torch::equal(rank.grads[step][1], torch::arange(5, torch::kFloat) * 26.0F));
    }
  }
}

TEST_CASE("dist: a rank without examples in the step still takes part, and keeps the others' sum") {
  std::vector<Seen> seen(2);
  two_ranks([&](int rank, hf::dist::Communicator& comm) {
    Toy toy;
    hf::dist::GradientReducer reducer(comm, toy.with_unused());
    if (rank == 0) {
      reducer.arm();
      toy.backward(3.0F);
    }
    reducer.finish();  // rank 1: no backward at all in this step
    seen[static_cast<std::size_t>(rank)].grads.push_back(grads_of(toy.with_unused()));
  });
  for (const Seen& rank : seen) {
    REQUIRE(rank.grads.size() == 1);
    CHECK(torch::equal(rank.grads[0][0], torch::full({3, 4}, 3.0F)));
    CHECK(torch::equal(rank.grads[0][1], torch::arange(5, torch::kFloat) * 3.0F));
    CHECK_FALSE(rank.grads[0][2].defined());  // no rank had one
  }
}
