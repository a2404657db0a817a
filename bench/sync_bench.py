"""make bench: hf-sync vs `aws s3 sync` vs s5cmd against the same local moto endpoint, in one run.

Workloads: push and pull of a model-sized directory (one ~400 MB file + 300 small files), and a
no-op re-sync of 10,000 small files. For each client: wall time, client CPU seconds (user+sys of
the child, from getrusage) per GB moved, and the CPU moto itself burnt (to tell when the endpoint
is the bottleneck). Prints a table and the ratios; writes $BENCH_OUT/sync_bench.json.
Each client uses its defaults for parallelism (hf-sync -j 8, aws 10 threads, s5cmd 256 workers)
and gets its own bucket. The no-op re-sync is the best of three runs.
"""

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "s3"))
from s3harness import Moto  # noqa: E402  (moto on a free loopback port, stopped on exit)

BIN = os.environ.get("BIN", os.path.join(HERE, "..", "build", "bin"))
OUT = os.path.join(os.environ.get("BENCH_OUT", "/tmp/hfkit-bench"), "sync")
VENV_BIN = os.path.dirname(sys.executable)
BIG = 400 * 1000 * 1000
SMALL_FILES = 300
MANY_FILES = 10000


def make_data():
    model, many = os.path.join(OUT, "data", "model"), os.path.join(OUT, "data", "many")
    big = os.path.join(model, "model.safetensors")
    if not (os.path.exists(big) and os.path.getsize(big) == BIG):
        os.makedirs(model, exist_ok=True)
        with open(big, "wb") as f:
            for _ in range(BIG // (8 << 20)):
                f.write(os.urandom(8 << 20))
            f.write(os.urandom(BIG % (8 << 20)))
    for i in range(SMALL_FILES):
        p = os.path.join(model, "shards" if i % 2 else "tokenizer", f"f{i:03d}.bin")
        if not os.path.exists(p):
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(os.urandom(2048 + (i * 997) % 60000))
    for i in range(MANY_FILES):
        p = os.path.join(many, f"d{i // 500:02d}", f"x{i:05d}.txt")
        if not os.path.exists(p):
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(b"%05d" % i * (20 + i % 50))
    return model, many


def tree_bytes(root):
    return sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(root) for n in ns)


def tree_digest(root):
    h = hashlib.sha256()
    for d, _, names in sorted(os.walk(root)):
        for n in sorted(names):
            p = os.path.join(d, n)
            h.update(os.path.relpath(p, root).encode())
            with open(p, "rb") as f:
                while chunk := f.read(1 << 22):
                    h.update(chunk)
    return h.hexdigest()


