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


# For kill tests that need the MLflow thread to catch up between checkpoints: 30 steps apart.
LONG_ARGS = ["--config", TINY_YAML, "--threads", "1", "--max-steps", "120", "--save-steps", "30", "--eval-steps", "30",
             "--logging-steps", "5"]


def train(out, *args, check=0, env=None, base=ARGS):
    return run([TRAIN, "--model", TINY, "--data", DATA, "--output-dir", out, *base, *args], check=check, env=env)


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
    """The TensorBoard directory tracking.json names (kept relative to `out` when inside it)."""
    with open(os.path.join(out, "tracking.json"), encoding="utf-8") as f:
        return os.path.join(out, json.load(f)["logging_dir"])


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
        assert wait_for(lambda: os.path.exists(m) and any(r.get("step", 0) >= 10 for r in jsonl(m)), p,
                        interval=0.005), "the run ended before step 10 was logged"
        p.send_signal(signal.SIGSTOP)  # a fast host would otherwise finish the run while the server stops
        server.stop()
        p.send_signal(signal.SIGCONT)
        _, err = p.communicate(timeout=600)
    finally:
        server.stop()
    assert p.returncode == 0, err[-3000:]
    assert read(os.path.join(out, "model.safetensors")) == reference_model()
    assert err.count("unreachable") == 1, err  # warned once
    assert "dropped" in err, err               # and said what was lost


def mlflow_histories(client, rid):
    """{metric: [(step, value)]} of a run, in the order the server got them (timestamp, then step)."""
    out = {}
    for key in client.get_run(rid).data.metrics:
        hist = sorted((m.timestamp, m.step, m.value) for m in client.get_metric_history(rid, key))
        out[key] = [(s, v) for _, s, v in hist]
    return out


def kill_after_logging_past_a_checkpoint(out, args, env, client, newer_than):
    """Starts hf-train and kill -9s it once a checkpoint newer than step `newer_than` is complete and
    the MLflow run holds a loss step after it; returns that checkpoint's step.

    The run takes seconds on a fast host, a checkpoint every half second: polling a moving run lost
    the race (CI). So once metrics.jsonl is past a new checkpoint the run is frozen with SIGSTOP, the
    server asked, and the run either killed where it stands or let go on to try again."""
    p = subprocess.Popen([TRAIN, "--model", TINY, "--data", DATA, "--output-dir", out, *LONG_ARGS, *args],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **env})

    def logged_locally_past_a_new_checkpoint():
        done = complete_checkpoints(out)
        if not done or done[-1] <= newer_than:
            return False
        try:
            return any(r.get("step", 0) > done[-1] for r in jsonl(os.path.join(out, "metrics.jsonl")))
        except ValueError:  # a line being written
            return False

    def server_past_newest_checkpoint():
        try:
            steps = [m.step for m in client.get_metric_history(run_id(out), "loss")]
        except (OSError, KeyError, ValueError):  # no run yet
            return False
        return bool(steps) and max(steps) > complete_checkpoints(out)[-1]

    while True:
        assert wait_for(logged_locally_past_a_new_checkpoint, p, interval=0.01), \
            p.communicate()[1].decode()[-3000:]
        p.send_signal(signal.SIGSTOP)
        if logged_locally_past_a_new_checkpoint() and server_past_newest_checkpoint():
            break
        p.send_signal(signal.SIGCONT)  # its log requests may still be on the way: let it send them
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    newest = complete_checkpoints(out)[-1]
    logged = max(m.step for m in client.get_metric_history(run_id(out), "loss"))
    # What makes the test bite: the run holds steps the resume will train again.
    assert newest < logged < 120, (newest, logged)
    return newest


