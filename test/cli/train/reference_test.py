"""hf-train checked against independent references and its documented features (issue 15): every
lr_scheduler_type against transformers' get_scheduler over a whole run (warmup ratio and steps),
eval metrics against sklearn on the same predictions, training by num_train_epochs with epoch
strategies, train_split/eval_split, greater_is_better, early_stopping_threshold, SIGINT (first:
save + 75, second: exit at once), flag > HFKIT_* env > YAML precedence, and --log-format json."""
import json
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import numpy as np

from hfkit_testlib import (AMAZON, TINY_YAML, complete_checkpoints, expect_error, jsonl, main, make_tiny_bert,
                           run, tokenize_amazon, tool, wait_for)

TRAIN = tool("hf-train")
PRE = tool("hf-preprocess")
WORK = tempfile.mkdtemp(prefix="hfkit-train-reference-")
TINY = os.path.join(WORK, "tiny")
DATA = os.path.join(WORK, "data")    # amazon.jsonl: 800 / 100 / 100
SMALL = os.path.join(WORK, "small")  # 48 examples, all in train: 3 steps per epoch at batch 16


def setup():
    make_tiny_bert(TINY)
    tokenize_amazon(PRE, TINY, DATA)
    src = os.path.join(WORK, "small.jsonl")
    with open(AMAZON, encoding="utf-8") as f, open(src, "w", encoding="utf-8") as out:
        out.writelines(f.readlines()[:48])
    run([PRE, "--tokenizer", TINY, "--input", src, "--output", SMALL, "--split", "train=1", "-q"], check=0)


def train(out, *args, data=DATA, check=0, env=None):
    return run([TRAIN, "--model", TINY, "--data", data, "--output-dir", out, *args], check=check, env=env)


def state(out):
    return json.load(open(os.path.join(out, "trainer_state.json")))


def test_every_schedule_equals_transformers_get_scheduler():
    import torch
    from transformers import get_scheduler
    steps, lr = 13, 1e-3
    worst = 0.0
    for kind in ["linear", "cosine", "constant", "constant_with_warmup"]:
        for warm_flag, warm_value in [("--warmup-ratio", "0.25"), ("--warmup-steps", "3")]:
            out = os.path.join(WORK, f"sched-{kind}-{warm_flag[2:]}")
            train(out, "--max-steps", str(steps), "--learning-rate", str(lr), "--lr-scheduler-type", kind,
                  warm_flag, warm_value, "--logging-steps", "1", "--save-strategy", "no", "--eval-strategy", "no")
            got = {r["step"]: r["learning_rate"] for r in jsonl(os.path.join(out, "metrics.jsonl")) if "loss" in r}
            assert sorted(got) == list(range(1, steps + 1)), sorted(got)
            # HF's TrainingArguments.get_warmup_steps: warmup_steps, else ceil(warmup_ratio * total).
            warmup = int(warm_value) if warm_flag == "--warmup-steps" else math.ceil(float(warm_value) * steps)
            opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
            sched = get_scheduler(kind, opt, num_warmup_steps=warmup, num_training_steps=steps)
            for step in range(1, steps + 1):
                opt.step()
                sched.step()  # HF logs the rate after the scheduler's step
                want = sched.get_last_lr()[0]
                diff = abs(got[step] - want)
                worst = max(worst, diff)
                assert diff <= 1e-15 + 1e-12 * lr, (kind, warm_flag, step, got[step], want)
    print(f"  max |lr diff| vs transformers over 8 runs x {steps} steps: {worst:.1e} (tolerance 1e-12 x lr)")


