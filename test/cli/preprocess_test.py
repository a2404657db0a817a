"""hf-preprocess end to end on the real binary: datasets readable by Python safetensors/numpy with
the ids Python `tokenizers` produces, deterministic splits, stratification, dedupe, labels,
streaming JSONL, config precedence, and bad input (exit code + one error line, nothing clobbered)."""
import hashlib
import json
import os
import shutil

import numpy as np
from safetensors.numpy import load_file
from safetensors import safe_open
from tokenizers import Tokenizer

from hfkit_testlib import MINILM, DATA, expect_error, main, run, stop_trickling, tempdir, tool

PRE = tool("hf-preprocess")
AMAZON = os.path.join(DATA, "sentiment", "amazon.jsonl")
YELP = os.path.join(DATA, "sentiment", "yelp.jsonl")


def hf_tokenizer():
    """The reference: the model's tokenizer.json with its padding/truncation settings switched off, as
    hf-preprocess's contract is no padding and no truncation unless asked."""
    hf = Tokenizer.from_file(os.path.join(MINILM, "tokenizer.json"))
    hf.no_padding()
    hf.no_truncation()
    return hf


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f]


def load_split(d, split):
    t = load_file(os.path.join(d, f"{split}.safetensors"))
    with safe_open(os.path.join(d, f"{split}.safetensors"), "np") as f:
        meta = f.metadata()
    offs = t["offsets"]
    ids = [t["input_ids"][offs[i]:offs[i + 1]].tolist() for i in range(len(offs) - 1)]
    return t, meta, ids


