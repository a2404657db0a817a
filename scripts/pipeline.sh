#!/usr/bin/env bash
# Raw data to a served model, one program per step, every output in one run directory:
#   1 preprocess (hf-preprocess)  2 train (hf-train, --sync-to when PIPELINE_SYNC_TO is set)
#   3 predict the test split (hf-predict)  4 gate (hf-eval --fail-under)  5 publish (hf-registry)
#   6 serve (hf-predict --serve; only with --serve)
# Each step leaves RUN_DIR/.done-<step> only after it succeeded, so a re-run skips finished steps;
# hf-train --resume auto picks an interrupted training up from its newest checkpoint. A missed gate
# exits 1 before publishing: nothing reaches the registry.
#
# Usage: scripts/pipeline.sh [--config FILE.env] [--serve]
# The config is an env file (KEY=value lines, sourced); the environment may set the same keys and
# wins over the file:
#   PIPELINE_INPUTS        raw JSONL files, space-separated (required)
#   PIPELINE_BASE_MODEL    model to fine-tune; its tokenizer tokenizes the data (required)
#   PIPELINE_RUN_DIR       run directory (required)
#   PIPELINE_TRAIN_CONFIG  hf-train YAML (HF TrainingArguments keys)
#   PIPELINE_TRAIN_ARGS    extra hf-train flags, e.g. "--max-steps 20"
#   PIPELINE_SPLIT         default train=0.8,validation=0.1,test=0.1
#   PIPELINE_MAX_LENGTH    default 128;  PIPELINE_SEED  default 42
#   PIPELINE_GATE          hf-eval --fail-under spec, default accuracy=0.8
#   PIPELINE_SYNC_TO       remote for hf-train's checkpoints and model (s3://... or a path)
#   PIPELINE_REGISTRY      registry root (path, file:// or s3://); unset: no publish step
#   PIPELINE_NAME          model name in the registry, default "model"
#   PIPELINE_VERSION       version to publish, default a UTC timestamp
#   PIPELINE_PORT          port of the served model (--serve), default 8080
#   HFKIT_BIN              directory of the hfkit binaries, default build/bin beside this script
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
serve=0
config=""
while (($#)); do
  case "$1" in
    --config) config=${2:?--config needs a file}; shift 2 ;;
    --serve) serve=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "pipeline: error: unknown argument '$1' (try --help)" >&2; exit 64 ;;
  esac
done
# shellcheck source=scripts/pipeline-config.sh
source "$here/pipeline-config.sh"
if [[ -n "$config" ]]; then load_pipeline_config pipeline "$config"; fi

bin=${HFKIT_BIN:-$here/../build/bin}
run=${PIPELINE_RUN_DIR:?pipeline: error: PIPELINE_RUN_DIR is not set}
base=${PIPELINE_BASE_MODEL:?pipeline: error: PIPELINE_BASE_MODEL is not set}
read -r -a inputs <<<"${PIPELINE_INPUTS:?pipeline: error: PIPELINE_INPUTS is not set}"
read -r -a train_args <<<"${PIPELINE_TRAIN_ARGS:-}"
gate=${PIPELINE_GATE:-accuracy=0.8}
model_name=${PIPELINE_NAME:-model}
mkdir -p "$run"

log() { printf 'pipeline: %s\n' "$*" >&2; }
done_marker() { echo "$run/.done-$1"; }
# step NAME COMMAND...: runs COMMAND unless NAME finished before, then marks it finished.
# PIPELINE_STOP_AFTER=NAME ends the script after that step (scripts/slurm/pipeline.sh runs each
# step as its own job).
step() {
  local step_name=$1
  shift
  if [[ -f $(done_marker "$step_name") ]]; then
    log "$step_name: done before, skipped"
  else
    log "$step_name: $*"
    "$@"
    touch "$(done_marker "$step_name")"
  fi
  if [[ "${PIPELINE_STOP_AFTER:-}" == "$step_name" ]]; then exit 0; fi
}

preprocess() {
  local args=()
  for f in "${inputs[@]}"; do args+=(--input "$f"); done
  "$bin/hf-preprocess" --tokenizer "$base" "${args[@]}" --output "$run/dataset" \
    --split "${PIPELINE_SPLIT:-train=0.8,validation=0.1,test=0.1}" --stratify \
    --seed "${PIPELINE_SEED:-42}" --max-length "${PIPELINE_MAX_LENGTH:-128}"
}

train() {
  local args=(--model "$base" --data "$run/dataset" --output-dir "$run/model" --resume auto)
  [[ -n "${PIPELINE_TRAIN_CONFIG:-}" ]] && args+=(--config "$PIPELINE_TRAIN_CONFIG")
  [[ -n "${PIPELINE_SYNC_TO:-}" ]] && args+=(--sync-to "$PIPELINE_SYNC_TO")
  "$bin/hf-train" "${args[@]}" "${train_args[@]}"
}

predict() {
  "$bin/hf-predict" --model "$run/model" --input "$run/dataset/test.jsonl" --output "$run/test.predictions.jsonl"
}

gate() {
  # hf-eval prints the metrics either way; exit 1 means a threshold was missed.
  local rc=0
  "$bin/hf-eval" --predictions "$run/test.predictions.jsonl" --fail-under "$gate" >"$run/eval.json.tmp" || rc=$?
  mv "$run/eval.json.tmp" "$run/eval.json"
  if ((rc == 1)); then
    log "gate: test metrics below $gate (see $run/eval.json): nothing published"
    exit 1
  fi
  return "$rc"
}

publish() {
  local args=(--registry "$PIPELINE_REGISTRY" --name "$model_name" --model "$run/model" --dataset "$run/dataset"
              --metrics "$run/eval.json")
  [[ -n "${PIPELINE_VERSION:-}" ]] && args+=(--version "$PIPELINE_VERSION")
  "$bin/hf-registry" publish "${args[@]}" >"$run/published.tmp"
  mv "$run/published.tmp" "$run/published"
}

step preprocess preprocess
step train train
step predict predict
step gate gate
if [[ -n "${PIPELINE_REGISTRY:-}" ]]; then
  step publish publish
  model=$(cat "$run/published")
  log "published $model"
else
  model=$run/model
  log "PIPELINE_REGISTRY not set: not published"
fi
if ((serve)); then
  log "serve: $model on 127.0.0.1:${PIPELINE_PORT:-8080}"
  exec "$bin/hf-predict" --model "$model" --serve --port "${PIPELINE_PORT:-8080}"
fi