def test_eval_metrics_equal_sklearn_on_the_same_predictions():
    import torch
    from safetensors.numpy import load_file
    from sklearn.metrics import accuracy_score, log_loss, precision_recall_fscore_support
    from transformers import AutoModelForSequenceClassification
    out = os.path.join(WORK, "metrics")
    train(out, "--config", TINY_YAML, "--max-steps", "100", "--eval-steps", "100", "--save-strategy", "no")
    got = json.load(open(os.path.join(out, "eval_results.json")))
    t = load_file(os.path.join(DATA, "validation.safetensors"))
    offs, ids, labels = t["offsets"], t["input_ids"], t["labels"]
    n = len(offs) - 1
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    logits = []
    with torch.no_grad():
        for i in range(n):  # one at a time: no padding, nothing for the model to mask
            row = torch.from_numpy(ids[offs[i]:offs[i + 1]].astype(np.int64))[None]
            logits.append(model(input_ids=row).logits[0])
    logits = torch.stack(logits).double()
    margin = float((logits[:, 0] - logits[:, 1]).abs().min())
    assert margin > 1e-4, f"a near tie ({margin:.1e}) would make the argmax depend on rounding"
    pred = logits.argmax(1).numpy()
    prob = torch.softmax(logits, 1).numpy()
    want = {"eval_accuracy": accuracy_score(labels, pred), "eval_log_loss": log_loss(labels, prob, labels=[0, 1]),
            "eval_loss": float(torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels)))}
    for avg in ["macro", "micro", "weighted"]:
        p, r, f, _ = precision_recall_fscore_support(labels, pred, average=avg, zero_division=0)
        want.update({f"eval_precision_{avg}": p, f"eval_recall_{avg}": r, f"eval_f1_{avg}": f})
    assert len(set(pred)) == 2, "a model predicting one class would not test the macro averages"
    worst = max(abs(got[k] - v) for k, v in want.items())
    print(f"  {len(want)} eval metrics vs sklearn: max |diff| {worst:.1e} (tolerance 1e-6; accuracy "
          f"{got['eval_accuracy']:.3f})")
    for k, v in want.items():
        assert abs(got[k] - v) < 1e-6, (k, got[k], v)


def test_num_train_epochs_with_epoch_strategies_and_split_names():
    out = os.path.join(WORK, "epochs")
    train(out, "--num-train-epochs", "2", "--per-device-train-batch-size", "16", "--eval-strategy", "epoch",
          "--save-strategy", "epoch", "--train-split", "train", "--eval-split", "train", data=SMALL)
    s = state(out)
    assert s["global_step"] == 6 and s["num_train_epochs"] == 2 and s["max_steps"] == 6, s
    evals = [(r["step"], r["epoch"]) for r in s["log_history"] if "eval_loss" in r]
    assert evals == [(3, 1.0), (6, 2.0)], evals
    assert complete_checkpoints(out) == [3, 6], complete_checkpoints(out)
    # A fractional epoch count: ceil(1.5 * 3) = 5 steps; saves at the epoch end and at the last step.
    out = os.path.join(WORK, "epochs-frac")
    train(out, "--num-train-epochs", "1.5", "--per-device-train-batch-size", "16", "--save-strategy", "epoch",
          data=SMALL)
    assert state(out)["global_step"] == 5 and complete_checkpoints(out) == [3, 5], complete_checkpoints(out)
    # Other split names: trains on "validation" (100 examples), evaluates on "test".
    out = os.path.join(WORK, "splits")
    train(out, "--max-steps", "2", "--train-split", "validation", "--eval-split", "test", "--eval-strategy", "steps",
          "--save-strategy", "no")
    assert json.load(open(os.path.join(out, "train_results.json")))["train_samples"] == 100
    assert "eval_loss" in json.load(open(os.path.join(out, "eval_results.json")))
    expect_error([TRAIN, "--model", TINY, "--data", DATA, "--output-dir", out, "--eval-split", "nope",
                  "--eval-strategy", "steps", "--max-steps", "2"], 66, "nope.safetensors")


def test_greater_is_better_decides_the_best_checkpoint():
    common = ["--max-steps", "20", "--eval-strategy", "steps", "--eval-steps", "5", "--save-steps", "5",
              "--metric-for-best-model", "eval_loss", "--learning-rate", "0.01"]
    for flag, pick in [([], min), (["--greater-is-better", "true"], max)]:
        out = os.path.join(WORK, f"gib-{pick.__name__}")
        train(out, *common, *flag)
        s = state(out)
        evals = {r["step"]: r["eval_loss"] for r in s["log_history"] if "eval_loss" in r}
        assert len(set(evals.values())) == len(evals), evals
        best = pick(evals, key=lambda k: evals[k])
        assert s["best_model_checkpoint"].endswith(f"checkpoint-{best}"), (pick.__name__, s["best_model_checkpoint"], evals)
        assert s["best_metric"] == evals[best]


