#!/usr/bin/env bash
# make bench: every benchmark against its named peer, in one run each, printing the ratios.
# BIN (built tools) and HFKIT_VENV come from the Makefile. Results also land in $BENCH_OUT.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export BIN=${BIN:?set BIN to the built tools directory}
export BENCH_OUT=${BENCH_OUT:-${TMPDIR:-/tmp}/hfkit-bench}
export HFKIT_DATA=${HFKIT_DATA:-$here/../data}
mkdir -p "$BENCH_OUT"
py="$HFKIT_VENV/bin/python"
status=0
for b in tokenize_bench.py train_bench.py predict_bench.py serve_bench.py track_bench.py; do
  [[ -f "$here/$b" ]] || continue
  echo "== $b" >&2
  "$py" "$here/$b" || status=1
done
for b in sync_bench.sh sync_bench.py; do
  [[ -f "$here/$b" ]] || continue
  echo "== $b" >&2
  case $b in *.py) "$py" "$here/$b" ;; *) bash "$here/$b" ;; esac || status=1
done
echo "results in $BENCH_OUT" >&2
exit $status