def tree_digest(d):
    h = hashlib.sha256()
    for name in sorted(os.listdir(d)):
        h.update(name.encode())
        with open(os.path.join(d, name), "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def test_dataset_matches_python_tokenizers():
    hf = hf_tokenizer()
    hf.no_truncation()
    hf.no_padding()
    records = read_jsonl(AMAZON) + read_jsonl(YELP)
    with tempdir() as d:
        out = os.path.join(d, "ds")
        run([PRE, "--tokenizer", MINILM, "--input", AMAZON, "--input", YELP, "--output", out, "-q"], check=0)
        manifest = json.load(open(os.path.join(out, "dataset.json")))
        assert manifest["labels"] == ["negative", "positive"]
        assert sum(s["examples"] for s in manifest["splits"].values()) == 2000
        assert {k: v["examples"] for k, v in manifest["splits"].items()} == {"train": 1600, "validation": 200, "test": 200}
        # Every example appears once across splits with the ids and label Python gives it.
        want = {}
        for r in records:
            want.setdefault(tuple(hf.encode(r["text"]).ids), []).append(r["label"])
        seen = 0
        for split in ["train", "validation", "test"]:
            t, meta, ids = load_split(out, split)
            assert t["input_ids"].dtype == np.int32 and t["offsets"].dtype == np.int64
            assert t["labels"].dtype == np.int64 and "token_type_ids" not in t
            assert meta["hfkit_format"] == "1" and json.loads(meta["labels"]) == ["negative", "positive"]
            assert meta["tokenizer_sha256"] == hashlib.sha256(open(os.path.join(MINILM, "tokenizer.json"), "rb").read()).hexdigest()
            copy = read_jsonl(os.path.join(out, f"{split}.jsonl"))
            assert len(copy) == len(ids)
            for i, seq in enumerate(ids):
                assert copy[i]["label"] == ["negative", "positive"][t["labels"][i]]
                assert seq == hf.encode(copy[i]["text"]).ids
                labels = want.get(tuple(seq))
                assert labels, f"{split}[{i}] ids not produced by Python tokenizers: {seq[:20]}"
                assert ["negative", "positive"][t["labels"][i]] in labels
                seen += 1
        assert seen == 2000


def test_splits_are_deterministic_and_seeded():
    with tempdir() as d:
        digests = []
        for name, seed in [("a", "1"), ("b", "1"), ("c", "2")]:
            run([PRE, "--tokenizer", MINILM, "-i", AMAZON, "-o", os.path.join(d, name), "--seed", seed, "-q"], check=0)
            digests.append(tree_digest(os.path.join(d, name)))
        assert digests[0] == digests[1]
        assert digests[0] != digests[2]


def test_stratify_keeps_label_balance_and_dedupe():
    with tempdir() as d:
        out = os.path.join(d, "ds")
        run([PRE, "--tokenizer", MINILM, "-i", AMAZON, "-o", out, "--stratify", "--dedupe",
             "--split", "train=0.5,test=0.5"], check=0)
        m = json.load(open(os.path.join(out, "dataset.json")))
        assert m["duplicates_removed"] == 10, m["duplicates_removed"]  # the README's 10 extra copies
        # After dedupe the classes are 497 negative / 493 positive (first occurrence wins): each half
        # keeps that proportion to within one example per class.
        expected = {"negative": 497 / 2, "positive": 493 / 2}
        for split in ["train", "test"]:
            c = m["splits"][split]["label_counts"]
            assert all(abs(c[k] - v) <= 1 for k, v in expected.items()), (split, c)
        assert sum(sum(m["splits"][s]["label_counts"].values()) for s in ["train", "test"]) == 990


def test_fixed_labels_multilabel_pairs_and_truncation():
    with tempdir() as d:
        src = os.path.join(d, "in.jsonl")
        with open(src, "w") as f:
            f.write(json.dumps({"q": "Is it good?", "a": "Yes, very good indeed.", "tags": ["x", "z"]}) + "\n")
            f.write(json.dumps({"q": "Bad?", "a": "No.", "tags": ["y"]}) + "\n")
            f.write(json.dumps({"q": "Hm", "a": "Maybe so", "tags": []}) + "\n")
        out = os.path.join(d, "ds")
        run([PRE, "--tokenizer", MINILM, "-i", src, "-o", out, "--text-field", "q", "--text-pair-field", "a",
             "--label-field", "tags", "--labels", "x,y,z", "--split", "train=1", "--max-length", "8"], check=0)
        t, meta, ids = load_split(out, "train")
        assert t["labels"].dtype == np.float32 and t["labels"].shape == (3, 3)
        assert t["labels"].tolist() == [[1, 0, 1], [0, 1, 0], [0, 0, 0]]
        hf = hf_tokenizer()
        hf.enable_truncation(8)
        for i, (q, a) in enumerate([("Is it good?", "Yes, very good indeed."), ("Bad?", "No."), ("Hm", "Maybe so")]):
            e = hf.encode(q, a)
            assert ids[i] == e.ids, (ids[i], e.ids)
            o = t["offsets"]
            assert t["token_type_ids"][o[i]:o[i + 1]].tolist() == e.type_ids
        # A label outside the fixed list is an error naming the line.
        expect_error([PRE, "--tokenizer", MINILM, "-i", src, "-o", out, "--text-field", "q", "--label-field", "tags",
                      "--labels", "x,y"], 65, "in.jsonl:1", "tags", "unknown label 'z'")


def test_csv_input_and_integer_labels():
    with tempdir() as d:
        src = os.path.join(d, "in.csv")
        with open(src, "w", newline="") as f:
            f.write('\ufeffreview,stars\r\n"Great, really ""great""",10\r\nmeh,2\r\n"multi\nline",2\r\n')
        out = os.path.join(d, "ds")
        run([PRE, "--tokenizer", MINILM, "-i", src, "-o", out, "--text-field", "review", "--label-field", "stars",
             "--split", "train=1"], check=0)
        t, meta, ids = load_split(out, "train")
        assert json.loads(meta["labels"]) == ["2", "10"]  # numeric order
        assert t["labels"].tolist() == [1, 0, 0]
        hf = hf_tokenizer()
        assert ids == [hf.encode(s).ids for s in ['Great, really "great"', "meh", "multi\nline"]]


def test_stream_lines_and_jsonl_passthrough():
    hf = hf_tokenizer()
    text = "Hello, World!\n\nnaïve café\n"
    p = run([PRE, "--tokenizer", MINILM, "--input", "-", "--format", "lines", "--output", "-"], input=text, check=0)
    got = [json.loads(l) for l in p.stdout.splitlines()]
    assert [g["input_ids"] for g in got] == [hf.encode(s).ids for s in ["Hello, World!", "", "naïve café"]]
    p = run([PRE, "--tokenizer", MINILM, "-i", "-", "--format", "jsonl", "-o", "-", "--max-length", "4"],
            input='{"id": 7, "text": "one two three four five"}\n', check=0)
    rec = json.loads(p.stdout)
    hf.enable_truncation(4)
    assert rec["id"] == 7 and rec["text"] == "one two three four five"
    assert rec["input_ids"] == hf.encode("one two three four five").ids


def test_config_file_and_precedence():
    with tempdir() as d:
        cfg = os.path.join(d, "job.yaml")
        out = os.path.join(d, "ds")
        with open(cfg, "w") as f:
            f.write(f"tokenizer: {MINILM}\ninput: [{AMAZON}]\noutput: {out}\nsplit: train=0.5,test=0.5\n")
        run([PRE, "--config", cfg, "-q"], check=0)
        m = json.load(open(os.path.join(out, "dataset.json")))
        assert set(m["splits"]) == {"train", "test"}
        run([PRE, "--config", cfg, "--split", "all=1", "-o", os.path.join(d, "ds2"), "-q"], check=0)
        m = json.load(open(os.path.join(d, "ds2", "dataset.json")))
        assert set(m["splits"]) == {"all"}  # the flag beat the file
        with open(cfg, "a") as f:
            f.write("sead: 3\n")
        expect_error([PRE, "--config", cfg], 78, "job.yaml:5", "sead", "unknown key")


def test_bad_inputs_fail_clearly_and_clobber_nothing():
    with tempdir() as d:
        out = os.path.join(d, "ds")
        run([PRE, "--tokenizer", MINILM, "-i", AMAZON, "-o", out, "-q"], check=0)
        before = tree_digest(out)
        cases = [
            ('{"text": "ok", "label": "a"}\n{"text": "broken", \n', 65, ["bad.jsonl:2"]),
            ('{"text": "ok", "label": "a"}\n{"label": "b"}\n', 65, ["bad.jsonl:2", "text", "missing"]),
            ('{"text": 5, "label": "a"}\n', 65, ["bad.jsonl:1", "text", "expected a string"]),
            ('{"text": "x", "label": {"a": 1}}\n', 65, ["bad.jsonl:1", "label"]),
            ("", 65, ["no examples"]),
            (b'{"text": "caf\xe9", "label": "a"}\n', 65, ["bad.jsonl:1", "UTF-8"]),
        ]
        for content, code, fragments in cases:
            src = os.path.join(d, "bad.jsonl")
            with open(src, "wb") as f:
                f.write(content if isinstance(content, bytes) else content.encode())
            expect_error([PRE, "--tokenizer", MINILM, "-i", src, "-o", out], code, *fragments)
            assert tree_digest(out) == before, f"output changed after failing on {content!r}"
        expect_error([PRE, "--tokenizer", MINILM, "-i", os.path.join(d, "missing.jsonl"), "-o", out], 66, "missing.jsonl")
        expect_error([PRE, "--tokenizer", os.path.join(d, "nope"), "-i", AMAZON, "-o", out], 66, "nope")
        expect_error([PRE, "--tokenizer", MINILM, "-i", AMAZON, "-o", out, "--split", "train=0.9,test=0.2"], 64, "--split")
        expect_error([PRE, "--tokenizer", MINILM, "-i", AMAZON], 64, "--output")
        assert tree_digest(out) == before
        # Skip mode: bad records are counted, the rest is written.
        src = os.path.join(d, "bad.jsonl")
        with open(src, "w") as f:
            f.write('{"text": "good one", "label": "a"}\n{oops\n{"text": "good two", "label": "b"}\n{"label": "c"}\n')
        out2 = os.path.join(d, "ds2")
        run([PRE, "--tokenizer", MINILM, "-i", src, "-o", out2, "--on-bad-record", "skip", "--split", "train=1"], check=0)
        m = json.load(open(os.path.join(out2, "dataset.json")))
        assert m["examples"] == 2 and m["bad_records_skipped"] == 2, m


def test_broken_pipe_is_quiet():
    # The reader leaves after one line: hf-preprocess itself must exit 0 without a word on stderr
    # (`yes` upstream dies of SIGPIPE, which is why its status is not the one checked).
    p = run(["bash", "-c", f"yes 'some text here' | head -n 200000 | {PRE} --tokenizer {MINILM} "
             f"-i - --format lines -o - | head -n 1; echo \"status=${{PIPESTATUS[2]}}\" >&2"], check=0)
    assert p.stdout.count("\n") == 1 and json.loads(p.stdout)["input_ids"][0] == 101, p.stdout
    assert p.stderr == "status=0\n", p.stderr


def test_split_names_stay_inside_the_output_dir():
    with tempdir() as d:
        out = os.path.join(d, "o")
        for spec in ["../x=1", "train=0.5,../../y=0.5", ".hidden=1", "a/b=1"]:
            expect_error([PRE, "--tokenizer", MINILM, "-i", AMAZON, "-o", out, "--split", spec], 64,
                         "--split", "bad split name")
        assert os.listdir(d) == [], os.listdir(d)  # nothing beside o/, no o/ either


def test_mixed_label_types_are_refused():
    with tempdir() as d:
        src = os.path.join(d, "in.jsonl")
        with open(src, "w") as f:
            f.write('{"text": "a", "label": 1}\n{"text": "b", "label": 2}\n{"text": "c", "label": "1"}\n')
        expect_error([PRE, "--tokenizer", MINILM, "-i", src, "-o", os.path.join(d, "ds")], 65,
                     "in.jsonl:3", "label", "mixed label types")
        assert not os.path.exists(os.path.join(d, "ds"))


def test_passthrough_is_byte_identical_and_nesting_is_bounded():
    with tempdir() as d:
        src = os.path.join(d, "in.jsonl")
        fields = ('"id": 12345678901234567890123456789, "f": 1.0, "e": 1E+2, "s": "caf\\u00e9 \\/", '
                  '"deep": [[[{"x": -0.0}]]], "text": "good film", "label": "pos"')
        with open(src, "w") as f:
            f.write("{" + fields + "}\n")
            f.write('{"text": "bad film", "label": "neg"}\n')
        want = '{"id":12345678901234567890123456789,"f":1.0,"e":1E+2,"s":"caf\\u00e9 \\/",' \
               '"deep":[[[{"x": -0.0}]]],"text":"good film","label":"pos"'
        # Streaming: the fields as read, then input_ids.
        p = run([PRE, "--tokenizer", MINILM, "-i", src, "-o", "-"], check=0)
        first = p.stdout.splitlines()[0]
        assert first.startswith(want + ',"input_ids":['), first
        # Dataset: <split>.jsonl holds the records as read.
        out = os.path.join(d, "ds")
        run([PRE, "--tokenizer", MINILM, "-i", src, "-o", out, "--split", "train=1", "-q"], check=0)
        assert open(os.path.join(out, "train.jsonl")).read().splitlines()[0] == want + "}"
        # 100k levels: a data error naming the line (exit 65), not a crash (139).
        with open(src, "a") as f:
            f.write('{"text": "x", "label": "pos", "n": ' + "[" * 100000 + "]" * 100000 + "}\n")
        for output in [out, "-"]:
            expect_error([PRE, "--tokenizer", MINILM, "-i", src, "-o", output], 65, "in.jsonl:3", "nested deeper than 512")
        assert open(os.path.join(out, "train.jsonl")).read().splitlines()[0] == want + "}"


def test_dataset_dir_is_replaced_as_a_whole():
    with tempdir() as d:
        out = os.path.join(d, "ds")
        run([PRE, "--tokenizer", MINILM, "-i", AMAZON, "-o", out, "-q"], check=0)
        m = json.load(open(os.path.join(out, "dataset.json")))
        ids = {load_split(out, s)[1]["run_id"] for s in ["train", "validation", "test"]}
        assert ids == {m["run_id"]} and len(m["run_id"]) == 32, (ids, m["run_id"])
        # A re-run with other splits leaves no file of the old run behind.
        run([PRE, "--tokenizer", MINILM, "-i", AMAZON, "-o", out, "--split", "all=1", "-q"], check=0)
        assert sorted(os.listdir(out)) == ["all.jsonl", "all.safetensors", "dataset.json"], os.listdir(out)
        assert json.load(open(os.path.join(out, "dataset.json")))["run_id"] != m["run_id"]
        assert sorted(os.listdir(d)) == ["ds"]
        # A directory that holds something else is never replaced.
        home = os.path.join(d, "home")
        os.mkdir(home)
        open(os.path.join(home, "notes.txt"), "w").write("mine")
        expect_error([PRE, "--tokenizer", MINILM, "-i", AMAZON, "-o", home], 73, "home", "dataset.json")
        assert os.listdir(home) == ["notes.txt"]


def test_disk_full_half_way_keeps_the_old_dataset():
    # A tmpfs big enough for the small dataset but not for the big one: the second run fails
    # while writing its last split (exit 74), after train and validation were written, and must
    # leave the first dataset as it was (not new train beside old test), with no temp directory.
    with tempdir() as d:
        mnt = os.path.join(d, "mnt")
        os.mkdir(mnt)
        mounted = run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt]).returncode == 0
        assert mounted, "mount -t tmpfs failed: this test needs root (it runs as root in the project's containers)"
        try:
            out = os.path.join(mnt, "ds")
            small = os.path.join(d, "small.jsonl")
            with open(small, "w") as f:
                f.write("".join(json.dumps({"text": f"short text {i}", "label": "ab"[i % 2]}) + "\n" for i in range(20)))
            run([PRE, "--tokenizer", MINILM, "-i", small, "-o", out, "-q"], check=0)
            before = tree_digest(out)
            big = os.path.join(d, "big.jsonl")
            with open(big, "w") as f:
                words = " ".join(["word"] * 200)
                f.write("".join(json.dumps({"text": f"{words} {i}", "label": "ab"[i % 2]}) + "\n" for i in range(1500)))
            p = run([PRE, "--tokenizer", MINILM, "-i", big, "-o", out, "--split", "train=0.1,validation=0.1,test=0.8"],
                    check=74)
            assert "No space left on device" in p.stderr, p.stderr
            assert tree_digest(out) == before
            assert os.listdir(mnt) == ["ds"], os.listdir(mnt)
        finally:
            run(["umount", mnt], check=0)


