"""Small helpers shared by hfkit's Python-driven tests (CLI, golden, s3).

Each test script defines functions named test_*; `main()` runs them, prints one line per test and
a closing "N passed, N failed[, N skipped]" line, and exits non-zero if any failed or none ran. A
test that cannot run here raises Skip("reason"); a script whose tests were all skipped exits
SKIP_EXIT_CODE, which ctest reports as "Skipped" (test/README.md).
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback

BIN = os.environ.get("HFKIT_BIN", "build/bin")
MINILM = os.environ.get("HFKIT_MINILM_DIR", "")
DATA = os.environ.get("HFKIT_DATA") or os.path.join(os.path.dirname(__file__), "..", "..", "data")
SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MAKE_TINY = os.path.join(SRC, "scripts", "make-tiny-bert.py")
TINY_YAML = os.path.join(SRC, "configs", "tiny.yaml")
AMAZON = os.path.join(DATA, "sentiment", "amazon.jsonl")
CHECKPOINT_MARKER = ".complete"  # lib/train/internal.h kCompleteMarker, local and remote
# Exit code of a script whose every test was skipped; test/CMakeLists.txt reads it from this line
# into SKIP_RETURN_CODE. Not a <sysexits.h> code nor 128+N, so that no hfkit tool's exit status
# passed through can read as a skip (git bisect's "skip" code).
SKIP_EXIT_CODE = 125


class Skip(Exception):
    """Raised by a test that cannot run on this machine; the message says why."""


def skip_unless_ci(reason):
    """Skips the test for `reason`, except under CI (env CI=true), where whatever the test needs is
    installed (scripts/setup.sh, the venv) and its absence is a failure."""
    if os.environ.get("CI") == "true":
        raise AssertionError(f"{reason} (CI=true: required there)")
    raise Skip(reason)


def tool(name):
    return os.path.join(BIN, name)


def run(args, input=None, check=None, env=None, timeout=600):
    """Runs a command; returns CompletedProcess with text stdout/stderr. `check`: expected exit code."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    p = subprocess.run(args, input=input, capture_output=True, text=isinstance(input, str) or input is None,
                       env=full_env, timeout=timeout)
    if check is not None and p.returncode != check:
        raise AssertionError(f"{' '.join(map(str, args))}: exit {p.returncode}, expected {check}\n"
                             f"stderr: {p.stderr[-2000:]}")
    return p


def expect_error(args, code, *fragments, input=None):
    """Runs a command that must fail with `code` and a one-line error containing every fragment."""
    p = run(args, input=input, check=code)
    lines = [l for l in p.stderr.splitlines() if ": error: " in l]
    assert len(lines) == 1, f"expected one error line, got: {p.stderr!r}"
    for f in fragments:
        assert f in lines[0], f"{f!r} not in error line {lines[0]!r}"
    return p


# ---- hf-train runs on the tiny random BERT (test/cli/train, test/s3) ----

def make_tiny_bert(out, *extra, seed=0):
    """scripts/make-tiny-bert.py: a random BERT (hidden 32, 2 layers), labels negative/positive."""
    run([sys.executable, MAKE_TINY, out, "--seed", str(seed), *extra], check=0)


def tokenize_amazon(preprocess, tokenizer, out):
    """The amazon sentiment sample tokenized for the tiny model: 800 / 100 / 100 examples."""
    run([preprocess, "--tokenizer", tokenizer, "--input", AMAZON, "--output", out, "--stratify", "--seed", "3",
         "--max-length", "64", "-q"], check=0)


def read(path, mode="rb"):
    with open(path, mode) as f:
        return f.read()


def jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def deterministic_part(records):
    """Loss and eval records of a metrics.jsonl without the wall-clock fields."""
    timing = {"samples_per_second", "tokens_per_second", "eval_runtime", "eval_samples_per_second",
              "eval_steps_per_second"}
    return [{k: v for k, v in r.items() if k not in timing} for r in records if "loss" in r or "eval_loss" in r]


def same_training(out, ref):
    """Asserts that output dir `out` ended exactly as `ref`: model.safetensors bytes and the logged
    losses and eval metrics."""
    assert read(os.path.join(out, "model.safetensors")) == read(os.path.join(ref, "model.safetensors")), \
        f"{out}/model.safetensors differs from {ref}'s"
    got = deterministic_part(jsonl(os.path.join(out, "metrics.jsonl")))
    assert got == deterministic_part(jsonl(os.path.join(ref, "metrics.jsonl"))), \
        f"{out}/metrics.jsonl losses differ from {ref}'s"


def complete_checkpoints(out):
    """Steps of the complete (marked) checkpoint-N dirs in an output dir, ascending."""
    if not os.path.isdir(out):
        return []
    return sorted(int(n.split("-")[1]) for n in os.listdir(out)
                  if n.startswith("checkpoint-") and os.path.exists(os.path.join(out, n, CHECKPOINT_MARKER)))


def wait_for(pred, proc, timeout=120, interval=0.0005):
    """Polls pred() every `interval` seconds until true (True) or proc exits (False); raises after
    `timeout` seconds."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if pred():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(interval)
    raise AssertionError("timed out waiting")


def stop_trickling(args, lines, sig=signal.SIGTERM, settle=1.0, timeout=10, stdout=subprocess.DEVNULL):
    """Starts `args` with `lines` (bytes) on a stdin that stays open, so the run could only end at
    EOF; after `settle` seconds sends `sig` and returns (exit status, stdout bytes, stderr text).
    Waiting longer than `timeout` after the signal is a failure: the signal did not stop it."""
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=stdout, stderr=subprocess.PIPE)
    try:
        p.stdin.write(lines)
        p.stdin.flush()
        time.sleep(settle)
        p.send_signal(sig)
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{args[0]}: still running {timeout} s after signal {sig}")
        return rc, p.stdout.read() if p.stdout else b"", p.stderr.read().decode(errors="replace")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdin.close()


def tempdir():
    return tempfile.TemporaryDirectory(prefix="hfkit-test-")


def main(namespace):
    """Runs the test_* functions of `namespace` (or those named on the command line) and exits: 1 if
    one failed or none ran, SKIP_EXIT_CODE if every one was skipped, else 0."""
    tests = [(k, v) for k, v in namespace.items() if k.startswith("test_") and callable(v)]
    only = sys.argv[1:]
    passed = failed = skipped = 0
    for name, fn in tests:
        if only and name not in only:
            continue
        try:
            fn()
            passed += 1
            print(f"PASS {name}", flush=True)
        except Skip as e:
            skipped += 1
            print(f"SKIP {name}: {e}", flush=True)
        except Exception:  # report every failure, keep going
            failed += 1
            print(f"FAIL {name}\n{traceback.format_exc()}", flush=True)
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    if failed:
        sys.exit(1)
    if passed:
        sys.exit(0)
    if skipped:
        sys.exit(SKIP_EXIT_CODE)
    print(f"error: no test ran (tests named: {only or 'all'})", file=sys.stderr)
    sys.exit(1)
