"""hf::io against the Python peers, on the same bytes.

safetensors: files Python writes (every dtype, metadata, odd shapes) read exactly by hfkit; files
hfkit writes loaded identically by safetensors/numpy/torch and byte-equal to Python's own
serialisation; and a differential run over mutated files (hfkit must reject what Python rejects,
and accept what it accepts except duplicate keys, which hfkit rejects on purpose).
Readers: CSV/TSV vs the csv module, JSON Lines vs json, lines vs str.split("\n"), UTF-8 errors vs
Python's strict decoder.
Usage: io_golden_test.py --driver PATH/io_driver [test names]
"""
import csv
import io
import json
import os
import random
import re
import struct
import subprocess
import sys

import numpy as np
import torch
from safetensors import deserialize, safe_open
from safetensors.numpy import save as np_save
from safetensors.torch import save as torch_save

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "support"))
import hfkit_testlib as lib  # noqa: E402

DRIVER = sys.argv[sys.argv.index("--driver") + 1]
del sys.argv[sys.argv.index("--driver"):sys.argv.index("--driver") + 2]
EX_DATAERR = 65


def driver(*args, check=0):
    p = subprocess.run([DRIVER, *map(str, args)], capture_output=True)
    if check is not None and p.returncode != check:
        raise AssertionError(f"io_driver {args}: exit {p.returncode}, expected {check}\n{p.stderr.decode()[-2000:]}")
    return p


def jsonl(stdout):
    return [json.loads(l) for l in stdout.decode().split("\n") if l]


# ------------------------------------------------------------------------------------------------
# safetensors
# ------------------------------------------------------------------------------------------------

def every_dtype_tensors(rng):
    """A dict of torch tensors covering every dtype hfkit reads, with odd shapes and values."""
    t = {}
    shapes = [(3,), (2, 3), (1, 1, 5), (0,), (4, 0, 2), ()]
    ints = {torch.int8: (-128, 128), torch.uint8: (0, 256), torch.int16: (-2**15, 2**15), torch.uint16: (0, 2**16),
            torch.int32: (-2**31, 2**31), torch.uint32: (0, 2**32), torch.int64: (-2**63, 2**63 - 1),
            torch.uint64: (0, 2**63)}
    for i, (dt, (lo, hi)) in enumerate(ints.items()):
        shape = shapes[i % len(shapes)]
        a = rng.integers(lo, hi, size=shape, dtype=np.int64 if dt != torch.uint64 else np.uint64)
        t[f"int.{dt}".replace("torch.", "")] = torch.from_numpy(np.asarray(a)).to(dt) if dt != torch.uint64 \
            else torch.from_numpy(np.asarray(a).astype(np.int64)).to(dt)
    floats = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.float8_e4m3fn, torch.float8_e5m2,
              torch.complex64]
    for i, dt in enumerate(floats):
        shape = shapes[(i + 3) % len(shapes)]
        x = torch.from_numpy(rng.standard_normal(size=shape)).to(torch.float32)
        t[f"float.{dt}".replace("torch.", "")] = x.to(dt)
    t["bool"] = torch.from_numpy(rng.integers(0, 2, size=(7,)).astype(bool))
    t["special floats"] = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 1e-45], dtype=torch.float32)
    t["unicode é 名字"] = torch.arange(4, dtype=torch.int32)
    t["ctrl\n\t\"\\\x01"] = torch.arange(2, dtype=torch.int8)
    return t


def raw_bytes(x):
    x = x.contiguous()
    return x.reshape(-1).view(torch.uint8).numpy().tobytes() if x.numel() else b""