def test_sigterm_stops_promptly_and_commits_nothing():
    records = b"".join(json.dumps({"text": f"record {i}", "label": "ab"[i % 2]}).encode() + b"\n" for i in range(2000))
    with tempdir() as d:
        out = os.path.join(d, "ds")
        run([PRE, "--tokenizer", MINILM, "-i", AMAZON, "-o", out, "-q"], check=0)
        before = tree_digest(out)
        for output in [out, os.path.join(d, "new")]:
            rc, _, err = stop_trickling([PRE, "--tokenizer", MINILM, "-i", "-", "--format", "jsonl", "-o", output],
                                        records)
            assert rc == 143, (rc, err)
            assert tree_digest(out) == before
            assert sorted(os.listdir(d)) == ["ds"], os.listdir(d)


def test_tsv_input():
    with tempdir() as d:
        src = os.path.join(d, "in.tsv")
        with open(src, "w", newline="") as f:
            f.write('text\tlabel\n"tab\tinside"\tpos\nplain, with comma\tneg\n')
        out = os.path.join(d, "ds")
        run([PRE, "--tokenizer", MINILM, "-i", src, "-o", out, "--split", "train=1", "-q"], check=0)
        t, meta, ids = load_split(out, "train")
        assert json.loads(meta["labels"]) == ["neg", "pos"]
        assert t["labels"].tolist() == [1, 0]
        hf = hf_tokenizer()
        assert ids == [hf.encode(s).ids for s in ["tab\tinside", "plain, with comma"]]
        p = run([PRE, "--tokenizer", MINILM, "-i", src, "-o", "-"], check=0)
        recs = [json.loads(l) for l in p.stdout.splitlines()]
        assert [r["text"] for r in recs] == ["tab\tinside", "plain, with comma"]
        assert [r["input_ids"] for r in recs] == ids


