"""hf-eval against scikit-learn on the same inputs: random and edge-case single-label and
multi-label predictions, with and without scores, references in a second file joined by line or id.

Every metric hf-eval prints must equal scikit-learn's (default zero_division="warn", i.e. 0 for an
ill-defined precision/recall/F1) within 1e-12.
"""
import json
import os
import random
import subprocess
import warnings

import numpy as np
from sklearn.metrics import (accuracy_score, confusion_matrix, hamming_loss, log_loss,
                             precision_recall_fscore_support)
from sklearn.preprocessing import MultiLabelBinarizer
from sklearn.utils.multiclass import unique_labels

from hfkit_testlib import main, run, stop_trickling, tempdir, tool

warnings.filterwarnings("ignore")  # UndefinedMetricWarning on purpose in the edge cases
TOL = 1e-12
MAX_DIFF = [0.0]


def close(name, ours, ref):
    diff = abs(float(ours) - float(ref))
    MAX_DIFF[0] = max(MAX_DIFF[0], diff)
    assert diff <= TOL, f"{name}: hf-eval {ours!r} vs sklearn {ref!r} (diff {diff:.3g} > {TOL})"


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def hf_eval(records, *args, references=None, expect=0):
    with tempdir() as d:
        p = os.path.join(d, "pred.jsonl")
        write_jsonl(p, records)
        cmd = [tool("hf-eval"), "-q", "--predictions", p, *args]
        if references is not None:
            r = os.path.join(d, "ref.jsonl")
            write_jsonl(r, references)
            cmd += ["--references", r]
        out = run(cmd, check=expect)
        return json.loads(out.stdout) if out.stdout.strip() else None


def key(label):
    return label if isinstance(label, str) else str(label)


