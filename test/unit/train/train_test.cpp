// lib/train pieces without Python: HF's LR schedules (values from the formulas in
// transformers.optimization), the epoch order and length grouping, dynamic padding, AdamW against
// the update rule written out in double precision, its safetensors state round trip, which
// checkpoints rotation deletes (locally and remotely), and the checks of a run's inputs and outputs:
// splits of one preprocess run, token ids in the vocabulary, complete checkpoints, one writer.
#include <unistd.h>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

#include "core/error.h"
#include "data/data.h"
#include "support/temp_dir.h"
#include "train/internal.h"
#include "train/train.h"

// libtorch's c10 logging defines a glog-style CHECK(cond) that replaces doctest's: take it back.
#undef CHECK
#define CHECK(...) DOCTEST_CHECK(__VA_ARGS__)

using hf::train::lr_factor;

TEST_CASE("train: learning-rate schedules") {
  struct Case {
    const char* type;
    std::int64_t step, warmup, total;
    double want;
  };
  const Case cases[] = {
      {"linear", 0, 10, 100, 0.0},   {"linear", 5, 10, 100, 0.5},   {"linear", 10, 10, 100, 1.0},
      {"linear", 55, 10, 100, 0.5},  {"linear", 100, 10, 100, 0.0}, {"linear", 0, 0, 4, 1.0},
      {"linear", 3, 0, 4, 0.25},     {"cosine", 10, 10, 110, 1.0},  {"cosine", 60, 10, 110, 0.5},
      {"cosine", 110, 10, 110, 0.0}, {"cosine", 2, 4, 10, 0.5},     {"constant", 7, 10, 100, 1.0},
      {"constant_with_warmup", 5, 10, 100, 0.5}, {"constant_with_warmup", 50, 10, 100, 1.0},
  };
  for (const Case& c : cases) {
    CAPTURE(c.type);
    CAPTURE(c.step);
    const auto type = hf::train::parse_spelling(hf::train::kSchedulerTypes, c.type, "lr_scheduler_type");
    CHECK(lr_factor(type, c.step, c.warmup, c.total) == doctest::Approx(c.want).epsilon(1e-12));
  }
  CHECK(lr_factor(hf::train::SchedulerType::kCosine, 35, 10, 110) == doctest::Approx(0.5 * (1 + std::cos(M_PI * 0.25))));
  CHECK(hf::train::num_warmup_steps(0, 0.1, 95) == 10);  // ceil(9.5)
  CHECK(hf::train::num_warmup_steps(3, 0.5, 95) == 3);
  CHECK_THROWS_AS(hf::train::parse_spelling(hf::train::kSchedulerTypes, "polynomial", "lr_scheduler_type"), hf::Error);
  // Every spelling parses back to its value (the table is the one definition).
  for (const auto& s : hf::train::kSchedulerTypes)
    CHECK(hf::train::parse_spelling(hf::train::kSchedulerTypes, s.name, "t") == s.value);
  for (const auto& s : hf::train::kStrategies) CHECK(hf::train::spelling_of(hf::train::kStrategies, s.value) == std::string(s.name));
}

TEST_CASE("train: epoch order is a seeded permutation") {
  const auto a = hf::train::epoch_order(100, 42, 0);
  std::vector<std::int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::int64_t> iota(100);
  std::iota(iota.begin(), iota.end(), 0);
  CHECK(sorted == iota);
  CHECK(a != iota);
  CHECK(hf::train::epoch_order(100, 42, 0) == a);
  CHECK(hf::train::epoch_order(100, 42, 1) != a);
  CHECK(hf::train::epoch_order(100, 43, 0) != a);
  CHECK(hf::train::epoch_order(0, 1, 0).empty());
}

TEST_CASE("train: length grouping sorts megabatches, longest first") {
  const std::size_t n = 1000;
  std::vector<std::int64_t> lengths(n);
  for (std::size_t i = 0; i < n; ++i) lengths[i] = static_cast<std::int64_t>((i * 7919) % 97 + 1);
  const std::int64_t batch = 4;
  const auto order = hf::train::epoch_order(n, 7, 0, lengths, batch);
  CHECK(std::set<std::int64_t>(order.begin(), order.end()).size() == n);
  CHECK(lengths[order[0]] == *std::max_element(lengths.begin(), lengths.end()));
  // min(1000 / 16, 50) = 50 batches per megabatch = 200 examples; each sorted (bar the swapped head).
  const std::size_t mega = 50 * batch;
  for (std::size_t start = 0; start < n; start += mega) {
    for (std::size_t i = start + 2; i < std::min(start + mega, n); ++i) CHECK(lengths[order[i - 1]] >= lengths[order[i]]);
  }
  // Grouping keeps the shuffle's membership of each megabatch.
  const auto plain = hf::train::epoch_order(n, 7, 0);
  for (std::size_t start = mega; start < n; start += mega) {
    std::multiset<std::int64_t> x(plain.begin() + start, plain.begin() + start + mega);
    std::multiset<std::int64_t> y(order.begin() + start, order.begin() + start + mega);
    CHECK(x == y);
  }
}

