#!/usr/bin/env bash
# Download the wheels the bare GPU machine lacks (it has torch, transformers, peft, accelerate, pytest, pyyaml, xxhash,
# pandas, pyarrow, but no trl, datasets, bitsandbytes or liger-kernel, and no network), at the versions installed
# here, so the GPU runs the code the CPU tests ran. All together they must stay under 60 MiB (the device tool
# carries at most 64 MiB per call).
#
#   scripts/fetch_gpu_wheels.sh                          # Python 3.12 wheels for the GPU machine, into .whl/
#   scripts/fetch_gpu_wheels.sh --python-version 3.11 /tmp/wheels-dry   # this machine's Python, for --dry-run
set -euo pipefail
cd "$(dirname "$0")/.."
pyver=3.12
if [ "${1:-}" = --python-version ]; then pyver=$2; shift 2; fi
dest=${1:-.whl}
limit_mib=60

version() { python3 -c "import importlib.metadata as m; print(m.version('$1'))"; }
# what trl and datasets need beyond the GPU machine's image (dill, multiprocess), at this machine's versions
wanted=(
  "trl==$(version trl)"
  "datasets==$(version datasets)"
  "bitsandbytes==$(version bitsandbytes)"
  "dill==$(version dill)"
  "multiprocess==$(version multiprocess)"
  "liger-kernel==${LIGER_VERSION:-0.8.5}"
)
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
rm -rf "$dest" && mkdir -p "$dest"
python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version "$pyver" --implementation cp "${platforms[@]}" -d "$dest" "${wanted[@]}"
size=$(du -sm "$dest" | cut -f1)
ls -1 "$dest"
echo "wheels: $size MiB in $dest (limit $limit_mib MiB)"
if [ "$size" -ge "$limit_mib" ]; then
  echo "fetch_gpu_wheels: $size MiB is over the $limit_mib MiB limit" >&2
  exit 1
fi
