#!/usr/bin/env bash
# The prepared GPU check, one command on a bare GPU machine (see trainer/tools/gpu_check.py for the steps):
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
import importlib, importlib.metadata as md, sys
from packaging.requirements import Requirement

import trainer  # first: no compute kernels fetched from the Hub when bitsandbytes is imported (trainer/hubkernels.py)

site = sys.argv[1]
carried = {d.metadata["Name"].lower(): d.version for d in md.distributions(path=[site])}
for name in ("trl", "datasets", "bitsandbytes"):
    module = importlib.import_module(name)
    if not module.__file__.startswith(site):
        sys.exit(f"gpu_check: {name} was not imported from the carried wheels")
for name in ("torch", "transformers", "peft", "accelerate", "huggingface_hub", "trl", "datasets", "bitsandbytes"):
    where = "carried wheel" if name.replace("_", "-") in carried else "image"
    print(f"{name} {md.version(name)} ({where})")
unmet = []  # a carried package whose requirement the image and the wheels do not meet: said before any GPU work
for dist in md.distributions(path=[site]):
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        try:
            have = md.version(req.name)
        except md.PackageNotFoundError:
            have = None
        if have is None or not req.specifier.contains(have, prereleases=True):
            unmet.append(f"{dist.metadata['Name']} {dist.version} needs {req} (here: {have or 'none'})")
print("\n".join(f"gpu_check: warning: {line}" for line in unmet) or "gpu_check: every carried package's requirements are met")
PY
exec python3 -m trainer gpu-check "$@"
