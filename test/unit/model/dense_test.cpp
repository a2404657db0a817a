// hf::model::Dense: fp32 equals torch::nn::Linear's formula; int8 (fbgemm dynamic) stays within the
// error per-channel int8 weights and 7-bit per-batch activations allow; the refusals and their kinds.
#include <cmath>

#include "core/error.h"
#include "model/dense.h"
#include "model/bert.h"
#undef CHECK  // libtorch's c10 logging defines its own CHECK; doctest's must win in this file.
#include <doctest/doctest.h>

using hf::Error;
using hf::ErrorKind;
using hf::model::Dense;

namespace {
template <class F>
ErrorKind kind_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.kind();
  }
  FAIL("no error");
  return ErrorKind::kInternal;
}
}  // namespace

TEST_CASE("dense: fp32 is x W^T + b and int8 stays close to it, with one scale per output row") {
  torch::manual_seed(0);
  Dense d(64, 48);
  d->eval();
  // Rows of very different magnitude: a per-tensor scale would flatten the small ones to zero.
  {
    torch::NoGradGuard no_grad;
    d->weight.mul_(torch::logspace(-3, 0, 48).unsqueeze(1));
  }
  const torch::Tensor x = torch::randn({5, 7, 64});
  const torch::Tensor ref = torch::matmul(x, d->weight.t()) + d->bias;  // [5, 7, 48]
  c10::InferenceMode guard;
  CHECK(torch::allclose(d(x), ref, /*rtol=*/1e-5, /*atol=*/1e-6));
  d->quantize_int8();
  d->quantize_int8();  // idempotent
  CHECK(d->quantized());
  const torch::Tensor y = d(x);
  CHECK((y.sizes() == ref.sizes()));
  CHECK((y.scalar_type() == torch::kFloat));
  // Relative error per output channel: int8 weights (2^-8 of the row's range) and 7-bit activations.
  const torch::Tensor err = (y - ref).abs().amax({0, 1}) / ref.abs().amax({0, 1});  // [48]
  MESSAGE("int8 worst relative error per channel: ", err.max().item<double>());
  CHECK(err.max().item<double>() < 0.05);
  CHECK(err.max().item<double>() > 0);  // it really ran the int8 kernel
}

TEST_CASE("dense: quantize refuses training mode, and a quantized layer refuses train(true)") {
  Dense d(8, 4);
  CHECK(kind_of([&] { d->quantize_int8(); }) == ErrorKind::kConfig);  // modules start in training mode
  d->eval();
  d->quantize_int8();
  CHECK(kind_of([&] { d->train(); }) == ErrorKind::kConfig);
  d->eval();  // train(false) stays allowed
}

TEST_CASE("dense: quantize parses none and int8 and refuses anything else as a usage error") {
  CHECK(hf::model::parse_quantization("none") == hf::model::Quantization::kNone);
  CHECK(hf::model::parse_quantization("int8") == hf::model::Quantization::kInt8);
  CHECK(kind_of([] { hf::model::parse_quantization("int4"); }) == ErrorKind::kUsage);
  CHECK(kind_of([] { hf::model::parse_quantization("INT8"); }) == ErrorKind::kUsage);
}

TEST_CASE("dense: a BERT's quantize touches the encoder only and its forward stays close to fp32") {
  hf::model::BertConfig c;
  c.vocab_size = 100;
  c.hidden_size = 32;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.intermediate_size = 64;
  c.max_position_embeddings = 16;
  torch::manual_seed(1);
  hf::model::BertForSequenceClassification m(c);
  m->eval();
  const torch::Tensor ids = torch::randint(1, 100, {3, 10});
  torch::Tensor mask = torch::ones({3, 10}, torch::kLong);
  mask.index_put_({1, torch::indexing::Slice(6)}, 0);  // padding: the packed layout
  c10::InferenceMode guard;
  const torch::Tensor ref = m(ids, mask);
  m->quantize(hf::model::Quantization::kInt8);
  int quantized = 0, fp32 = 0;
  for (const auto& mod : m->modules())
    if (auto* d = mod->as<hf::model::DenseImpl>()) d->quantized() ? ++quantized : ++fp32;
  CHECK(quantized == 2 * 6);  // query, key, value, attention output, intermediate, output per layer
  CHECK(fp32 == 2);           // pooler and classifier
  const torch::Tensor got = m(ids, mask);
  MESSAGE("tiny BERT int8 max |logit diff|: ", (got - ref).abs().max().item<double>());
  CHECK((got - ref).abs().max().item<double>() < 0.05 * ref.abs().max().item<double>() + 1e-3);
  CHECK(kind_of([&] { m->train(); }) == ErrorKind::kConfig);
}