def proc_cpu(pid):
    """CPU seconds (user+sys) used so far by process `pid` (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(cmd, env, moto_pid):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server0 = proc_cpu(moto_pid)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "server_cpu_s": proc_cpu(moto_pid) - server0}


def report(results, model_bytes, many_bytes):
    gb = model_bytes / 1e9
    print(f"\nsync bench: model dir {model_bytes / 1e6:.0f} MB ({SMALL_FILES + 1} files), "
          f"{MANY_FILES} small files ({many_bytes / 1e6:.1f} MB), local moto at loopback")
    print(f"{'client':8} | {'push s':>7} {'cpu s/GB':>8} {'moto cpu':>8} | {'pull s':>7} {'cpu s/GB':>8} "
          f"{'moto cpu':>8} | {'10k up s':>8} | {'no-op s':>7} {'cpu s':>6} {'moto cpu':>8}")
    for name, r in results.items():
        pm, pl, nm = r["push_model"], r["pull_model"], r["noop_many"]
        print(f"{name:8} | {pm['wall_s']:7.2f} {pm['cpu_s'] / gb:8.2f} {pm['server_cpu_s']:8.2f} | "
              f"{pl['wall_s']:7.2f} {pl['cpu_s'] / gb:8.2f} {pl['server_cpu_s']:8.2f} | "
              f"{r['push_many']['wall_s']:8.2f} | {nm['wall_s']:7.2f} {nm['cpu_s']:6.2f} {nm['server_cpu_s']:8.2f}")
    hfr = results["hf-sync"]
    for peer in ("aws", "s5cmd"):
        p = results[peer]
        print(f"{peer} / hf-sync: push wall {p['push_model']['wall_s'] / hfr['push_model']['wall_s']:.2f}x, "
              f"push cpu/GB {p['push_model']['cpu_s'] / hfr['push_model']['cpu_s']:.2f}x, "
              f"pull wall {p['pull_model']['wall_s'] / hfr['pull_model']['wall_s']:.2f}x, "
              f"pull cpu/GB {p['pull_model']['cpu_s'] / hfr['pull_model']['cpu_s']:.2f}x, "
              f"no-op re-sync wall {p['noop_many']['wall_s'] / hfr['noop_many']['wall_s']:.2f}x, "
              f"no-op cpu {p['noop_many']['cpu_s'] / hfr['noop_many']['cpu_s']:.1f}x")
    print("moto cpu = seconds the endpoint itself burnt; when it is close to the wall time, moto is the bottleneck")


def main():
    os.makedirs(OUT, exist_ok=True)
    model, many = make_data()
    model_bytes, many_bytes = tree_bytes(model), tree_bytes(many)
    results = {}
    with Moto() as m:
        s3 = m.client()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"AWS_ACCESS_KEY_ID": m.key_id, "AWS_SECRET_ACCESS_KEY": m.secret, "AWS_REGION": "us-east-1",
                    "AWS_EC2_METADATA_DISABLED": "true", "XDG_CACHE_HOME": os.path.join(OUT, "cache")})
        shutil.rmtree(os.path.join(OUT, "cache"), ignore_errors=True)
        aws = [os.path.join(VENV_BIN, "aws"), "--endpoint-url", m.url, "s3", "sync", "--only-show-errors"]
        s5 = [os.path.join(VENV_BIN, "s5cmd"), "--endpoint-url", m.url, "sync"]
        hf = [os.path.join(BIN, "hf-sync"), "--endpoint-url", m.url, "-q"]
        clients = {
            "hf-sync": {"push": lambda src, dst: hf + ["push", src, dst],
                        "pull": lambda src, dst: hf + ["pull", src, dst]},
            "aws": {"push": lambda src, dst: aws + [src, dst], "pull": lambda src, dst: aws + [src, dst]},
            "s5cmd": {"push": lambda src, dst: s5 + [src + "/", dst + "/"],
                      "pull": lambda src, dst: s5 + [src + "/*", dst + "/"]},
        }
        want = tree_digest(model)
        for name, c in clients.items():
            r = results[name] = {}
            # A bucket per client: moto's listing cost grows with the bucket, so no client pays for another's keys.
            s3.create_bucket(Bucket=f"bench-{name}")
            url = f"s3://bench-{name}"
            r["push_model"] = run(c["push"](model, url + "/model"), env, m.proc.pid)
            dst = os.path.join(OUT, "pulled", name)
            shutil.rmtree(dst, ignore_errors=True)
            os.makedirs(dst)
            r["pull_model"] = run(c["pull"](url + "/model", dst), env, m.proc.pid)
            if tree_digest(dst) != want:
                raise RuntimeError(f"{name}: pulled tree differs from the source")
            shutil.rmtree(dst)
            r["push_many"] = run(c["push"](many, url + "/many"), env, m.proc.pid)
            # Best of three: a no-op is short and this machine may be shared.
            r["noop_many"] = min((run(c["push"](many, url + "/many"), env, m.proc.pid) for _ in range(3)),
                                 key=lambda x: x["wall_s"])
            print(f"{name}: done", file=sys.stderr, flush=True)

    report(results, model_bytes, many_bytes)
    with open(os.path.join(os.path.dirname(OUT), "sync_bench.json"), "w") as f:
        json.dump({"model_bytes": model_bytes, "many_files": MANY_FILES, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
