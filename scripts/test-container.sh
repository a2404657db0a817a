#!/usr/bin/env bash
# Smoke test of a built hfkit CUDA image on a GPU host: gpu-check (driver, archs, kernels, GEMM,
# NCCL, libtorch) in the container with --gpus all, then a short fine-tune and prediction on a slice
# of the shared sample data, with the model baked into the image. Prints PASS/FAIL per step.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/test-container.sh [options] IMAGE

Runs in IMAGE (with --gpus all):
  1. gpu-check --require-gpu --min-compute-capability MIN_CC
  2. hf-preprocess + hf-train --config /opt/hfkit/share/configs/tiny.yaml (a few steps on CUDA)
  3. hf-predict on the same sample; one prediction per input line
Options:
  --min-cc X.Y     minimum compute capability for step 1 (default 9.0, H100)
  --gpus SPEC      docker run --gpus value (default all)
  --data FILE      labelled JSONL sample, first 400 lines are used (default: the checkout's
                   data/sentiment/amazon.jsonl)
  --max-steps N    training steps (default 20)
  --keep           keep the work directory
  --dry-run        print the docker commands without running them
  -h, --help       this text
Environment: DOCKER (default docker; podman works the same).
Exit codes: 0 every step passed, 1 a step failed, 64 bad arguments, 69 no docker.
Example:
  scripts/test-container.sh 123456789012.dkr.ecr.us-east-1.amazonaws.com/hfkit:abc123-cuda13.0.1
EOF
}

die_usage() {
  printf 'test-container.sh: error: %s\nTry scripts/test-container.sh --help\n' "$1" >&2
  exit 64
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
docker=${DOCKER:-docker}
min_cc=9.0
gpus=all
data=""
default_data="$root/data/sentiment/amazon.jsonl"
max_steps=20
keep=0
dry_run=0
image=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --min-cc|--gpus|--data|--max-steps) [[ $# -ge 2 && -n "$2" ]] || die_usage "$1 needs a value" ;;&
    --min-cc) min_cc=$2; shift 2 ;;
    --gpus) gpus=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --max-steps) max_steps=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) die_usage "unknown option '$1'" ;;
    *) [[ -z "$image" ]] || die_usage "one IMAGE only (got '$image' and '$1')"; image=$1; shift ;;
  esac
done
[[ -n "$image" ]] || die_usage "IMAGE is required"
[[ $min_cc =~ ^[0-9]+\.[0-9]+$ ]] || die_usage "--min-cc wants X.Y, got '$min_cc'"
[[ $max_steps =~ ^[0-9]+$ ]] || die_usage "--max-steps wants a number, got '$max_steps'"
[[ -z "$data" || -f "$data" ]] || die_usage "no sample data at $data"
[[ -n "$data" || ! -f "$default_data" ]] || data=$default_data

work=$(mktemp -d "${TMPDIR:-/tmp}/hfkit-container-test.XXXXXX")
cleanup() { ((keep)) || rm -rf "$work"; }
trap cleanup EXIT
if ((dry_run == 0)); then
  command -v "$docker" >/dev/null || { echo "test-container.sh: error: $docker not found" >&2; exit 69; }
  if [[ -n "$data" ]]; then
    head -n 400 "$data" > "$work/sample.jsonl"
  else
    echo "test-container.sh: no sample data here: generating 200 labelled lines" >&2
    for i in $(seq 1 100); do
      printf '{"text": "great product number %d, works well and I love it", "label": "positive"}\n' "$i"
      printf '{"text": "terrible product number %d, it broke and I want a refund", "label": "negative"}\n' "$i"
    done > "$work/sample.jsonl"
  fi
  chmod 0777 "$work"  # the image runs as uid 10001
fi

# docker run with the GPUs and the work directory at /work.
in_image() {
  local cmd=("$docker" run --rm --gpus "$gpus" -v "$work:/work" "$image" "$@")
  { printf '+'; printf ' %q' "${cmd[@]}"; printf '\n'; } >&2
  ((dry_run)) || "${cmd[@]}"
}

passed=0
failed=0
step() {
  local name=$1; shift
  printf '== %s\n' "$name" >&2
  if ((dry_run)); then
    "$@"
    printf 'DRY-RUN %s (nothing was run)\n' "$name"
  elif "$@"; then
    printf 'PASS %s\n' "$name"; passed=$((passed + 1))
  else
    printf 'FAIL %s\n' "$name"; failed=$((failed + 1))
  fi
}

gpu_check() { in_image gpu-check --require-gpu --min-compute-capability "$min_cc"; }
train() {
  in_image hf-preprocess --tokenizer /opt/hfkit/share/model --input /work/sample.jsonl --output /work/dataset \
    --split train=0.8,validation=0.1,test=0.1 --max-length 64 &&
  in_image hf-train --config /opt/hfkit/share/configs/tiny.yaml --model /opt/hfkit/share/model \
    --data /work/dataset --output-dir /work/run --device cuda --max-steps "$max_steps"
}
predict() {
  in_image hf-predict --model /work/run --input /work/sample.jsonl --device cuda > "$work/predictions.jsonl" ||
    return 1
  ((dry_run)) && return 0
  local want got
  want=$(wc -l < "$work/sample.jsonl")
  got=$(wc -l < "$work/predictions.jsonl")
  [[ $got -eq $want ]] || { echo "predictions: $got lines for $want inputs" >&2; return 1; }
}

step gpu-check gpu_check
if ((failed == 0)); then
  step train train
  if ((failed == 0)); then step predict predict; fi
fi
((keep)) && echo "work directory kept: $work" >&2
if ((dry_run)); then exit 0; fi
printf '%d passed, %d failed\n' "$passed" "$failed"
((failed == 0))
