#!/usr/bin/env bash
# The pipeline as a chain of Slurm jobs: preprocess -> train (train.sbatch, data-parallel) -> eval
# gate -> publish, each submitted with --dependency=afterok on the one before, so a failed step (a
# missed gate exits 1) cancels the rest and nothing reaches the registry. Prints the job ids.
#
# Usage: scripts/slurm/pipeline.sh [--config FILE.env] [-- EXTRA SBATCH FLAGS FOR THE TRAIN JOB]
# Keys (environment or the env file; the environment wins) are scripts/pipeline.sh's:
#   PIPELINE_INPUTS, PIPELINE_BASE_MODEL, PIPELINE_RUN_DIR (required), PIPELINE_TRAIN_CONFIG,
#   PIPELINE_TRAIN_ARGS, PIPELINE_SPLIT, PIPELINE_MAX_LENGTH, PIPELINE_SEED, PIPELINE_GATE,
#   PIPELINE_SYNC_TO, PIPELINE_REGISTRY, PIPELINE_NAME, PIPELINE_VERSION, HFKIT_BIN
#
# Nightly, from crontab (cron has no login environment: give paths in full):
#   0 2 * * * cd /srv/hfkit && scripts/slurm/pipeline.sh --config /srv/pipelines/nightly.env >>/var/log/hfkit-nightly.log 2>&1
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
config=""
train_sbatch=()
while (($#)); do
  case "$1" in
    --config) config=${2:?--config needs a file}; shift 2 ;;
    --) shift; train_sbatch=("$@"); break ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "slurm/pipeline: error: unknown argument '$1' (try --help)" >&2; exit 64 ;;
  esac
done
# shellcheck source=scripts/pipeline-config.sh
source "$here/../pipeline-config.sh"
if [[ -n "$config" ]]; then load_pipeline_config slurm/pipeline "$config"; fi
export HFKIT_BIN=${HFKIT_BIN:-$here/../../build/bin}
run=${PIPELINE_RUN_DIR:?slurm/pipeline: error: PIPELINE_RUN_DIR is not set}
: "${PIPELINE_BASE_MODEL:?slurm/pipeline: error: PIPELINE_BASE_MODEL is not set}"
: "${PIPELINE_INPUTS:?slurm/pipeline: error: PIPELINE_INPUTS is not set}"
mkdir -p "$run"
export PIPELINE_RUN_DIR PIPELINE_BASE_MODEL PIPELINE_INPUTS

# submit NAME DEPENDENCY SBATCH-ARGS... -- prints the job id.
submit() {
  local name=$1 dep=$2
  shift 2
  local args=(--parsable --job-name "hfkit-$name" --output "$run/slurm-$name-%j.out" --export ALL)
  [[ -n "$dep" ]] && args+=(--dependency "afterok:$dep" --kill-on-invalid-dep=yes)
  sbatch "${args[@]}" "$@" | cut -d';' -f1
}

# Steps other than training reuse scripts/pipeline.sh's commands through its done-markers: each
# job runs the whole script, which skips the steps already done and stops after its own.
read -r -a train_args <<<"${PIPELINE_TRAIN_ARGS:-}"
train_flags=(--model "$PIPELINE_BASE_MODEL" --data "$run/dataset")
[[ -n "${PIPELINE_TRAIN_CONFIG:-}" ]] && train_flags+=(--config "$PIPELINE_TRAIN_CONFIG")

pre=$(submit preprocess "" --ntasks 1 --wrap "PIPELINE_STOP_AFTER=preprocess '$here/../pipeline.sh'")
train=$(HFKIT_RUNS="$run/train" HFKIT_SYNC_TO="${PIPELINE_SYNC_TO:-}" \
        submit train "$pre" "${train_sbatch[@]}" "$here/train.sbatch" "${train_flags[@]}" "${train_args[@]}")
# The model of the train job is runs/<job id>/model: link it where pipeline.sh expects it.
gate=$(submit gate "$train" --ntasks 1 \
       --wrap "ln -sfn 'train/$train/model' '$run/model' && touch '$run/.done-train' && PIPELINE_STOP_AFTER=gate '$here/../pipeline.sh'")
echo "preprocess $pre"
echo "train $train"
echo "gate $gate"
if [[ -n "${PIPELINE_REGISTRY:-}" ]]; then
  publish=$(submit publish "$gate" --ntasks 1 --wrap "'$here/../pipeline.sh'")
  echo "publish $publish"
fi
