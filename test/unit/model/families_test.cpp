// The family-neutral model API without Python: dispatch on model_type (and its refusals), each
// family's HF parameter names, and padded batches equal to each text alone for every family.
#include <algorithm>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/model.h"
#include "support/temp_dir.h"
// libtorch's c10 logging defines its own CHECK; doctest's must win in this file.
#undef CHECK
#include <doctest/doctest.h>

using hf::model::ModelConfig;
using Json = nlohmann::ordered_json;

namespace {

// A tiny config of each family (vocab 50, hidden 8, 1 layer, 2 heads; ModernBERT: 3 layers, the
// middle one a sliding window of +-2 tokens).
Json tiny(const std::string& model_type) {
  if (model_type == "modernbert")
    return {{"model_type", "modernbert"},   {"vocab_size", 50},          {"hidden_size", 8},
            {"num_hidden_layers", 3},       {"num_attention_heads", 2},  {"intermediate_size", 12},
            {"max_position_embeddings", 18}, {"pad_token_id", 0},         {"global_attn_every_n_layers", 2},
            {"local_attention", 4},         {"local_rope_theta", 20.0}};
  if (model_type == "distilbert")
    return {{"model_type", "distilbert"}, {"vocab_size", 50}, {"dim", 8},          {"n_layers", 1},
            {"n_heads", 2},               {"hidden_dim", 16}, {"max_position_embeddings", 16}};
  Json j = {{"model_type", model_type},    {"vocab_size", 50},       {"hidden_size", 8},
            {"num_hidden_layers", 1},      {"num_attention_heads", 2}, {"intermediate_size", 16},
            {"max_position_embeddings", 18}, {"type_vocab_size", 2}};
  if (model_type == "electra") j["embedding_size"] = 4;
  if (model_type == "deberta-v2")  // DeBERTa-v3's options; 4 buckets: distances over 2 are log-bucketed
    j.update({{"relative_attention", true}, {"pos_att_type", {"p2c", "c2p"}}, {"position_buckets", 4},
              {"share_att_key", true}, {"norm_rel_ebd", "layer_norm"}, {"position_biased_input", false}});
  return j;
}

std::vector<std::string> names_of(const hf::model::SequenceClassifier& m) {
  std::vector<std::string> names;
  for (const auto& p : m.named_parameters()) names.push_back(p.key());
  return names;
}

bool has(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// For a model whose dropouts are all 0, so that training mode computes the same function the way
// HF does (every row, every layer in full): eval mode's logits equal training mode's on three
// random texts of 1, 6 and 18 tokens, one of them right-padded. Weights are redrawn N(0, 0.5): HF's
// 0.02 leaves attention nearly uniform, too flat to tell a wrong position or mask row apart.
void check_eval_equals_training(hf::model::SequenceClassifier& m, double atol) {
  torch::NoGradGuard no_grad;
  for (auto& p : m.parameters()) p.normal_(0.0, 0.5);
  for (std::int64_t t : {1, 6, 18}) {
    CAPTURE(t);
    const torch::Tensor ids = torch::randint(1, 50, {3, t}, torch::kLong);
    torch::Tensor mask = torch::ones({3, t}, torch::kLong);
    mask[1].slice(0, (t + 1) / 2).fill_(0);  // one padded text
    m.train();
    const torch::Tensor full = m.forward(ids, mask);
    m.eval();
    const torch::Tensor eval = m.forward(ids, mask);
    CHECK(torch::allclose(eval, full, /*rtol=*/1e-5, atol));
  }
}

}  // namespace

TEST_CASE("families: model_type picks the family and its HF names") {
  struct Case {
    const char* model_type;
    const char* prefix;
    const char* label_layer;
    std::vector<std::string> some;  // keys transformers' *ForSequenceClassification has
  };
  const Case cases[] = {
      {"distilbert", "distilbert.", "classifier",
       {"distilbert.embeddings.word_embeddings.weight", "distilbert.embeddings.LayerNorm.bias",
        "distilbert.transformer.layer.0.attention.q_lin.weight", "distilbert.transformer.layer.0.attention.out_lin.bias",
        "distilbert.transformer.layer.0.sa_layer_norm.weight", "distilbert.transformer.layer.0.ffn.lin1.weight",
        "distilbert.transformer.layer.0.ffn.lin2.bias", "distilbert.transformer.layer.0.output_layer_norm.weight",
        "pre_classifier.weight", "classifier.bias"}},
      {"roberta", "roberta.", "classifier.out_proj",
       {"roberta.embeddings.position_embeddings.weight", "roberta.encoder.layer.0.attention.self.query.weight",
        "roberta.encoder.layer.0.output.LayerNorm.bias", "classifier.dense.weight", "classifier.out_proj.bias"}},
      {"xlm-roberta", "roberta.", "classifier.out_proj",
       {"roberta.embeddings.token_type_embeddings.weight", "classifier.out_proj.weight"}},
      {"electra", "electra.", "classifier.out_proj",
       {"electra.embeddings.word_embeddings.weight", "electra.embeddings_project.weight",
        "electra.encoder.layer.0.intermediate.dense.weight", "classifier.dense.bias", "classifier.out_proj.weight"}},
      {"deberta-v2", "deberta.", "classifier",
       {"deberta.embeddings.word_embeddings.weight", "deberta.embeddings.token_type_embeddings.weight",
        "deberta.encoder.layer.0.attention.self.query_proj.weight", "deberta.encoder.layer.0.attention.self.key_proj.bias",
        "deberta.encoder.layer.0.attention.output.LayerNorm.weight", "deberta.encoder.rel_embeddings.weight",
        "deberta.encoder.LayerNorm.bias", "pooler.dense.weight", "classifier.bias"}},
      {"modernbert", "model.", "classifier",
       {"model.embeddings.tok_embeddings.weight", "model.embeddings.norm.weight", "model.layers.0.attn.Wqkv.weight",
        "model.layers.0.attn.Wo.weight", "model.layers.0.mlp_norm.weight", "model.layers.0.mlp.Wi.weight",
        "model.layers.0.mlp.Wo.weight", "model.layers.1.attn_norm.weight", "model.final_norm.weight",
        "head.dense.weight", "head.norm.weight", "classifier.weight", "classifier.bias"}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.model_type);
    const auto config = ModelConfig::from_json(tiny(c.model_type), "config.json");
    CHECK(config->model_type == c.model_type);
    const auto m = config->make_model();
    CHECK(std::string(m->base_prefix()) == c.prefix);
    CHECK(std::string(m->label_layer()) == c.label_layer);
    const auto names = names_of(*m);
    for (const auto& n : c.some) CHECK_MESSAGE(has(names, n), n);
    CHECK(!has(names, std::string(c.prefix) + "pooler.dense.weight"));  // no pooler outside BERT
    const Json saved = config->to_json();
    CHECK(saved["model_type"].get<std::string>() == c.model_type);
    const bool round_trips = ModelConfig::from_json(saved, "again")->to_json() == saved;
    CHECK(round_trips);
  }
  // RoBERTa's positions start after padding_idx (default 1): 18 positions hold 16 tokens.
  CHECK(ModelConfig::from_json(tiny("roberta"), "c")->max_length() == 16);
  CHECK(ModelConfig::from_json(tiny("distilbert"), "c")->type_vocab_size == 0);
  Json same = tiny("electra");
  same["embedding_size"] = 8;
  CHECK(!has(names_of(*ModelConfig::from_json(same, "c")->make_model()), "electra.embeddings_project.weight"));
}

TEST_CASE("families: unknown model types and unsupported options are config errors naming them") {
  struct Bad {
    Json j;
    std::vector<std::string> words;
  };
  Json sinusoidal = tiny("distilbert");
  sinusoidal["sinusoidal_pos_embds"] = true;
  Json relative = tiny("roberta");
  relative["position_embedding_type"] = "relative_key";
  Json heads = tiny("distilbert");
  heads["n_heads"] = 3;
  const Bad bad[] = {{{{"model_type", "gpt2"}}, {"model_type", "'gpt2' is not supported (supported: bert"}},
                     {{{"model_type", "deberta"}}, {"'deberta' is not supported yet"}},
                     {sinusoidal, {"sinusoidal_pos_embds"}},
                     {relative, {"position_embedding_type", "relative_key"}},
                     {heads, {"n_heads"}}};
  for (const Bad& b : bad) {
    CAPTURE(b.j.dump());
    try {
      ModelConfig::from_json(b.j, "cfg.json");
      FAIL("no error");
    } catch (const hf::Error& e) {
      CHECK(e.kind() == hf::ErrorKind::kConfig);
      const std::string what = e.what();
      CHECK(what.find("cfg.json") != std::string::npos);
      for (const auto& w : b.words) CHECK_MESSAGE(what.find(w) != std::string::npos, what);
    }
  }
}

TEST_CASE("families: a padded batch equals each text alone, and saved directories load back") {
  for (const char* family : {"distilbert", "roberta", "xlm-roberta", "electra", "deberta-v2", "modernbert"}) {
    CAPTURE(family);
    torch::manual_seed(11);
    const auto m = ModelConfig::from_json(tiny(family), "config.json")->make_model();
    m->eval();
    const std::int64_t pad = m->config().pad_token_id;
    const std::vector<std::vector<std::int64_t>> texts = {{2, 9, 4, 7, 3}, {2, 3}, {2, 11, 12, 13, 14, 15, 3}};
    const std::int64_t t = 7;
    torch::Tensor ids = torch::full({3, t}, pad, torch::kLong), mask = torch::zeros({3, t}, torch::kLong);
    for (std::size_t i = 0; i < texts.size(); ++i)
      for (std::size_t k = 0; k < texts[i].size(); ++k) {
        ids[static_cast<std::int64_t>(i)][static_cast<std::int64_t>(k)] = texts[i][k];
        mask[static_cast<std::int64_t>(i)][static_cast<std::int64_t>(k)] = 1;
      }
    torch::NoGradGuard no_grad;
    const torch::Tensor batch = m->forward(ids, mask);
    for (std::size_t i = 0; i < texts.size(); ++i) {
      const torch::Tensor one = m->forward(torch::tensor(texts[i]).unsqueeze(0));
      CHECK_MESSAGE(torch::allclose(batch[static_cast<std::int64_t>(i)], one[0], /*rtol=*/1e-5, /*atol=*/1e-6),
                    "text ", i);
    }
    CHECK_THROWS_AS(m->forward(torch::full({1, 19}, 5, torch::kLong)), hf::Error);  // beyond the positions
    hf::test::TempDir dir;
    hf::model::save_pretrained(*m, dir.path());
    hf::model::LoadReport report;
    const auto back = hf::model::from_pretrained(dir.path(), {}, &report);
    CHECK(report.missing.empty());
    CHECK(report.unexpected.empty());
    CHECK(back->config().model_type == family);
    const bool same = torch::equal(back->forward(ids, mask), batch);
    CHECK(same);
  }
}

TEST_CASE("families: deberta-v2 inference (positions a batch reaches, first-token last layer) equals training's path") {
  // Dropout 0, so training mode computes the same function the way HF does: every row of
  // rel_embeddings, broadcasting products, the full last layer. Eval mode keeps the rows the batch
  // reaches and runs the last layer for query position 0 only; a wrong slice, offset or query row
  // changes the logits. Lengths 1 (one position), 6 and 18 (past the buckets and
  // the clamp at max_relative_positions).
  Json v3 = tiny("deberta-v2");
  Json c2p_only = tiny("deberta-v2");
  c2p_only.update({{"pos_att_type", {"c2p"}}, {"position_buckets", -1}, {"max_relative_positions", 3},
                   {"share_att_key", false}, {"norm_rel_ebd", "none"}});
  Json p2c_only = tiny("deberta-v2");
  p2c_only.update({{"pos_att_type", {"p2c"}}, {"position_buckets", 8}, {"max_relative_positions", 10}});
  for (Json config : {v3, c2p_only, p2c_only}) {
    config.update({{"hidden_dropout_prob", 0.0}, {"attention_probs_dropout_prob", 0.0}, {"pooler_dropout", 0.0}});
    CAPTURE(config.dump());
    torch::manual_seed(5);
    check_eval_equals_training(*ModelConfig::from_json(config, "config.json")->make_model(), 1e-6);
  }
}

TEST_CASE("families: deberta-v2 options decide its modules, and what hfkit lacks is refused") {
  const auto names = [](const Json& j) { return names_of(*ModelConfig::from_json(j, "config.json")->make_model()); };
  const std::string self = "deberta.encoder.layer.0.attention.self.";
  Json v3 = tiny("deberta-v2");
  std::vector<std::string> n = names(v3);
  CHECK(!has(n, "deberta.embeddings.position_embeddings.weight"));  // position_biased_input false
  CHECK(!has(n, self + "pos_key_proj.weight"));                      // share_att_key: key_proj serves
  CHECK(!has(n, "deberta.embeddings.embed_proj.weight"));
  // 2 x position_buckets rows of relative embeddings.
  const auto m = ModelConfig::from_json(v3, "c")->make_model();
  CHECK(m->named_parameters()["deberta.encoder.rel_embeddings.weight"].sizes() == torch::IntArrayRef({8, 8}));

  Json separate = v3;
  separate.update({{"share_att_key", false}, {"pos_att_type", "C2P"}, {"position_biased_input", true},
                   {"type_vocab_size", 0}, {"norm_rel_ebd", "none"}, {"embedding_size", 4}, {"position_buckets", -1},
                   {"max_relative_positions", 5}, {"conv_kernel_size", 0}, {"pooler_hidden_size", 8}});
  n = names(separate);
  CHECK(has(n, self + "pos_key_proj.bias"));
  CHECK(!has(n, self + "pos_query_proj.weight"));  // "C2P": the old string form, lower-cased as HF does
  CHECK(has(n, "deberta.embeddings.position_embeddings.weight"));
  CHECK(!has(n, "deberta.embeddings.token_type_embeddings.weight"));
  CHECK(has(n, "deberta.embeddings.embed_proj.weight"));
  CHECK(!has(n, "deberta.embeddings.embed_proj.bias"));  // HF's Linear(bias=False)
  CHECK(!has(n, "deberta.encoder.LayerNorm.weight"));
  const auto c = ModelConfig::from_json(separate, "c");
  CHECK(c->make_model()->named_parameters()["deberta.encoder.rel_embeddings.weight"].size(0) == 10);
  const Json saved = c->to_json();
  CHECK(saved["pos_att_type"] == Json::array({"c2p"}));
  CHECK(saved["conv_kernel_size"] == 0);  // checked, then kept as given
  CHECK(saved["pooler_hidden_size"] == 8);
  CHECK(saved["architectures"] == Json::array({"DebertaV2ForSequenceClassification"}));

  Json plain = {{"model_type", "deberta-v2"}};  // DebertaV2Config's defaults
  const auto d = ModelConfig::from_json(plain, "c");
  CHECK(d->type_vocab_size == 0);
  CHECK(d->vocab_size == 128100);
  CHECK(d->to_json()["layer_norm_eps"] == 1e-7);
  CHECK(d->to_json()["relative_attention"] == false);

  const std::pair<Json, std::string> bad[] = {
      {{{"conv_kernel_size", 3}}, "conv_kernel_size"},     {{{"pos_att_type", {"c2p", "p2p"}}}, "'p2p'"},
      {{{"pos_att_type", 3}}, "pos_att_type"},             {{{"pooler_hidden_act", "nope"}}, "pooler_hidden_act"},
      {{{"attention_head_size", 2}}, "attention_head_size"}, {{{"pooler_hidden_size", 4}}, "pooler_hidden_size"},
      {{{"norm_rel_ebd", "layer_norm|x"}}, "norm_rel_ebd"},  {{{"position_buckets", 1}}, "position_buckets"},
      {{{"type_vocab_size", -1}}, "type_vocab_size"},       {{{"embedding_size", 0}}, "embedding_size"}};
  for (const auto& [patch, word] : bad) {
    Json j = v3;
    j.update(patch);
    CAPTURE(j.dump());
    try {
      ModelConfig::from_json(j, "cfg.json");
      FAIL("no error");
    } catch (const hf::Error& e) {
      CHECK(e.kind() == hf::ErrorKind::kConfig);
      CHECK_MESSAGE(std::string(e.what()).find(word) != std::string::npos, e.what());
    }
  }
}

TEST_CASE("families: modernbert has no bias, no layer-0 attn_norm and no token types unless asked") {
  const auto plain = ModelConfig::from_json(tiny("modernbert"), "config.json");
  CHECK(plain->type_vocab_size == 0);
  CHECK(plain->max_length() == 18);
  const auto names = names_of(*plain->make_model());
  CHECK(!has(names, "model.layers.0.attn_norm.weight"));  // Identity in HF
  CHECK(std::none_of(names.begin(), names.end(), [](const std::string& n) {
    return n.ends_with(".bias") && n != "classifier.bias";  // nn.Linear(bias=False), LayerNorm(bias=False)
  }));
  for (const auto& n : {"model.embeddings.norm.weight", "model.layers.1.attn_norm.weight", "model.final_norm.weight",
                        "head.norm.weight"}) {
    CAPTURE(n);
    CHECK(hf::model::is_layer_norm(n));  // no weight decay, initialised to 1
  }
  CHECK(!hf::model::is_layer_norm("model.layers.0.mlp.Wo.weight"));
  CHECK(!hf::model::is_layer_norm("normal.weight"));

  Json biased = tiny("modernbert");
  for (const char* key : {"attention_bias", "mlp_bias", "norm_bias", "classifier_bias"}) biased[key] = true;
  const auto with = names_of(*ModelConfig::from_json(biased, "config.json")->make_model());
  for (const auto& n : {"model.layers.0.attn.Wqkv.bias", "model.layers.0.attn.Wo.bias", "model.layers.0.mlp.Wi.bias",
                        "model.layers.0.mlp.Wo.bias", "model.embeddings.norm.bias", "head.dense.bias",
                        "head.norm.bias"}) {
    CAPTURE(n);
    CHECK(has(with, n));
  }
  // The layer pattern and thetas survive a save as layer_types / rope_parameters.
  const Json saved = plain->to_json();
  CHECK(saved["layer_types"] == Json::array({"full_attention", "sliding_attention", "full_attention"}));
  CHECK(saved["rope_parameters"]["sliding_attention"]["rope_theta"].get<double>() == 20.0);
  CHECK(saved["rope_parameters"]["full_attention"]["rope_theta"].get<double>() == 160000.0);
}

TEST_CASE("families: modernbert's first-token last layer (eval) equals the full layer (training), global or local") {
  // Dropout 0: training mode runs every layer in full. Three layers end on a global one, two on a
  // sliding-window one (global_attn_every_n_layers 2); 18 tokens reach past the +-2 window.
  for (std::int64_t n_layers : {3, 2}) {
    Json config = tiny("modernbert");
    config["num_hidden_layers"] = n_layers;
    CAPTURE(n_layers);
    torch::manual_seed(3);
    check_eval_equals_training(*ModelConfig::from_json(config, "config.json")->make_model(), 1e-5);
  }
}

TEST_CASE("families: modernbert's sliding window is what changes its local layers") {
  // One set of weights under three configs, on a 7-token text: a window of +-6 covers it, so the
  // local layers equal global ones; a window of +-2 must change the logits.
  Json wide = tiny("modernbert");
  wide["local_attention"] = 12;
  wide["local_rope_theta"] = 160000.0;  // the global theta, so only the window differs
  Json global = wide, narrow = wide;
  global["global_attn_every_n_layers"] = 1;
  narrow["local_attention"] = 4;
  torch::manual_seed(5);
  const auto m_wide = ModelConfig::from_json(wide, "c")->make_model();
  const auto m_global = ModelConfig::from_json(global, "c")->make_model();
  const auto m_narrow = ModelConfig::from_json(narrow, "c")->make_model();
  torch::NoGradGuard no_grad;
  for (const auto& m : {m_global, m_narrow}) {
    auto dst = m->named_parameters();
    for (const auto& p : m_wide->named_parameters()) dst[p.key()].copy_(p.value());
    m->eval();
  }
  m_wide->eval();
  const torch::Tensor ids = torch::tensor({2, 9, 4, 7, 3, 11, 12}).unsqueeze(0);
  const torch::Tensor a = m_wide->forward(ids), g = m_global->forward(ids), n = m_narrow->forward(ids);
  CHECK(torch::allclose(a, g, /*rtol=*/1e-5, /*atol=*/1e-6));
  CHECK((a - n).abs().max().item<double>() > 1e-4);
}
