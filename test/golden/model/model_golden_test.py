"""hf::model against transformers' AutoModelForSequenceClassification (fp32, CPU, eval mode).

Same directory, same token ids: logits must agree within 1e-4 (max abs diff printed), losses within
1e-5, for all-MiniLM-L6-v2 with the fresh head transformers saved, randomly initialised tiny BERTs
(single-label, multi-label, regression, other activations, sharded, fp16, bare encoder without the
"bert." prefix), and in reverse: directories hfkit saves load in transformers with no missing or
unexpected keys and give the same logits.
"""
import json
import os
import subprocess
import sys

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig, BertModel

from hfkit_testlib import MINILM, expect_error, main, run, tempdir

DRIVER = os.environ.get("HFKIT_MODEL_LOGITS", "build/test/golden/model/model_logits")
SOURCE = os.environ.get("HFKIT_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..", ".."))
TOL = 1e-4
LOSS_TOL = 1e-5
MAX_DIFF = [0.0]
torch.set_grad_enabled(False)

TEXTS = [
    ("The food was great and the staff were friendly.", None),
    ("Terrible.", None),
    ("I ordered the pasta, waited forty minutes, and it arrived cold; the manager apologised "
     "but would not take it off the bill. " * 3, None),
    ("Is this a question?", "Yes, and this is the second segment of a pair."),
    ("naïve café résumé — ünïcödé 東京", None),
]


def make_batch(tokenizer_dir=MINILM, max_length=160):
    """Encodes each text (or pair) on its own and pads to the longest: a batch with mixed lengths,
    padding and token types."""
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    encs = [tok(a, b, truncation=True, max_length=max_length) for a, b in TEXTS]
    t = max(len(e["input_ids"]) for e in encs)
    pad = lambda seq: list(seq) + [0] * (t - len(seq))
    return {"input_ids": [pad(e["input_ids"]) for e in encs],
            "attention_mask": [pad(e["attention_mask"]) for e in encs],
            "token_type_ids": [pad(e["token_type_ids"]) for e in encs]}


BATCH = None


def batch():
    global BATCH
    if BATCH is None:
        BATCH = make_batch()
    return BATCH


def hf_model(path, **kw):
    kw.setdefault("dtype", torch.float32)
    return AutoModelForSequenceClassification.from_pretrained(path, **kw).eval()


def hf_forward(model, b, labels=None):
    args = {k: torch.tensor(v) for k, v in b.items()}
    if labels is not None:
        args["labels"] = torch.tensor(labels)
    return model(**args)


def ours(path, *flags, request=None, code=0):
    """Runs the driver; returns its JSON."""
    req = json.dumps(request if request is not None else batch())
    p = run([DRIVER, *flags, path], input=req, check=code)
    return json.loads(p.stdout) if code == 0 else p


def compare(name, ours_logits, hf_logits, tol=TOL):
    a = torch.tensor(ours_logits, dtype=torch.float64)
    b = hf_logits.to(torch.float64)
    assert a.shape == b.shape, f"{name}: shape {tuple(a.shape)} vs transformers {tuple(b.shape)}"
    diff = (a - b).abs().max().item()
    MAX_DIFF[0] = max(MAX_DIFF[0], diff)
    print(f"  {name}: max |logits diff| = {diff:.3g} (tolerance {tol})", flush=True)
    assert diff <= tol, f"{name}: logits differ by {diff} > {tol}"


def make_tiny(out, *args, seed=0):
    subprocess.run([sys.executable, os.path.join(SOURCE, "scripts", "make-tiny-bert.py"), out, "--seed", str(seed),
                    *args], check=True, capture_output=True)
    return out


def test_minilm_with_fresh_head():
    with tempdir() as d:
        m = AutoModelForSequenceClassification.from_pretrained(MINILM, num_labels=2)
        m.save_pretrained(d)  # the fresh classifier head is saved, so both sides use the same one
        out = ours(d)
        assert out["missing"] == [] and out["unexpected"] == [], out
        compare("all-MiniLM-L6-v2 + head", out["logits"], hf_forward(hf_model(d), batch()).logits)


