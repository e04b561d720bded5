#!/usr/bin/env bash
# Make the locks from pyproject.toml's version ranges with uv (`pip install uv`; it asks PyPI, nothing else):
#
#   scripts/lock.sh                  # requirements.txt and requirements-test.txt, keeping each locked version that
#                                    # still fits the ranges (a new dependency is added at its newest fitting version)
#   scripts/lock.sh --upgrade        # the newest versions the ranges allow (scripts/upgrade_check.sh tests them first)
#   scripts/lock.sh --upgrade DIR    # the same, written into DIR instead of the checkout
#
# requirements.txt locks the app (what a Space installs), requirements-test.txt the app and its tests (the same
# versions, and pytest, ruff, playwright). Every package is pinned with ==, for every platform and Python the project
# supports (a universal resolution: a line that applies to some platforms only carries its marker).
#
# torch is the exception that the README explains: its build is installed first (`pip install torch==2.13.0`, the
# CPU build on these machines, PyPI's CUDA build on a GPU Space), so the lock pins torch's version but leaves out the
# CUDA runtime wheels that PyPI's build depends on (nvidia-*, cuda-*, triton): the torch build decides those, and
# PyPI's torch pins them itself. The torch version moves only when asked: TORCH_VERSION=2.14.1 scripts/lock.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
upgrade=()
if [ "${1:-}" = --upgrade ]; then upgrade=(--upgrade); shift; fi
out=${1:-.}
mkdir -p "$out"

# torch's version, the one pin made by hand (see above); TORCH_VERSION=... moves it
torch_pin=scripts/torch-constraint.txt
if [ -n "${TORCH_VERSION:-}" ]; then
  printf '# the torch release the locks pin (scripts/lock.sh); its build is installed first (README)\ntorch==%s\n' \
    "$TORCH_VERSION" >"$torch_pin"
fi
torch=$(sed -n 's/^torch==//p' "$torch_pin")

compile() {  # compile OUTPUT [uv options...]: the universal lock of pyproject.toml, without torch's CUDA wheels
  local output=$1
  shift
  if [ "$out" != . ] && [ -f "$(basename "$output")" ]; then
    cp "$(basename "$output")" "$output"  # the versions locked now are uv's preferences (unless --upgrade)
  fi
  uv pip compile pyproject.toml --universal --quiet "${upgrade[@]}" -c "$torch_pin" "$@" \
    --custom-compile-command "scripts/lock.sh" --output-file "$output"
  # the CUDA runtime wheels of PyPI's torch build, found in the resolution, then left out of the file
  local cuda
  cuda=$(sed -n 's/^\(nvidia-[^= ]*\|cuda-[^= ]*\|triton\)==.*/\1/p' "$output" | sort -u)
  if [ -n "$cuda" ]; then
    local skip=()
    for name in $cuda; do skip+=(--no-emit-package "$name"); done
    uv pip compile pyproject.toml --universal --quiet -c "$torch_pin" "$@" "${skip[@]}" \
      --custom-compile-command "scripts/lock.sh" --output-file "$output"
  fi
}

compile "$out/requirements.txt"
# the tests' lock holds the app's lock as it is: the same version of every package the two share
compile "$out/requirements-test.txt" --extra test -c "$out/requirements.txt"
echo "locked: $out/requirements.txt ($(grep -c '==' "$out/requirements.txt") packages)," \
  "$out/requirements-test.txt ($(grep -c '==' "$out/requirements-test.txt") packages), torch $torch"
