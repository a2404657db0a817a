"""Small helpers shared by hfkit's Python-driven tests (CLI, golden, s3).

Each test script defines functions named test_*; `main()` runs them, prints one line per test and
a closing "N passed, N failed" line, and exits non-zero if any failed.
"""
import os
import subprocess
import sys
import tempfile
import traceback

BIN = os.environ.get("HFKIT_BIN", "build/bin")
MINILM = os.environ.get("HFKIT_MINILM_DIR", "")
SHARED_DATA = os.environ.get("HFKIT_SHARED_DATA", os.path.join(os.path.dirname(__file__), "../../../shared/data"))


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


def tempdir():
    return tempfile.TemporaryDirectory(prefix="hfkit-test-")


def main(namespace):
    tests = [(k, v) for k, v in namespace.items() if k.startswith("test_") and callable(v)]
    only = sys.argv[1:]
    passed = failed = 0
    for name, fn in tests:
        if only and name not in only:
            continue
        try:
            fn()
            passed += 1
            print(f"PASS {name}", flush=True)
        except Exception:  # report every failure, keep going
            failed += 1
            print(f"FAIL {name}\n{traceback.format_exc()}", flush=True)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed or not passed else 0)