def test_early_stopping_threshold():
    # HF's EarlyStoppingCallback rule, replayed on the logged eval losses: an evaluation resets the
    # patience counter only when it beats the best so far by more than the threshold. A patience
    # no run reaches keeps every evaluation; the counter saved in trainer_state.json must follow it.
    def replay(losses, threshold):
        best, counter = None, 0
        for v in losses:
            better = best is None or v < best
            counter = 0 if better and (best is None or abs(v - best) > threshold) else counter + 1
            best = v if better else best
        return counter

    counters = {}
    for threshold in ["0", "0.01", "1.0"]:
        out = os.path.join(WORK, f"threshold-{threshold}")
        # Evaluated on its own 48 training examples: the loss falls steadily, by varying amounts.
        train(out, "--max-steps", "40", "--eval-strategy", "steps", "--eval-steps", "5", "--save-steps", "40",
              "--eval-split", "train", "--learning-rate", "0.003", "--early-stopping-patience", "1000",
              "--early-stopping-threshold", threshold, data=SMALL)
        s = state(out)
        losses = [r["eval_loss"] for r in s["log_history"] if "eval_loss" in r]
        assert len(losses) == 8, losses
        counters[threshold] = s["hfkit"]["patience_counter"]
        assert counters[threshold] == replay(losses, float(threshold)), (threshold, losses, counters)
    print(f"  patience counters by threshold: {counters}")
    assert counters["1.0"] == 7 and len(set(counters.values())) >= 2, counters
    # And it stops a run: a threshold above every improvement, patience 2 -> the third evaluation.
    out = os.path.join(WORK, "threshold-stop")
    p = train(out, "--max-steps", "40", "--eval-strategy", "steps", "--eval-steps", "5", "--save-steps", "5",
              "--learning-rate", "0.001", "--early-stopping-patience", "2", "--early-stopping-threshold", "1.0")
    assert "early stopping" in p.stderr and state(out)["global_step"] == 15, state(out)["global_step"]


def test_sigint_first_saves_and_exits_75_second_exits_at_once():
    def training(name):  # a long run, caught a few steps into its loop
        out = os.path.join(WORK, name)
        proc = subprocess.Popen([TRAIN, "--model", TINY, "--data", DATA, "--output-dir", out, "--max-steps", "100000",
                                 "--save-steps", "1000", "--threads", "1"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert wait_for(lambda: os.path.exists(os.path.join(out, "metrics.jsonl")), proc)
        time.sleep(0.3)
        return out, proc

    out, proc = training("sigint-1")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75 and "checkpoint saved" in err, (proc.returncode, err[-2000:])
    newest = complete_checkpoints(out)
    assert newest and 0 < newest[-1] < 1000, newest  # saved at the step the signal ended, not a save step
    out, proc = training("sigint-2")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.002)  # two pending SIGINTs would merge into one
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, (proc.returncode, err[-2000:])
    assert "checkpoint saved" not in err


def test_flag_over_env_over_yaml():
    cfg = os.path.join(WORK, "threads.yaml")
    with open(cfg, "w") as f:
        f.write("threads: 3\nmax_steps: 1\nsave_strategy: \"no\"\n")
    env = {k: v for k, v in os.environ.items() if k != "HFKIT_THREADS"}

    def threads(*extra, env_threads=None):
        e = dict(env, **({"HFKIT_THREADS": env_threads} if env_threads else {}))
        out = os.path.join(WORK, f"prec-{len(extra)}-{env_threads}")
        p = subprocess.run([TRAIN, "--model", TINY, "--data", DATA, "--output-dir", out, "--config", cfg, *extra],
                           env=e, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        logged = int(re.search(r"parameters, (\d+) threads", p.stderr).group(1))
        saved = re.search(r'^threads: "(\d+)"$', open(os.path.join(out, "hfkit_config.yaml")).read(), re.M).group(1)
        return logged, int(saved)

    assert threads() == (3, 3)
    assert threads(env_threads="2") == (2, 2)
    assert threads("--threads", "1", env_threads="2") == (1, 1)


def test_log_format_json():
    out = os.path.join(WORK, "json-log")
    p = train(out, "--max-steps", "3", "--logging-steps", "1", "--save-strategy", "no", "--log-format", "json")
    lines = p.stderr.splitlines()
    assert len(lines) >= 5, p.stderr
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(r["level"] in ("debug", "info", "warn", "warning") and r["message"] for r in records), records
    assert any("step 3/3" in r["message"] for r in records)
    p = run([TRAIN, "--model", TINY, "--data", os.path.join(WORK, "missing"), "--output-dir", out, "--log-format",
             "json"], check=66)
    records = [json.loads(line) for line in p.stderr.splitlines()]
    errors = [r for r in records if r["level"] == "error"]
    assert len(errors) == 1 and "missing" in errors[0]["message"], records


if __name__ == "__main__":
    try:
        setup()
        main(globals())
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
