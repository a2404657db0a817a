"""Every tool: --help (stdout, exit 0, examples, exit codes, defaults), --version (build info),
an unknown flag (exit 64, one error line), and no duplicate flags (CLI11 refuses them at start)."""
import os
import re

from hfkit_testlib import BIN, main, run

TOOLS = [t for t in ["hf-preprocess", "hf-train", "hf-eval", "hf-predict", "hf-sync", "hf-registry", "gpu-check"]
         if os.path.exists(os.path.join(BIN, t))]


def test_some_tools_exist():
    assert "hf-preprocess" in TOOLS, TOOLS


def test_help():
    for t in TOOLS:
        p = run([os.path.join(BIN, t), "--help"], check=0)
        assert p.stderr == "", (t, p.stderr)
        for needle in ["Usage:", "Examples:", "Exit codes:", "--version", "--config", "--log-format"]:
            assert needle in p.stdout, (t, needle)
        options = p.stdout.split("Options:", 1)[1].split("Examples:", 1)[0]  # not the examples' flags
        flags = re.findall(r"^\s+(?:-\w,)?(--[\w-]+)", options, re.M)
        assert "--help" in flags and "--version" in flags, (t, flags)
        assert len(flags) == len(set(flags)), (t, "duplicate flags", flags)


def test_version():
    for t in TOOLS:
        p = run([os.path.join(BIN, t), "--version"], check=0)
        assert p.stdout.startswith(f"{t} (hfkit) "), (t, p.stdout)
        for needle in ["commit: ", "compiler: ", "libtorch: ", "cuda: "]:
            assert needle in p.stdout, (t, needle)


def test_bad_flag():
    for t in TOOLS:
        p = run([os.path.join(BIN, t), "--no-such-flag"], check=64)
        assert p.stdout == "", (t, p.stdout)
        assert f"{t}: error: " in p.stderr, (t, p.stderr)


if __name__ == "__main__":
    main(globals())
