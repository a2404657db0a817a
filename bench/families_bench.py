#!/usr/bin/env python3
"""Per model family: hf-train and hf-predict vs a PyTorch loop over transformers, in one run.

For each family hfkit builds, a randomly initialised <Family>ForSequenceClassification the size of
all-MiniLM-L6-v2 (6 layers, hidden 384, 12 heads, intermediate 1536, 2 labels; ELECTRA with
128-wide embeddings projected up, as its small checkpoints have; DeBERTa with v3's attention
options; ModernBERT with its global/local layer pattern) is built by transformers from a config. Random weights are fine here: speed does not depend on the values, and no checkpoint of
these families can be downloaded on this machine. Every family reads the same ids: the sentiment
reviews tokenized once by hf-preprocess with MiniLM's WordPiece tokenizer (max length 128), whose
files are copied beside each model so both sides tokenize alike (pad id 0 in every config). The
tokenizers of each family are benched by tokenize_bench.py.

  train    hf-train vs train_bench.py's PyTorch loop (same batches in the same order, fused AdamW,
           clipping, same threads): samples/s over the training steps, model loading excluded.
  predict  hf-predict vs predict_bench.py's PyTorch inference loop (same length-sorted batches of
           32, same threads): samples/s in the predict loop, and label agreement between the two.

Env: BIN (built tools), HFKIT_DATA, BENCH_OUT, BENCH_THREADS (default 2), BENCH_STEPS (train steps,
default 20), BENCH_BATCH (train batch, default 32), BENCH_PREDICT (records predicted, default 800),
BENCH_FAMILIES (comma-separated subset). Results also go to $BENCH_OUT/families_bench.json.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from predict_bench import minilm_dir, peak_rss_mib  # noqa: E402

LABELS = {0: "negative", 1: "positive"}


def family_config(family):
    """A MiniLM-sized config of `family`, built by transformers."""
    import transformers as tr
    common = dict(vocab_size=30522, pad_token_id=0, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    bertlike = dict(common, hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
                    max_position_embeddings=512)
    if family == "bert":
        return tr.BertConfig(**bertlike)
    if family == "distilbert":
        return tr.DistilBertConfig(**common, dim=384, n_layers=6, n_heads=12, hidden_dim=1536,
                                   max_position_embeddings=512)
    if family == "roberta":  # positions start after the pad id: 2 more rows than tokens
        return tr.RobertaConfig(**dict(bertlike, max_position_embeddings=514), type_vocab_size=1)
    if family == "xlm-roberta":
        return tr.XLMRobertaConfig(**dict(bertlike, max_position_embeddings=514), type_vocab_size=1)
    if family == "electra":
        return tr.ElectraConfig(**bertlike, embedding_size=128)
    if family == "deberta-v2":  # DeBERTa-v3's attention options
        return tr.DebertaV2Config(**bertlike, relative_attention=True, pos_att_type=["p2c", "c2p"],
                                  position_buckets=256, norm_rel_ebd="layer_norm", share_att_key=True,
                                  position_biased_input=False, type_vocab_size=0)
    if family == "modernbert":  # ModernBERT-base's layout: every 3rd layer global, windows of 128
        return tr.ModernBertConfig(**common, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                                   intermediate_size=1536, max_position_embeddings=512, global_attn_every_n_layers=3,
                                   local_attention=128, cls_token_id=101, sep_token_id=102, bos_token_id=101,
                                   eos_token_id=102)
    raise SystemExit(f"families_bench: no config for {family}")


FAMILIES = ["bert", "distilbert", "roberta", "xlm-roberta", "electra", "deberta-v2", "modernbert"]


def make_model(family, out):
    import torch
    import transformers as tr
    tr.utils.logging.disable_progress_bar()
    torch.manual_seed(0)
    tr.AutoModelForSequenceClassification.from_config(family_config(family)).save_pretrained(out)
    for name in os.listdir(minilm_dir()):
        if name.startswith(("tokenizer", "vocab", "special_tokens")):
            shutil.copy(os.path.join(minilm_dir(), name), out)
    return out


def train_side(binary, model, ds, work, threads, steps, batch, env):
    """(hf-train samples/s, python loop samples/s) over the same steps."""
    out = os.path.join(work, "run")
    shutil.rmtree(out, ignore_errors=True)
    run = subprocess.run([os.path.join(binary, "hf-train"), "--model", model, "--data", ds, "--output-dir", out,
                          "--threads", str(threads), "--per-device-train-batch-size", str(batch), "--max-steps",
                          str(steps), "--learning-rate", "5e-5", "--seed", "42", "--save-strategy", "no",
                          "--eval-strategy", "no", "--logging-steps", "1000000", "-q"],
                         env=env, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"hf-train failed ({run.returncode}):\n{run.stderr[-3000:]}")
    with open(os.path.join(out, "train_results.json"), encoding="utf-8") as f:
        hf = json.load(f)["train_samples_per_second"]
    stdout = peak_rss_mib([sys.executable, os.path.join(HERE, "train_bench.py"), "--python-loop", model, ds,
                           str(threads), str(steps), str(batch), "5e-5", "0.01", "42"], env)[0]
    return hf, json.loads(stdout.strip().splitlines()[-1])["samples_per_second"]


def predict_side(binary, model, texts, work, threads, env):
    """(hf-predict samples/s, python samples/s, label agreement, max |probability difference|) over
    the same texts and batches (2 labels: a flipped label's score is the other's 1 - score)."""
    hf_out, py_out = os.path.join(work, "hf.jsonl"), os.path.join(work, "py.jsonl")
    err = peak_rss_mib([os.path.join(binary, "hf-predict"), "--model", model, "--input", texts, "--output", hf_out,
                        "--batch-size", "32", "--threads", str(threads), "--device", "cpu"], env)[1]
    m = re.search(r"predicted (\d+) records \((\d+) tokens.*in ([0-9.]+) s", err)
    if not m:
        raise SystemExit(f"hf-predict printed no summary:\n{err}")
    stdout = peak_rss_mib([sys.executable, os.path.join(HERE, "predict_bench.py"), "--python-loop", "--model", model,
                           "--input", texts, "--output", py_out, "--batch-size", "32", "--threads", str(threads)],
                          env)[0]
    py = json.loads(stdout.strip().splitlines()[-1])
    if int(m[2]) != py["tokens"]:
        raise SystemExit(f"token counts differ: hf-predict {m[2]} vs python {py['tokens']}")
    with open(hf_out, encoding="utf-8") as a, open(py_out, encoding="utf-8") as b:
        pairs = [(json.loads(x), json.loads(y)) for x, y in zip(a, b)]
    # Random heads put many scores near 0.5, so a label can flip on rounding: the score gap says more.
    agree = sum(x["prediction"] == y["prediction"] for x, y in pairs) / len(pairs)
    gap = max(abs(x["score"] - y["score"]) if x["prediction"] == y["prediction"] else abs(x["score"] + y["score"] - 1)
              for x, y in pairs)
    return int(m[1]) / float(m[3]), py["records"] / py["seconds"], agree, gap


def main():
    binary = os.environ.get("BIN", "build/bin")
    if not os.path.exists(os.path.join(binary, "hf-train")):
        print(f"families_bench: {binary}/hf-train not built; skipped", file=sys.stderr)
        return 0
    data = os.environ.get("HFKIT_DATA") or os.path.join(HERE, "..", "data")
    bench_out = os.environ.get("BENCH_OUT", os.path.join(tempfile.gettempdir(), "hfkit-bench"))
    threads = int(os.environ.get("BENCH_THREADS", "2"))
    steps = int(os.environ.get("BENCH_STEPS", "20"))
    batch = int(os.environ.get("BENCH_BATCH", "32"))
    n_predict = int(os.environ.get("BENCH_PREDICT", "800"))
    families = [f for f in os.environ.get("BENCH_FAMILIES", ",".join(FAMILIES)).split(",") if f]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS=str(threads))

    work = tempfile.mkdtemp(prefix="hfkit-families-bench-")
    reviews = [os.path.join(data, "sentiment", f) for f in ("amazon.jsonl", "yelp.jsonl")]
    ds = os.path.join(work, "ds")
    subprocess.run([os.path.join(binary, "hf-preprocess"), "--tokenizer", minilm_dir(), *sum(
        (["--input", r] for r in reviews), []), "--output", ds, "--stratify", "--seed", "42", "--max-length", "128",
        "-q"], check=True)
    texts = os.path.join(work, "texts.jsonl")
    with open(texts, "w", encoding="utf-8") as out:
        lines = [line for r in reviews for line in open(r, encoding="utf-8")]
        out.writelines(json.dumps({"text": json.loads(line)["text"]}) + "\n" for line in lines[:n_predict])

    results = {}
    print(f"families bench: MiniLM-sized random models, train {steps} steps x batch {batch} (max length 128), "
          f"predict {n_predict} reviews in batches of 32, {threads} threads, CPU")
    print(f"{'family':12} {'train hf/s':>10} {'py/s':>7} {'ratio':>6} {'predict hf/s':>12} {'py/s':>7} "
          f"{'ratio':>6} {'agree':>7} {'max|dp|':>8}")
    for family in families:
        model = make_model(family, os.path.join(work, family))
        t_hf, t_py = train_side(binary, model, ds, work, threads, steps, batch, env)
        p_hf, p_py, agree, gap = predict_side(binary, model, texts, work, threads, env)
        results[family] = {"train_samples_per_s": {"hf-train": t_hf, "python": t_py, "ratio": t_hf / t_py},
                           "predict_samples_per_s": {"hf-predict": p_hf, "python": p_py, "ratio": p_hf / p_py},
                           "label_agreement": agree, "max_probability_diff": gap}
        print(f"{family:12} {t_hf:10.1f} {t_py:7.1f} {t_hf / t_py:5.2f}x {p_hf:12.1f} {p_py:7.1f} {p_hf / p_py:5.2f}x "
              f"{agree:7.2%} {gap:8.1e}", flush=True)
    os.makedirs(bench_out, exist_ok=True)
    with open(os.path.join(bench_out, "families_bench.json"), "w") as f:
        json.dump({"bench": "families", "threads": threads, "train_steps": steps, "train_batch": batch,
                   "predict_records": n_predict, "families": results}, f, indent=2)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
