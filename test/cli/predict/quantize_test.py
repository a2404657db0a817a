"""hf-predict --quantize int8 on the real binary: all-MiniLM-L6-v2 (the real pre-trained encoder,
whose int8 error is the one users meet) fine-tuned by hf-train on 1,000 reviews, as a user's model
is; int8 labels agree with fp32 on >= 99% of the 1,000 other reviews, its accuracy is within 0.5
points of fp32's, and probabilities within INT8_TOL; the same through --config and through --serve; the refusals (unknown value, CUDA, in YAML
and env too) with their exit codes; --help documents the flag. --dtype bfloat16 (the whole model
cast, the GPU fast path) agrees with fp32 on the same model, and its refusals. The speed and the accuracy cost on
the bench's 6-label model are bench/predict_bench.py's.

A head fitted on the frozen encoder is not a fair fixture: its margins are so thin that PyTorch's
own quantize_dynamic flips 12% of its labels (measured); fine-tuning is what users do."""
import functools
import json
import os
import re
import subprocess
import tempfile
import urllib.error
import urllib.request


from hfkit_testlib import MINILM, DATA, expect_error, main, run, tool

PREDICT = tool("hf-predict")
REVIEWS = [os.path.join(DATA, "sentiment", f) for f in ("amazon.jsonl", "yelp.jsonl")]
FIT, HELD_OUT = 1000, 1000  # reviews the model is fine-tuned on / reviews predicted
TRAIN_STEPS = 60             # of batch 16: about one epoch; fp32 accuracy well above chance
MIN_AGREEMENT = 0.99       # int8 vs fp32 labels (issue 14)
MAX_ACCURACY_COST = 0.005  # int8 accuracy at most 0.5 points below fp32's (issue 14)
# Max |probability difference| int8 vs fp32 measured on this fixture: 0.074-0.087 (one review near the
# boundary); typical differences are a few thousandths. About 2x that: a broken scale (per-tensor
# weights, saturated 8-bit products) moves probabilities by far more.
INT8_TOL = 0.2
# bfloat16 keeps 8 significant bits through every layer. Measured on this fixture: labels agree on
# 99.9%, max |p diff| 0.0042. The bounds leave room for other CPUs' kernels; diff > 0 proves the
# cast happened.
BF16_MIN_AGREEMENT = 0.99
BF16_TOL = 0.05
WORK = tempfile.TemporaryDirectory(prefix="hfkit-quantize-test-")


@functools.cache
def reviews():
    out = []
    for path in REVIEWS:
        with open(path, encoding="utf-8") as f:
            out.extend(json.loads(l) for l in f)
    # Interleave the two sources so both parts hold Amazon and Yelp reviews.
    return out[0::2] + out[1::2]


@functools.cache
def trained_minilm():
    """MiniLM fine-tuned by hf-preprocess + hf-train on the first FIT reviews (sentiment)."""
    train = os.path.join(WORK.name, "fit.jsonl")
    with open(train, "w", encoding="utf-8") as f:
        for r in reviews()[:FIT]:
            f.write(json.dumps(r) + "\n")
    data, out = os.path.join(WORK.name, "fit-data"), os.path.join(WORK.name, "minilm-sentiment")
    run([tool("hf-preprocess"), "--tokenizer", MINILM, "--input", train, "--output", data, "--split", "train=1.0",
         "--max-length", "64", "-q"], check=0)
    run([tool("hf-train"), "--model", MINILM, "--data", data, "--output-dir", out, "--max-steps", str(TRAIN_STEPS),
         "--per-device-train-batch-size", "16", "--learning-rate", "5e-5", "--warmup-ratio", "0.1",
         "--save-strategy", "no", "--threads", "2", "--seed", "0", "-q"], check=0, timeout=1200)
    return out