def test_minilm_bare_encoder_reports_missing_head():
    out = ours(MINILM, request={"input_ids": [[101, 102]]})
    assert sorted(out["missing"]) == ["classifier.bias", "classifier.weight"], out
    assert out["unexpected"] == [], out  # the old position_ids buffer is skipped, as transformers does
    assert len(out["logits"][0]) == 2


def check_tiny(d, labels=None):
    out = ours(d, request=dict(batch(), labels=labels) if labels is not None else None)
    model = hf_model(d)
    res = hf_forward(model, batch(), labels)
    compare(os.path.basename(d), out["logits"], res.logits)
    if labels is not None:
        diff = abs(out["loss"] - res.loss.item())
        print(f"  {os.path.basename(d)}: {out['problem_type']} loss {out['loss']:.6f} vs {res.loss.item():.6f}")
        assert out["problem_type"] == model.config.problem_type, (out["problem_type"], model.config.problem_type)
        assert diff <= LOSS_TOL, f"loss differs by {diff}"
    return out


def test_tiny_single_label_gelu_new():
    with tempdir() as t:
        # initializer_range 1: activations well into the non-linear range, so a wrong GELU shows.
        d = make_tiny(os.path.join(t, "single"), "--labels", "neg,neu,pos", "--set", 'hidden_act="gelu_new"',
                      "--set", "initializer_range=1.0",
                      "--set", "classifier_dropout=0.3")
        check_tiny(d, labels=[0, 2, 1, 1, 0])


