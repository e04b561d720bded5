#!/usr/bin/env bash
# The prepared GPU check, one command on a bare GPU machine (see trainer/gpu_check.py for the steps):
#
#   scripts/fetch_gpu_wheels.sh            # here, once: the missing packages as wheels, into .whl/
#   scripts/gpu_check.sh --mirror "$OUT"   # there: install the wheels, run the check, write benchmarks/<date>-<gpu>/
#
#   scripts/fetch_gpu_wheels.sh --python-version 3.11 /tmp/wheels-dry
#   GPU_WHEELS=/tmp/wheels-dry scripts/gpu_check.sh --dry-run --out /tmp/check   # the same on a CPU, tiny model
#
# The wheels go into a private --target folder put first on PYTHONPATH, so they are what Python imports even where
# other versions are installed; the check records where each came from.
set -uo pipefail
cd "$(dirname "$0")/.."
wheels=${GPU_WHEELS:-.whl}
site=${GPU_SITE:-/tmp/studio-gpu-site}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1

if ! ls "$wheels"/*.whl >/dev/null 2>&1; then
  echo "gpu_check: no wheels in $wheels; run scripts/fetch_gpu_wheels.sh first" >&2
  exit 2
fi
rm -rf "$site"
python3 -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --no-cache-dir \
  --upgrade --target "$site" "$wheels"/*.whl || { echo "gpu_check: installing the wheels failed" >&2; exit 2; }
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
python3 - "$site" <<'PY' || exit 2
import importlib, sys
site = sys.argv[1]
for name in ("trl", "datasets", "bitsandbytes"):
    module = importlib.import_module(name)
    where = "carried wheel" if module.__file__.startswith(site) else "image"
    print(f"{name} {module.__version__} ({where}: {module.__file__})")
    if where != "carried wheel":
        sys.exit(f"gpu_check: {name} was not imported from the carried wheels")
PY
exec python3 -m trainer gpu-check "$@"
