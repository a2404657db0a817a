"""hf-train --report-to on the real binary with the tiny random BERT. TensorBoard: the event files
are read with the tensorboard package's own reader (EventAccumulator, summary_iterator) and hold
every logged number under HF's tag at its step, exactly once, also after kill -9 and --resume auto.
MLflow: a real `mlflow server` (sqlite backend, proxied artifacts) on a free loopback port; the run
is read back with MLflow's client (params, metric histories, model artifacts); a server stopped
mid-run costs nothing: exit 0 and the same model bytes."""
import glob
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

from hfkit_testlib import (TINY_YAML, complete_checkpoints, expect_error, jsonl, main, make_tiny_bert, read,
                           run, tokenize_amazon, tool, wait_for)

TRAIN = tool("hf-train")
PRE = tool("hf-preprocess")
WORK = tempfile.mkdtemp(prefix="hfkit-track-test-")
TINY = os.path.join(WORK, "tiny")
DATA = os.path.join(WORK, "data")
# One thread (float sums in one order, so resumed runs are byte-identical), logs every 5 steps.
ARGS = ["--config", TINY_YAML, "--threads", "1", "--max-steps", "40", "--save-steps", "10", "--eval-steps", "10",
        "--logging-steps", "5"]


def setup():
    make_tiny_bert(TINY)
    tokenize_amazon(PRE, TINY, DATA)


def train(out, *args, check=0, env=None):
    return run([TRAIN, "--model", TINY, "--data", DATA, "--output-dir", out, *ARGS, *args], check=check, env=env)


def hf_tag(key):
    """transformers.integrations.rewrite_logs."""
    if key.startswith("eval_"):
        return "eval/" + key[5:]
    if key.startswith("test_"):
        return "test/" + key[5:]
    return "train/" + key


def expected_scalars(records):
    """{tag: [(step, value)]} as HF's TensorBoardCallback logs a log_history."""
    out = {}
    for r in records:
        for k, v in r.items():
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                out.setdefault(hf_tag(k), []).append((r["step"], v))
    return out


def logging_dir(out):
    with open(os.path.join(out, "tracking.json"), encoding="utf-8") as f:
        return json.load(f)["logging_dir"]


