"""hf-train end to end on the real binary with the tiny random BERT: the output directory loads in
`transformers` with the same logits as hfkit's model; the updates equal a plain PyTorch loop
(transformers BertForSequenceClassification + torch.optim.AdamW + HF's schedule + clipping);
SIGKILL at random points (during steps and during checkpoint writes) and --resume auto give a
model.safetensors byte-identical to an uninterrupted run; a damaged newest checkpoint falls back to
the previous one; SIGTERM/SIGUSR1 save a checkpoint and exit 75; rotation keeps the best; early
stopping; bad inputs give one error line and a documented exit code."""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

from torch_loop import compare_with_torch_loop
from hfkit_testlib import (AMAZON, BIN, MAKE_TINY, MINILM, TINY_YAML, complete_checkpoints, expect_error,
                           jsonl, main, make_tiny_bert, read, run, same_training, tokenize_amazon,
                           tool, wait_for)

TRAIN = tool("hf-train")
PRE = tool("hf-preprocess")
MODEL_LOGITS = os.environ.get("HFKIT_MODEL_LOGITS") or os.path.join(os.path.dirname(BIN), "test", "golden", "model",
                                                                    "model_logits")

WORK = tempfile.mkdtemp(prefix="hfkit-train-test-")
TINY = os.path.join(WORK, "tiny")          # tiny random BERT, labels negative/positive, dropout on
TINY_NODROP = os.path.join(WORK, "tiny0")  # the same without dropout, for the PyTorch comparison
DATA = os.path.join(WORK, "data")          # amazon.jsonl: 800 / 100 / 100
SMALL = os.path.join(WORK, "small")        # 48 examples, all in train

# Fixed options of the exact-resume runs: one thread, so float sums happen in one order.
RESUME_ARGS = ["--config", TINY_YAML, "--threads", "1", "--max-steps", "60", "--save-steps", "5",
               "--eval-steps", "10", "--logging-steps", "5", "--save-total-limit", "3"]


def setup():
    make_tiny_bert(TINY)
    make_tiny_bert(TINY_NODROP, "--set", "hidden_dropout_prob=0", "--set", "attention_probs_dropout_prob=0", seed=1)
    tokenize_amazon(PRE, TINY, DATA)
    small_jsonl = os.path.join(WORK, "small.jsonl")
    with open(AMAZON, encoding="utf-8") as f, open(small_jsonl, "w", encoding="utf-8") as out:
        out.writelines(f.readlines()[:48])
    run([PRE, "--tokenizer", TINY, "--input", small_jsonl, "--output", SMALL, "--split", "train=1", "-q"], check=0)


def train(out, *args, model=TINY, data=DATA, check=0, env=None):
    return run([TRAIN, "--model", model, "--data", data, "--output-dir", out, *args], check=check, env=env)


_reference = {}


def reference_run():
    """The uninterrupted run every resume test compares against (made once)."""
    if not _reference:
        out = os.path.join(WORK, "reference")
        t0 = time.time()
        train(out, *RESUME_ARGS)
        _reference["seconds"] = time.time() - t0
        _reference["dir"] = out
    return _reference


def check_same_as_reference(out):
    same_training(out, reference_run()["dir"])