def test_python_written_files_read_exactly():
    rng = np.random.default_rng(1)
    with lib.tempdir() as d:
        for k, metadata in enumerate([None, {"format": "pt"}, {"a": "1", "b": "é\n\"", "": ""}]):
            tensors = every_dtype_tensors(rng)
            path = os.path.join(d, f"py{k}.safetensors")
            with open(path, "wb") as f:
                f.write(torch_save(tensors, metadata=metadata))
            got = jsonl(driver("st-dump", path).stdout)[0]
            assert got["metadata"] == (metadata or {}), got["metadata"]
            names = [t["name"] for t in got["tensors"]]
            assert sorted(names) == sorted(tensors), names
            with safe_open(path, framework="pt") as sf:
                assert sf.metadata() == metadata or (not metadata and not sf.metadata())
                for t in got["tensors"]:
                    ref = sf.get_tensor(t["name"])
                    assert t["shape"] == list(ref.shape), (t["name"], t["shape"], ref.shape)
                    assert bytes.fromhex(t["hex"]) == raw_bytes(ref), t["name"]
            # numpy-written files too (another code path in the Python package)
            npd = {"a": np.arange(6, dtype=np.float64).reshape(2, 3), "b": np.array([True, False]),
                   "c": np.zeros((0, 3), dtype=np.int16)}
            np_path = os.path.join(d, f"np{k}.safetensors")
            with open(np_path, "wb") as f:
                f.write(np_save(npd, metadata=metadata))
            got = {t["name"]: t for t in jsonl(driver("st-dump", np_path).stdout)[0]["tensors"]}
            for name, arr in npd.items():
                assert got[name]["shape"] == list(arr.shape)
                assert bytes.fromhex(got[name]["hex"]) == arr.tobytes()


def spec_of(tensors, metadata):
    return {"tensors": [{"name": n, "dtype": dtype_name(x), "shape": list(x.shape), "hex": raw_bytes(x).hex()}
                        for n, x in tensors.items()], "metadata": metadata or {}}


def dtype_name(x):
    """The safetensors dtype string Python writes for tensor x (read back from its own header)."""
    b = torch_save({"x": x})
    n = struct.unpack("<Q", b[:8])[0]
    return json.loads(b[8:8 + n])["x"]["dtype"]


def split_header(b):
    n = struct.unpack("<Q", b[:8])[0]
    return n, b[8:8 + n], b[8 + n:]


def test_hfkit_written_files_match_python():
    rng = np.random.default_rng(2)
    with lib.tempdir() as d:
        cases = [(every_dtype_tensors(rng), None), (every_dtype_tensors(rng), {"format": "pt"}),
                 ({}, None), ({}, {"only": "metadata"}),
                 (every_dtype_tensors(rng), {"labels": json.dumps(["a", "é"]), "x": "1", "zz": "\u0000\u007f"})]
        # names whose order depends on byte-wise comparison
        cases.append(({"b": torch.zeros(1), "B": torch.zeros(1), "a.10": torch.zeros(1), "a.9": torch.zeros(1),
                       "é": torch.zeros(1), "_": torch.zeros(1)}, None))
        for k, (tensors, metadata) in enumerate(cases):
            spec_path, out = os.path.join(d, f"spec{k}.json"), os.path.join(d, f"hf{k}.safetensors")
            with open(spec_path, "w") as f:
                json.dump(spec_of(tensors, metadata), f)
            driver("st-write", spec_path, out)
            ours = open(out, "rb").read()
            theirs = torch_save(tensors, metadata=metadata)
            if not metadata or len(metadata) <= 1:
                assert ours == theirs, f"case {k}: bytes differ\nours   {ours[:300]!r}\ntheirs {theirs[:300]!r}"
            else:
                # Python's metadata key order is its hash map's (it changes from run to run); the rest
                # must be identical.
                n1, h1, d1 = split_header(ours)
                n2, h2, d2 = split_header(theirs)
                assert n1 == n2 and d1 == d2
                j1, j2 = json.loads(h1), json.loads(h2)
                assert j1 == j2 and list(j1) == list(j2)
                strip = lambda h: re.sub(rb'^\{"__metadata__":\{.*?\},', b"", h)
                assert strip(h1) == strip(h2)
            with safe_open(out, framework="pt") as sf:
                assert (sf.metadata() or {}) == (metadata or {})
                assert sorted(sf.keys()) == sorted(tensors)
                for name, x in tensors.items():
                    y = sf.get_tensor(name)
                    assert y.dtype == x.dtype and y.shape == x.shape and raw_bytes(y) == raw_bytes(x), name
            if all(x.dtype not in (torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2, torch.uint16,
                                   torch.uint32, torch.uint64) for x in tensors.values()):
                from safetensors.numpy import load_file
                arrays = load_file(out)
                for name, x in tensors.items():
                    assert arrays[name].tobytes() == raw_bytes(x), name