def check_prf(out, y_true, y_pred, labels):
    """Per-class and averaged precision/recall/F1 against precision_recall_fscore_support."""
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None)
    assert out["labels"] == [key(l) for l in labels], (out["labels"], labels)
    for i, l in enumerate(labels):
        pc = out["per_class"][key(l)]
        close(f"precision[{l}]", pc["precision"], p[i])
        close(f"recall[{l}]", pc["recall"], r[i])
        close(f"f1[{l}]", pc["f1"], f[i])
        assert pc["support"] == s[i], (l, pc["support"], s[i])
    for avg in ("macro", "micro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=avg)
        close(f"precision_{avg}", out[f"precision_{avg}"], p)
        close(f"recall_{avg}", out[f"recall_{avg}"], r)
        close(f"f1_{avg}", out[f"f1_{avg}"], f)


def check_single(y_true, y_pred, scores=None, fixed=None):
    recs = []
    for i, (t, p) in enumerate(zip(y_true, y_pred)):
        rec = {"text": f"t{i}", "label": t, "prediction": p}
        if scores is not None:
            rec["scores"] = scores[i]
        recs.append(rec)
    args = ["--labels", ",".join(map(key, fixed))] if fixed else []
    out = hf_eval(recs, *args)
    labels = list(fixed) if fixed else list(unique_labels(y_true, y_pred))
    assert out["task"] == "single_label_classification"
    assert out["num_samples"] == len(y_true)
    close("accuracy", out["accuracy"], accuracy_score(y_true, y_pred))
    check_prf(out, y_true, y_pred, labels)
    assert out["confusion_matrix"] == confusion_matrix(y_true, y_pred, labels=labels).tolist()
    if scores is None:
        assert "log_loss" not in out
    else:
        cols = sorted(scores[0], key=lambda k: (int(k) if isinstance(y_true[0], int) else k))
        proba = np.array([[s[c] for c in cols] for s in scores])
        col_labels = [type(y_true[0])(c) for c in cols]
        close("log_loss", out["log_loss"], log_loss(y_true, proba, labels=col_labels))
    return out


def random_scores(rng, names, n, sharp=False):
    rows = []
    for _ in range(n):
        w = np.array([rng.random() ** (8 if sharp else 1) for _ in names])
        w = w / w.sum()
        rows.append({key(k): float(v) for k, v in zip(names, w)})
    return rows


def test_random_single_label():
    rng = random.Random(1234)
    for case in range(60):
        k = rng.randint(2, 8)
        names = [f"class_{c}" for c in range(k)] if case % 3 else list(range(k))
        n = rng.randint(1, 300)
        y_true = [rng.choice(names[: max(1, k - case % 2)]) for _ in range(n)]
        skill = rng.random()
        y_pred = [t if rng.random() < skill else rng.choice(names) for t in y_true]
        scores = random_scores(rng, names, n, sharp=case % 4 == 0) if case % 2 == 0 else None
        check_single(y_true, y_pred, scores)


def test_labels_absent_from_predictions():
    # "c" is never predicted (precision 0/0), "d" never referenced (recall 0/0).
    check_single(["a", "b", "c", "c", "a"], ["a", "a", "b", "d", "a"])


def test_one_class_only_and_one_sample():
    check_single(["x"] * 7, ["x"] * 7)
    check_single(["x"], ["y"])
    check_single([3], [3])


def test_all_wrong():
    check_single(["a", "b", "a", "b"], ["b", "a", "b", "a"])


def test_integer_labels_sort_numerically():
    out = check_single([10, 2, -1, 2, 10, 0], [2, 2, -1, 10, 10, 10])
    assert out["labels"] == ["-1", "0", "2", "10"]


def test_unicode_labels_sort_by_code_point():
    y = ["apple", "Zebra", "Äpfel", "ß", "apple", "日本"]
    out = check_single(y, list(reversed(y)))
    assert out["labels"] == sorted(set(y))


def test_fixed_labels_include_absent_class():
    # With labels= scikit-learn counts an absent class in the macro average (as 0).
    check_single(["neg", "pos", "pos"], ["neg", "pos", "neg"], fixed=["pos", "neg", "neutral"])


def test_log_loss_clipping():
    y_true = ["a", "b", "c", "a"]
    scores = [{"a": 0.0, "b": 1.0, "c": 0.0}, {"a": 0.0, "b": 1.0, "c": 0.0},
              {"a": 0.5, "b": 0.25, "c": 0.25}, {"a": 1.0, "b": 0.0, "c": 0.0}]
    check_single(y_true, ["b", "b", "a", "a"], scores)


def test_log_loss_binary_with_integer_labels():
    rng = random.Random(7)
    y_true = [rng.randint(0, 1) for _ in range(50)]
    scores = random_scores(rng, [0, 1], 50)
    y_pred = [max(s, key=s.get) for s in scores]
    check_single(y_true, [int(p) for p in y_pred], scores)


def check_multi(y_true, y_pred):
    recs = [{"label": t, "prediction": p} for t, p in zip(y_true, y_pred)]
    out = hf_eval(recs)
    mlb = MultiLabelBinarizer().fit(y_true + y_pred)
    T, P = mlb.transform(y_true), mlb.transform(y_pred)
    labels = list(range(len(mlb.classes_)))
    assert out["task"] == "multi_label_classification"
    assert out["labels"] == [key(c) for c in mlb.classes_]
    close("subset_accuracy", out["subset_accuracy"], accuracy_score(T, P))
    close("accuracy", out["accuracy"], accuracy_score(T, P))
    close("hamming_loss", out["hamming_loss"], hamming_loss(T, P))
    if len(labels) == 1:
        # scikit-learn reads a one-column indicator matrix as a binary target: score the column with
        # pos_label 1 instead, which is what a one-label multi-label report means.
        T, P, labels = T[:, 0], P[:, 0], [1]
    # Per-class names come from the classes; check_prf indexes by column.
    renamed = dict(out, per_class={str(l): out["per_class"][key(c)] for l, c in zip(labels, mlb.classes_)},
                   labels=[str(l) for l in labels])
    check_prf(renamed, T, P, labels)
    assert "confusion_matrix" not in out and "log_loss" not in out


def test_random_multi_label():
    rng = random.Random(99)
    for case in range(40):
        names = [f"tag{c}" for c in range(rng.randint(2, 7))]
        n = rng.randint(1, 200)
        y_true = [sorted(rng.sample(names, rng.randint(0, len(names)))) for _ in range(n)]
        y_pred = [sorted(set(t) ^ {x for x in names if rng.random() < 0.2}) for t in y_true]
        if not any(y_true + y_pred):
            y_true[0] = [names[0]]
        check_multi(y_true, y_pred)


def test_multi_label_edges():
    check_multi([[], ["a"], ["a", "b"]], [[], [], ["a", "b", "c"]])
    check_multi([[], []], [["x"], ["y"]])  # no reference labels at all: weighted falls back to the mean
    check_multi([[], []], [["x"], []])
    check_multi([["a"]], [["a"]])


def test_references_joined_by_line_and_by_id():
    rng = random.Random(5)
    names = ["neg", "neu", "pos"]
    n = 80
    y_true = [rng.choice(names) for _ in range(n)]
    y_pred = [t if rng.random() < 0.7 else rng.choice(names) for t in y_true]
    preds = [{"id": i, "prediction": p, "label": "ignored"} for i, p in enumerate(y_pred)]
    refs = [{"id": i, "label": t} for i, t in enumerate(y_true)]
    by_line = hf_eval(preds, references=refs)
    close("accuracy", by_line["accuracy"], accuracy_score(y_true, y_pred))
    shuffled = refs[:]
    rng.shuffle(shuffled)
    by_id = hf_eval(preds, "--id-field", "id", references=shuffled)
    assert by_id == by_line
    check_prf(by_id, y_true, y_pred, list(unique_labels(y_true, y_pred)))


def test_field_overrides():
    recs = [{"gold": "a", "guess": "a", "probs": {"a": 0.9, "b": 0.1}},
            {"gold": "b", "guess": "a", "probs": {"a": 0.6, "b": 0.4}}]
    out = hf_eval(recs, "--prediction-field", "guess", "--reference-field", "gold", "--scores-field", "probs")
    close("accuracy", out["accuracy"], 0.5)
    close("log_loss", out["log_loss"], log_loss(["a", "b"], [[0.9, 0.1], [0.6, 0.4]]))


def test_gates():
    recs = [{"label": "a", "prediction": "a"}, {"label": "b", "prediction": "a"},
            {"label": "b", "prediction": "b"}, {"label": "a", "prediction": "a"}]
    acc = accuracy_score(["a", "b", "b", "a"], ["a", "a", "b", "a"])
    out = hf_eval(recs, "--fail-under", f"accuracy={acc}")  # equal passes
    assert [g["passed"] for g in out["gates"]] == [True]
    with tempdir() as d:
        p = os.path.join(d, "p.jsonl")
        write_jsonl(p, recs)
        r = run([tool("hf-eval"), "-p", p, "--fail-under", "f1_micro=0.5,accuracy=0.9"], check=1)
        assert "gate failed: accuracy" in r.stderr and "f1_micro" not in r.stderr.split("gate failed")[-1], r.stderr
        assert json.loads(r.stdout)["gates"][1]["passed"] is False
        run([tool("hf-eval"), "-p", p, "--fail-over", "hamming_loss=0.1"], check=64)  # single-label: none
        run([tool("hf-eval"), "-p", p, "--fail-under", "acuracy=0.9"], check=64)


def test_fail_over_gates_lower_is_better_metrics():
    # Single-label with scores: log_loss against scikit-learn's; the gate passes at or above it
    # (equal passes, as for --fail-under) and fails just below it, naming the metric.
    names = ["a", "b"]
    y_true = ["a", "b", "b", "a", "b"]
    probs = [0.9, 0.3, 0.6, 0.8, 0.45]  # P(a)
    recs = [{"label": t, "prediction": "a" if p >= 0.5 else "b", "scores": {"a": p, "b": 1 - p}}
            for t, p in zip(y_true, probs)]
    want = log_loss(y_true, [[p, 1 - p] for p in probs], labels=names)
    out = hf_eval(recs, "--fail-over", f"log_loss={want!r}")
    close("log_loss", out["log_loss"], want)
    assert [(g["metric"], g["kind"], g["passed"]) for g in out["gates"]] == [("log_loss", "fail_over", True)]
    with tempdir() as d:
        p = os.path.join(d, "p.jsonl")
        write_jsonl(p, recs)
        r = run([tool("hf-eval"), "-p", p, "--fail-over", f"log_loss={want * 0.999}"], check=1)
        assert "gate failed: log_loss" in r.stderr and " > " in r.stderr, r.stderr
        assert json.loads(r.stdout)["gates"][0]["passed"] is False
        # Both kinds at once: the under-gate passes, the over-gate decides.
        run([tool("hf-eval"), "-p", p, "--fail-under", "accuracy=0.5", "--fail-over", f"log_loss={want * 2}"], check=0)
        run([tool("hf-eval"), "-p", p, "--fail-under", "accuracy=0.5", "--fail-over", f"log_loss={want / 2}"], check=1)
        # Multi-label: hamming_loss against scikit-learn's.
        mt = [["x"], ["x", "y"], [], ["y"]]
        mp = [["x"], ["y"], ["y"], ["y"]]
        write_jsonl(p, [{"label": t, "prediction": q} for t, q in zip(mt, mp)])
        mlb = MultiLabelBinarizer(classes=["x", "y"])
        hl = hamming_loss(mlb.fit_transform(mt), mlb.transform(mp))
        r = run([tool("hf-eval"), "-q", "-p", p, "--fail-over", f"hamming_loss={hl!r}"], check=0)
        close("hamming_loss", json.loads(r.stdout)["hamming_loss"], hl)
        run([tool("hf-eval"), "-p", p, "--fail-over", f"hamming_loss={hl - 0.01}"], check=1)
        # A gate on a metric the input cannot give (log_loss without scores) is a usage error.
        write_jsonl(p, [{"label": "a", "prediction": "a"}, {"label": "b", "prediction": "a"}])
        run([tool("hf-eval"), "-p", p, "--fail-over", "log_loss=0.5"], check=64)


def test_sigterm_prints_nothing():
    rc, out, err = stop_trickling([tool("hf-eval"), "--predictions", "-"], b'{"label": "a", "prediction": "a"}\n' * 1000,
                                  stdout=subprocess.PIPE)
    assert rc == 143, (rc, err)
    assert out == b""


def test_bad_inputs_name_file_line_and_code():
    from hfkit_testlib import expect_error
    with tempdir() as d:
        def bad(lines, code, *fragments, extra=()):
            p = os.path.join(d, "bad.jsonl")
            with open(p, "w") as f:
                f.write("".join(l + "\n" for l in lines))
            expect_error([tool("hf-eval"), "-p", p, *extra], code, *fragments)
        ok = '{"label": "a", "prediction": "a", "scores": {"a": 1}}'
        bad([ok, '{"label": "a"}'], 65, "bad.jsonl:2:", '"prediction"', "missing")
        bad([ok, '{"label": "a", "prediction": 1}'], 65, "bad.jsonl:2:", "mix strings and integers")
        bad([ok, '{"label": "a", "prediction": 1.5}'], 65, "bad.jsonl:2:", "expected a label")
        bad([ok, "{not json"], 65, "bad.jsonl:2:", "invalid JSON")
        bad([ok, '{"label": ["a"], "prediction": ["a"]}'], 65, "bad.jsonl:2:", "list of labels")
        bad([ok, '{"label": "z", "prediction": "a"}'], 65, "bad.jsonl:2:", "unknown label 'z'", extra=("--labels", "a,b"))
        bad([ok, '{"label": "a", "prediction": "a", "scores": {"b": 1.0}}'], 65, "bad.jsonl:2:", "no score for the reference")
        bad([], 65, "bad.jsonl: no records")
        expect_error([tool("hf-eval"), "-p", os.path.join(d, "missing.jsonl")], 66, "missing.jsonl")
        p = os.path.join(d, "p.jsonl")
        write_jsonl(p, [{"id": 1, "prediction": "a"}, {"id": 2, "prediction": "b"}])
        r = os.path.join(d, "r.jsonl")
        write_jsonl(r, [{"id": 1, "label": "a"}, {"id": 3, "label": "b"}])
        expect_error([tool("hf-eval"), "-p", p, "-r", r, "--id-field", "id"], 65, "p.jsonl:2:", "id 2 has no reference")
        write_jsonl(r, [{"id": 1, "label": "a"}])
        expect_error([tool("hf-eval"), "-p", p, "-r", r], 65, "2 records", "1")


if __name__ == "__main__":
    import atexit
    atexit.register(lambda: print(f"max |hf-eval - sklearn| = {MAX_DIFF[0]:.3g} (tolerance {TOL})"))
    main(globals())