def start(out, *args):
    return subprocess.Popen([TRAIN, "--model", TINY, "--data", DATA, "--output-dir", out, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# ---- outputs ----

def test_output_dir_is_an_hf_model_directory():
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    out = os.path.join(WORK, "plain")
    p = train(out, "--config", TINY_YAML, "--max-steps", "30")
    assert "error" not in p.stderr, p.stderr
    cfg = json.load(open(os.path.join(out, "config.json")))
    assert cfg["id2label"] == {"0": "negative", "1": "positive"}, cfg["id2label"]
    assert cfg["label2id"] == {"negative": 0, "positive": 1}
    for name in ["model.safetensors", "tokenizer.json", "vocab.txt", "tokenizer_config.json", "train_results.json",
                 "trainer_state.json", "metrics.jsonl", "hfkit_config.yaml", "eval_results.json"]:
        assert os.path.exists(os.path.join(out, name)), name
    results = json.load(open(os.path.join(out, "train_results.json")))
    for k in ["train_loss", "train_runtime", "train_samples_per_second", "epoch"]:
        assert k in results, k
    log = jsonl(os.path.join(out, "metrics.jsonl"))
    steps = [r for r in log if "loss" in r]
    assert [r["step"] for r in steps] == [10, 20, 30], steps
    for k in ["epoch", "loss", "learning_rate", "grad_norm", "samples_per_second", "tokens_per_second"]:
        assert k in steps[0], k
    evals = [r for r in log if "eval_loss" in r]
    assert [r["step"] for r in evals] == [20, 30] and "eval_accuracy" in evals[0] and "eval_f1_macro" in evals[0]
    resolved = read(os.path.join(out, "hfkit_config.yaml"), "r")
    assert 'learning_rate: "0.001"' in resolved and "save_total_limit" in resolved, resolved
    state = json.load(open(os.path.join(out, "checkpoint-30", "trainer_state.json")))
    assert state["global_step"] == 30 and state["log_history"] and "hfkit" in state
    for name in ["model.safetensors", "config.json", "optimizer.safetensors", "rng_state.safetensors",
                 "scheduler.json", "tokenizer.json", ".complete"]:
        assert os.path.exists(os.path.join(out, "checkpoint-30", name)), name

    # transformers reads the directory, and its logits are hfkit's.
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    texts = ["Great phone, works well.", "The battery died after two days and support never answered."]
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        want = model(**enc).logits.numpy()
    assert os.path.exists(MODEL_LOGITS), f"{MODEL_LOGITS} not built"
    req = {k: enc[k].tolist() for k in ["input_ids", "attention_mask", "token_type_ids"]}
    p = run([MODEL_LOGITS, out], input=json.dumps(req), check=0)
    got = np.array(json.loads(p.stdout)["logits"])
    diff = float(np.abs(got - want).max())
    print(f"  logits max |diff| hfkit vs transformers: {diff:.2e} (tolerance 1e-4)")
    assert diff < 1e-4


def test_updates_equal_a_pytorch_loop():
    """Full-batch steps (dropout off): AdamW (fused, decay groups as HF), linear warmup schedule and
    gradient clipping must give the parameters a plain transformers + torch loop gives."""
    compare_with_torch_loop(train, TINY_NODROP, SMALL, WORK)


# ---- exact resume ----

def test_sigkill_at_random_points_resumes_byte_identical():
    """Each run is killed only after it wrote a checkpoint of its own, at a random moment before the
    next one (some during a checkpoint write), so every rerun resumes from a checkpoint strictly
    inside the run; the end result must be the uninterrupted run's, byte for byte."""
    ref = reference_run()
    seed = int(os.environ.get("HFKIT_TEST_SEED", "20261201"))
    print(f"  seed {seed} (HFKIT_TEST_SEED to replay)")
    rng = random.Random(seed)
    between = ref["seconds"] / (60 / 5)  # wall time from one checkpoint to the next, roughly
    out = os.path.join(WORK, "killed")
    plan = ["step", "ckpt", "step", "step", "ckpt", "step"]  # where each kill lands
    kills, resumed = [], []
    for attempt in range(len(plan) + 5):
        newest_before = (complete_checkpoints(out) or [0])[-1]
        proc = start(out, *RESUME_ARGS, "--resume", "auto")
        if plan:
            how = plan.pop(0)

            def saved_one():  # a complete checkpoint this run wrote
                return (complete_checkpoints(out) or [0])[-1] > newest_before

            if wait_for(saved_one, proc):
                if how == "ckpt":
                    # During the next checkpoint write: the moment its temp directory appears, plus
                    # a few random milliseconds (some kills land after the rename, before the marker).
                    def writing():
                        return any(n.endswith(".tmp") for n in os.listdir(out))

                    if wait_for(writing, proc):
                        time.sleep(rng.uniform(0, 0.02))
                else:
                    time.sleep(rng.uniform(0, between))
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    kills.append((how, complete_checkpoints(out)[-1]))
        _, err = proc.communicate()
        resumed += [int(m) for m in re.findall(r"resuming from \S*checkpoint-(\d+) \(step", err)]
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, (proc.returncode, err[-2000:])
    else:
        raise AssertionError("never finished")
    print(f"  {len(kills)} kills (kind, newest complete checkpoint at the kill): {kills}; resumed from {resumed}")
    inside = [s for s in resumed if 0 < s < 60]
    assert len(inside) >= 4 and len(inside) == len(kills), (kills, resumed)
    check_same_as_reference(out)
    assert complete_checkpoints(out)[-1] == 60
    assert len(complete_checkpoints(out)) <= 4  # save_total_limit 3 (+ the best)
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]


def test_damaged_newest_checkpoint_falls_back_to_previous():
    out = os.path.join(WORK, "damaged")
    proc = start(out, *RESUME_ARGS)
    wait_for(lambda: 25 in complete_checkpoints(out), proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    newest = complete_checkpoints(out)[-1]
    path = os.path.join(out, f"checkpoint-{newest}", "model.safetensors")
    with open(path, "r+b") as f:  # a header length pointing past the end of the file
        f.write((1 << 40).to_bytes(8, "little"))
    p = train(out, *RESUME_ARGS, "--resume", "auto")
    assert f"cannot resume from {out}/checkpoint-{newest}" in p.stderr, p.stderr
    assert "resuming from" in p.stderr
    check_same_as_reference(out)


def test_sigterm_and_sigusr1_save_and_exit_75():
    for sig in [signal.SIGTERM, signal.SIGUSR1]:
        out = os.path.join(WORK, f"signal-{sig}")
        proc = start(out, *RESUME_ARGS)
        wait_for(lambda: 5 in complete_checkpoints(out), proc)
        time.sleep(0.05)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 75, (proc.returncode, err[-2000:])
        assert "checkpoint saved" in err, err
        newest = complete_checkpoints(out)[-1]
        state = json.load(open(os.path.join(out, f"checkpoint-{newest}", "trainer_state.json")))
        assert state["global_step"] == newest and newest < 60
        train(out, *RESUME_ARGS, "--resume", "auto")
        check_same_as_reference(out)


def test_dataloader_workers_do_not_change_results():
    a, b = os.path.join(WORK, "workers0"), os.path.join(WORK, "workers2")
    args = ["--config", TINY_YAML, "--threads", "1", "--max-steps", "15", "--save-strategy", "no", "--group-by-length"]
    train(a, *args)
    train(b, *args, "--dataloader-num-workers", "2")
    assert read(os.path.join(a, "model.safetensors")) == read(os.path.join(b, "model.safetensors"))


# ---- best model, rotation, early stopping ----

def test_load_best_model_at_end_and_rotation_keep_the_best():
    out = os.path.join(WORK, "best")
    train(out, "--config", TINY_YAML, "--max-steps", "50", "--eval-steps", "10", "--save-steps", "10",
          "--save-total-limit", "1", "--load-best-model-at-end", "--metric-for-best-model", "eval_loss",
          "--learning-rate", "0.01")
    state = json.load(open(os.path.join(out, "trainer_state.json")))
    evals = {r["step"]: r["eval_loss"] for r in state["log_history"] if "eval_loss" in r}
    best_step = min(evals, key=lambda s: evals[s])
    assert state["best_model_checkpoint"].endswith(f"checkpoint-{best_step}"), (state["best_model_checkpoint"], evals)
    assert abs(state["best_metric"] - evals[best_step]) < 1e-12
    kept = complete_checkpoints(out)
    assert kept == sorted({best_step, 50}), (kept, best_step)
    assert read(os.path.join(out, "model.safetensors")) == read(os.path.join(out, f"checkpoint-{best_step}",
                                                                             "model.safetensors"))


def test_early_stopping():
    out = os.path.join(WORK, "early")
    # A zero learning rate never improves the eval loss: patience 2 stops at the third evaluation.
    p = train(out, "--config", TINY_YAML, "--learning-rate", "0", "--eval-steps", "5", "--save-steps", "5",
              "--early-stopping-patience", "2")
    assert "early stopping" in p.stderr
    state = json.load(open(os.path.join(out, "trainer_state.json")))
    assert state["global_step"] == 15, state["global_step"]


# ---- labels ----

def test_label_mismatch():
    three = os.path.join(WORK, "three")
    run([sys.executable, MAKE_TINY, three, "--labels", "bad,neutral,good"], check=0)
    out = os.path.join(WORK, "mismatch")
    expect_error([TRAIN, "--model", three, "--data", DATA, "--output-dir", out, "--max-steps", "2"], 65,
                 "label set mismatch", "bad, neutral, good", "negative, positive", "--ignore-mismatched-sizes")
    train(os.path.join(WORK, "mismatch-ok"), "--max-steps", "2", "--ignore-mismatched-sizes", model=three)
    cfg = json.load(open(os.path.join(WORK, "mismatch-ok", "config.json")))
    assert cfg["id2label"] == {"0": "negative", "1": "positive"}
    # The same labels in another order: the head is kept and the data mapped onto it.
    swapped = os.path.join(WORK, "swapped")
    run([sys.executable, MAKE_TINY, swapped, "--labels", "positive,negative"], check=0)
    p = train(os.path.join(WORK, "swapped-run"), "--max-steps", "2", model=swapped)
    assert "mapped onto the model's label ids" in p.stderr
    cfg = json.load(open(os.path.join(WORK, "swapped-run", "config.json")))
    assert cfg["id2label"] == {"0": "positive", "1": "negative"}
    # A bare encoder (MiniLM has no classifier) gets a new head for the data's labels.
    p = train(os.path.join(WORK, "minilm"), "--max-steps", "1", "--per-device-train-batch-size", "2",
              "--save-strategy", "no", model=MINILM)
    assert "classifier.weight" in p.stderr  # listed as newly initialised
    cfg = json.load(open(os.path.join(WORK, "minilm", "config.json")))
    assert cfg["id2label"] == {"0": "negative", "1": "positive"}


def test_multi_label():
    """List labels train a BCE head; eval reports the multi-label metrics; transformers agrees on
    the problem type."""
    rows = []
    with open(AMAZON, encoding="utf-8") as f:
        for i, line in enumerate(f.readlines()[:200]):
            r = json.loads(line)
            tags = [r["label"]] + (["long"] if len(r["text"]) > 60 else [])
            rows.append(json.dumps({"text": r["text"], "label": tags}))
    src = os.path.join(WORK, "multi.jsonl")
    with open(src, "w", encoding="utf-8") as f:
        f.write("\n".join(rows) + "\n")
    data = os.path.join(WORK, "multi-data")
    run([PRE, "--tokenizer", TINY, "--input", src, "--output", data, "-q"], check=0)
    out = os.path.join(WORK, "multi-run")
    train(out, "--max-steps", "6", "--eval-strategy", "steps", "--eval-steps", "3", "--save-strategy", "no",
          "--learning-rate", "0.001", "--ignore-mismatched-sizes", data=data)
    cfg = json.load(open(os.path.join(out, "config.json")))
    assert cfg["problem_type"] == "multi_label_classification", cfg.get("problem_type")
    assert sorted(cfg["label2id"]) == ["long", "negative", "positive"]
    results = json.load(open(os.path.join(out, "eval_results.json")))
    for k in ["eval_loss", "eval_subset_accuracy", "eval_hamming_loss", "eval_f1_micro"]:
        assert k in results, (k, results)
    from transformers import AutoConfig
    assert AutoConfig.from_pretrained(out).problem_type == "multi_label_classification"


# ---- bad inputs ----

def test_bad_inputs():
    out = os.path.join(WORK, "bad")
    args = lambda model=TINY, data=DATA: [TRAIN, "--model", model, "--data", data, "--output-dir", out,
                                          "--max-steps", "2", "--save-strategy", "no"]
    expect_error(args(model=os.path.join(WORK, "nope")), 66, "nope")
    no_weights = os.path.join(WORK, "no-weights")
    shutil.copytree(TINY, no_weights)
    os.remove(os.path.join(no_weights, "model.safetensors"))
    expect_error(args(model=no_weights), 66, "model.safetensors")
    corrupt = os.path.join(WORK, "corrupt")
    shutil.copytree(TINY, corrupt)
    with open(os.path.join(corrupt, "model.safetensors"), "r+b") as f:
        f.truncate(1000)
    expect_error(args(model=corrupt), 65, "model.safetensors")
    expect_error(args(data=os.path.join(WORK, "no-data")), 66, "train.safetensors")

    # An empty training split.
    empty = os.path.join(WORK, "empty")
    two = os.path.join(WORK, "two.jsonl")
    with open(two, "w") as f:
        f.write('{"text": "good", "label": "positive"}\n{"text": "bad", "label": "negative"}\n')
    run([PRE, "--tokenizer", TINY, "--input", two, "--output", empty, "--split", "train=0,validation=1", "-q"], check=0)
    expect_error(args(data=empty), 65, "no examples to train on")

    # A YAML typo names the file, line and key.
    yaml = os.path.join(WORK, "typo.yaml")
    with open(yaml, "w") as f:
        f.write("learning_rate: 0.001\nlerning_rate: 0.1\n")
    expect_error(args() + ["--config", yaml], 78, f"{yaml}:2", "lerning_rate", "unknown key")
    # Options that contradict each other.
    expect_error(args() + ["--load-best-model-at-end"], 78, "load_best_model_at_end")
    expect_error(args() + ["--metric-for-best-model", "acuracy"], 64, "acuracy")
    expect_error(args() + ["--device", "cuda"], 69, "no CUDA device")

    # NaN weights in the head are refused at load, naming the tensor (not called a label mismatch).
    from safetensors.torch import load_file, save_file
    nan = os.path.join(WORK, "nan")
    shutil.copytree(TINY, nan)
    w = load_file(os.path.join(nan, "model.safetensors"))
    w["classifier.weight"][0, 0] = float("nan")
    save_file(w, os.path.join(nan, "model.safetensors"), metadata={"format": "pt"})
    expect_error(args(model=nan), 65, "classifier.weight", "NaN or infinite")
    # Finite weights whose logits overflow: a non-finite loss names the step.
    huge = os.path.join(WORK, "huge")
    shutil.copytree(TINY, huge)
    w = load_file(os.path.join(huge, "model.safetensors"))
    w["classifier.weight"].fill_(3e38)
    w["classifier.weight"][1].fill_(-3e38)
    save_file(w, os.path.join(huge, "model.safetensors"), metadata={"format": "pt"})
    expect_error(args(model=huge), 65, "at step 1", "training diverged")

    # Checkpoints already there and no --resume: refuse rather than mix two runs.
    ckpt = os.path.join(WORK, "has-ckpt")
    train(ckpt, "--max-steps", "2", "--save-steps", "1")
    expect_error([TRAIN, "--model", TINY, "--data", DATA, "--output-dir", ckpt, "--max-steps", "2"], 64,
                 "--resume auto")
    # An explicit checkpoint path that does not exist.
    expect_error([TRAIN, "--model", TINY, "--data", DATA, "--output-dir", ckpt, "--resume",
                  os.path.join(ckpt, "checkpoint-99")], 66, "checkpoint-99")


def test_resume_auto_without_checkpoints_starts_fresh():
    out = os.path.join(WORK, "fresh")
    p = train(out, "--max-steps", "3", "--resume", "auto", "--save-strategy", "no")
    assert "no checkpoint in" in p.stderr and "starting fresh" in p.stderr


if __name__ == "__main__":
    try:
        setup()
        main(globals())
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
