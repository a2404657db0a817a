"""hf-eval's new metrics (roc_auc, average_precision, mcc, per-class support) equal scikit-learn's
on predictions with hf-predict's `scores` field, and gate like the others; --report FILE.html is
one self-contained page that headless Chromium renders without console errors, with a non-empty
SVG in every chart (the screenshot is kept in <build>/test-artifacts/report/); --report FILE.md
holds the GFM tables."""
import json
import math
import os
import random
import re
import tempfile

from hfkit_testlib import BIN, expect_error, main, run, tool

EVAL = tool("hf-eval")
WORK = tempfile.mkdtemp(prefix="hfkit-report-test-")
ARTIFACTS = os.path.join(os.path.dirname(os.path.abspath(BIN)), "test-artifacts", "report")


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return path


def binary_predictions(n=300, seed=1):
    """hf-predict --scores output for a noisy binary classifier (some tied scores)."""
    rng = random.Random(seed)
    recs = []
    for i in range(n):
        label = rng.choice(["negative", "positive"])
        p = min(1.0, max(0.0, rng.gauss(0.68 if label == "positive" else 0.35, 0.2)))
        p = round(p, 2)  # ties, as real rounded scores have
        pred = "positive" if p >= 0.5 else "negative"
        recs.append({"id": i, "label": label, "prediction": pred, "scores": {"negative": 1 - p, "positive": p}})
    return recs


def training_log():
    recs = []
    for step in range(10, 110, 10):
        recs.append({"step": step, "epoch": step / 100, "loss": 1 / step ** 0.5, "grad_norm": 1.0,
                     "learning_rate": 1e-3 * (1 - step / 100), "samples_per_second": 100.0})
        if step % 20 == 0:
            recs.append({"step": step, "epoch": step / 100, "eval_loss": 1.2 / step ** 0.5,
                         "eval_accuracy": 0.5 + step / 250})
    return recs


def evaluate(preds, *args, check=0):
    p = run([EVAL, "--predictions", preds, *args], check=check)
    return json.loads(p.stdout) if p.stdout else None


def test_new_metrics_equal_scikit_learn_binary():
    from sklearn.metrics import average_precision_score, matthews_corrcoef, roc_auc_score
    recs = binary_predictions()
    preds = write_jsonl(os.path.join(WORK, "binary.jsonl"), recs)
    got = evaluate(preds)
    y = [r["label"] == "positive" for r in recs]
    s = [r["scores"]["positive"] for r in recs]
    want = {"roc_auc": roc_auc_score(y, s), "average_precision": average_precision_score(y, s),
            "mcc": matthews_corrcoef([r["label"] for r in recs], [r["prediction"] for r in recs])}
    for k, v in want.items():
        assert math.isclose(got[k], v, rel_tol=1e-12, abs_tol=1e-12), (k, got[k], v)
    for label in ("negative", "positive"):
        assert got["per_class"][label]["support"] == sum(r["label"] == label for r in recs)
    # Nothing the JSON had before moved: the new keys come after the old ones.
    keys = list(got)
    assert keys.index("log_loss") < keys.index("mcc") < keys.index("roc_auc") < keys.index("average_precision")
    assert keys[-3:] == ["labels", "per_class", "confusion_matrix"], keys


def test_mcc_multiclass_and_no_auc_without_two_labels():
    from sklearn.metrics import matthews_corrcoef
    rng = random.Random(2)
    recs = [{"label": rng.choice("abc"), "prediction": rng.choice("abc")} for _ in range(200)]
    got = evaluate(write_jsonl(os.path.join(WORK, "multi.jsonl"), recs))
    want = matthews_corrcoef([r["label"] for r in recs], [r["prediction"] for r in recs])
    assert math.isclose(got["mcc"], want, rel_tol=1e-12, abs_tol=1e-12), (got["mcc"], want)
    assert "roc_auc" not in got and "average_precision" not in got


def test_new_metrics_gate():
    preds = write_jsonl(os.path.join(WORK, "binary.jsonl"), binary_predictions())
    got = evaluate(preds, "--fail-under", "roc_auc=0.5,mcc=0.1")
    assert all(g["passed"] for g in got["gates"])
    p = run([EVAL, "--predictions", preds, "--fail-under", "roc_auc=0.9999"], check=1)
    assert "gate failed: roc_auc" in p.stderr, p.stderr


def test_report_flags_are_checked():
    preds = write_jsonl(os.path.join(WORK, "binary.jsonl"), binary_predictions())
    expect_error([EVAL, "--predictions", preds, "--report", os.path.join(WORK, "r.pdf")], 64, "--report", ".html")
    expect_error([EVAL, "--predictions", preds, "--training-log", "x.jsonl"], 64, "--training-log")


def report(name):
    """hf-eval --report WORK/name on the binary predictions with a training log: (JSON, report text)."""
    preds = write_jsonl(os.path.join(WORK, "binary.jsonl"), binary_predictions())
    log = write_jsonl(os.path.join(WORK, "metrics.jsonl"), training_log())
    path = os.path.join(WORK, name)
    got = evaluate(preds, "--report", path, "--training-log", log)
    with open(path, encoding="utf-8") as f:
        return got, f.read()


def test_markdown_report_has_the_tables():
    got, md = report("report.md")
    assert f"| roc_auc | {got['roc_auc']:.4f} |" in md, md
    assert re.search(r"^\| positive \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| \d+ \|$", md, re.M), md
    cm = got["confusion_matrix"]
    assert f"| negative | {cm[0][0]} | {cm[0][1]} |" in md, md
    assert "Last training eval (step 100)" in md, md


def test_html_report_renders_in_chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    got, html = report("report.html")
    html_path = os.path.join(WORK, "report.html")
    # Self-contained: no script, nothing fetched (the SVG namespace is a name, not a fetch).
    assert "<script" not in html.lower()
    assert not re.search(r"(src|href)\s*=", html, re.I)
    assert re.findall(r"https?://[^\"]+", html) == ["http://www.w3.org/2000/svg"] * html.count("<svg"), "external URL"
    assert f"AUC {got['roc_auc']:.4f}" in html

    options = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,2400"):
        options.add_argument(a)
    options.binary_location = "/usr/bin/chromium"
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get("file://" + html_path)
        figures = driver.execute_script(
            "return [...document.querySelectorAll('figure')].map(f => {"
            "  const s = f.querySelector('svg'); const b = s ? s.getBBox() : null;"
            "  return [f.id, s ? s.querySelectorAll('*').length : 0, b ? b.width * b.height : 0]; })")
        ids = [f[0] for f in figures]
        assert ids == ["confusion-matrix", "per-class-bars", "roc-curve", "pr-curve", "score-histogram",
                       "training-loss", "eval-metrics", "learning-rate"], ids
        for fid, elements, area in figures:
            assert elements > 3 and area > 1000, (fid, elements, area)
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert not errors, errors
        os.makedirs(ARTIFACTS, exist_ok=True)
        shot = os.path.join(ARTIFACTS, "report.png")
        driver.save_screenshot(shot)
        assert os.path.getsize(shot) > 10000
        print(f"  screenshot: {shot}")
    finally:
        driver.quit()


if __name__ == "__main__":
    main(globals())
