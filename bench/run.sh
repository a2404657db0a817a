#!/usr/bin/env bash
# make bench: every benchmark against its named peer, in one run each, printing the ratios.
# BIN (built tools), HFKIT_VENV and HFKIT_CACHE come from the Makefile. Results also land in
# $BENCH_OUT. BENCH_ONLY=serve (a substring of the file names) runs only the matching ones.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export BIN=${BIN:?set BIN to the built tools directory}
export BENCH_OUT=${BENCH_OUT:-${TMPDIR:-/tmp}/hfkit-bench}
export HFKIT_DATA=${HFKIT_DATA:-$here/../data}
mkdir -p "$BENCH_OUT"
py="${HFKIT_VENV:?run through make bench}/bin/python"
# Peers only the benchmarks need (scripts/requirements-bench.txt), added to the cached venv under
# the lock scripts/setup.sh holds while it builds that venv.
flock "${HFKIT_CACHE:?run through make bench}/setup.lock" "$py" -m pip install -q --disable-pip-version-check \
  -r "$here/../scripts/requirements-bench.txt" >&2
status=0
for b in tokenize_bench.py train_bench.py families_bench.py ddp_bench.py predict_bench.py serve_bench.py track_bench.py; do
  [[ -f "$here/$b" && $b == *"${BENCH_ONLY:-}"* ]] || continue
  echo "== $b" >&2
  "$py" "$here/$b" || status=1
done
for b in sync_bench.sh sync_bench.py; do
  [[ -f "$here/$b" && $b == *"${BENCH_ONLY:-}"* ]] || continue
  echo "== $b" >&2
  case $b in *.py) "$py" "$here/$b" ;; *) bash "$here/$b" ;; esac || status=1
done
echo "results in $BENCH_OUT" >&2
exit $status
