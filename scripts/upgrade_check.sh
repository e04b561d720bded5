#!/usr/bin/env bash
# Would the project pass with the newest versions its ranges allow? One command, on a machine like CI's:
#
#   scripts/upgrade_check.sh                 # report: benchmarks/upgrades/<date>.md (the candidate locks: in the
#                                            # work folder it prints)
#   scripts/upgrade_check.sh --apply         # the same, and when everything passed, move the lock to those versions
#   scripts/upgrade_check.sh --before REF    # compare with the lock of a git ref (default: the working tree's)
#
# It makes the candidate locks with `scripts/lock.sh --upgrade` (the newest versions pyproject.toml's ranges allow;
# torch stays at the locked version, see lock.sh), installs them into a fresh venv as the README says (torch first),
# runs `pip check`, the fast tier and the full suite (the README's test command) with that venv, and writes the
# report: the versions before and after, each step's result, and the first error line of every failed test.
# Moving the lock is then a deliberate commit of requirements*.txt with its report. Needs uv (`pip install uv`).
set -uo pipefail
cd "$(dirname "$0")/.."
apply=false
before_ref=
while [ $# -gt 0 ]; do
  case $1 in
    --apply) apply=true ;;
    --before) before_ref=$2; shift ;;
    *) echo "upgrade_check: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
date=$(date +%F)
work=$(mktemp -d "/tmp/upgrade-check-$date-XXXXXX")
report=benchmarks/upgrades/$date.md
mkdir -p benchmarks/upgrades
echo "upgrade_check: working in $work"

scripts/lock.sh --upgrade "$work/lock" || { echo "upgrade_check: the ranges do not resolve" >&2; exit 1; }
# before: both requirement files (a lock of the tests holds the app's; before the lock, the app's ranges were apart)
if [ -n "$before_ref" ]; then
  { git show "$before_ref:requirements.txt" && git show "$before_ref:requirements-test.txt"; } >"$work/before.txt" ||
    exit 1
  before_label="$before_ref"
else
  cat requirements.txt requirements-test.txt >"$work/before.txt"
  before_label="the working tree"
fi

steps=()
step() {  # step NAME JUNIT COMMAND...: run COMMAND with the fresh venv first on PATH; record its code and time
  local name=$1 junit=$2
  shift 2
  local start=$SECONDS
  echo "upgrade_check: $name: $*"
  PATH="$work/venv/bin:$PATH" VIRTUAL_ENV="$work/venv" bash -c "$*" >"$work/$name.log" 2>&1
  local code=$?
  steps+=(--step "$name|$code|$((SECONDS - start))|$junit|$*")
  tail -3 "$work/$name.log"
  return $code
}

torch=$(sed -n 's/^torch==\([^ ;]*\).*/\1/p' "$work/lock/requirements.txt")
python3 -m venv "$work/venv"
step install - "pip install -q torch==$torch && pip install -q -r $work/lock/requirements.txt -r $work/lock/requirements-test.txt"
installed=$?
if [ $installed -eq 0 ]; then
  "$work/venv/bin/pip" check >"$work/pip-check.txt" 2>&1
  step "fast tier" "$work/fast.xml" "python -m pytest -q -p no:cacheprovider -m 'not slow' -n auto --junitxml=$work/fast.xml"
  # the README's test command, with a JUnit report added
  cmd=$(awk '/<!-- test-command -->/{getline; getline; print; exit}' README.md)
  step "full suite" "$work/full.xml" "${cmd} -p no:cacheprovider --junitxml=$work/full.xml"
else
  echo "the install failed: $(grep -m1 -i error "$work/install.log")" >"$work/pip-check.txt"
fi

passed=true
for s in "${steps[@]}"; do
  [ "$s" = --step ] && continue
  IFS='|' read -r _ code _ <<<"$s"
  [ "$code" = 0 ] || passed=false
done
grep -qx "No broken requirements found." "$work/pip-check.txt" || passed=false
applied=()
if $apply && $passed; then
  cp "$work/lock/requirements.txt" "$work/lock/requirements-test.txt" .
  applied=(--applied)
fi
python3 scripts/upgrade_report.py --date "$date" --before "$work/before.txt" --before-label "$before_label" \
  --after "$work/lock/requirements-test.txt" --pip-check "$work/pip-check.txt" "${steps[@]}" "${applied[@]}" \
  >"$report"
echo "upgrade_check: report in $report; candidate locks in $work/lock"
$passed
