// data: split specs, deterministic/stratified split assignment, dataset write + mmap read.
#include <doctest/doctest.h>

#include <map>

#include "core/error.h"
#include "data/data.h"
#include "support/temp_dir.h"

using hf::data::assign_splits;
using hf::data::parse_split_spec;

TEST_CASE("split spec: good and bad") {
  auto s = parse_split_spec("train=0.8,validation=0.1,test=0.1");
  REQUIRE(s.size() == 3);
  CHECK(s[0].first == "train");
  CHECK(s[2].second == doctest::Approx(0.1));
  CHECK(parse_split_spec("all=1").size() == 1);
  for (const char* bad : {"", "train", "=0.5", "a=0.5", "a=0.5,b=0.6", "a=x,b=1", "a=0.5,a=0.5", "a=-1,b=2", "a=1.0z"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(parse_split_spec(bad), hf::Error);
  }
}

TEST_CASE("split assignment: sizes sum to n, deterministic, seed-dependent") {
  std::vector<double> f = {0.8, 0.1, 0.1};
  for (std::size_t n : {0u, 1u, 7u, 10u, 1001u}) {
    auto a = assign_splits(n, f, 42);
    auto b = assign_splits(n, f, 42);
    CHECK(a == b);
    std::map<int, std::size_t> counts;
    for (int s : a) counts[s]++;
    std::size_t total = 0;
    for (auto& [k, v] : counts) total += v;
    CHECK(total == n);
    if (n == 1001) {
      CHECK(counts[0] == 801);  // 800.8 -> 800 + the largest remainder
      CHECK(counts[1] == 100);
      CHECK(counts[2] == 100);
      CHECK(a != assign_splits(n, f, 43));
    }
  }
}

TEST_CASE("split assignment: stratified keeps proportions per stratum") {
  std::vector<int> strata;
  for (int i = 0; i < 300; ++i) strata.push_back(i < 100 ? 0 : 1);  // 1:2 imbalance
  auto a = assign_splits(strata.size(), {0.5, 0.5}, 7, &strata);
  std::map<std::pair<int, int>, int> counts;
  for (std::size_t i = 0; i < a.size(); ++i) counts[{strata[i], a[i]}]++;
  CHECK(counts[{0, 0}] == 50);
  CHECK(counts[{0, 1}] == 50);
  CHECK(counts[{1, 0}] == 100);
  CHECK(counts[{1, 1}] == 100);
}

TEST_CASE("dataset: write then mmap-read round trip, and corrupt metadata is rejected") {
  hf::test::TempDir dir;
  hf::data::SplitData d;
  hf::data::DatasetMeta meta;
  meta.label_names = {"neg", "pos"};
  meta.has_pairs = true;
  meta.tokenizer_sha256 = "t";
  meta.source_sha256 = "s";
  meta.max_length = 16;
  std::vector<std::vector<std::int32_t>> seqs = {{101, 5, 102}, {101, 102}, {101, 7, 8, 9, 102}};
  for (std::size_t i = 0; i < seqs.size(); ++i) {
    d.input_ids.insert(d.input_ids.end(), seqs[i].begin(), seqs[i].end());
    for (std::size_t k = 0; k < seqs[i].size(); ++k) d.token_type_ids.push_back(k > 1 ? 1 : 0);
    d.offsets.push_back(static_cast<std::int64_t>(d.input_ids.size()));
    d.labels.push_back(static_cast<std::int64_t>(i % 2));
  }
  hf::data::write_split(dir.path(), "train", d, meta);
  auto ds = hf::data::Dataset::open(dir.path(), "train");
  REQUIRE(ds.size() == 3);
  for (std::size_t i = 0; i < seqs.size(); ++i) {
    auto ids = ds.input_ids(i);
    CHECK(std::vector<std::int32_t>(ids.begin(), ids.end()) == seqs[i]);
    CHECK(ds.token_type_ids(i).size() == seqs[i].size());
    CHECK(ds.label(i) == static_cast<std::int64_t>(i % 2));
  }
  CHECK(ds.meta().label_names == meta.label_names);
  CHECK(ds.meta().max_length == 16);
  CHECK(ds.meta().has_pairs);

  // A label index outside the label list is rejected on open.
  d.labels[1] = 5;
  hf::data::write_split(dir.path(), "bad", d, meta);
  CHECK_THROWS_AS(hf::data::Dataset::open(dir.path(), "bad"), hf::Error);
  try {
    hf::data::Dataset::open(dir.path(), "missing");
    FAIL("expected an error");
  } catch (const hf::Error& e) {
    CHECK(e.kind() == hf::ErrorKind::kNoInput);
  }
}

TEST_CASE("split spec: names become file names, so only identifiers pass") {
  CHECK(parse_split_spec("train-1=0.5,v.2=0.5").size() == 2);
  for (const char* bad : {"../x=1", "a/b=1", ".hidden=1", "..=1", "a b=1", "train=0.5,../../etc/x=0.5"}) {
    CAPTURE(bad);
    try {
      parse_split_spec(bad);
      FAIL("expected an error");
    } catch (const hf::Error& e) {
      CHECK(e.kind() == hf::ErrorKind::kUsage);
      CHECK(std::string(e.what()).find("bad split name") != std::string::npos);
    }
  }
}

TEST_CASE("dataset: run ids round-trip and check_same_run refuses splits of different runs") {
  hf::test::TempDir dir;
  hf::data::SplitData d;
  d.input_ids = {101, 102};
  d.offsets = {0, 2};
  d.labels = {0};
  hf::data::DatasetMeta meta;
  meta.label_names = {"a", "b"};
  meta.tokenizer_sha256 = "t";
  meta.source_sha256 = "s";
  meta.run_id = "run-1";
  hf::data::write_split(dir.path(), "train", d, meta);
  hf::data::write_split(dir.path(), "validation", d, meta);
  meta.run_id = "run-2";
  hf::data::write_split(dir.path(), "test", d, meta);
  meta.run_id.clear();  // datasets from before run ids
  hf::data::write_split(dir.path(), "old1", d, meta);
  hf::data::write_split(dir.path(), "old2", d, meta);
  meta.source_sha256 = "other";
  hf::data::write_split(dir.path(), "old3", d, meta);
  auto open = [&](const char* s) { return hf::data::Dataset::open(dir.path(), s); };
  const auto train = open("train"), validation = open("validation"), test = open("test");
  const auto old1 = open("old1"), old2 = open("old2"), old3 = open("old3");
  CHECK(train.meta().run_id == "run-1");
  CHECK(old1.meta().run_id.empty());
  using Splits = std::vector<const hf::data::Dataset*>;
  CHECK_NOTHROW(hf::data::check_same_run(Splits{&train, &validation}));
  CHECK_NOTHROW(hf::data::check_same_run(Splits{&old1, &old2}));
  CHECK_NOTHROW(hf::data::check_same_run(Splits{&test}));
  for (const Splits& mixed : {Splits{&train, &test}, Splits{&train, &validation, &test}, Splits{&old1, &old3},
                              Splits{&train, &old1}}) {
    try {
      hf::data::check_same_run(mixed);
      FAIL("expected an error");
    } catch (const hf::Error& e) {
      CHECK(e.kind() == hf::ErrorKind::kDataErr);
      CHECK(std::string(e.what()).find("different hf-preprocess run") != std::string::npos);
      CHECK(std::string(e.what()).find(".safetensors") != std::string::npos);
    }
  }
}
