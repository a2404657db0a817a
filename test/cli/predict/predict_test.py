"""hf-predict end to end on the real binary against transformers: on model directories saved by
transformers (all-MiniLM-L6-v2 with a fresh 2-label head, tiny random BERTs with single-label,
multi-label and regression heads, one or two outputs), labels and probabilities equal
transformers' within TOL, in input order with every input field passed through byte for byte;
text pairs; lines input; TSV via hf-preprocess; bad input and exit codes; `| head -n 1` is quiet;
`hf-predict | hf-eval --predictions -`; atomic output files and special files written through;
NaN weights refused; SIGTERM stops promptly."""
import functools
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hfkit_testlib import MINILM, DATA, expect_error, main, run, stop_trickling, tempdir, tool

PREDICT = tool("hf-predict")
EVAL = tool("hf-eval")
SENTIMENT = [os.path.join(DATA, "sentiment", f) for f in ("amazon.jsonl", "yelp.jsonl")]
MAKE_TINY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts", "make-tiny-bert.py")
# Observed: 6.6e-8 on probabilities, a few 1e-7 on raw regression values (fp32 logits either side).
# About 10-50x that: a wrong epsilon, a dropped bias or a float softmax shows up.
# ~10x the largest error observed per model kind (float32 kernels that sum in another order than
# transformers'): MiniLM's probabilities differ by <= 7e-8, the tiny random BERTs' (weights drawn
# large, so logits are large) by <= 3.6e-6 and their raw regression values by <= 1.9e-5.
TOL_BY_KIND = {"minilm": 1e-6, "tiny": 4e-5, "multi": 4e-5, "regression": 2e-4}
TOL = TOL_BY_KIND["tiny"]
TOKENIZER_FILES = ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]

# Models live for the whole run (made once, removed at exit).
WORK = tempfile.TemporaryDirectory(prefix="hfkit-predict-test-")


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f]


def parse_jsonl(text):
    return [json.loads(l) for l in text.splitlines()]


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


@functools.cache
def sentiment():
    """The 2000 shared sentiment records, with extra fields that must pass through untouched."""
    records = []
    for path in SENTIMENT:
        for i, r in enumerate(read_jsonl(path)):
            records.append({"id": len(records), "source": os.path.basename(path), "text": r["text"],
                            "label": r["label"], "meta": {"line": i + 1, "tags": ["a", None, 1.5]}})
    return records


@functools.cache
def model_dir(kind):
    """A model directory saved by transformers: 'minilm' (all-MiniLM-L6-v2 + fresh 2-label head),
    'tiny' (random, 2 labels), 'multi' (random, 3 labels, multi-label), 'regression' (1 output)."""
    out = os.path.join(WORK.name, kind)
    if kind == "minilm":
        torch.manual_seed(0)
        m = AutoModelForSequenceClassification.from_pretrained(
            MINILM, num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
        m.save_pretrained(out)
        for name in TOKENIZER_FILES:
            if os.path.exists(os.path.join(MINILM, name)):
                shutil.copyfile(os.path.join(MINILM, name), os.path.join(out, name))
        return out
    # A wide initialiser spreads the random logits, so labels and thresholds are decided clearly.
    args = {"tiny": ["--labels", "negative,positive", "--seed", "1"],
            "multi": ["--labels", "toxic,spam,off topic", "--problem-type", "multi_label_classification",
                      "--seed", "2"],
            "regression": ["--num-labels", "1", "--seed", "3"],
            "regression2": ["--labels", "arousal,valence", "--problem-type", "regression", "--seed", "4"]}[kind]
    subprocess.run([sys.executable, MAKE_TINY, out, "--set", "initializer_range=0.5"] + args, check=True,
                   capture_output=True)
    return out


@functools.cache
def hf_model(kind):
    d = model_dir(kind)
    return AutoTokenizer.from_pretrained(d), AutoModelForSequenceClassification.from_pretrained(d).eval()


def hf_logits(kind, texts, pairs=None, max_length=None):
    """transformers' logits [N, L] (fp32, CPU, eval), batches of 64 padded to their longest."""
    tok, model = hf_model(kind)
    max_length = max_length or model.config.max_position_embeddings
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), 64):
            enc = tok(texts[i:i + 64], pairs[i:i + 64] if pairs else None, truncation=True, max_length=max_length,
                      padding=True, return_tensors="pt")
            out.append(model(**enc).logits.float())
    return torch.cat(out)


