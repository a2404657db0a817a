"""The suite's guard against tests that pass without testing (test/README.md): the doctest main fails
a run whose filter selects no case and a case that executes no assertion; hfkit_testlib.main() fails
a script where no test ran, reports Skip("reason") as a skip and exits SKIP_EXIT_CODE when every
test was skipped, and skip_unless_ci() fails under CI=true."""
import os
import sys

from hfkit_testlib import SKIP_EXIT_CODE, main, run, tempdir

UNIT = os.environ["HFKIT_UNIT_TESTS"]


def test_doctest_filter_selecting_no_case_fails():
    p = run([UNIT, "--test-case=hfkit-guard-no-such-case"], check=1)
    assert "the filter selected no test case" in p.stderr, p.stderr
    # The same with the first half of a name split at ';', as ctest ran it (a filter is the whole name).
    p = run([UNIT, "--test-case=gpu: reference GEMM"], check=1)
    assert "the filter selected no test case" in p.stderr, p.stderr


def test_doctest_case_without_assertion_fails():
    p = run([UNIT, "--no-skip", "--test-case=guard: a case that checks nothing"], check=1)
    assert 'test case "guard: a case that checks nothing" executed no assertion' in p.stderr, p.stderr


def test_doctest_real_case_and_queries_pass():
    p = run([UNIT, "--test-case=gpu: reference GEMM against hand-computed products"], check=0)
    assert p.stderr == "", p.stderr
    listed = run([UNIT, "--list-test-cases"], check=0).stdout
    assert "gpu: reference GEMM" in listed and "guard: a case that checks nothing" not in listed, listed
    run([UNIT, "--count"], check=0)
    run([UNIT, "--help"], check=0)


SCRIPT = """
import sys
from hfkit_testlib import Skip, main, skip_unless_ci

def test_pass():
    assert True

def test_skip():
    raise Skip("no widget here")

def test_ci():
    skip_unless_ci("no linter here")

def test_fail():
    assert False, "boom"

if __name__ == "__main__":
    main(globals())
"""


def script_run(*names, env=None):
    with tempdir() as tmp:
        path = os.path.join(tmp, "t.py")
        with open(path, "w") as f:
            f.write(SCRIPT)
        return run([sys.executable, path, *names], env={"CI": "", **(env or {})})


def test_testlib_exit_codes_and_closing_line():
    cases = [
        (["test_pass", "test_skip"], 0, "1 passed, 0 failed, 1 skipped"),
        (["test_skip", "test_ci"], SKIP_EXIT_CODE, "0 passed, 0 failed, 2 skipped"),
        (["test_skip", "test_fail"], 1, "0 passed, 1 failed, 1 skipped"),
        (["test_pass"], 0, "1 passed, 0 failed"),
        (["test_no_such_test"], 1, "0 passed, 0 failed"),
    ]
    for names, code, closing in cases:
        p = script_run(*names)
        assert p.returncode == code, (names, p.returncode, p.stdout, p.stderr)
        assert p.stdout.splitlines()[-1] == closing, (names, p.stdout)
    p = script_run("test_skip", "test_ci")
    assert "SKIP test_skip: no widget here" in p.stdout.splitlines(), p.stdout
    assert "SKIP test_ci: no linter here" in p.stdout.splitlines(), p.stdout
    assert "no test ran" in script_run("test_no_such_test").stderr


def test_skip_unless_ci_fails_under_ci():
    p = script_run("test_ci", env={"CI": "true"})
    assert p.returncode == 1, (p.returncode, p.stdout)
    assert "FAIL test_ci" in p.stdout and "no linter here (CI=true: required there)" in p.stdout, p.stdout


if __name__ == "__main__":
    main(globals())