@functools.cache
def held_out_input():
    path = os.path.join(WORK.name, "held-out.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for r in reviews()[FIT:FIT + HELD_OUT]:
            f.write(json.dumps(r) + "\n")
    return path


def predict(*flags):
    p = run([PREDICT, "--model", trained_minilm(), "--input", held_out_input(), "--scores", "--threads", "2",
             "--device", "cpu", *flags], check=0)
    return [json.loads(l) for l in p.stdout.splitlines()]


@functools.cache
def fp32():
    return predict()


@functools.cache
def int8():
    return predict("--quantize", "int8")


def test_int8_labels_agree_with_fp32_on_a_trained_head():
    a, b = fp32(), int8()
    assert len(a) == len(b) == HELD_OUT
    agree = sum(x["prediction"] == y["prediction"] for x, y in zip(a, b)) / len(a)
    diff = max(abs(x["scores"][k] - y["scores"][k]) for x, y in zip(a, b) for k in x["scores"])
    acc = {name: sum(r["prediction"] == r["label"] for r in rs) / len(rs) for name, rs in (("fp32", a), ("int8", b))}
    print(f"int8 vs fp32 on {len(a)} reviews: labels agree {agree:.2%}, max |p diff| {diff:.4f} (tolerance "
          f"{INT8_TOL}), accuracy fp32 {acc['fp32']:.2%} int8 {acc['int8']:.2%}")
    assert acc["fp32"] > 0.8, "the model is not fine-tuned: labels would be near coin flips"
    assert agree >= MIN_AGREEMENT
    # Issue 14: int8 accuracy within 0.5 points of fp32 on a model fine-tuned on the demo's data.
    # Measured here: 0.30 points (90.90% vs 90.60%).
    assert acc["fp32"] - acc["int8"] <= MAX_ACCURACY_COST
    assert diff <= INT8_TOL
    assert diff > 0, "int8 output equals fp32: the quantized kernels did not run"


def test_config_key_and_env_equal_the_flag():
    cfg = os.path.join(WORK.name, "int8.yaml")
    with open(cfg, "w") as f:
        f.write("quantize: int8\n")
    assert predict("--config", cfg) == int8()
    # The flag wins over the file, as every flag does.
    assert predict("--config", cfg, "--quantize", "none") == fp32()


def test_refusals_and_exit_codes():
    model = trained_minilm()
    expect_error([PREDICT, "--model", model, "--quantize", "int4"], 64, "--quantize")
    expect_error([PREDICT, "--model", model, "--quantize", "int8", "--device", "cuda"], 78,
                 "--quantize int8 runs on the CPU only")
    p = run([PREDICT, "--model", model, "--quantize", "int8"], env={"HFKIT_DEVICE": "cuda:0"}, input="", check=78)
    assert "--quantize int8 runs on the CPU only" in p.stderr, p.stderr
    bad = os.path.join(WORK.name, "bad.yaml")
    with open(bad, "w") as f:
        f.write("threads: 1\nquantize: int4\n")
    expect_error([PREDICT, "--model", model, "--config", bad], 78, f"{bad}:2", "quantize")
    # --serve builds the same Predictor: the same refusal, before it listens.
    expect_error([PREDICT, "--model", model, "--serve", "--port", "0", "--quantize", "int8", "--device", "cuda:1"],
                 78, "--quantize int8 runs on the CPU only")


def test_serve_answers_as_batch_int8():
    log = os.path.join(WORK.name, "serve.log")
    with open(log, "w") as err:
        server = subprocess.Popen([PREDICT, "--model", trained_minilm(), "--serve", "--port", "0", "--quantize", "int8",
                                   "--threads", "2", "--max-wait-ms", "0"], stderr=err)
    try:
        port = None
        for _ in range(1200):
            with open(log) as f:
                for line in f:
                    m = re.search(r"listening on http://[^ ]+:(\d+)", line)
                    if m:
                        port = int(m.group(1))
            if port or server.poll() is not None:
                break
            subprocess.run(["sleep", "0.1"])
        assert port, open(log).read()
        # The server listens while the model loads (/ping answers 503 until it is ready).
        for _ in range(1200):
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=10).status == 200:
                    break
            except urllib.error.HTTPError:
                subprocess.run(["sleep", "0.1"])
        text = reviews()[FIT]["text"]
        req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations",
                                     data=json.dumps({"text": text}).encode(),
                                     headers={"Content-Type": "application/jsonlines"})
        answer = json.loads(urllib.request.urlopen(req, timeout=60).read().decode().splitlines()[0])
        # Activations are quantized per batch (one scale from the batch's range), so an int8 answer
        # depends on its batch: the server's one-text batch equals batch mode's one-text input.
        one = os.path.join(WORK.name, "one.jsonl")
        with open(one, "w", encoding="utf-8") as f:
            f.write(json.dumps({"text": text}) + "\n")
        batch = json.loads(run([PREDICT, "--model", trained_minilm(), "--input", one, "--quantize", "int8",
                                "--threads", "2"], check=0).stdout)
        assert answer["prediction"] == batch["prediction"]
        assert abs(answer["score"] - batch["score"]) < 1e-5, (answer, batch)
    finally:
        server.terminate()
        server.wait(timeout=60)


@functools.cache
def bf16():
    p = run([PREDICT, "--model", trained_minilm(), "--input", held_out_input(), "--scores", "--threads", "2",
             "--device", "cpu", "--dtype", "bfloat16"], check=0)
    assert "dtype: BFloat16 weights and activations" in p.stderr, p.stderr
    return [json.loads(l) for l in p.stdout.splitlines()]


def test_bfloat16_end_to_end_agrees_with_fp32():
    """--dtype bfloat16 casts the whole model (the GPU fast path; runnable on the CPU): its labels
    agree with fp32 on the fine-tuned model, and its probabilities differ (bf16 really ran)."""
    a, b = fp32(), bf16()
    assert len(a) == len(b) == HELD_OUT
    agree = sum(x["prediction"] == y["prediction"] for x, y in zip(a, b)) / len(a)
    diff = max(abs(x["scores"][k] - y["scores"][k]) for x, y in zip(a, b) for k in x["scores"])
    print(f"bfloat16 vs fp32 on {len(a)} reviews: labels agree {agree:.2%}, max |p diff| {diff:.4f}")
    assert agree >= BF16_MIN_AGREEMENT
    assert 0 < diff <= BF16_TOL
    assert predict("--dtype", "float32") == fp32()  # auto on a CPU is float32


def test_dtype_refusals_and_exit_codes():
    model = trained_minilm()
    expect_error([PREDICT, "--model", model, "--dtype", "float8"], 64, "--dtype")
    expect_error([PREDICT, "--model", model, "--dtype", "bfloat16", "--quantize", "int8"], 78,
                 "--quantize int8 computes in float32")
    bad = os.path.join(WORK.name, "bad-dtype.yaml")
    with open(bad, "w") as f:
        f.write("dtype: half\n")
    expect_error([PREDICT, "--model", model, "--config", bad], 78, f"{bad}:1", "dtype")


def test_help_documents_the_flags():
    out = run([PREDICT, "--help"], check=0).stdout
    assert "--quantize" in out and "int8" in out
    assert "--dtype" in out and "bfloat16" in out


if __name__ == "__main__":
    main(globals())
