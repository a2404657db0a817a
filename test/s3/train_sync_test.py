"""hf-train --sync-to against a real moto server (through the fault proxy), on the tiny random BERT:
every checkpoint is uploaded in the background with its marker last, remote rotation follows
save_total_limit and the final model lands at the URL root (read back with the AWS CLI); SIGTERM
uploads the preemption checkpoint before exit 75; runs SIGKILLed while an upload is in flight and
resumed with --resume auto on EMPTY output dirs end byte-identical to an uninterrupted run; with
the store unreachable training completes and only the final push fails (exit 75, one error line);
a file:// store works alike."""

import json
import os
import signal
import subprocess
import time

from fault_proxy import FaultProxy, Rule
from hfkit_testlib import (CHECKPOINT_MARKER, TINY_YAML, complete_checkpoints, jsonl, make_tiny_bert, read,
                           same_training, tokenize_amazon, wait_for)
from s3harness import Harness, Moto, free_port

h = Harness(__doc__)
BIN = os.path.dirname(h.bin)
TRAIN, PRE = os.path.join(BIN, "hf-train"), os.path.join(BIN, "hf-preprocess")
TINY, DATA = h.path("tiny"), h.path("data")
# One thread: float sums in one order, so runs are byte-comparable.
ARGS = ["--config", TINY_YAML, "--threads", "1", "--max-steps", "60", "--save-steps", "5", "--eval-steps", "10",
        "--logging-steps", "5", "--save-total-limit", "3"]
FINAL_FILES = ["config.json", "model.safetensors", "tokenizer.json", "vocab.txt", "train_results.json",
               "trainer_state.json", "metrics.jsonl"]
BUCKET = "train"


