#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (test/fuzz/CMakeLists.txt as its own project), writes the
# seed corpora with the real Python peers, and runs one target for SECONDS.
#   run_fuzz.sh BUILD_DIR [safetensors|records] [SECONDS]
# The growing corpus stays in BUILD_DIR/corpus-<target>; a crash leaves BUILD_DIR/crash-* and exits
# non-zero. Python: $HFKIT_PYTHON, else $HFKIT_VENV/bin/python (scripts/setup.sh --print-env).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:?usage: run_fuzz.sh BUILD_DIR [safetensors|records] [SECONDS]}
target=${2:-safetensors}
seconds=${3:-25}
python=${HFKIT_PYTHON:-${HFKIT_VENV:+$HFKIT_VENV/bin/python}}
: "${python:?set HFKIT_PYTHON or HFKIT_VENV (eval \"\$(bash scripts/setup.sh --print-env)\")}"
mkdir -p "$build"
build=$(cd "$build" && pwd)

if [[ ! -f "$build/build.ninja" ]]; then
  cmake -S "$here" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE= >"$build/configure.log" 2>&1 \
    || { cat "$build/configure.log"; exit 1; }
fi
cmake --build "$build" -j "${JOBS:-2}" --target "${target}_fuzz"
"$python" "$here/make_seeds.py" "$build/seeds"

corpus="$build/corpus-$target"
mkdir -p "$corpus"
dict=()
[[ "$target" == safetensors ]] && dict=(-dict="$here/safetensors.dict")
cd "$build"
# -rss_limit_mb: 100 MB headers are legal, so allow room above them. -seed: a fixed seed (FUZZ_SEED)
# makes CI's short run reproducible; explore with FUZZ_SEED=0 (random) and more SECONDS.
"$build/${target}_fuzz" "${dict[@]}" -seed="${FUZZ_SEED:-1}" -max_total_time="$seconds" -rss_limit_mb=4096 -print_final_stats=1 \
  -artifact_prefix="$build/" "$corpus" "$build/seeds/$target"