namespace {

// A "train" split of three examples (labels neg, pos, pos) written into `dir` and opened.
hf::data::Dataset three_examples(const std::string& dir, const std::vector<std::vector<std::int32_t>>& rows) {
  hf::data::SplitData split;
  for (const auto& r : rows) {
    split.input_ids.insert(split.input_ids.end(), r.begin(), r.end());
    split.offsets.push_back(static_cast<std::int64_t>(split.input_ids.size()));
  }
  split.labels = {0, 1, 1};
  hf::data::DatasetMeta meta;
  meta.label_names = {"neg", "pos"};
  hf::data::write_split(dir, "train", split, meta);
  return hf::data::Dataset::open(dir, "train");
}

}  // namespace

TEST_CASE("train: collate pads to the longest example and maps labels") {
  hf::test::TempDir dir;
  const auto ds = three_examples(dir.path(), {{101, 7, 102}, {101, 8, 9, 10, 102}, {101, 102}});
  const std::vector<std::int64_t> idx = {2, 0, 1};
  const std::vector<std::int64_t> swap = {1, 0};
  const auto b = hf::train::collate(ds, idx, /*pad_token_id=*/0, swap);
  REQUIRE(b.input_ids.sizes() == torch::IntArrayRef({3, 5}));
  CHECK(b.examples == 3);
  CHECK(b.tokens == 10);
  CHECK(torch::equal(b.input_ids[0], torch::tensor({101, 102, 0, 0, 0}, torch::kLong)));
  CHECK(torch::equal(b.attention_mask[1], torch::tensor({1, 1, 1, 0, 0}, torch::kLong)));
  CHECK(torch::equal(b.labels, torch::tensor({0, 1, 0}, torch::kLong)));  // 1, 0, 1 mapped
  CHECK(b.token_type_ids.sum().item<std::int64_t>() == 0);
}

namespace {

// torch.optim.AdamW's update for one parameter, written out in double precision.
struct RefAdamW {
  std::vector<double> m, v;
  int t = 0;
  void step(std::vector<double>& p, const std::vector<double>& g, double lr, double wd) {
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    if (m.empty()) m.assign(p.size(), 0), v.assign(p.size(), 0);
    ++t;
    for (std::size_t i = 0; i < p.size(); ++i) {
      p[i] *= 1 - lr * wd;
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      const double mhat = m[i] / (1 - std::pow(b1, t));
      const double vhat = v[i] / (1 - std::pow(b2, t));
      p[i] -= lr * mhat / (std::sqrt(vhat) + eps);
    }
  }
};

std::vector<double> values(const torch::Tensor& t) {
  const torch::Tensor d = t.detach().to(torch::kDouble).contiguous().view(-1);
  return {d.data_ptr<double>(), d.data_ptr<double>() + d.numel()};
}

}  // namespace

TEST_CASE("train: AdamW matches the update rule, with no decay on biases and LayerNorm") {
  CHECK(hf::train::AdamW::no_decay("bert.encoder.layer.0.output.LayerNorm.weight"));
  CHECK(hf::train::AdamW::no_decay("classifier.bias"));
  CHECK(!hf::train::AdamW::no_decay("classifier.weight"));

  torch::manual_seed(0);
  torch::OrderedDict<std::string, torch::Tensor> params;
  params.insert("classifier.weight", torch::randn({3, 4}).requires_grad_());
  params.insert("classifier.bias", torch::randn({3}).requires_grad_());
  std::vector<double> w = values(params["classifier.weight"]), b = values(params["classifier.bias"]);
  RefAdamW rw, rb;
  hf::train::AdamW opt(params, {0.9, 0.999, 1e-8, /*weight_decay=*/0.1});
  for (int step = 0; step < 3; ++step) {
    const double lr = 0.01 * (step + 1);
    const torch::Tensor gw = torch::randn({3, 4}), gb = torch::randn({3});
    params["classifier.weight"].mutable_grad() = gw.clone();
    params["classifier.bias"].mutable_grad() = gb.clone();
    opt.step(lr);
    rw.step(w, values(gw), lr, 0.1);
    rb.step(b, values(gb), lr, 0.0);
  }
  CHECK(opt.steps() == 3);
  const auto got_w = values(params["classifier.weight"]), got_b = values(params["classifier.bias"]);
  double max_diff = 0;
  for (std::size_t i = 0; i < w.size(); ++i) max_diff = std::max(max_diff, std::abs(got_w[i] - w[i]));
  for (std::size_t i = 0; i < b.size(); ++i) max_diff = std::max(max_diff, std::abs(got_b[i] - b[i]));
  MESSAGE("AdamW max |diff| vs reference: " << max_diff << " (tolerance 1e-6)");
  CHECK(max_diff < 1e-6);
}

