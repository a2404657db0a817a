#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test hfkit, idempotently:
#   1. Debian -dev packages (only those missing; apt is not touched when all are present),
#   2. a Python venv with the pins of scripts/requirements.txt, kept in a per-user cache outside
#      the clone and keyed by the pins' hash, so every fresh clone (CI) reuses it.
# Prints `export` lines for the cache locations when called with --print-env (the Makefile uses it).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
req="$here/requirements.txt"
cache="${HFKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hfkit}"
# The venv is keyed by the pins and the Python that runs them; computed after the packages are in,
# since a bare image (e.g. nvidia/cuda for Dockerfile.cuda) has no python3 before set-up.
venv_path() { echo "$cache/venv-$( (cat "$req"; python3 --version 2>&1) | sha256sum | cut -c1-12)"; }

print_env() {
  local venv
  venv=$(venv_path)
  echo "export HFKIT_CACHE='$cache'"
  echo "export HFKIT_VENV='$venv'"
  echo "export CCACHE_DIR='$cache/ccache'"
  echo "export PIP_CACHE_DIR='$cache/pip'"
}
if [[ "${1:-}" == "--print-env" ]]; then print_env; exit 0; fi

log() { printf 'setup: %s\n' "$*" >&2; }

# Two set-ups at once (two clones, `make test` beside `make demo`) must not both run apt or build
# the venv: the second waits for the first under an exclusive lock, then finds everything there.
mkdir -p "$cache"
exec 9>"$cache/setup.lock"
flock 9

debs=(cmake ninja-build ccache g++ pkg-config git
      libcli11-dev libfmt-dev libyaml-cpp-dev libcurl4-openssl-dev libssl-dev doctest-dev
      nlohmann-json3-dev libboost1.81-dev libutf8proc-dev libpcre2-dev python3-venv clang
      libgloo-dev          # Gloo's headers for libtorch's ProcessGroupGloo (lib/dist; headers only)
      libclang-rt-14-dev   # libFuzzer + sanitizer runtimes (test/fuzz); clang only recommends it
      shellcheck           # lints scripts/ and the container scripts (test/cli/gpu)
      chromium chromium-driver  # the browser test of hf-predict --serve's page (test/cli/serve)
      wrk)                 # load generator of bench/serve_bench.py
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

mkdir -p "$cache/ccache" "$cache/pip"
venv=$(venv_path)
if [[ ! -f "$venv/.complete" ]]; then
  log "creating Python venv $venv (first run on this machine downloads several GB)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  PIP_CACHE_DIR="$cache/pip" "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
  touch "$venv/.complete"
fi
# Older venvs (other pins) are kept; remove them by hand or with `make clean-cache`.
log "ready: venv $venv"