def mutations(rng, b):
    """Variants of a valid file: header bytes changed, sizes edited, truncation, bytes appended."""
    n, header, data = split_header(b)
    text = header.decode()
    out = []
    for _ in range(150):
        h = bytearray(header)
        for _ in range(rng.integers(1, 4)):
            h[rng.integers(0, len(h))] = rng.choice(list(b'{}[]":,0123456789 -eE.x\x00\xff'))
        out.append(struct.pack("<Q", len(h)) + bytes(h) + data)
    for _ in range(100):
        # edit one number in the header (shapes, offsets)
        nums = [m for m in re.finditer(r"\d+", text)]
        m = nums[rng.integers(0, len(nums))]
        v = int(m.group()) + int(rng.choice([-1, 1, 2, -8, 2**32, 2**63, 2**64]))
        h = (text[:m.start()] + str(v) + text[m.end():]).encode()
        out.append(struct.pack("<Q", len(h)) + h + data)
    for _ in range(30):
        out.append(b[:rng.integers(0, len(b))])
        out.append(b + bytes(rng.integers(1, 9)))
        bad_n = int(rng.choice([n - 1, n + 1, len(b), 2**63, 100_000_001]))
        out.append(struct.pack("<Q", bad_n) + b[8:])
    for word in ['"F32"', '"I64"', '"BOOL"', '"shape"', '"data_offsets"', '"dtype"']:
        for repl in ['"F4"', '"X"', '"F16"', '"U8"', '"shape"', '"dtype"', '"__metadata__"']:
            h = text.replace(word, repl, 1).encode()
            out.append(struct.pack("<Q", len(h)) + h + data)
    return out


def has_duplicate_keys(header):
    dup = []

    def hook(pairs):
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            dup.append(keys)
        return dict(pairs)
    try:
        json.loads(header, object_pairs_hook=hook)
    except Exception:
        return False
    return bool(dup)


def test_differential_mutated_files():
    rng = np.random.default_rng(3)
    base = torch_save({"w": torch.ones(2, 3), "ids": torch.arange(5), "m": torch.tensor([True, False]),
                       "h": torch.zeros(3, dtype=torch.float16)}, metadata={"format": "pt"})
    agree = py_only = 0
    with lib.tempdir() as d:
        path = os.path.join(d, "m.safetensors")
        for i, b in enumerate(mutations(rng, base)):
            with open(path, "wb") as f:
                f.write(b)
            try:
                deserialize(b)
                py_ok = True
            except Exception:
                py_ok = False
            p = driver("st-dump", path, check=None)
            ours_ok = p.returncode == 0
            err = p.stderr.decode()
            if not ours_ok:
                assert p.returncode == EX_DATAERR, f"mutation {i}: exit {p.returncode}: {err}"
                lines = [l for l in err.splitlines() if ": error: " in l]
                assert len(lines) == 1 and path in lines[0], f"mutation {i}: {err!r}"
            if py_ok and not ours_ok:
                # hfkit is stricter only about keys given twice (Python keeps the last silently).
                n = struct.unpack("<Q", b[:8])[0]
                assert has_duplicate_keys(b[8:8 + n].decode("utf-8", "replace")), \
                    f"mutation {i}: Python accepts, hfkit rejects: {err}\n{b[:400]!r}"
                py_only += 1
                continue
            assert py_ok == ours_ok, f"mutation {i}: Python {'accepts' if py_ok else 'rejects'}, " \
                                     f"hfkit {'accepts' if ours_ok else 'rejects'}: {err}\n{b[:400]!r}"
            if py_ok:
                got = {t["name"]: t for t in jsonl(p.stdout)[0]["tensors"]}
                ref = dict(deserialize(b))
                assert set(got) == set(ref)
                for name, t in got.items():
                    assert t["shape"] == ref[name]["shape"] and t["dtype"] == ref[name]["dtype"]
                    assert bytes.fromhex(t["hex"]) == bytes(ref[name]["data"])
            agree += 1
    print(f"  mutated files: {agree} same verdict as Python, {py_only} rejected only by hfkit (duplicate keys)")
    assert agree > 300