def predict(kind, records, *flags, input_path=None):
    """Runs hf-predict on `records` (JSONL via stdin); returns the parsed output records."""
    with tempdir() as d:
        path = input_path or os.path.join(d, "in.jsonl")
        if input_path is None:
            write_jsonl(path, records)
        p = run([PREDICT, "--model", model_dir(kind), "--input", path, "-q"] + list(flags), check=0)
    assert p.stderr == "", p.stderr
    return parse_jsonl(p.stdout)


def check_passthrough(inputs, outputs, added):
    """Same count, same order, every input field unchanged and first, then exactly `added`."""
    assert len(outputs) == len(inputs), (len(outputs), len(inputs))
    for i, (a, b) in enumerate(zip(inputs, outputs)):
        assert list(b.keys()) == list(a.keys()) + added, (i, list(b.keys()))
        for k, v in a.items():
            assert b[k] == v, (i, k, b[k], v)


def check_single_label(kind, inputs, outputs, logits, with_scores):
    labels = hf_model(kind)[1].config.id2label
    probs = torch.softmax(logits.double(), dim=-1)
    worst = 0.0
    for i, out in enumerate(outputs):
        p = probs[i]
        top = int(torch.argmax(p))
        second = float(torch.topk(p, 2).values[1]) if len(p) > 1 else 0.0
        # A near tie may go either way within the tolerance; otherwise the label must match.
        if float(p[top]) - second > 2 * TOL:
            assert out["prediction"] == labels[top], (i, out, p.tolist())
        chosen = [k for k, v in labels.items() if v == out["prediction"]][0]
        worst = max(worst, abs(out["score"] - float(p[chosen])))
        if with_scores:
            assert list(out["scores"]) == [labels[j] for j in range(len(labels))]
            for j in range(len(labels)):
                worst = max(worst, abs(out["scores"][labels[j]] - float(p[j])))
    tol = TOL_BY_KIND.get(kind, TOL)
    print(f"  {kind}: {len(outputs)} records, max |score diff| {worst:.2e} (tolerance {tol})")
    assert worst <= tol


def test_minilm_matches_transformers():
    records = sentiment()
    outputs = predict("minilm", records, "--scores")
    check_passthrough(records, outputs, ["prediction", "score", "scores"])
    check_single_label("minilm", records, outputs, hf_logits("minilm", [r["text"] for r in records]), True)


def test_tiny_random_matches_transformers_across_windows_and_batches():
    # 6000 records: several read windows; odd batch size; truncation to 16 tokens. Two threads run
    # two batches at once by default (--parallel-batches 0); 1 runs one batch over both threads.
    records = [dict(r, id=i) for i, r in enumerate(sentiment() * 3)]
    logits = hf_logits("tiny", [r["text"] for r in records], max_length=16)
    for parallel in ("0", "1"):
        outputs = predict("tiny", records, "--batch-size", "7", "--threads", "2", "--max-length", "16",
                          "--parallel-batches", parallel)
        check_passthrough(records, outputs, ["prediction", "score"])
        assert [o["id"] for o in outputs] == list(range(len(records)))
        check_single_label("tiny", records, outputs, logits, False)