TEST_CASE("train: AdamW state survives save + load exactly") {
  hf::test::TempDir dir;
  torch::manual_seed(1);
  auto make = [] {
    torch::OrderedDict<std::string, torch::Tensor> p;
    p.insert("a.weight", torch::randn({5, 2}).requires_grad_());
    p.insert("a.bias", torch::randn({5}).requires_grad_());
    return p;
  };
  auto p1 = make();
  torch::OrderedDict<std::string, torch::Tensor> p2;
  for (const auto& kv : p1) p2.insert(kv.key(), kv.value().detach().clone().requires_grad_());
  hf::train::AdamW o1(p1, {0.9, 0.999, 1e-8, 0.01});
  auto grads = [](torch::OrderedDict<std::string, torch::Tensor>& p, int seed) {
    torch::manual_seed(seed);
    for (auto& kv : p) kv.value().mutable_grad() = torch::randn(kv.value().sizes());
  };
  for (int s = 0; s < 2; ++s) {
    grads(p1, 10 + s);
    o1.step(0.1);
  }
  o1.save(dir.file("opt.safetensors"));
  // A second optimizer over parameters with the same values, state restored from the file.
  for (auto& kv : p2) kv.value().detach().copy_(p1[kv.key()].detach());
  hf::train::AdamW o2(p2, {0.9, 0.999, 1e-8, 0.01});
  o2.load(dir.file("opt.safetensors"));
  CHECK(o2.steps() == 2);
  grads(p1, 20);
  grads(p2, 20);
  o1.step(0.05);
  o2.step(0.05);
  for (const auto& kv : p1) CHECK(torch::equal(kv.value(), p2[kv.key()]));

  // Another model's state is refused.
  torch::OrderedDict<std::string, torch::Tensor> other;
  other.insert("b.weight", torch::randn({5, 2}).requires_grad_());
  hf::train::AdamW o3(other, {});
  CHECK_THROWS_AS(o3.load(dir.file("opt.safetensors")), hf::Error);
  std::ofstream(dir.file("bad.safetensors")) << "not a safetensors file";
  try {
    o3.load(dir.file("bad.safetensors"));
    FAIL("corrupt state accepted");
  } catch (const hf::Error& e) {
    CHECK(e.kind() == hf::ErrorKind::kDataErr);
  }
}

TEST_CASE("train: checkpoint listing and rotation") {
  namespace fs = std::filesystem;
  hf::test::TempDir dir;
  for (int step : {10, 20, 30, 40}) {
    fs::create_directories(dir.file("checkpoint-" + std::to_string(step)));
    std::ofstream(dir.file("checkpoint-" + std::to_string(step) + "/.complete")) << step;
  }
  fs::create_directories(dir.file("checkpoint-50"));        // no marker: does not exist
  fs::create_directories(dir.file(".checkpoint-60.tmp"));   // temp
  fs::create_directories(dir.file("checkpoint-x"));
  const auto all = hf::train::list_checkpoints(dir.path());
  REQUIRE(all.size() == 4);
  CHECK(all.front().step == 10);
  CHECK(all.back().step == 40);

  auto steps = [](const std::vector<hf::train::CheckpointRef>& v) {
    std::vector<std::int64_t> s;
    for (const auto& c : v) s.push_back(c.step);
    return s;
  };
  using V = std::vector<std::int64_t>;
  CHECK(steps(hf::train::checkpoints_to_delete(all, 0, "")) == V{});
  CHECK(steps(hf::train::checkpoints_to_delete(all, 4, "")) == V{});
  CHECK(steps(hf::train::checkpoints_to_delete(all, 2, "")) == V{10, 20});
  CHECK(steps(hf::train::checkpoints_to_delete(all, 2, dir.file("checkpoint-10"))) == V{20, 30});
  // Limit 1 still keeps the best and the newest.
  CHECK(steps(hf::train::checkpoints_to_delete(all, 1, dir.file("checkpoint-20"))) == V{10, 30});
  CHECK(steps(hf::train::checkpoints_to_delete(all, 1, dir.file("checkpoint-40"))) == V{10, 20, 30});
}

