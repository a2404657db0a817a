"""Seed corpora for the fuzz targets, written by the real peers: safetensors files from Python's
safetensors (numpy and torch writers: every dtype, metadata, empty and odd shapes) and small
JSONL/CSV/TSV/text inputs from Python's json and csv modules.
Usage: make_seeds.py OUT_DIR   (creates OUT_DIR/safetensors and OUT_DIR/records)
"""
import csv
import io
import json
import os
import sys

import numpy as np
from safetensors.numpy import save as np_save

out = sys.argv[1]
st_dir, rec_dir = os.path.join(out, "safetensors"), os.path.join(out, "records")
os.makedirs(st_dir, exist_ok=True)
os.makedirs(rec_dir, exist_ok=True)


def put(directory, name, data):
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


rng = np.random.default_rng(0)
seeds = {
    "empty": ({}, None),
    "metadata_only": ({}, {"format": "pt", "labels": '["a","b"]'}),
    "one_f32": ({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, None),
    "dataset": ({"input_ids": rng.integers(0, 30000, 40).astype(np.int32), "offsets": np.array([0, 10, 25, 40]),
                 "labels": np.array([0, 1, 1])}, {"hfkit_format": "1", "labels": '["neg","pos"]'}),
    "zero_and_scalar": ({"z": np.zeros((3, 0), np.float16), "s": np.array(2.5, np.float64)}, None),
}
dtypes = [np.bool_, np.uint8, np.int8, np.int16, np.uint16, np.float16, np.int32, np.uint32, np.float32,
          np.float64, np.int64, np.uint64]
seeds["every_dtype"] = ({f"t{i}": rng.integers(0, 2, size=(i % 3 + 1, 2)).astype(dt) for i, dt in enumerate(dtypes)},
                        {"k": "v"})
for name, (tensors, metadata) in seeds.items():
    put(st_dir, name + ".safetensors", np_save(tensors, metadata=metadata))
try:  # BF16 and F8 need torch
    import torch
    from safetensors.torch import save as torch_save
    put(st_dir, "torch.safetensors", torch_save({"b": torch.ones(3, dtype=torch.bfloat16),
                                                  "f8": torch.zeros(2, dtype=torch.float8_e4m3fn)}))
except ImportError:
    pass

rows = [{"text": "hello, world", "label": "pos"}, {"text": 'say "hi"\nnext line', "label": "neg"},
        {"text": "café 名字 😀", "label": ""}]
put(rec_dir, "a.jsonl", "".join(json.dumps(r, ensure_ascii=i % 2 == 0) + "\n" for i, r in enumerate(rows)).encode())
for delim, name in [(",", "a.csv"), ("\t", "a.tsv")]:
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=["text", "label"], delimiter=delim)
    w.writeheader()
    w.writerows(rows)
    put(rec_dir, name, ("\ufeff" + buf.getvalue()).encode())
put(rec_dir, "a.txt", b"line one\r\n\nline three\xc3\xa9\n")
# What issue 9 found: nesting at and past the bound, numbers that a double would change, escapes
# and repeated keys that passthrough output must keep as read.
put(rec_dir, "edges.jsonl", (
    '{"n": ' + "[" * 511 + "]" * 511 + '}\n'  # depth 512: accepted
    '{"n": ' + "[" * 512 + "]" * 512 + '}\n'  # 513: refused
    '{"big": 12345678901234567890123456789, "neg": -9223372036854775809, "u": 18446744073709551616}\n'
    '{"f": 1.0, "e": 1E+2, "z": -0.0, "tiny": 1e-400, "long": 0.1000000000000000055511151231257827}\n'
    '{"\\u0061": 1, "a": 2, "s": "caf\\u00e9 \\/ \\ud83d\\ude00", "o": { "x" : [ 1 , {} ] } }\n'
).encode())
