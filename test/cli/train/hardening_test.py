"""hf-train against hostile inputs and races (issue 9): option values torch would reject or that
overflow, an output directory that is the base model, two trainers on one output directory, token
ids outside the model's vocabulary, splits from different preprocess runs, and the saved
hfkit_config.yaml (any string round-trips through --config; no password in it)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile

import yaml
from safetensors import safe_open
from safetensors.numpy import save_file

from hfkit_testlib import (AMAZON, expect_error, main, make_tiny_bert, read, run, tokenize_amazon, tool, wait_for)

TRAIN = tool("hf-train")
PRE = tool("hf-preprocess")
WORK = tempfile.mkdtemp(prefix="hfkit-train-hardening-")
TINY = os.path.join(WORK, "tiny")
DATA = os.path.join(WORK, "data")
FAST = ["--max-steps", "2", "--save-strategy", "no", "--per-device-train-batch-size", "4"]


def setup():
    make_tiny_bert(TINY)
    tokenize_amazon(PRE, TINY, DATA)


def args(out, *extra, model=TINY, data=DATA):
    return [TRAIN, "--model", model, "--data", data, "--output-dir", out, *extra]


def test_option_values_torch_would_reject_are_usage_errors():
    out = os.path.join(WORK, "bad-values")
    for flag, value, fragment in [("--adam-beta1", "1", "adam_beta1"), ("--adam-beta1", "-0.1", "adam_beta1"),
                                  ("--adam-beta2", "1.5", "adam_beta2"), ("--adam-epsilon", "0", "adam_epsilon"),
                                  ("--adam-epsilon", "-1e-8", "adam_epsilon"), ("--weight-decay", "-0.1", "weight_decay"),
                                  ("--max-grad-norm", "-1", "max_grad_norm"), ("--learning-rate", "inf", "learning_rate"),
                                  ("--max-steps", "1000000000000000", "max_steps"),
                                  ("--num-train-epochs", "1e300", "num_train_epochs"),
                                  ("--early-stopping-threshold", "-1", "early_stopping_threshold")]:
        base = FAST[2:] if flag in ("--max-steps", "--num-train-epochs") else FAST  # FAST starts with --max-steps 2
        expect_error(args(out, *base, flag, value), 64, fragment)
    # Beyond the integer range, or negative for an unsigned option: refused, never wrapped.
    expect_error(args(out, *FAST[2:], "--max-steps", "99999999999999999999"), 64, "max_steps")
    expect_error(args(out, *FAST, "--seed", "-1"), 64, "--seed")
    # The same values from --config are refused too.
    cfg = os.path.join(WORK, "beta.yaml")
    with open(cfg, "w") as f:
        f.write("adam_beta1: 1.0\n")
    expect_error(args(out, *FAST, "--config", cfg), 64, "adam_beta1")
    assert not os.path.exists(os.path.join(out, "checkpoint-2"))


def test_output_dir_that_is_the_base_model_is_refused():
    model = os.path.join(WORK, "base")
    shutil.copytree(TINY, model)
    before = read(os.path.join(model, "model.safetensors"))
    link = os.path.join(WORK, "base-link")
    os.symlink(model, link)
    for out in [model, model + "/", os.path.join(model, "..", "base"), link, os.path.join(model, "run")]:
        expect_error(args(out, *FAST, model=model), 64, "--output-dir", "overwrite the base model")
    assert read(os.path.join(model, "model.safetensors")) == before
    assert not os.path.exists(os.path.join(model, "run"))
    # A sibling whose name starts with the model's is fine.
    run(args(model + "-run", *FAST, model=model), check=0)


def test_two_trainers_on_one_output_dir():
    out = os.path.join(WORK, "shared-out")
    first = subprocess.Popen(args(out, "--max-steps", "100000", "--save-steps", "50", "--threads", "1"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: os.path.exists(os.path.join(out, "metrics.jsonl")), first), first.stderr.read()
        p = expect_error(args(out, "--max-steps", "20", "--resume", "auto"), 75, f"pid {first.pid}",
                         f"host {socket.gethostname()}", out)
        print(f"  refused: {[l for l in p.stderr.splitlines() if ': error: ' in l][0]}")
        assert first.poll() is None, "the first run must go on"
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    # The kernel released the dead holder's lock: the directory is usable again.
    p = run(args(out, "--max-steps", "3", "--save-strategy", "no", "--resume", "auto"), check=0)
    assert os.path.exists(os.path.join(out, ".hfkit.lock"))


def copy_dataset(name):
    d = os.path.join(WORK, name)
    shutil.copytree(DATA, d)
    return d


def set_token(path, example, value):
    """Writes `value` into the first token of `example` in a dataset split, metadata kept."""
    with safe_open(path, "numpy") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    tensors["input_ids"][int(tensors["offsets"][example]) + 1] = value
    save_file(tensors, path, metadata=meta)


def test_token_ids_outside_the_vocabulary():
    vocab = json.load(open(os.path.join(TINY, "config.json")))["vocab_size"]
    for split, example, value in [("train", 17, vocab), ("validation", 3, -1), ("train", 0, 2**31 - 1)]:
        d = copy_dataset(f"oov-{split}-{example}")
        set_token(os.path.join(d, f"{split}.safetensors"), example, value)
        p = expect_error(args(os.path.join(WORK, "oov-run"), *FAST, "--eval-strategy", "steps", data=d), 65,
                         f"{split}.safetensors", f"example {example} ", f"id {value}", "vocab_size")
        assert "Traceback" not in p.stderr and len(p.stderr.splitlines()) < 5, p.stderr
    # At the edge of the vocabulary: fine.
    d = copy_dataset("edge")
    set_token(os.path.join(d, "train.safetensors"), 5, vocab - 1)
    run(args(os.path.join(WORK, "edge-run"), *FAST, data=d), check=0)


def test_splits_of_different_preprocess_runs_are_refused():
    other = os.path.join(WORK, "other-run")
    src = os.path.join(WORK, "subset.jsonl")
    with open(AMAZON, encoding="utf-8") as f, open(src, "w", encoding="utf-8") as out:
        out.writelines(f.readlines()[:300])
    run([PRE, "--tokenizer", TINY, "--input", src, "--output", other, "--max-length", "64", "-q"], check=0)
    mixed = copy_dataset("mixed")
    shutil.copy(os.path.join(other, "validation.safetensors"), os.path.join(mixed, "validation.safetensors"))
    expect_error(args(os.path.join(WORK, "mixed-run"), *FAST, "--eval-strategy", "steps", data=mixed), 65,
                 "validation.safetensors", "run_id", "different hf-preprocess run")


def test_saved_config_round_trips_and_holds_no_password():
    weird = os.path.join(WORK, 'd"q\\b: c #x\n✓ é')
    shutil.copytree(DATA, weird)
    out = os.path.join(WORK, "cfg-a")
    run(args(out, *FAST, "--endpoint-url", "http://hfuser:s3cr3t-pw@127.0.0.1:9/x", "--region", 'r"1\\', data=weird),
        check=0)
    text = read(os.path.join(out, "hfkit_config.yaml"), "r")
    assert "s3cr3t" not in text and "hfuser" not in text, text
    saved = yaml.safe_load(text)
    assert saved["data"] == weird and saved["region"] == 'r"1\\', saved
    assert saved["endpoint_url"] == "http://127.0.0.1:9/x", saved["endpoint_url"]
    assert saved["lr_scheduler_type"] == "linear" and saved["eval_strategy"] == "no", saved
    assert "greater_is_better" not in saved, "unset means 'by the metric': it must not be saved as false"
    # Loaded back by --config: the same options (the data path with it), apart from the output dir.
    out_b = os.path.join(WORK, "cfg-b")
    run([TRAIN, "--config", os.path.join(out, "hfkit_config.yaml"), "--output-dir", out_b], check=0)
    again = yaml.safe_load(read(os.path.join(out_b, "hfkit_config.yaml"), "r"))
    assert again.pop("output_dir") == out_b and saved.pop("output_dir") == out
    assert again == saved, {k: (saved.get(k), again.get(k)) for k in set(saved) | set(again)
                            if saved.get(k) != again.get(k)}


if __name__ == "__main__":
    try:
        setup()
        main(globals())
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