def test_multi_label_sigmoid_and_thresholds():
    records = sentiment()[:600]
    logits = hf_logits("multi", [r["text"] for r in records])
    probs = torch.sigmoid(logits.double())
    names = ["toxic", "spam", "off topic"]
    for flags, thresholds in [([], [0.5, 0.5, 0.5]),
                              (["--threshold", "0.3"], [0.3, 0.3, 0.3]),
                              (["--threshold", "0.6,off topic=0.2,spam=0.9"], [0.6, 0.9, 0.2])]:
        outputs = predict("multi", records, "--scores", *flags)
        check_passthrough(records, outputs, ["prediction", "score", "scores"])
        decided = 0
        worst = max(abs(out["scores"][name] - probs[i, j].item()) for i, out in enumerate(outputs)
                    for j, name in enumerate(names))
        print(f"  multi {flags}: max |score diff| {worst:.2e} (tolerance {TOL})")
        assert worst <= TOL
        for i, out in enumerate(outputs):
            p = probs[i].tolist()
            for j, name in enumerate(names):
                if abs(p[j] - thresholds[j]) > 2 * TOL:
                    assert (name in out["prediction"]) == (p[j] > thresholds[j]), (i, flags, out, p)
                    decided += 1
            # Predicted names in label order, with their probabilities.
            assert out["prediction"] == [n for n in names if n in out["prediction"]]
            assert out["score"] == [out["scores"][n] for n in out["prediction"]]
        assert decided > 0.9 * 3 * len(records)
        # The thresholds must matter: some labels on, some off.
        on = sum(len(o["prediction"]) for o in outputs)
        assert 0 < on < 3 * len(records), (flags, on)


def test_regression_raw_value():
    records = sentiment()[:500]
    logits = hf_logits("regression", [r["text"] for r in records])
    outputs = predict("regression", records, "--scores")
    check_passthrough(records, outputs, ["prediction"])
    worst = max(abs(o["prediction"] - float(logits[i, 0])) for i, o in enumerate(outputs))
    print(f"  regression: max |value diff| {worst:.2e} (tolerance {TOL_BY_KIND['regression']})")
    assert worst <= TOL_BY_KIND["regression"]
    assert len({round(o["prediction"], 3) for o in outputs}) > 10  # not a constant


def test_multi_output_regression():
    records = sentiment()[:500]
    logits = hf_logits("regression2", [r["text"] for r in records])
    outputs = predict("regression2", records, "--scores", "--batch-size", "9")
    check_passthrough(records, outputs, ["prediction"])
    assert all(isinstance(o["prediction"], list) and len(o["prediction"]) == 2 for o in outputs)
    worst = max(abs(o["prediction"][j] - float(logits[i, j])) for i, o in enumerate(outputs) for j in range(2))
    print(f"  regression, 2 outputs: max |value diff| {worst:.2e} (tolerance {TOL_BY_KIND['regression']})")
    assert worst <= TOL_BY_KIND["regression"]
    for j in range(2):
        assert len({round(o["prediction"][j], 3) for o in outputs}) > 10  # each output varies


def test_pairs_match_transformers():
    base = sentiment()[:800]
    # Premise/hypothesis from neighbouring sentences; a short max length exercises longest_first.
    records = [{"premise": base[i]["text"], "hypothesis": base[i - 1]["text"], "n": i} for i in range(len(base))]
    for kind, max_length in [("tiny", 24), ("minilm", None)]:
        flags = ["--text-field", "premise", "--text-pair-field", "hypothesis", "--scores"]
        if max_length:
            flags += ["--max-length", str(max_length)]
        outputs = predict(kind, records, *flags)
        check_passthrough(records, outputs, ["prediction", "score", "scores"])
        logits = hf_logits(kind, [r["premise"] for r in records], [r["hypothesis"] for r in records], max_length)
        check_single_label(kind, records, outputs, logits, True)
    # A pair model run on single texts gives different scores: the second text really is used.
    single = predict("tiny", records, "--text-field", "premise", "--max-length", "24")
    paired = predict("tiny", records, "--text-field", "premise", "--text-pair-field", "hypothesis", "--max-length", "24")
    assert sum(abs(a["score"] - b["score"]) > 1e-3 for a, b in zip(single, paired)) > len(records) // 2


