#!/usr/bin/env python3
"""Run-tracking overhead: what each --report-to sink costs hf-train's loop, against the 1% budget.

Trains the tiny random BERT (scripts/make-tiny-bert.py) on the sample sentiment data with a log
record every step (--logging-steps 1, the worst case; HF's default is 500), once per sink:
tensorboard, and mlflow against a real local `mlflow server`. hf-train reports the time its loop
spent handing records to the sinks ("tracking: N records cost the training loop X ms"); the share
is that over train_runtime (train_results.json), measured inside one process so machine noise
between runs does not enter. Writes $BENCH_OUT/track_bench.json; exits 1 when a sink is over 1%.

Env: BIN (built tools), HFKIT_DATA, BENCH_OUT, BENCH_STEPS (default 200).
"""
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "support"))
from mlflow_server import MlflowServer  # noqa: E402

BIN = os.environ["BIN"]
DATA = os.environ.get("HFKIT_DATA", os.path.join(HERE, "..", "data"))
OUT = os.environ.get("BENCH_OUT", "/tmp/hfkit-bench")
STEPS = int(os.environ.get("BENCH_STEPS", "200"))
BUDGET = 0.01  # the bound: the slowest logger costs at most 1% of training time


def sh(*args, env=None):
    p = subprocess.run(list(args), capture_output=True, text=True, env={**os.environ, **(env or {})})
    if p.returncode != 0:
        sys.exit(f"{' '.join(args)}: exit {p.returncode}\n{p.stderr[-2000:]}")
    return p


def main():
    work = tempfile.mkdtemp(prefix="hfkit-track-bench-")
    tiny, data = os.path.join(work, "tiny"), os.path.join(work, "data")
    sh(sys.executable, os.path.join(HERE, "..", "scripts", "make-tiny-bert.py"), tiny)
    sh(os.path.join(BIN, "hf-preprocess"), "--tokenizer", tiny, "--input", os.path.join(DATA, "sentiment", "amazon.jsonl"),
       "--output", data, "--max-length", "64", "-q")
    results = {}
    with MlflowServer(os.path.join(work, "mlflow")) as server:
        for sink in ("tensorboard", "mlflow"):
            out = os.path.join(work, sink)
            p = sh(os.path.join(BIN, "hf-train"), "--model", tiny, "--data", data, "--output-dir", out,
                   "--max-steps", str(STEPS), "--logging-steps", "1", "--save-strategy", "no", "--report-to", sink,
                   env={"MLFLOW_TRACKING_URI": server.uri})
            m = re.search(r"tracking: (\d+) records cost the training loop ([0-9.]+) ms", p.stderr)
            runtime = json.load(open(os.path.join(out, "train_results.json")))["train_runtime"]
            share = float(m.group(2)) / 1000 / runtime
            results[sink] = {"records": int(m.group(1)), "logging_ms": float(m.group(2)), "train_runtime_s": runtime,
                             "share": share}
            print(f"{sink:12s} {int(m.group(1)):5d} records  {float(m.group(2)):8.2f} ms of {runtime:7.2f} s "
                  f"training = {100 * share:.3f}%  (budget {100 * BUDGET:.0f}%)")
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "track_bench.json"), "w") as f:
        json.dump(results, f, indent=2)
    worst = max(results.values(), key=lambda r: r["share"])
    return 0 if worst["share"] <= BUDGET else 1


if __name__ == "__main__":
    sys.exit(main())