# ------------------------------------------------------------------------------------------------
# Readers
# ------------------------------------------------------------------------------------------------

def random_text(rng, allow_newlines, bare_cr=True):
    pool = ["a", "b", "Z", " ", ",", '"', "'", "\t", "é", "名", "😀", "\u200b", "\\", ";", "x y", "\u00a0"]
    if allow_newlines:
        pool += ["\n", "\r\n"] + (["\r"] if bare_cr else [])
    return "".join(rng.choice(pool) for _ in range(rng.integers(0, 12)))


def test_csv_and_tsv_vs_python_csv_module():
    rng = np.random.default_rng(4)
    with lib.tempdir() as d:
        for fmt, delim in [("csv", ","), ("tsv", "\t")]:
            for quoting in [csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]:
                for terminator in ["\r\n", "\n"]:
                    cols = ["text", "label", "é col", "with,comma" if delim == "," else "with\ttab"]
                    # Python's writer leaves a bare CR unquoted when the terminator is "\n" and its reader
                    # then ends the record there; RFC 4180 (and hfkit) treat a bare CR as data.
                    rows = [{c: random_text(rng, True, bare_cr=terminator == "\r\n" or quoting != csv.QUOTE_MINIMAL)
                             for c in cols} for _ in range(300)]
                    for r in rows[::7]:
                        r["label"] = ""
                    buf = io.StringIO(newline="")
                    w = csv.DictWriter(buf, fieldnames=cols, delimiter=delim, quoting=quoting,
                                       lineterminator=terminator)
                    w.writeheader()
                    w.writerows(rows)
                    content = ("\ufeff" if quoting == csv.QUOTE_ALL else "") + buf.getvalue()
                    path = os.path.join(d, f"in.{fmt}")
                    with open(path, "w", newline="", encoding="utf-8") as f:
                        f.write(content)
                    with open(path, newline="", encoding="utf-8-sig") as f:
                        want = list(csv.DictReader(f, delimiter=delim))
                    got = jsonl(driver("records", fmt, path).stdout)
                    assert [g["value"] for g in got] == want, f"{fmt} quoting={quoting} terminator={terminator!r}"
                    assert list(got[0]["value"]) == cols
                    # Each record's line is where it starts: count newlines the csv module consumed.
                    assert got[0]["line"] == 2


def test_jsonl_vs_python_json():
    rng = random.Random(5)

    def value(depth=0):
        kinds = ["s", "i", "f", "b", "n"] + (["l", "o"] if depth < 3 else [])
        k = rng.choice(kinds)
        if k == "s":
            return "".join(rng.choice(["a", "é", "😀", "\n", "\"", "\\", "\u0001", "/", "\u2028", "名"])
                           for _ in range(rng.randint(0, 8)))
        if k == "i":
            return rng.choice([0, -1, 2**63 - 1, -2**63, 2**64 - 1, rng.randint(-1000, 1000)])
        if k == "f":
            return rng.choice([0.1, -2.5e-300, 1e308, 3.141592653589793, 5e-324, -0.0, 1.0])
        if k == "b":
            return rng.choice([True, False])
        if k == "n":
            return None
        if k == "l":
            return [value(depth + 1) for _ in range(rng.randint(0, 4))]
        return {f"k{rng.randint(0, 20)}{rng.choice(['', 'é'])}": value(depth + 1) for _ in range(rng.randint(0, 4))}

    objs = [{f"f{j}": value() for j in range(rng.randint(0, 5))} for _ in range(2000)]
    with lib.tempdir() as d:
        path = os.path.join(d, "in.jsonl")
        with open(path, "w", encoding="utf-8", newline="") as f:
            for i, o in enumerate(objs):
                f.write(json.dumps(o, ensure_ascii=bool(i % 2), indent=None) + ("\r\n" if i % 3 == 0 else "\n"))
                if i % 50 == 0:
                    f.write("   \n")
        got = jsonl(driver("records", "jsonl", path).stdout)
        assert len(got) == len(objs)
        for g, o in zip(got, objs):
            assert g["value"] == o and list(g["value"]) == list(o), (g, o)
        lines = open(path, encoding="utf-8", newline="").read().split("\n")
        want_lines = [i + 1 for i, l in enumerate(lines) if l.strip()]
        assert [g["line"] for g in got] == want_lines


