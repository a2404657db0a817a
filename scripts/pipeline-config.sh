# Sourced by scripts/pipeline.sh and scripts/slurm/pipeline.sh: load_pipeline_config NAME FILE reads
# a pipeline env file (PIPELINE_* and HFKIT_BIN keys) into the environment. Variables already set in
# the environment win over the file (flag > env > config, as every hfkit tool). NAME prefixes errors.
load_pipeline_config() {
  local name=$1 config=$2 saved=""
  [[ -f "$config" ]] || { echo "$name: error: $config: no such config file" >&2; exit 66; }
  local -a from_env
  mapfile -t from_env < <(compgen -v | grep -E '^(PIPELINE_|HFKIT_BIN$)' || true)
  if ((${#from_env[@]})); then saved=$(declare -p "${from_env[@]}"); fi
  set -a
  # shellcheck disable=SC1090
  source "$config"
  set +a
  # declare -p output re-run inside a function would make the variables local: -g keeps them global.
  eval "${saved//declare -/declare -g -}"
}
