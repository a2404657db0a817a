"""The repository stands alone: a clone into an empty folder (no sibling folders, nothing beside it)
runs `make demo` to the end, reading only what the clone holds. Uses the warm per-user cache (venv,
ccache), so it costs a build from ccache plus the demo's training. Label slow."""
import json
import os
import re
import subprocess

from hfkit_testlib import SRC, main, run, tempdir


def committed_files():
    return run(["git", "-C", SRC, "ls-files"], check=0).stdout.split()


def test_nothing_refers_outside_the_repository():
    # A path that climbs out of the clone into a sibling folder is what broke clones before.
    bad = []
    for rel in committed_files():
        path = os.path.join(SRC, rel)
        if not os.path.isfile(path) or os.path.getsize(path) > 2_000_000:
            continue
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        for n, line in enumerate(text.splitlines(), 1):
            if re.search(r"\.\./shared\b|\.\./\.\./shared", line) and rel != "test/cli/standalone_test.py":
                bad.append(f"{rel}:{n}: {line.strip()}")
    assert not bad, "files refer to a folder outside the repository:\n" + "\n".join(bad)


def test_make_demo_in_a_fresh_clone():
    with tempdir() as tmp:
        clone = os.path.join(tmp, "hfkit")
        run(["git", "clone", "-q", SRC, clone], check=0)
        assert os.listdir(tmp) == ["hfkit"], "the clone must have no siblings"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HFKIT_")}  # no pointers back
        env.update(TMPDIR=tmp, JOBS=str(os.cpu_count() or 2))
        # The demo's quick form: what is tested is that the clone builds and runs every step on its
        # own files; the full 4-epoch training would add ~25 minutes of CI for no other check.
        quick = ["DEMO_TRAIN_ARGS=--max-steps 30", "DEMO_GATE=accuracy=0.6"]
        p = subprocess.run(["make", "demo", *quick], cwd=clone, env=env, capture_output=True, text=True,
                           timeout=3000)
        tail = (p.stdout + p.stderr)[-4000:]
        assert p.returncode == 0, f"make demo failed in a fresh clone (exit {p.returncode}):\n{tail}"
        work = os.path.join(tmp, "hfkit-demo", "run")  # scripts/pipeline.sh's run directory
        with open(os.path.join(work, "dataset", "dataset.json"), encoding="utf-8") as f:
            sources = json.load(f)
        text = json.dumps(sources)
        assert clone in text or "amazon.jsonl" in text, f"dataset.json names no source: {text[:400]}"
        assert "/shared/" not in text, f"the demo read data from outside the clone: {text[:400]}"
        preds = os.path.join(work, "test.predictions.jsonl")
        with open(preds, encoding="utf-8") as f:
            n = sum(1 for line in f if line.strip())
        assert n == 200, f"{preds}: {n} predictions, expected the 200-review test split"
        assert "== demo done" in p.stderr, f"demo did not reach its end:\n{tail}"
        with open(os.path.join(work, "model", "trainer_state.json"), encoding="utf-8") as f:
            assert json.load(f)["global_step"] == 30, "DEMO_TRAIN_ARGS did not reach hf-train"
        # The served answer to the demo's one request: a list of {label, score} for both labels.
        answer = [l for l in p.stdout.splitlines() if l.startswith("[")]
        assert answer and {d["label"] for d in json.loads(answer[-1])} == {"negative", "positive"}, p.stdout[-2000:]


if __name__ == "__main__":
    main(globals())