def check_event_files(out):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    d = logging_dir(out)
    files = glob.glob(os.path.join(d, "events.out.tfevents.*"))
    assert len(files) == 1, files
    first = next(iter(EventFileLoader(files[0]).Load()))
    assert first.file_version == "brain.Event:2", first
    acc = EventAccumulator(d, size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    want = expected_scalars(jsonl(os.path.join(out, "metrics.jsonl")))
    assert {"train/loss", "train/learning_rate", "train/grad_norm", "train/epoch", "train/samples_per_second",
            "eval/accuracy", "eval/loss"} <= set(want), sorted(want)
    assert sorted(acc.Tags()["scalars"]) == sorted(want), (acc.Tags()["scalars"], sorted(want))
    for tag, points in want.items():
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        assert [s for s, _ in got] == [s for s, _ in points], f"{tag}: steps {got} != {points}"
        for (_, g), (_, w) in zip(got, points):
            assert math.isclose(g, w, rel_tol=1e-6, abs_tol=1e-30), f"{tag}: {g} != {w}"
    text = acc.Tensors("args/text_summary")
    assert len(text) == 1 and b"learning_rate" in text[0].tensor_proto.string_val[0], text
    return want


def test_tensorboard_event_files_hold_every_scalar_at_its_step():
    out = os.path.join(WORK, "tb")
    train(out, "--report-to", "tensorboard")
    want = check_event_files(out)
    assert [s for s, _ in want["train/loss"]] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert [s for s, _ in want["eval/accuracy"]] == [10, 20, 30, 40]
    assert os.path.dirname(logging_dir(out)) == os.path.join(out, "runs")


def test_tensorboard_after_kill_and_resume_has_no_duplicate_or_missing_step():
    ref = os.path.join(WORK, "tb")
    if not os.path.exists(os.path.join(ref, "model.safetensors")):
        train(ref, "--report-to", "tensorboard")
    out = os.path.join(WORK, "tb-killed")
    logdir = os.path.join(WORK, "tb-killed-logs")
    p = subprocess.Popen([TRAIN, "--model", TINY, "--data", DATA, "--output-dir", out, *ARGS, "--report-to",
                          "tensorboard", "--logging-dir", logdir], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Kill once the checkpoint at 10 exists and step 15 has been logged after it.
    def past_checkpoint():
        m = os.path.join(out, "metrics.jsonl")
        return complete_checkpoints(out) and os.path.exists(m) and any(r.get("step", 0) >= 15 for r in jsonl(m))
    assert wait_for(past_checkpoint, p, interval=0.005), p.communicate()[1].decode()[-2000:]
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert complete_checkpoints(out)[-1] < 40
    train(out, "--report-to", "tensorboard", "--resume", "auto")
    assert logging_dir(out) == logdir  # the resumed run kept its directory
    want = check_event_files(out)
    assert read(os.path.join(out, "model.safetensors")) == read(os.path.join(ref, "model.safetensors"))
    assert [s for s, _ in want["train/loss"]] == [5, 10, 15, 20, 25, 30, 35, 40]


def mlflow_env(server):
    return {"MLFLOW_TRACKING_URI": server.uri, "MLFLOW_EXPERIMENT_NAME": "hfkit-track-test"}


def run_id(out):
    with open(os.path.join(out, "tracking.json"), encoding="utf-8") as f:
        return json.load(f)["mlflow_run_id"]


def reference_model():
    ref = os.path.join(WORK, "tb")
    if not os.path.exists(os.path.join(ref, "model.safetensors")):
        train(ref, "--report-to", "tensorboard")
    return read(os.path.join(ref, "model.safetensors"))


def test_mlflow_run_reads_back_through_the_client():
    import mlflow
    from mlflow_server import MlflowServer
    out = os.path.join(WORK, "mlflow")
    with MlflowServer(os.path.join(WORK, "mlflow-server")) as server:
        p = train(out, "--report-to", "mlflow", "--run-name", "tiny-run", env=mlflow_env(server))
        assert "dropped" not in p.stderr, p.stderr
        client = mlflow.MlflowClient(server.uri)
        run = client.get_run(run_id(out))
        assert run.info.run_name == "tiny-run" and run.info.status == "FINISHED", run.info
        exp = client.get_experiment(run.info.experiment_id)
        assert exp.name == "hfkit-track-test"
        params = run.data.params
        assert params["learning_rate"] == "0.001" and params["max_steps"] == "40" and params["report_to"] == "mlflow", params
        for tag in ("hfkit.version", "hfkit.git_commit", "hfkit.data_sha256"):
            assert run.data.tags.get(tag), (tag, run.data.tags)
        records = jsonl(os.path.join(out, "metrics.jsonl"))
        want = {}
        for r in records:
            for k, v in r.items():
                if k != "step" and isinstance(v, (int, float)):
                    want.setdefault(k, []).append((r["step"], v))
        assert {"loss", "learning_rate", "grad_norm", "eval_accuracy", "eval_loss", "train_runtime"} <= set(want)
        for key, points in want.items():
            hist = sorted((m.step, m.timestamp, m.value) for m in client.get_metric_history(run.info.run_id, key))
            assert [s for s, _, _ in hist] == [s for s, _ in points], (key, hist, points)
            for (_, _, g), (_, w) in zip(hist, points):
                assert math.isclose(g, w, rel_tol=1e-9), (key, g, w)
        names = sorted(a.path for a in client.list_artifacts(run.info.run_id, "model"))
        assert "model/model.safetensors" in names and "model/config.json" in names, names
        local = client.download_artifacts(run.info.run_id, "model/model.safetensors", os.path.join(WORK, "dl"))
        assert read(local) == read(os.path.join(out, "model.safetensors"))
    assert read(os.path.join(out, "model.safetensors")) == reference_model()


def test_mlflow_server_gone_mid_run_costs_nothing():
    from mlflow_server import MlflowServer
    out = os.path.join(WORK, "mlflow-gone")
    server = MlflowServer(os.path.join(WORK, "mlflow-server-gone")).start()
    try:
        p = subprocess.Popen([TRAIN, "--model", TINY, "--data", DATA, "--output-dir", out, *ARGS, "--report-to", "mlflow"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, **mlflow_env(server)})
        m = os.path.join(out, "metrics.jsonl")
        wait_for(lambda: os.path.exists(m) and any(r.get("step", 0) >= 10 for r in jsonl(m)), p, interval=0.005)
        server.stop()
        _, err = p.communicate(timeout=600)
    finally:
        server.stop()
    assert p.returncode == 0, err[-3000:]
    assert read(os.path.join(out, "model.safetensors")) == reference_model()
    assert err.count("unreachable") == 1, err  # warned once
    assert "dropped" in err, err               # and said what was lost


def test_report_to_rejects_unknown_names():
    with tempfile.TemporaryDirectory() as d:
        expect_error([TRAIN, "--model", TINY, "--data", DATA, "--output-dir", d, "--report-to", "wandb"], 64, "wandb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        p = subprocess.run([TRAIN, "--model", TINY, "--data", DATA, "--output-dir", d, "--report-to", "mlflow"],
                           capture_output=True, text=True, env=env)
        assert p.returncode == 78 and "MLFLOW_TRACKING_URI" in p.stderr, (p.returncode, p.stderr)


if __name__ == "__main__":
    setup()
    main(globals())