def start(out, *args, env):
    return subprocess.Popen([TRAIN, "--model", TINY, "--data", DATA, "--output-dir", out, *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def train(out, *args, env):
    p = start(out, *args, env=env)
    _, err = p.communicate(timeout=180)
    return p.returncode, err


def remote_keys(s3, prefix):
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/"):
        out += [o["Key"][len(prefix) + 1:] for o in page.get("Contents", [])]
    return sorted(out)


def remote_complete(s3, prefix):
    return sorted(int(k.split("/")[0].split("-")[1]) for k in remote_keys(s3, prefix)
                  if k.startswith("checkpoint-") and k.endswith("/" + CHECKPOINT_MARKER))


def remote_bytes(s3, key):
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def checkpoint_puts(proxy, prefix):
    """(step, file) of every checkpoint PUT the proxy saw below prefix, in arrival order."""
    out = []
    for r in proxy.requests():
        parts = r.path.split("/")  # /bucket/prefix/checkpoint-N/file
        if r.method == "PUT" and len(parts) == 5 and parts[2] == prefix and parts[3].startswith("checkpoint-"):
            out.append((int(parts[3].split("-")[1]), parts[4]))
    return out


t_all = time.time()
make_tiny_bert(TINY)
tokenize_amazon(PRE, TINY, DATA)
reference = h.path("reference")
rc, err = train(reference, *ARGS, env=dict(os.environ))
assert rc == 0, err[-2000:]

with Moto() as m:
    s3 = m.client()
    s3.create_bucket(Bucket=BUCKET)
    proxy = FaultProxy(m.port)
    env = h.env(m, AWS_ENDPOINT_URL=proxy.url)

    # (1) Every checkpoint uploaded, marker last; remote rotation = local rotation; final model at
    # the root. Three checkpoints never overflow the queue (one in flight + two waiting).
    t0 = time.time()
    out = h.path("sync")
    rc, err = train(out, "--config", TINY_YAML, "--threads", "1", "--max-steps", "30", "--save-steps", "10",
                    "--eval-steps", "10", "--save-total-limit", "2", "--sync-to", f"s3://{BUCKET}/sync", env=env)
    h.check(rc == 0 and "final model pushed to s3://train/sync" in err, "sync run exits 0 after the final push",
            f"rc={rc} {err[-2000:]}")
    puts = checkpoint_puts(proxy, "sync")
    for step in (10, 20, 30):
        files = [f for s, f in puts if s == step]
        h.check(files and files[-1] == CHECKPOINT_MARKER and files.count(CHECKPOINT_MARKER) == 1 and
                len(files) >= 10, f"checkpoint-{step} uploaded in the background, marker last", str(files))
    local = complete_checkpoints(out)
    h.check(len(local) == 2 and remote_complete(s3, "sync") == local,
            "remote rotation keeps the same save_total_limit=2 checkpoints as the local one",
            f"local {local} remote {remote_complete(s3, 'sync')}")
    keys = remote_keys(s3, "sync")
    h.check(all(f in keys for f in FINAL_FILES) and not [k for k in keys if k.startswith(".")],
            "final model directory pushed to the URL root (no temp dirs)", str(keys))
    rc, ls, e = h.aws(["s3", "ls", "--recursive", f"s3://{BUCKET}/sync/"], env)
    h.check(rc == 0 and f"sync/checkpoint-30/{CHECKPOINT_MARKER}" in ls and "sync/model.safetensors" in ls,
            "aws s3 ls sees the checkpoints with their markers and the final model", ls + e)
    got = h.path("aws-model.safetensors")
    rc, _, e = h.aws(["s3", "cp", f"s3://{BUCKET}/sync/model.safetensors", got], env)
    h.check(rc == 0 and read(got) == read(os.path.join(out, "model.safetensors")),
            "aws s3 cp of the remote model equals the local one", e)
    h.check(remote_bytes(s3, "sync/checkpoint-30/optimizer.safetensors") ==
            read(os.path.join(out, "checkpoint-30", "optimizer.safetensors")), "remote checkpoint bytes equal local")
    print(f"     (sync run {time.time() - t0:.1f} s)")

    # A new run aimed at a URL holding another run's checkpoints is refused (rotation would mix the
    # two); the remote is left as it was.
    before = remote_keys(s3, "sync")
    for run_dir, extra in ((h.path("again"), []), (out, ["--overwrite-output-dir"])):
        rc, err = train(run_dir, *ARGS, "--sync-to", f"s3://{BUCKET}/sync", *extra, env=env)
        errors = [l for l in err.splitlines() if ": error: " in l]
        h.check(rc == 64 and len(errors) == 1 and "s3://train/sync already holds checkpoints" in errors[0] and
                "--resume auto" in errors[0], f"new run {extra} over another run's remote checkpoints: exit 64",
                f"rc={rc} {err[-2000:]}")
    h.check(remote_keys(s3, "sync") == before, "the refused runs changed nothing remotely")
    h.check(complete_checkpoints(out) == local, "the refused --overwrite-output-dir run deleted nothing locally",
            str(complete_checkpoints(out)))

    # (2) SIGTERM: the preemption checkpoint is saved, uploaded (marker last) and then exit 75;
    # no final model is pushed.
    t0 = time.time()
    out = h.path("term")
    proc = start(out, "--config", TINY_YAML, "--threads", "1", "--max-steps", "2000", "--save-steps", "1000",
                 "--logging-steps", "5", "--sync-to", f"s3://{BUCKET}/term", env=env)
    metrics = os.path.join(out, "metrics.jsonl")
    wait_for(lambda: os.path.exists(metrics) and any(r.get("step", 0) >= 10 for r in jsonl(metrics)), proc,
             interval=0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    newest = (complete_checkpoints(out) or [0])[-1]
    h.check(proc.returncode == 75 and "checkpoint saved" in err, "SIGTERM: exit 75", f"rc={proc.returncode} {err[-2000:]}")
    h.check(0 < newest < 1000 and remote_complete(s3, "term") == [newest] and
            remote_bytes(s3, f"term/checkpoint-{newest}/model.safetensors") ==
            read(os.path.join(out, f"checkpoint-{newest}", "model.safetensors")),
            "SIGTERM: the preemption checkpoint is complete on the remote", f"local {newest} remote "
            f"{remote_keys(s3, 'term')}")
    h.check("model.safetensors" not in remote_keys(s3, "term"), "SIGTERM: no final model pushed")
    print(f"     (SIGTERM run {time.time() - t0:.1f} s)")

    # (3) SIGKILL while a checkpoint upload is in flight (the proxy delays checkpoint PUTs), then
    # --resume auto on a new EMPTY output dir with the same --sync-to; twice, then to the end.
    t0 = time.time()
    url = f"s3://{BUCKET}/killed"
    proxy.add(Rule("delay", match=lambda r: r.method == "PUT" and "/killed/checkpoint-" in r.path, count=-1,
                   stall_s=0.1))
    kills = []
    for attempt in range(3):
        out = h.path(f"killed-{attempt}")
        seen = len(checkpoint_puts(proxy, "killed"))
        proc = start(out, *ARGS, "--resume", "auto", "--sync-to", url, env=env)

        def in_flight():
            # This run completed an upload (its marker was sent) and is sending the files of a
            # newer checkpoint whose marker has not gone yet.
            new = checkpoint_puts(proxy, "killed")[seen:]
            done = {s for s, f in new if f == CHECKPOINT_MARKER}
            return bool(done) and any(s > max(done) for s, _ in new)

        if not wait_for(in_flight, proc, timeout=60, interval=0.005):
            break
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        puts = checkpoint_puts(proxy, "killed")[seen:]
        done = {s for s, f in puts if f == CHECKPOINT_MARKER}
        cut = sorted({s for s, f in puts if s not in done})
        kills.append({"remote_complete": remote_complete(s3, "killed"), "upload_cut": cut,
                      "local": complete_checkpoints(out)})
    proxy.clear()
    h.check(len(kills) == 3 and all(k["upload_cut"] for k in kills), "three kills landed during an upload",
            str(kills))
    final = h.path("killed-final")
    rc, err = train(final, *ARGS, "--resume", "auto", "--sync-to", url, env=env)
    resumed = [l for l in err.splitlines() if "downloading s3://train/killed/checkpoint-" in l]
    h.check(rc == 0 and resumed, "resume on an empty dir downloads the newest complete remote checkpoint",
            f"rc={rc} {err[-2000:]}")
    try:
        same_training(final, reference)
        h.check(True, "resumed after SIGKILLs mid-upload: model.safetensors and losses byte-identical to an "
                      "uninterrupted run")
    except AssertionError as e:
        h.check(False, "resumed after SIGKILLs mid-upload: byte-identical to an uninterrupted run", str(e))
    h.check(remote_bytes(s3, "killed/model.safetensors") == read(os.path.join(reference, "model.safetensors")),
            "the pushed final model is the uninterrupted run's")
    print(f"     kills (remote complete, upload cut, local complete): {kills}; {resumed[-1:]}")
    print(f"     (kill/resume runs {time.time() - t0:.1f} s)")

    # (4) Store unreachable (a closed port): training completes with the same bytes, uploads only
    # warn, the final push fails after its retries: exit 75 and one error line.
    t0 = time.time()
    out = h.path("down")
    down_env = h.env(m, AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}", AWS_MAX_ATTEMPTS="2")
    rc, err = train(out, *ARGS, "--sync-to", f"s3://{BUCKET}/down", env=down_env)
    errors = [l for l in err.splitlines() if ": error: " in l]
    h.check(rc == 75 and len(errors) == 1 and "final model not pushed to s3://train/down" in errors[0] and
            "unreachable" in errors[0] and "--resume auto" in errors[0],
            "unreachable store: exit 75 with one error line naming the URL", f"rc={rc} {errors} {err[-1500:]}")
    h.check("checkpoint upload of" in err and m.secret not in err, "upload failures are warnings, no secrets",
            err[-1500:])
    try:
        same_training(out, reference)
        ok = complete_checkpoints(out)[-1] == 60 and all(os.path.exists(os.path.join(out, f)) for f in FINAL_FILES)
        h.check(ok, "unreachable store: the local output is complete and byte-identical", str(os.listdir(out)))
    except AssertionError as e:
        h.check(False, "unreachable store: the local output is complete and byte-identical", str(e))
    print(f"     (unreachable-store run {time.time() - t0:.1f} s)")
    proxy.close()

# (5) A local or mounted path (file://) works as the store; a URL of another scheme is a usage error.
mirror = h.path("mirror")
out = h.path("local-sync")
rc, err = train(out, "--config", TINY_YAML, "--threads", "1", "--max-steps", "10", "--save-steps", "5",
                "--sync-to", "file://" + mirror, env=dict(os.environ))
h.check(rc == 0 and all(os.path.exists(os.path.join(mirror, f"checkpoint-{s}", CHECKPOINT_MARKER)) for s in (5, 10))
        and read(os.path.join(mirror, "model.safetensors")) == read(os.path.join(out, "model.safetensors")),
        "file:// store: checkpoints with markers and the final model", f"rc={rc} {err[-1500:]}")
rc, err = train(h.path("bad-url"), "--max-steps", "1", "--sync-to", "ftp://host/x", env=dict(os.environ))
errors = [l for l in err.splitlines() if ": error: " in l]
h.check(rc == 64 and len(errors) == 1 and "ftp://host/x" in errors[0], "bad --sync-to URL: exit 64, one line",
        f"rc={rc} {err[-800:]}")

print(f"     (total {time.time() - t_all:.1f} s)")
h.finish()