def test_thread_count_is_capped_and_refused_threads_are_an_error():
    with tempdir() as d:
        out = os.path.join(d, "ds")
        p = run([PRE, "--tokenizer", MINILM, "-i", AMAZON, "-o", out, "--threads", "100000"], check=0)
        assert "100000 threads asked for" in p.stderr, p.stderr
        # As an unprivileged user whose process limit is 1, no thread can start: a clean error
        # (69), not a hang or an abort. The limit counts threads of that user, root ignores it.
        os.chmod(d, 0o777)
        src, tok = os.path.join(d, "in.jsonl"), os.path.join(d, "tokenizer.json")
        shutil.copy(AMAZON, src)
        shutil.copy(os.path.join(MINILM, "tokenizer.json"), tok)  # root's home is not readable by nobody
        for f in (src, tok):
            os.chmod(f, 0o644)
        cmd = f"ulimit -u 1; exec {os.path.abspath(PRE)} --tokenizer {tok} -i {src} -o {d}/nobody --threads 4"
        p = run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash", "-c", cmd], timeout=60)
        assert p.returncode == 69, (p.returncode, p.stderr)
        assert "cannot start thread" in p.stderr, p.stderr
        assert not os.path.exists(os.path.join(d, "nobody"))


if __name__ == "__main__":
    main(globals())