def test_lines_input_equals_jsonl():
    records = sentiment()[:300]
    with tempdir() as d:
        path = os.path.join(d, "texts.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write("".join(r["text"] + "\n" for r in records))
        lines = predict("tiny", None, "--format", "lines", input_path=path)
        p = run([PREDICT, "--model", model_dir("tiny"), "--format", "lines", "-q"], input=open(path).read(), check=0)
        assert parse_jsonl(p.stdout) == lines
        # --prediction-field renames only the predicted label (HF pipeline style: "label" when the
        # input has no reference of that name).
        renamed = predict("tiny", None, "--format", "lines", "--prediction-field", "label", input_path=path)
        assert [o["label"] for o in renamed] == [o["prediction"] for o in lines]
        assert all("prediction" not in o and o["score"] == l["score"] for o, l in zip(renamed, lines))
    jsonl = predict("tiny", [{"text": r["text"]} for r in records])
    assert lines == jsonl
    assert [o["text"] for o in lines] == [r["text"] for r in records]


def test_output_file_is_atomic():
    records = sentiment()[:200]
    with tempdir() as d:
        inp = os.path.join(d, "in.jsonl")
        out = os.path.join(d, "out", "preds.jsonl")
        os.makedirs(os.path.dirname(out))
        write_jsonl(inp, records)
        run([PREDICT, "--model", model_dir("tiny"), "--input", inp, "--output", out, "-q"], check=0)
        first = open(out, encoding="utf-8").read()
        assert parse_jsonl(first) == predict("tiny", records)
        # A run that fails on its last record leaves the old file as it was and no temp file.
        write_jsonl(inp, records + [{"txt": "oops"}])
        expect_error([PREDICT, "--model", model_dir("tiny"), "--input", inp, "--output", out], 65,
                     f"{inp}:{len(records) + 1}: field \"text\": missing")
        assert open(out, encoding="utf-8").read() == first
        assert os.listdir(os.path.dirname(out)) == ["preds.jsonl"]
        expect_error([PREDICT, "--model", model_dir("tiny"), "--input", inp, "--output",
                      os.path.join(d, "no", "such", "dir", "p.jsonl")], 73)


def test_threads_follow_the_cpus_granted():
    """--threads 0 sizes the tokenizer pool and torch from the CPUs this process may run on (as
    taskset, a Slurm step or a container's cpuset grants them), not every core of the machine; and
    --parallel-batches 0 splits those."""
    def plan(cpus, *flags):
        p = subprocess.run([PREDICT, "--model", model_dir("tiny"), "-v", *flags], input=json.dumps({"text": "x"}) + "\n",
                           capture_output=True, text=True, preexec_fn=lambda: os.sched_setaffinity(0, cpus))
        assert p.returncode == 0, p.stderr
        lines = [l for l in p.stderr.splitlines() if "batches:" in l]
        assert len(lines) == 1, p.stderr
        return lines[0]

    allowed = sorted(os.sched_getaffinity(0))
    assert "batches: 1 at once on 1 torch threads each" in plan({allowed[0]})
    assert "batches: 1 at once on 1 torch threads each" in plan({allowed[0]}, "--parallel-batches", "1")
    if len(allowed) >= 2:
        # torch's own default is a thread per physical core of the machine: at least one.
        torch_threads = min(torch.get_num_threads(), 2)
        assert f"batches: {torch_threads} at once on 1 torch threads each" in plan(set(allowed[:2]))
        assert f"batches: 1 at once on {torch_threads} torch threads each" in plan(set(allowed[:2]),
                                                                                  "--parallel-batches", "1")


def test_bad_input_and_exit_codes():
    tiny = model_dir("tiny")
    good = json.dumps({"text": "fine", "label": "positive"})
    with tempdir() as d:
        def inp(name, content):
            path = os.path.join(d, name)
            with open(path, "wb") as f:
                f.write(content if isinstance(content, bytes) else content.encode())
            return path

        missing = inp("missing.jsonl", good + "\n" + json.dumps({"txt": "x"}) + "\n")
        expect_error([PREDICT, "--model", tiny, "--input", missing], 65, f"{missing}:2: field \"text\": missing")
        number = inp("number.jsonl", json.dumps({"text": 5}) + "\n")
        expect_error([PREDICT, "--model", tiny, "--input", number], 65, f"{number}:1: field \"text\": expected a string")
        broken = inp("broken.jsonl", good + "\n" + good + "\n{\"text\": \"unclosed\n")
        expect_error([PREDICT, "--model", tiny, "--input", broken], 65, f"{broken}:3")
        expect_error([PREDICT, "--model", tiny], 65, "<stdin>:2: field \"text\": missing",
                     input=good + "\n" + json.dumps({"txt": "x"}) + "\n")
        nopair = inp("nopair.jsonl", json.dumps({"a": "x", "b": "y"}) + "\n" + json.dumps({"a": "x"}) + "\n")
        expect_error([PREDICT, "--model", tiny, "--input", nopair, "--text-field", "a", "--text-pair-field", "b"], 65,
                     f"{nopair}:2: field \"b\": missing")
        utf8 = inp("bad.txt", b"good line\nbad \xff line\n")
        expect_error([PREDICT, "--model", tiny, "--input", utf8, "--format", "lines"], 65, f"{utf8}:2", "UTF-8")

        # --on-bad-record skip: the good records come out, in order; each skip is a warning.
        mixed = inp("mixed.jsonl", "\n".join([json.dumps({"text": "one", "i": 1}), json.dumps({"txt": "x"}),
                                              "not json", json.dumps({"text": "two", "i": 2}),
                                              json.dumps({"text": ["x"]}), json.dumps({"text": "three", "i": 3})]) + "\n")
        p = run([PREDICT, "--model", tiny, "--input", mixed, "--on-bad-record", "skip"], check=0)
        assert [o["i"] for o in parse_jsonl(p.stdout)] == [1, 2, 3]
        assert ": error: " not in p.stderr and p.stderr.count(": warning: ") == 3, p.stderr
        assert f"{mixed}:2" in p.stderr and f"{mixed}:5" in p.stderr

        # Missing model pieces: 66.
        expect_error([PREDICT, "--model", os.path.join(d, "nope"), "--input", missing], 66)
        expect_error([PREDICT, "--model", tiny, "--input", os.path.join(d, "nope.jsonl")], 66, "nope.jsonl")
        noweights = os.path.join(d, "noweights")
        shutil.copytree(tiny, noweights)
        os.remove(os.path.join(noweights, "model.safetensors"))
        expect_error([PREDICT, "--model", noweights, "--input", missing], 66)
        corrupt = os.path.join(d, "corrupt")
        shutil.copytree(tiny, corrupt)
        with open(os.path.join(corrupt, "model.safetensors"), "r+b") as f:
            f.truncate(100)
        expect_error([PREDICT, "--model", corrupt], 65, input=good + "\n")

        # Usage: 64.
        expect_error([PREDICT, "--model", tiny, "--threshold", "0.3"], 64, "multi-label", input=good + "\n")
        multi = model_dir("multi")
        expect_error([PREDICT, "--model", multi, "--threshold", "nonsense=0.3"], 64, "nonsense", input=good + "\n")
        expect_error([PREDICT, "--model", multi, "--threshold", "spam=1.5"], 64, "spam=1.5", input=good + "\n")
        expect_error([PREDICT, "--model", tiny, "--max-length", "100000"], 64, "max_position_embeddings",
                     input=good + "\n")
        expect_error([PREDICT, "--model", tiny, "--device", "tpu"], 64, "--device", input=good + "\n")
        expect_error([PREDICT, "--model", tiny, "--batch-size", "0"], 64, input=good + "\n")
        expect_error([PREDICT, "--model", tiny, "--threads", "2", "--parallel-batches", "3"], 64,
                     "--parallel-batches 3 must divide the thread count (2)", input=good + "\n")
        expect_error([PREDICT, "--model", tiny, "--device", "cuda", "--parallel-batches", "2"], 64,
                     "not --device cuda", input=good + "\n")
        expect_error([PREDICT, "--model", tiny, "--format", "csv"], 64, input=good + "\n")
        expect_error([PREDICT, "--model", tiny, "--no-such-flag"], 64, input=good + "\n")
        expect_error([PREDICT, "--input", missing], 64, "--model")
        if not torch.cuda.is_available():
            expect_error([PREDICT, "--model", tiny, "--device", "cuda"], 69, "CUDA", input=good + "\n")

        # An empty input is no records and no error.
        p = run([PREDICT, "--model", tiny, "-q"], input="", check=0)
        assert p.stdout == "" and p.stderr == ""


def test_head_is_quiet():
    with tempdir() as d:
        path = os.path.join(d, "in.jsonl")
        write_jsonl(path, sentiment() * 3)  # far more than a pipe buffer of output
        p = subprocess.run(["bash", "-c", f'set -o pipefail; "{PREDICT}" --model "{model_dir("tiny")}" '
                                          f'--input "{path}" | head -n 1'],
                           capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, (p.returncode, p.stderr)
    assert ": error: " not in p.stderr, p.stderr
    assert len(p.stdout.splitlines()) == 1 and json.loads(p.stdout)["id"] == 0


def test_pipe_into_hf_eval():
    assert os.path.exists(EVAL), f"{EVAL} not built (it is part of every build)"
    path = SENTIMENT[1]
    p = subprocess.run(["bash", "-c", f'set -o pipefail; "{PREDICT}" --model "{model_dir("minilm")}" --input "{path}" '
                                      f'--scores -q | "{EVAL}" --predictions - -q'],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    metrics = json.loads(p.stdout)
    records = read_jsonl(path)
    logits = hf_logits("minilm", [r["text"] for r in records])
    names = hf_model("minilm")[1].config.id2label
    want = sum(names[int(i)] == r["label"] for i, r in zip(torch.argmax(logits, dim=-1), records)) / len(records)
    print(f"  accuracy of the untrained head: hf-eval {metrics['accuracy']}, transformers {want}")
    assert metrics["num_samples"] == len(records)
    assert abs(metrics["accuracy"] - want) <= 2 / len(records)  # a near tie may flip one label
    assert "log_loss" in metrics


def test_passthrough_is_byte_identical_and_nesting_is_bounded():
    fields = '"id": 12345678901234567890123456789, "f": 1.0, "e": 1E+2, "s": "caf\\u00e9", "m": {"a": [1, 2]}'
    with tempdir() as d:
        src = os.path.join(d, "in.jsonl")
        with open(src, "w") as f:
            f.write("{" + fields + ', "text": "good"}\n')
        p = run([PREDICT, "--model", model_dir("tiny"), "--input", src, "-q"], check=0)
        want = '{"id":12345678901234567890123456789,"f":1.0,"e":1E+2,"s":"caf\\u00e9","m":{"a": [1, 2]},"text":"good",'
        assert p.stdout.startswith(want + '"prediction":'), p.stdout
        # An input field named like an added one is replaced, not repeated.
        with open(src, "w") as f:
            f.write('{"score": 12345678901234567890, "text": "good", "prediction": [1]}\n')
        out = run([PREDICT, "--model", model_dir("tiny"), "--input", src, "-q"], check=0).stdout
        assert list(json.loads(out)) == ["text", "prediction", "score"] and out.count('"score"') == 1, out
        with open(src, "a") as f:
            f.write('{"text": "x", "n": ' + "[" * 100000 + "]" * 100000 + "}\n")
        expect_error([PREDICT, "--model", model_dir("tiny"), "--input", src], 65, "in.jsonl:2", "nested deeper than 512")
        # hf-eval reads the same way: a data error, not a crash.
        with open(src, "w") as f:
            f.write('{"label": "a", "prediction": "a", "x": ' + "[" * 100000 + "]" * 100000 + "}\n")
        expect_error([EVAL, "--predictions", src], 65, "in.jsonl:1", "nested deeper than 512")


def test_output_special_files_are_written_through():
    import threading
    records = sentiment()[:50]
    want = predict("tiny", records)
    with tempdir() as d:
        inp = os.path.join(d, "in.jsonl")
        write_jsonl(inp, records)
        # A named pipe a downstream job reads: it gets every line and stays a pipe.
        fifo = os.path.join(d, "pipe")
        os.mkfifo(fifo)
        got = []
        reader = threading.Thread(target=lambda: got.append(open(fifo, encoding="utf-8").read()))
        reader.start()
        run([PREDICT, "--model", model_dir("tiny"), "--input", inp, "--output", fifo, "-q"], check=0, timeout=300)
        reader.join(timeout=60)
        assert parse_jsonl(got[0]) == want
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
        # A device stays a device.
        run([PREDICT, "--model", model_dir("tiny"), "--input", inp, "--output", "/dev/null", "-q"], check=0)
        assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)
        # /dev/stdout is the process's stdout (here a pipe), written through.
        p = run([PREDICT, "--model", model_dir("tiny"), "--input", inp, "--output", "/dev/stdout", "-q"], check=0)
        assert parse_jsonl(p.stdout) == want
        # A symlink is followed: its target gets the predictions, the link stays a link.
        target = os.path.join(d, "real.jsonl")
        open(target, "w").write("old\n")
        link = os.path.join(d, "link.jsonl")
        os.symlink("real.jsonl", link)
        run([PREDICT, "--model", model_dir("tiny"), "--input", inp, "--output", link, "-q"], check=0)
        assert os.path.islink(link) and parse_jsonl(open(target).read()) == want
        assert sorted(os.listdir(d)) == ["in.jsonl", "link.jsonl", "pipe", "real.jsonl"], os.listdir(d)


def test_nan_weights_are_refused():
    from safetensors.torch import load_file, save_file
    with tempdir() as d:
        bad = os.path.join(d, "diverged")
        shutil.copytree(model_dir("tiny"), bad)
        weights = os.path.join(bad, "model.safetensors")
        tensors = load_file(weights)
        name = "bert.encoder.layer.1.attention.self.query.weight"
        tensors[name][3, 5] = float("nan")
        save_file(tensors, weights, metadata={"format": "pt"})
        expect_error([PREDICT, "--model", bad], 65, "model.safetensors", name, "NaN",
                     input=json.dumps({"text": "fine"}) + "\n")


def test_sigterm_stops_promptly_and_commits_nothing():
    records = b"".join((json.dumps(r) + "\n").encode() for r in sentiment()[:300])
    with tempdir() as d:
        out = os.path.join(d, "preds.jsonl")
        open(out, "w").write("old\n")
        for target in [out, os.path.join(d, "new.jsonl")]:
            rc, _, err = stop_trickling([PREDICT, "--model", model_dir("tiny"), "--output", target], records,
                                        settle=2.0)
            assert rc == 143, (rc, err)
            assert open(out).read() == "old\n"
            assert sorted(os.listdir(d)) == ["preds.jsonl"], os.listdir(d)


def test_tsv_through_preprocess_and_predict():
    # hf-predict reads JSONL; a TSV file reaches it as the <split>.jsonl hf-preprocess writes.
    records = sentiment()[:40]
    with tempdir() as d:
        tsv = os.path.join(d, "in.tsv")
        with open(tsv, "w", newline="", encoding="utf-8") as f:
            f.write("text\tlabel\n")
            for r in records:
                f.write('"' + r["text"].replace('"', '""') + '"\t' + r["label"] + "\n")
        ds = os.path.join(d, "ds")
        run([tool("hf-preprocess"), "--tokenizer", model_dir("tiny"), "-i", tsv, "-o", ds, "--split", "all=1", "-q"],
            check=0)
        outputs = predict("tiny", None, "--scores", input_path=os.path.join(ds, "all.jsonl"))
        check_passthrough([{"text": r["text"], "label": r["label"]} for r in records], outputs,
                          ["prediction", "score", "scores"])
        check_single_label("tiny", records, outputs, hf_logits("tiny", [r["text"] for r in records]), True)


if __name__ == "__main__":
    main(globals())
