"""scripts/pipeline.sh end to end on the tiny random BERT and the amazon sample: a passing run
publishes one version with a complete manifest; a re-run skips every finished step; a missed gate
exits 1 and publishes nothing; --serve serves the published model."""
import json
import os
import signal
import subprocess
import time
import urllib.request

from hfkit_testlib import AMAZON, BIN, SRC, TINY_YAML, main, make_tiny_bert, run, tempdir

PIPELINE = os.path.join(SRC, "scripts", "pipeline.sh")
STEPS = ["preprocess", "train", "predict", "gate", "publish"]


def write_config(path, **values):
    with open(path, "w") as f:
        for k, v in values.items():
            f.write(f"{k}='{v}'\n")


def config(work, run_dir, gate, **extra):
    base = os.path.join(work, "base")
    if not os.path.exists(base):
        make_tiny_bert(base, "--labels", "negative,positive")
    path = os.path.join(work, os.path.basename(run_dir) + ".env")
    write_config(path, HFKIT_BIN=os.path.abspath(BIN), PIPELINE_INPUTS=AMAZON, PIPELINE_BASE_MODEL=base,
                 PIPELINE_RUN_DIR=run_dir, PIPELINE_TRAIN_CONFIG=TINY_YAML, PIPELINE_TRAIN_ARGS="--max-steps 6",
                 PIPELINE_MAX_LENGTH=64, PIPELINE_GATE=gate, PIPELINE_REGISTRY=os.path.join(work, "registry"),
                 PIPELINE_NAME="sentiment", **extra)
    return path


def test_passing_run_publishes_and_rerun_skips():
    with tempdir() as work:
        run_dir = os.path.join(work, "run")
        cfg = config(work, run_dir, "accuracy=0.0", PIPELINE_VERSION="v1")
        p = run(["bash", PIPELINE, "--config", cfg], check=0, timeout=900)
        for step in STEPS:
            assert os.path.exists(os.path.join(run_dir, f".done-{step}")), (step, p.stderr[-3000:])
        manifest = os.path.join(work, "registry", "sentiment", "v1", "manifest.json")
        with open(manifest) as f:
            m = json.load(f)
        for key in ["data_sha256", "tokenizer_sha256", "training_config", "eval_metrics", "parent_model",
                    "hfkit_version", "git_commit", "created", "files"]:
            assert m.get(key), (key, m)
        assert m["eval_metrics"]["accuracy"] >= 0 and m["parent_model"], m
        with open(os.path.join(work, "registry", "sentiment", "latest")) as f:
            assert f.read() == "v1\n"
        # Everything finished: nothing runs again (publishing v1 twice would fail with 73).
        p = run(["bash", PIPELINE, "--config", cfg], check=0, timeout=300)
        for step in STEPS:
            assert f"{step}: done before, skipped" in p.stderr, (step, p.stderr)
        # A step whose marker is gone runs again, the finished ones stay skipped.
        os.remove(os.path.join(run_dir, ".done-predict"))
        p = run(["bash", PIPELINE, "--config", cfg], check=0, timeout=300)
        assert "predict: done before" not in p.stderr and "train: done before, skipped" in p.stderr, p.stderr


def test_missed_gate_publishes_nothing_and_exits_1():
    with tempdir() as work:
        run_dir = os.path.join(work, "gated")
        cfg = config(work, run_dir, "accuracy=1.01")
        p = run(["bash", PIPELINE, "--config", cfg], check=1, timeout=900)
        assert "nothing published" in p.stderr, p.stderr[-2000:]
        assert not os.path.exists(os.path.join(work, "registry", "sentiment")), os.listdir(os.path.join(work))
        assert not os.path.exists(os.path.join(run_dir, ".done-gate"))
        assert json.load(open(os.path.join(run_dir, "eval.json")))["accuracy"] <= 1


def test_serve_the_published_model():
    with tempdir() as work:
        run_dir = os.path.join(work, "served")
        with __import__("socket").socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        cfg = config(work, run_dir, "accuracy=0.0", PIPELINE_PORT=port)
        proc = subprocess.Popen(["bash", PIPELINE, "--config", cfg, "--serve"], stderr=subprocess.PIPE, text=True)
        try:
            t0 = time.time()
            while True:
                assert proc.poll() is None and time.time() - t0 < 600, "pipeline ended before serving"
                try:
                    body = json.dumps({"inputs": "great product"}).encode()
                    req = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=body,
                                                 headers={"Content-Type": "application/json"})
                    answer = json.loads(urllib.request.urlopen(req, timeout=5).read())
                    break
                except OSError:
                    time.sleep(0.2)
            assert answer[0]["label"] in ("negative", "positive"), answer
        finally:
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=30)
        assert rc == 0, (rc, proc.stderr.read()[-2000:])


if __name__ == "__main__":
    main(globals())