TEST_CASE("train: token ids outside the model's vocabulary are refused, naming the example") {
  hf::test::TempDir dir;
  const auto ds = three_examples(dir.path(), {{1, 7, 2}, {1, 8, 99, 2}, {1, 2}});
  CHECK_NOTHROW(hf::train::check_token_ids(ds, "train.safetensors", 100, 2));
  try {
    hf::train::check_token_ids(ds, "train.safetensors", 99, 2);  // id 99 is one past the end
    FAIL("id 99 accepted with vocab_size 99");
  } catch (const hf::Error& e) {
    CHECK(e.kind() == hf::ErrorKind::kDataErr);
    const std::string what = e.what();
    CAPTURE(what);
    CHECK(what.find("train.safetensors") != std::string::npos);
    CHECK(what.find("example 1 ") != std::string::npos);
    CHECK(what.find("id 99") != std::string::npos);
  }
}

TEST_CASE("train: a checkpoint is complete only when its files are there as written") {
  namespace fs = std::filesystem;
  hf::test::TempDir dir;
  for (const char* name : {"config.json", "model.safetensors", "optimizer.safetensors", "rng_state.safetensors",
                           "scheduler.json", "trainer_state.json"})
    std::ofstream(dir.file(name)) << name;
  const auto written = hf::train::file_sizes(dir.path());
  CHECK(written.size() == 6);
  CHECK_NOTHROW(hf::train::verify_files(dir.path(), written));
  std::ofstream(dir.file("model.safetensors"), std::ios::trunc) << "x";  // another writer truncated it
  CHECK_THROWS_AS(hf::train::verify_files(dir.path(), written), hf::Error);
  fs::remove(dir.file("model.safetensors"));
  CHECK_THROWS_AS(hf::train::verify_files(dir.path(), written), hf::Error);
  auto partial = written;
  partial.erase("optimizer.safetensors");  // never written at all
  std::ofstream(dir.file("model.safetensors")) << "model.safetensors";
  CHECK_THROWS_AS(hf::train::verify_files(dir.path(), partial), hf::Error);
}

TEST_CASE("train: one writer per output directory") {
  hf::test::TempDir dir;
  {
    hf::train::OutputLock first(dir.path());
    try {
      hf::train::OutputLock second(dir.path());
      FAIL("a second lock on the same directory was granted");
    } catch (const hf::Error& e) {
      CHECK(e.kind() == hf::ErrorKind::kTempFail);
      const std::string what = e.what();
      CAPTURE(what);
      CHECK(what.find("pid " + std::to_string(::getpid())) != std::string::npos);
      CHECK(what.find("host ") != std::string::npos);
    }
  }
  CHECK_NOTHROW(hf::train::OutputLock(dir.path()));  // released with its holder
  CHECK(std::filesystem::exists(dir.file(hf::train::OutputLock::kLockFile)));  // never deleted
}

TEST_CASE("train: remote rotation keeps what save_total_limit keeps") {
  auto remote = [](std::vector<std::int64_t> steps) {
    std::vector<hf::storage::RemoteCheckpoint> out;
    for (auto s : steps) out.push_back({hf::train::checkpoint_name(s), s, {}});
    return out;
  };
  using S = std::vector<std::string>;
  const auto all = remote({10, 20, 30, 40});
  CHECK(hf::train::keep_policy(2, {})(all) == S{"checkpoint-30", "checkpoint-40"});
  CHECK(hf::train::keep_policy(2, [] { return std::string("checkpoint-10"); })(all) ==
        S{"checkpoint-10", "checkpoint-40"});
  CHECK(hf::train::keep_policy(1, [] { return std::string("checkpoint-40"); })(all) == S{"checkpoint-40"});
  CHECK(hf::train::keep_policy(0, {})(all).size() == 4);
  const auto layout = hf::train::checkpoint_layout();
  CHECK(layout.marker == ".complete");
  CHECK(layout.step_of("checkpoint-120") == std::optional<std::int64_t>(120));
  CHECK(!layout.step_of("checkpoint-").has_value());
  CHECK(!layout.step_of("checkpoint-1x").has_value());
  CHECK(!layout.step_of("final").has_value());
}
