"""hf::model's non-BERT families against transformers (fp32, CPU, eval mode): DistilBERT, RoBERTa,
XLM-RoBERTa, ELECTRA (with and without the embedding projection), DeBERTa-v2/v3 (relative
attention variants, and long inputs over its log buckets), ModernBERT (cls and mean pooling).

For each family a tiny random *ForSequenceClassification built by transformers from a small
*Config: logits on a padded batch within 1e-4, losses within 1e-5 (single-label, multi-label,
regression); in reverse, the directory hfkit saves loads in transformers with no missing or
unexpected keys and the same logits; a fresh hfkit model (--init) initialised as HF does; a bare
encoder (*Model, keys without the prefix) gets a fresh head. Unknown or not-yet-supported
model_type values and unsupported options exit 78 naming them.
"""
import json
import os

import torch
import transformers as tr

from hfkit_testlib import expect_error, main, run, tempdir

DRIVER = os.environ.get("HFKIT_MODEL_LOGITS", "build/test/golden/model/model_logits")
TOL = 1e-4
LOSS_TOL = 1e-5
MAX_DIFF = [0.0]
torch.set_grad_enabled(False)

VOCAB = 99
# initializer_range 0.2: activations well into the non-linear range, so a wrong activation shows.
COMMON = dict(vocab_size=VOCAB, max_position_embeddings=40, initializer_range=0.2)
BERTLIKE = dict(COMMON, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
# DeBERTa-v3's shape (microsoft/deberta-v3-base), small. Buckets 18 over 26 positions: HF's float32
# log/ceil puts distance 15 in bucket 13 where exact arithmetic says 14 (test_deberta_long_inputs).
DEBERTA_V3 = dict(BERTLIKE, max_position_embeddings=26, relative_attention=True, pos_att_type=["p2c", "c2p"],
                  position_buckets=18, max_relative_positions=-1, norm_rel_ebd="layer_norm", share_att_key=True,
                  position_biased_input=False, type_vocab_size=0)

# family -> (config class, classification class, bare encoder class, config kwargs, prefix, pad id)
FAMILIES = {
    "distilbert": (tr.DistilBertConfig, tr.DistilBertForSequenceClassification, tr.DistilBertModel,
                   dict(COMMON, dim=32, n_layers=2, n_heads=4, hidden_dim=37, activation="gelu"), "distilbert", 0),
    "roberta": (tr.RobertaConfig, tr.RobertaForSequenceClassification, tr.RobertaModel,
                dict(BERTLIKE, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                     max_position_embeddings=42), "roberta", 1),
    "xlm-roberta": (tr.XLMRobertaConfig, tr.XLMRobertaForSequenceClassification, tr.XLMRobertaModel,
                    dict(BERTLIKE, type_vocab_size=1, pad_token_id=1, max_position_embeddings=42,
                         hidden_act="gelu_new", classifier_dropout=0.3), "roberta", 1),
    "electra": (tr.ElectraConfig, tr.ElectraForSequenceClassification, tr.ElectraModel,
                dict(BERTLIKE, embedding_size=16, hidden_act="relu"), "electra", 0),
    "electra-no-projection": (tr.ElectraConfig, tr.ElectraForSequenceClassification, tr.ElectraModel,
                              dict(BERTLIKE, embedding_size=32), "electra", 0),
    "deberta-v2": (tr.DebertaV2Config, tr.DebertaV2ForSequenceClassification, tr.DebertaV2Model, DEBERTA_V3,
                   "deberta", 0),
    # Separate position projections, absolute positions and token types, c2p alone, no buckets
    # (a span of 6 < the batch's 12 tokens: clamped distances), other activations and cls_dropout.
    "deberta-v2-c2p": (tr.DebertaV2Config, tr.DebertaV2ForSequenceClassification, tr.DebertaV2Model,
                       dict(BERTLIKE, relative_attention=True, pos_att_type=["c2p"], share_att_key=False,
                            position_biased_input=True, type_vocab_size=2, position_buckets=-1,
                            max_relative_positions=6, hidden_act="gelu_new", pooler_hidden_act="tanh",
                            cls_dropout=0.2), "deberta", 0),
    # p2c alone with its own projection, buckets 8 over 20 distances, embed_proj (embedding_size 16).
    "deberta-v2-p2c": (tr.DebertaV2Config, tr.DebertaV2ForSequenceClassification, tr.DebertaV2Model,
                       dict(BERTLIKE, relative_attention=True, pos_att_type=["p2c"], share_att_key=False,
                            position_buckets=8, max_relative_positions=20, embedding_size=16), "deberta", 0),
    # No relative attention: pos_att_type still scales the scores; norm_rel_ebd's LayerNorm exists unused.
    "deberta-v2-absolute": (tr.DebertaV2Config, tr.DebertaV2ForSequenceClassification, tr.DebertaV2Model,
                            dict(BERTLIKE, relative_attention=False, pos_att_type=["c2p", "p2c"],
                                 norm_rel_ebd="layer_norm", type_vocab_size=2), "deberta", 0),
}
LENGTHS = [7, 12, 3, 12, 9]  # mixed lengths: padding in the batch


def make_batch(family, lengths=LENGTHS, seed=0):
    """Random ids (never the pad id) right-padded with the family's pad id; token types where the
    family has them."""
    pad = FAMILIES[family][5]
    g = torch.Generator().manual_seed(seed)
    t = max(lengths)
    ids = torch.full((len(lengths), t), pad, dtype=torch.long)
    mask = torch.zeros((len(lengths), t), dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(3, VOCAB, (n,), generator=g)
        mask[i, :n] = 1
    b = {"input_ids": ids.tolist(), "attention_mask": mask.tolist()}
    if family.startswith("electra") or FAMILIES[family][3].get("type_vocab_size", 0) > 1:  # a text pair in row 1
        types = torch.zeros_like(ids)
        types[1, 6:12] = 1
        b["token_type_ids"] = types.tolist()
    return b


def build(family, out, seed=0, **overrides):
    config_cls, model_cls = FAMILIES[family][:2]
    torch.manual_seed(seed)
    model_cls(config_cls(**dict(FAMILIES[family][3], **overrides))).save_pretrained(out)
    return out


def hf_model(path):
    return tr.AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32).eval()


def hf_forward(model, b, labels=None):
    args = {k: torch.tensor(v) for k, v in b.items()}
    if labels is not None:
        args["labels"] = torch.tensor(labels)
    return model(**args)


def ours(path, *flags, request=None):
    p = run([DRIVER, *flags, path], input=json.dumps(request) if request is not None else "", check=0)
    return json.loads(p.stdout)


def compare(name, ours_logits, hf_logits, tol=TOL):
    a = torch.tensor(ours_logits, dtype=torch.float64)
    b = hf_logits.to(torch.float64)
    assert a.shape == b.shape, f"{name}: shape {tuple(a.shape)} vs transformers {tuple(b.shape)}"
    diff = (a - b).abs().max().item()
    MAX_DIFF[0] = max(MAX_DIFF[0], diff)
    print(f"  {name}: max |logits diff| = {diff:.3g} (tolerance {tol})", flush=True)
    assert diff <= tol, f"{name}: logits differ by {diff} > {tol}"
    # The random heads must not be degenerate, or a wrong encoder could still pass.
    assert b.abs().max().item() > 1e-3, f"{name}: logits all ~0"


def check(family, d, labels=None):
    return check_batch(f"{family}/{os.path.basename(d)}", d, make_batch(family), labels)


def check_batch(name, d, b, labels=None):
    """hfkit's logits (and loss) on batch `b` vs transformers' on the model in `d`."""
    out = ours(d, request=dict(b, labels=labels) if labels is not None else b)
    assert out["missing"] == [] and out["unexpected"] == [], out
    model = hf_model(d)
    res = hf_forward(model, b, labels)
    # DeBERTa's regression loss without problem_type flattens the logits it returns to [B].
    compare(name, out["logits"], res.logits.reshape(len(b["input_ids"]), -1))
    if labels is not None:
        diff = abs(out["loss"] - res.loss.item())
        print(f"  {name}: {out['problem_type']} loss {out['loss']:.6f} vs {res.loss.item():.6f}")
        # DeBERTa's head picks its loss without writing problem_type back into the config.
        want = model.config.problem_type or ("regression" if model.config.num_labels == 1 else
                                             "single_label_classification")
        assert out["problem_type"] == want, (out["problem_type"], model.config.problem_type)
        assert diff <= LOSS_TOL, f"loss differs by {diff}"
    return out


def test_logits_and_losses_equal_transformers():
    n = len(LENGTHS)
    for i, family in enumerate(FAMILIES):
        with tempdir() as t:
            check(family, build(family, os.path.join(t, "single"), seed=i, id2label={0: "neg", 1: "neu", 2: "pos"}),
                  labels=[0, 2, 1, 1, 0])
            check(family, build(family, os.path.join(t, "multi"), seed=10 + i, num_labels=4,
                                problem_type="multi_label_classification"),
                  labels=[[1.0, 0.0, 1.0, 0.0]] * (n - 1) + [[0.0] * 4])
            check(family, build(family, os.path.join(t, "regression"), seed=20 + i, num_labels=1),
                  labels=[0.5, -1.0, 2.25, 0.0, 3.0])


def test_reverse_transformers_loads_what_we_save():
    for i, family in enumerate(FAMILIES):
        with tempdir() as t:
            src = build(family, os.path.join(t, "src"), seed=30 + i, id2label={0: "a", 1: "b", 2: "c"})
            check_reverse(family, src, os.path.join(t, "ours"), make_batch(family, seed=1), FAMILIES[family][1])


def check_reverse(name, src, d, b, model_cls):
    """hfkit loads `src` (labels a, b, c) and saves `d`; transformers loads `d` as a `model_cls` with no
    missing or unexpected keys and gives hfkit's logits on `b`."""
    mine = ours(src, "--save", d, request=b)
    model, info = tr.AutoModelForSequenceClassification.from_pretrained(d, dtype=torch.float32,
                                                                       output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), (name, info)
    assert type(model).__name__ == model_cls.__name__, type(model)
    assert model.config.architectures == [model_cls.__name__], model.config.architectures
    assert model.config.id2label == {0: "a", 1: "b", 2: "c"}, model.config.id2label
    compare(f"{name} saved by hfkit, loaded by transformers", mine["logits"], hf_forward(model.eval(), b).logits)
    return model


def test_fresh_model_is_initialised_as_transformers_does():
    for i, family in enumerate(FAMILIES):
        with tempdir() as t:
            cfg_dir = build(family, os.path.join(t, "cfg"), seed=40 + i)
            d = os.path.join(t, "fresh")
            b = make_batch(family, seed=2)
            mine = ours(os.path.join(cfg_dir, "config.json"), "--init", "--seed", "7", "--num-labels", "5",
                        "--problem-type", "multi_label_classification", "--save", d, request=b)
            model = hf_model(d)
            assert model.config.problem_type == "multi_label_classification" and model.config.num_labels == 5
            compare(f"fresh hfkit {family} in transformers", mine["logits"], hf_forward(model, b).logits)
            sd = model.state_dict()
            prefix = FAMILIES[family][4]
            pad = FAMILIES[family][5]
            words = sd[f"{prefix}.embeddings.word_embeddings.weight"]
            assert abs(words[pad + 1:].std().item() - 0.2) < 0.02, words.std()
            assert words[pad].abs().max().item() == 0, f"{family}: padding row not zero"
            if family in ("roberta", "xlm-roberta"):  # nn.Embedding(padding_idx=pad) for positions too
                assert sd["roberta.embeddings.position_embeddings.weight"][pad].abs().max().item() == 0
            norms = [k for k in sd if "LayerNorm.weight" in k or "layer_norm.weight" in k]
            assert norms and all((sd[k] == 1).all() for k in norms), norms
            biases = [k for k in sd if k.endswith(".bias") and "orm" not in k]
            assert biases and all(sd[k].abs().max().item() == 0 for k in biases), biases


def test_bare_encoder_gets_a_fresh_head():
    heads = {"distilbert": ["classifier.bias", "classifier.weight", "pre_classifier.bias", "pre_classifier.weight"]}
    heads.update({f: ["classifier.bias", "classifier.weight", "pooler.dense.bias", "pooler.dense.weight"]
                  for f in FAMILIES if f.startswith("deberta")})
    roberta_head = ["classifier.dense.bias", "classifier.dense.weight", "classifier.out_proj.bias",
                    "classifier.out_proj.weight"]
    for i, family in enumerate(FAMILIES):
        config_cls, _, base_cls, kwargs, prefix, _ = FAMILIES[family]
        with tempdir() as t:
            bare = os.path.join(t, "bare")
            torch.manual_seed(50 + i)
            # The classifier's RobertaModel has no pooler; a bare one saved with it would list
            # pooler.* as unexpected, as transformers does.
            no_pooler = {"add_pooling_layer": False} if base_cls in (tr.RobertaModel, tr.XLMRobertaModel) else {}
            base_cls(config_cls(**kwargs), **no_pooler).save_pretrained(bare)  # keys without the prefix
            d = os.path.join(t, "with-head")
            b = make_batch(family, seed=3)
            mine = ours(bare, "--save", d, request=b)
            assert sorted(mine["missing"]) == heads.get(family, roberta_head), (family, mine)
            assert mine["unexpected"] == [], (family, mine)
            enc = hf_model(d)
            ref = base_cls.from_pretrained(bare, dtype=torch.float32, **no_pooler).eval()
            for k, v in ref.state_dict().items():
                assert torch.equal(getattr(enc, prefix).state_dict()[k], v), (family, k)
            compare(f"bare {family} encoder + our head", mine["logits"], hf_forward(enc, b).logits)


def test_the_label_layer_of_each_family_is_the_one_resized():
    for family, layer in [("distilbert", "classifier"), ("roberta", "classifier.out_proj"),
                          ("electra", "classifier.out_proj"), ("deberta-v2", "classifier")]:
        with tempdir() as t:
            src = build(family, os.path.join(t, "two"))
            expect_error([DRIVER, "--num-labels", "3", src], 65, "model.safetensors", f"{layer}.", "num_labels",
                         input="")
            out = ours(src, "--num-labels", "3", "--ignore-mismatched-sizes")
            assert sorted(out["mismatched"]) == [f"{layer}.bias", f"{layer}.weight"], out


def test_unknown_and_unsupported_configs_exit_78_naming_them():
    with tempdir() as t:
        src = build("distilbert", os.path.join(t, "d"))
        cfg_path = os.path.join(src, "config.json")
        cfg = json.load(open(cfg_path))
        for model_type, words in [("gpt2", ["'gpt2' is not supported (supported:"]),
                                  ("deberta", ["'deberta' is not supported yet"])]:
            json.dump(dict(cfg, model_type=model_type), open(cfg_path, "w"))
            p = expect_error([DRIVER, src], 78, "config.json", "model_type", *words, input="")
            assert len(p.stderr.strip().splitlines()) == 1, p.stderr
        for key, value in [("sinusoidal_pos_embds", True), ("activation", "gelu_10"), ("n_heads", 5)]:
            json.dump(dict(cfg, **{key: value}), open(cfg_path, "w"))
            expect_error([DRIVER, src], 78, "config.json", key, input="")
        json.dump(dict(cfg, model_type="roberta", position_embedding_type="relative_key", hidden_size=32,
                       num_attention_heads=4), open(cfg_path, "w"))
        expect_error([DRIVER, src], 78, "position_embedding_type", "relative_key", input="")


def test_deberta_long_inputs_over_the_log_buckets():
    """Up to max_position_embeddings tokens: every distance, the log buckets (where float32 rounding
    moves distance 15 to another bucket than exact arithmetic would) and clamped spans."""
    for i, family in enumerate(f for f in FAMILIES if f.startswith("deberta")):
        with tempdir() as t:
            d = build(family, os.path.join(t, "long"), seed=60 + i)
            top = json.load(open(os.path.join(d, "config.json")))["max_position_embeddings"]
            b = make_batch(family, lengths=[top, 17, 4, top - 1], seed=4)
            compare(f"{family} long inputs", ours(d, request=b)["logits"], hf_forward(hf_model(d), b).logits)


def test_deberta_unsupported_options_exit_78_naming_them():
    with tempdir() as t:
        src = build("deberta-v2", os.path.join(t, "d"))
        cfg_path = os.path.join(src, "config.json")
        cfg = json.load(open(cfg_path))
        for key, value, word in [("conv_kernel_size", 3, "convolution"), ("pos_att_type", ["c2p", "p2p"], "'p2p'"),
                                 ("pos_att_type", "p2c|c2p|p2p", "'p2p'"), ("hidden_act", "gelu_10", "gelu_10"),
                                 ("pooler_hidden_act", "gelu_10", "gelu_10"), ("attention_head_size", 16, "16 x 4"),
                                 ("pooler_hidden_size", 64, "64"), ("norm_rel_ebd", "layer_norm|scale", "'scale'"),
                                 ("position_buckets", 1, "1"), ("num_attention_heads", 5, "5 heads")]:
            json.dump(dict(cfg, **{key: value}), open(cfg_path, "w"))
            p = expect_error([DRIVER, src], 78, "config.json", key, word, input="")
            assert len(p.stderr.strip().splitlines()) == 1, p.stderr
        # The old string form of pos_att_type is read as HF reads it.
        json.dump(dict(cfg, pos_att_type="P2C|c2p"), open(cfg_path, "w"))
        b = make_batch("deberta-v2")
        compare("pos_att_type as 'P2C|c2p'", ours(src, request=b)["logits"], hf_forward(hf_model(src), b).logits)


# ModernBERT: its own parameter names and initialisation, so its own cases (the loops above assume
# BERT-style names). Layers 0 and 3 global, 1 and 2 a sliding window of +-4 tokens that the longer
# rows of MB_LENGTHS exceed, so a wrong window shows.
MB_COMMON = dict(COMMON, hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=48,
                 pad_token_id=0, bos_token_id=1, cls_token_id=1, eos_token_id=2, sep_token_id=2,
                 local_attention=8)
MODERNBERT = {
    # (a) ModernBERT-base's shape scaled down: every 3rd layer global, its two thetas, no biases,
    # the first token pooled.
    "modernbert-cls": dict(MB_COMMON, global_attn_every_n_layers=3, global_rope_theta=160000.0,
                           local_rope_theta=10000.0, classifier_pooling="cls"),
    # (b) mean pooling with every bias on, other thetas (small ones: the rotation shows), other
    # activations and eps, and layer_types as transformers 5 writes them.
    "modernbert-mean-bias": dict(MB_COMMON, layer_types=["full_attention", "sliding_attention", "full_attention",
                                                         "sliding_attention"],
                                 global_rope_theta=500.0, local_rope_theta=20.0, classifier_pooling="mean",
                                 attention_bias=True, mlp_bias=True, norm_bias=True, classifier_bias=True,
                                 hidden_activation="gelu_pytorch_tanh", classifier_activation="silu", norm_eps=1e-6),
}
MB_LENGTHS = [7, 19, 3, 19, 12, 1]


def mb_build(name, out, seed=0, model_cls=tr.ModernBertForSequenceClassification, **overrides):
    torch.manual_seed(seed)
    model_cls(tr.ModernBertConfig(**dict(MODERNBERT[name], **overrides))).save_pretrained(out)
    return out


def mb_batch(seed=0):
    """Random ids right-padded with ModernBERT's pad id 0, rows longer and shorter than the window."""
    g = torch.Generator().manual_seed(seed)
    t = max(MB_LENGTHS)
    ids = torch.zeros((len(MB_LENGTHS), t), dtype=torch.long)
    mask = torch.zeros((len(MB_LENGTHS), t), dtype=torch.long)
    for i, n in enumerate(MB_LENGTHS):
        ids[i, :n] = torch.randint(3, VOCAB, (n,), generator=g)
        mask[i, :n] = 1
    return {"input_ids": ids.tolist(), "attention_mask": mask.tolist()}


def test_modernbert_logits_and_losses_equal_transformers():
    n = len(MB_LENGTHS)
    for i, name in enumerate(MODERNBERT):
        with tempdir() as t:
            d = mb_build(name, os.path.join(t, "single"), seed=60 + i, id2label={0: "neg", 1: "neu", 2: "pos"})
            check_batch(f"{name}/single", d, mb_batch(), labels=[0, 2, 1, 1, 0, 2])
            out = check_batch(f"{name}/unpadded", d, {"input_ids": mb_batch(seed=4)["input_ids"][1:2]})
            assert len(out["logits"]) == 1
            d = mb_build(name, os.path.join(t, "multi"), seed=70 + i, num_labels=4,
                         problem_type="multi_label_classification")
            check_batch(f"{name}/multi", d, mb_batch(seed=1), labels=[[1.0, 0.0, 1.0, 0.0]] * (n - 1) + [[0.0] * 4])
            d = mb_build(name, os.path.join(t, "regression"), seed=80 + i, num_labels=1)
            check_batch(f"{name}/regression", d, mb_batch(seed=2), labels=[0.5, -1.0, 2.25, 0.0, 3.0, -0.5])


def test_modernbert_reverse_transformers_loads_what_we_save():
    for i, name in enumerate(MODERNBERT):
        with tempdir() as t:
            src = mb_build(name, os.path.join(t, "src"), seed=90 + i, id2label={0: "a", 1: "b", 2: "c"})
            model = check_reverse(name, src, os.path.join(t, "ours"), mb_batch(seed=3),
                                  tr.ModernBertForSequenceClassification)
            want = tr.ModernBertConfig(**MODERNBERT[name])
            assert model.config.layer_types == want.layer_types, model.config.layer_types
            assert model.config.rope_parameters == want.rope_parameters, model.config.rope_parameters
            assert model.config.classifier_pooling == want.classifier_pooling


def mb_init_std(name, config):
    """The std of HF's ModernBERT initialisation for parameter `name` (before truncation)."""
    if name.endswith("attn.Wo.weight") or name.endswith("mlp.Wo.weight") or name == "head.dense.weight":
        return config.initializer_range / (2.0 * config.num_hidden_layers) ** 0.5
    if name == "classifier.weight":
        return config.hidden_size ** -0.5
    return config.initializer_range


def test_modernbert_fresh_model_is_initialised_as_transformers_does():
    for i, name in enumerate(MODERNBERT):
        with tempdir() as t:
            cfg_dir = mb_build(name, os.path.join(t, "cfg"), seed=100 + i)
            d = os.path.join(t, "fresh")
            b = mb_batch(seed=5)
            mine = ours(os.path.join(cfg_dir, "config.json"), "--init", "--seed", "7", "--num-labels", "5",
                        "--problem-type", "multi_label_classification", "--save", d, request=b)
            model = hf_model(d)
            assert model.config.problem_type == "multi_label_classification" and model.config.num_labels == 5
            compare(f"fresh hfkit {name} in transformers", mine["logits"], hf_forward(model, b).logits)
            torch.manual_seed(7)
            theirs = tr.ModernBertForSequenceClassification(model.config).state_dict()
            cut = model.config.initializer_cutoff_factor
            for k, v in model.state_dict().items():
                ref = theirs[k]
                if k.endswith(".bias") or "norm" in k:  # biases 0, norm weights 1, in both
                    assert torch.equal(v, ref) and v.abs().max().item() in (0.0, 1.0), (name, k)
                    continue
                std = mb_init_std(k, model.config)
                # Truncated at +-cut std, as HF's (the padding row of the embeddings included).
                assert v.abs().max().item() <= cut * std * (1 + 1e-6), (name, k, v.abs().max().item())
                assert v.abs().max().item() > 0.8 * cut * std, (name, k, v.abs().max().item())
                rel = abs(v.std().item() - ref.std().item()) / ref.std().item()
                assert rel < (0.1 if v.numel() > 1000 else 0.3), (name, k, v.std().item(), ref.std().item())


def test_modernbert_bare_encoder_gets_a_fresh_head():
    heads = {"modernbert-cls": ["classifier.bias", "classifier.weight", "head.dense.weight", "head.norm.weight"],
             "modernbert-mean-bias": ["classifier.bias", "classifier.weight", "head.dense.bias", "head.dense.weight",
                                      "head.norm.bias", "head.norm.weight"]}
    for i, name in enumerate(MODERNBERT):
        with tempdir() as t:
            bare = mb_build(name, os.path.join(t, "bare"), seed=110 + i, model_cls=tr.ModernBertModel)
            d = os.path.join(t, "with-head")
            b = mb_batch(seed=6)
            mine = ours(bare, "--save", d, request=b)
            assert sorted(mine["missing"]) == heads[name], (name, mine)
            assert mine["unexpected"] == [], (name, mine)
            enc = hf_model(d)
            ref = tr.ModernBertModel.from_pretrained(bare, dtype=torch.float32).eval()
            for k, v in ref.state_dict().items():
                assert torch.equal(enc.model.state_dict()[k], v), (name, k)
            compare(f"bare {name} encoder + our head", mine["logits"], hf_forward(enc, b).logits)


def test_modernbert_refuses_what_it_does_not_implement():
    with tempdir() as t:
        src = mb_build("modernbert-cls", os.path.join(t, "m"))
        cfg_path = os.path.join(src, "config.json")
        cfg = json.load(open(cfg_path))
        layers4 = ["full_attention", "sliding_attention", "chunked_attention", "full_attention"]
        for key, value, words in [
                ("hidden_activation", "laplace", ["'laplace'"]),
                ("classifier_activation", "relu6", ["'relu6'"]),
                ("classifier_pooling", "max", ["'max'", "cls or mean"]),
                ("deterministic_flash_attn", True, ["true"]),
                ("rope_parameters", {"full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}},
                 ["rope_parameters.full_attention.rope_type", "linear"]),
                ("rope_scaling", {"rope_type": "dynamic", "factor": 2.0}, ["dynamic"]),
                ("layer_types", layers4, ["chunked_attention"]),
                ("layer_types", layers4[:3], ["4 entries"]),
                ("head_dim", 4, ["4", "8"]),
                ("global_attn_every_n_layers", 0, ["at least 1"]),
                ("num_attention_heads", 32, ["even head size"])]:
            json.dump(dict(cfg, **{key: value}), open(cfg_path, "w"))
            p = expect_error([DRIVER, src], 78, "config.json", key, *words, input="")
            assert len(p.stderr.strip().splitlines()) == 1, p.stderr
        # reference_compile only picks torch.compile in transformers: accepted, same numbers.
        json.dump(dict(cfg, reference_compile=True), open(cfg_path, "w"))
        out = ours(src, request=mb_batch())
        json.dump(cfg, open(cfg_path, "w"))
        assert out["logits"] == ours(src, request=mb_batch())["logits"]
        # max_position_embeddings (40) bounds the length.
        expect_error([DRIVER, src], 65, "41 tokens", "max_position_embeddings 40",
                     input=json.dumps({"input_ids": [[5] * 41]}))


if __name__ == "__main__":
    import atexit
    atexit.register(lambda: print(f"max |hfkit - transformers| logits = {MAX_DIFF[0]:.3g} (tolerance {TOL})"))
    main(globals())
