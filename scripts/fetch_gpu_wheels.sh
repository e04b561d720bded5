#!/usr/bin/env bash
# Download the wheels the bare GPU machine lacks, at the lock's versions (requirements.txt), so the GPU runs what the
# lock installs. That machine has torch, transformers, peft, accelerate, pytest, pyyaml, xxhash, pandas and pyarrow
# (its own versions), no trl, datasets, bitsandbytes or liger-kernel, and no network. The device tool carries at
# most 64 MiB per call, so the wheels must stay under 60 MiB:
#   1. always: trl, datasets, bitsandbytes and what trl and datasets need beyond the image (dill, multiprocess),
#      and liger-kernel (not in the lock: an option of the benchmark);
#   2. then, each while it fits: the lock's peft, accelerate, and transformers with the packages of the lock it
#      needs (huggingface_hub, tokenizers, safetensors, kernels, ...; numpy, packaging and the like are the image's).
# What is left out is said here and in the check's record (trainer.tools.gpu_check: every version, and where from).
#
#   scripts/fetch_gpu_wheels.sh                          # Python 3.12 wheels for the GPU machine, into .whl/
#   scripts/fetch_gpu_wheels.sh --python-version 3.11 /tmp/wheels-dry   # this machine's Python, for --dry-run
set -euo pipefail
cd "$(dirname "$0")/.."
pyver=3.12
if [ "${1:-}" = --python-version ]; then pyver=$2; shift 2; fi
dest=${1:-.whl}
limit_mib=60

locked() {  # the lock's pin of a package (its first line: the carried packages have one version for every platform)
  local pin
  pin=$(grep -i -m1 "^$1==" requirements.txt | sed 's/ *;.*//')
  [ -n "$pin" ] || { echo "fetch_gpu_wheels: $1 is not in requirements.txt" >&2; exit 1; }
  echo "$pin"
}
closure() {  # the lock's packages that `$1` needs, itself included, less those the image has at any version
  [ "$1" = transformers ] || { locked "$1"; return; }  # peft and accelerate: the image's transformers serves them
  printf '%s\n' "$(locked "$1")" |
    uv pip compile - -c requirements.txt --python-version "$pyver" --python-platform x86_64-manylinux_2_28 \
      --quiet --no-annotate --no-header |
    grep -v -E '^(numpy|packaging|pyyaml|tqdm|filelock|fsspec|typing-extensions|torch)=='
}
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
download() {  # download DIR PINS...: the wheels for the GPU machine's Python
  local dir=$1
  shift
  python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version "$pyver" --implementation cp "${platforms[@]}" -d "$dir" "$@"
}
mib() { du -sm "$1" | cut -f1; }

rm -rf "$dest" && mkdir -p "$dest"
core=("$(locked trl)" "$(locked datasets)" "$(locked bitsandbytes)" "$(locked dill)" "$(locked multiprocess)")
download "$dest" "${core[@]}" "liger-kernel==${LIGER_VERSION:-0.8.5}"
echo "carried: ${core[*]} liger-kernel ($(mib "$dest") MiB)"
for package in peft accelerate transformers; do
  mapfile -t group < <(closure "$package")
  trial=$(mktemp -d)
  download "$trial" "${group[@]}"
  if [ $(($(mib "$dest") + $(mib "$trial"))) -lt "$limit_mib" ]; then
    mv "$trial"/*.whl "$dest"/ && echo "carried: ${group[*]}"
  else
    echo "left out (the GPU machine's own is used): ${group[*]} ($(mib "$trial") MiB more would pass $limit_mib MiB)"
  fi
  rm -rf "$trial"
done
ls -1 "$dest"
size=$(mib "$dest")
echo "wheels: $size MiB in $dest (limit $limit_mib MiB)"
if [ "$size" -ge "$limit_mib" ]; then
  echo "fetch_gpu_wheels: $size MiB is over the $limit_mib MiB limit" >&2
  exit 1
fi