def test_tiny_multi_label():
    with tempdir() as t:
        d = make_tiny(os.path.join(t, "multi"), "--num-labels", "4", "--problem-type", "multi_label_classification",
                      seed=1)
        check_tiny(d, labels=[[1.0, 0.0, 1.0, 0.0], [0.0] * 4, [1.0] * 4, [0.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])


def test_tiny_multi_label_inferred_from_float_labels():
    with tempdir() as t:
        d = make_tiny(os.path.join(t, "multi-inferred"), "--num-labels", "3", seed=2)
        out = check_tiny(d, labels=[[1.0, 0.0, 1.0]] * 5)
        assert out["problem_type"] == "multi_label_classification"


def test_tiny_regression():
    with tempdir() as t:
        d = make_tiny(os.path.join(t, "regression"), "--num-labels", "1", seed=3)
        out = check_tiny(d, labels=[0.5, -1.0, 2.25, 0.0, 3.0])
        assert out["problem_type"] == "regression"


def test_tiny_relu_sharded():
    with tempdir() as t:
        src = make_tiny(os.path.join(t, "relu"), "--set", 'hidden_act="relu"', "--set", "num_hidden_layers=3", seed=4)
        d = os.path.join(t, "sharded")
        hf_model(src).save_pretrained(d, max_shard_size="1MB")
        assert os.path.exists(os.path.join(d, "model.safetensors.index.json")), os.listdir(d)
        assert not os.path.exists(os.path.join(d, "model.safetensors"))
        out = ours(d)
        assert out["missing"] == [] and out["unexpected"] == [], out
        compare("sharded", out["logits"], hf_forward(hf_model(d), batch()).logits)


def test_fp16_checkpoint_is_converted():
    with tempdir() as t:
        src = make_tiny(os.path.join(t, "src"), seed=5)
        d = os.path.join(t, "fp16")
        hf_model(src).half().save_pretrained(d)
        compare("fp16 weights", ours(d)["logits"], hf_forward(hf_model(d, dtype=torch.float32), batch()).logits)


def test_reverse_transformers_loads_what_we_save():
    with tempdir() as t:
        src = make_tiny(os.path.join(t, "src"), "--labels", "a,b,c", seed=6)
        d = os.path.join(t, "ours")
        mine = ours(src, "--save", d)
        model, info = AutoModelForSequenceClassification.from_pretrained(d, dtype=torch.float32,
                                                                         output_loading_info=True)
        assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
        assert model.config.id2label == {0: "a", 1: "b", 2: "c"}, model.config.id2label
        assert model.config.label2id == {"a": 0, "b": 1, "c": 2}
        assert model.config.architectures == ["BertForSequenceClassification"]
        compare("saved by hfkit, loaded by transformers", mine["logits"], hf_forward(model.eval(), batch()).logits)


def test_reverse_fresh_model_from_config():
    with tempdir() as t:
        d = os.path.join(t, "fresh")
        mine = ours(os.path.join(SOURCE, "configs", "tiny-bert", "config.json"), "--init", "--seed", "7",
                    "--problem-type", "multi_label_classification", "--num-labels", "5", "--save", d)
        model = hf_model(d)
        assert model.config.problem_type == "multi_label_classification" and model.config.num_labels == 5
        compare("fresh hfkit model in transformers", mine["logits"], hf_forward(model, batch()).logits)
        # HF's initialisation: N(0, initializer_range) weights, zero biases, LayerNorm 1/0, zero padding row.
        sd = model.state_dict()
        std = sd["bert.encoder.layer.0.intermediate.dense.weight"].std().item()
        assert abs(std - 0.02) < 0.002, std
        assert sd["classifier.bias"].abs().max().item() == 0
        assert (sd["bert.embeddings.LayerNorm.weight"] == 1).all()
        assert sd["bert.embeddings.word_embeddings.weight"][0].abs().max().item() == 0


def test_bare_encoder_without_prefix():
    with tempdir() as t:
        bare = os.path.join(t, "bare")
        cfg = json.load(open(os.path.join(SOURCE, "configs", "tiny-bert", "config.json")))
        torch.manual_seed(8)
        BertModel(BertConfig(**cfg)).save_pretrained(bare)  # keys without "bert."
        d = os.path.join(t, "with-head")
        mine = ours(bare, "--save", d)
        assert sorted(mine["missing"]) == ["classifier.bias", "classifier.weight"], mine
        assert mine["unexpected"] == []
        enc = AutoModelForSequenceClassification.from_pretrained(d, dtype=torch.float32).eval()
        ref = BertModel.from_pretrained(bare, dtype=torch.float32).eval()
        for k, v in ref.state_dict().items():
            assert torch.equal(enc.bert.state_dict()[k], v), k
        compare("bare encoder + our head", mine["logits"], hf_forward(enc, batch()).logits)


def test_errors_have_codes_and_say_what_to_do():
    with tempdir() as t:
        expect_error([DRIVER, os.path.join(t, "nope")], 66, "no such model directory", input="")
        pt = os.path.join(t, "pt")
        os.makedirs(pt)
        json.dump({"model_type": "bert"}, open(os.path.join(pt, "config.json"), "w"))
        open(os.path.join(pt, "pytorch_model.bin"), "wb").write(b"\x80\x02")
        expect_error([DRIVER, pt], 66, "pytorch_model.bin", "safetensors", "save_pretrained", input="")
        src = make_tiny(os.path.join(t, "two"), seed=9)
        expect_error([DRIVER, "--num-labels", "3", src], 65, "model.safetensors", "classifier.", "num_labels", input="")
        out = ours(src, "--num-labels", "3", "--ignore-mismatched-sizes")
        assert sorted(out["mismatched"]) == ["classifier.bias", "classifier.weight"], out
        assert len(out["logits"][0]) == 3
        cfg_path = os.path.join(src, "config.json")
        cfg = json.load(open(cfg_path))
        json.dump(dict(cfg, hidden_act="gelu_10"), open(cfg_path, "w"))
        expect_error([DRIVER, src], 78, "config.json", "hidden_act", "gelu_10", input="")
        open(cfg_path, "w").write("{not json")
        expect_error([DRIVER, src], 78, "config.json", "not valid JSON", input="")
        json.dump(cfg, open(cfg_path, "w"))
        with open(os.path.join(src, "model.safetensors"), "r+b") as f:
            f.truncate(1000)
        expect_error([DRIVER, src], 65, "model.safetensors", input="")


if __name__ == "__main__":
    import atexit
    atexit.register(lambda: print(f"max |hfkit - transformers| logits = {MAX_DIFF[0]:.3g} (tolerance {TOL})"))
    main(globals())