def test_lines_vs_python_split():
    rng = np.random.default_rng(6)
    with lib.tempdir() as d:
        for k in range(6):
            parts = [random_text(rng, False) + rng.choice(["", "\r"]) for _ in range(3000)]
            text = "\n".join(parts) + rng.choice(["", "\n", "\n\n"])
            if k % 2:
                text = "\ufeff" + text
            path = os.path.join(d, "in.txt")
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(text)
            want = text.lstrip("\ufeff").split("\n")
            if want and want[-1] == "":
                want.pop()
            got = jsonl(driver("lines", path).stdout)
            assert got == want, f"case {k}"
            recs = jsonl(driver("records", "lines", path).stdout)
            assert [r["value"]["text"] for r in recs] == want
            assert [r["line"] for r in recs] == list(range(1, len(want) + 1))


def test_utf8_errors_vs_python_decoder():
    rng = np.random.default_rng(7)
    pieces = [b"a", b" ", b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80", b"\xf4\x8f\xbf\xbf", b"\xed\x9f\xbf",
              b"\xc0", b"\xc1\xbf", b"\xe0\x80\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf5", b"\xff", b"\x80",
              b"\xe2\x82", b"\xf0\x9f\x98", b"\xc3"]
    weights = np.array([20, 10, 5, 5, 5, 2, 2] + [1] * 11, dtype=float)
    lines = [b"".join(rng.choice(pieces, size=rng.integers(0, 20), p=weights / weights.sum())) for _ in range(3000)]
    with lib.tempdir() as d:
        path = os.path.join(d, "in.txt")
        with open(path, "wb") as f:
            f.write(b"\n".join(lines) + b"\n")
        p = driver("records", "lines", path, "skip")
        got = {r["line"]: r["value"]["text"] for r in jsonl(p.stdout)}
        errors = {int(m.group(1)): int(m.group(2))
                  for m in re.finditer(r":(\d+): invalid UTF-8 at byte (\d+) \(record skipped\)", p.stderr.decode())}
        bad = 0
        for i, raw in enumerate(lines, start=1):
            try:
                want = raw.decode("utf-8")
                assert got.get(i) == want, (i, raw)
            except UnicodeDecodeError as e:
                bad += 1
                assert i not in got, (i, raw)
                assert errors.get(i) == e.start + 1, (i, raw, errors.get(i), e.start)
        assert bad > 100 and f"bad_records={bad}" in p.stderr.decode()
        # Error mode stops at the first bad line with the exit code for bad data.
        first = next(i for i, raw in enumerate(lines, start=1) if i in errors)
        p = driver("records", "lines", path, check=EX_DATAERR)
        assert f"{path}:{first}: invalid UTF-8 at byte {errors[first]}" in p.stderr.decode()


def test_bad_inputs_exit_codes():
    with lib.tempdir() as d:
        cases = [("jsonl", b'{"a":1}\n{"a":\n', f":2: invalid JSON"),
                 ("csv", b'a,b\n1,"x\n', ":2: field 2: quoted field not closed"),
                 ("csv", b"a,b\n1,2,3\n", ":2: expected 2 fields (as in the header), got 3"),
                 ("tsv", b"a\tb\n\xff\t1\n", ":2: invalid UTF-8 at byte 1")]
        for fmt, content, fragment in cases:
            path = os.path.join(d, "in." + fmt)
            with open(path, "wb") as f:
                f.write(content)
            p = driver("records", fmt, path, check=EX_DATAERR)
            assert path + fragment in p.stderr.decode(), p.stderr
        p = driver("records", "jsonl", os.path.join(d, "missing.jsonl"), check=66)
        path = os.path.join(d, "x.safetensors")
        with open(path, "wb") as f:
            f.write(torch_save({"w": torch.ones(4)})[:-3])
        driver("st-dump", path, check=EX_DATAERR)
        driver("st-dump", os.path.join(d, "none.safetensors"), check=66)


if __name__ == "__main__":
    lib.main(globals())