def test_mlflow_kill_and_resume_here_and_elsewhere_keep_one_run_without_duplicate_steps():
    """kill -9 after a checkpoint and more logged steps, resume in place, kill -9 again, resume on
    "another machine": a new output dir that --sync-to fills with the checkpoint alone (no
    tracking.json). One MLflow run, each metric's steps unique and the same as an uninterrupted
    run's (epoch repeats at an eval step there too: HF logs it with the train and the eval record)."""
    import mlflow
    from mlflow_server import MlflowServer
    remote = os.path.join(WORK, "mlflow-kill-remote")
    here, elsewhere = os.path.join(WORK, "mlflow-kill"), os.path.join(WORK, "mlflow-kill-elsewhere")
    with MlflowServer(os.path.join(WORK, "mlflow-server-kill")) as server:
        client = mlflow.MlflowClient(server.uri)
        ref_env = {"MLFLOW_TRACKING_URI": server.uri, "MLFLOW_EXPERIMENT_NAME": "uninterrupted"}
        ref_out = os.path.join(WORK, "mlflow-uninterrupted")
        train(ref_out, "--report-to", "mlflow", env=ref_env, base=LONG_ARGS)
        want = mlflow_histories(client, run_id(ref_out))

        env = {"MLFLOW_TRACKING_URI": server.uri, "MLFLOW_EXPERIMENT_NAME": "killed"}
        args = ["--report-to", "mlflow", "--sync-to", remote, "--resume", "auto"]
        first = kill_after_logging_past_a_checkpoint(here, args, env, client, 0)
        kill_after_logging_past_a_checkpoint(here, args, env, client, first)
        assert not os.path.exists(elsewhere)
        p = train(elsewhere, *args, env=env, base=LONG_ARGS)
        assert "downloading" in p.stderr, p.stderr[-3000:]

        exp = client.get_experiment_by_name("killed")
        runs = client.search_runs([exp.experiment_id])
        assert [r.info.run_id for r in runs] == [run_id(here)] == [run_id(elsewhere)], \
            ([r.info.run_id for r in runs], run_id(here), run_id(elsewhere))
        assert runs[0].info.status == "FINISHED", runs[0].info
        got = mlflow_histories(client, run_id(elsewhere))
        assert sorted(got) == sorted(want), (sorted(got), sorted(want))
        for key, points in got.items():
            steps = [s for s, _ in points]
            if key != "epoch":
                assert all(a < b for a, b in zip(steps, steps[1:])), (key, steps)
            assert steps == [s for s, _ in want[key]], (key, steps, want[key])
            if "per_second" not in key and "runtime" not in key:  # timings differ between runs
                for (_, g), (_, w) in zip(points, want[key]):
                    assert math.isclose(g, w, rel_tol=1e-6), (key, g, w)
        names = [a.path for a in client.list_artifacts(run_id(elsewhere), "model")]
        assert "model/model.safetensors" in names, names
    assert read(os.path.join(elsewhere, "model.safetensors")) == read(os.path.join(ref_out, "model.safetensors"))


class HostileServer:
    """A loopback HTTP server that answers every request with `status` and `body` (not MLflow)."""

    def __init__(self, status, body):
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def answer(self):
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            do_GET = do_POST = do_PUT = answer

            def log_message(self, *args):
                pass
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_mlflow_server_answering_garbage_or_500_costs_nothing():
    """Not MLflow behind the URI: an HTML page with a terminal escape and a newline in it, then a
    server failing with 500 at every request. Exit 0, the same model, a few one-line warnings
    (the server's bytes escaped), and the count of dropped values."""
    for status, body in ((200, b"<html>\x1b[31mnot mlflow\nforged: error: line</html>"), (500, b"oops\x1b[2J")):
        out = os.path.join(WORK, f"mlflow-hostile-{status}")
        with HostileServer(status, body) as server:
            p = train(out, "--report-to", "mlflow", env={"MLFLOW_TRACKING_URI": server.uri,
                                                         "MLFLOW_EXPERIMENT_NAME": "x"})
        assert read(os.path.join(out, "model.safetensors")) == reference_model()
        assert "\x1b" not in p.stderr and "\nforged" not in p.stderr, p.stderr
        warnings = [line for line in p.stderr.splitlines() if ": warning: " in line or ": warn: " in line]
        assert 1 <= len(warnings) <= 3 and "dropped" in warnings[-1], (status, warnings)


def test_logging_dir_that_is_a_file_is_a_one_line_error():
    with tempfile.TemporaryDirectory() as d:
        not_a_dir = os.path.join(d, "file")
        with open(not_a_dir, "w") as f:
            f.write("x")
        p = run([TRAIN, "--model", TINY, "--data", DATA, "--output-dir", os.path.join(d, "out"), *ARGS,
                 "--report-to", "tensorboard", "--logging-dir", not_a_dir], check=73)
        errors = [line for line in p.stderr.splitlines() if ": error: " in line]
        assert len(errors) == 1 and not_a_dir in errors[0], p.stderr


def test_run_name_with_control_characters_reaches_mlflow_and_not_the_terminal():
    import mlflow
    from mlflow_server import MlflowServer
    name = "tiny\x1b[31m\nrun"
    out = os.path.join(WORK, "mlflow-odd-name")
    with MlflowServer(os.path.join(WORK, "mlflow-server-odd-name")) as server:
        p = train(out, "--report-to", "mlflow", "--run-name", name, env=mlflow_env(server))
        assert mlflow.MlflowClient(server.uri).get_run(run_id(out)).info.run_name == name
    assert "\x1b" not in p.stderr, p.stderr


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
