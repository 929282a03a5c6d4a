#!/usr/bin/env bash
# `make test` N times in a row in a fresh clone while a CPU hog keeps every core busy; one line per
# run (PASS / FAIL, the pytest summary, the failed tests) and a non-zero exit when any run failed.
#
#   scripts/stress_test.sh [N] [REF]      N runs (default 5) of the commit REF (default HEAD)
#
# Only committed work is tested (it is a clone). The clone gets its own .venv from `make`, set up
# before the hogs start; ../shared (reference material the tests read beside the repository) is
# linked beside the clone. HOG_NICE sets the hogs' niceness (default 0; negative needs root and
# makes them harsher). KEEP=1 keeps the clone and the logs.
set -uo pipefail

N=${1:-5}
REF=${2:-HEAD}
HOG_NICE=${HOG_NICE:-0}
SRC=$(cd "$(dirname "$0")/.." && pwd)
COMMIT=$(git -C "$SRC" rev-parse --verify "$REF^{commit}") || exit 2
WORK=$(mktemp -d "${TMPDIR:-/tmp}/wmbus-stress.XXXXXX")
CLONE="$WORK/wmbus-sdr"
hogs=()
job=

cleanup() {
    [ -n "$job" ] && kill -- "-$job" 2>/dev/null  # the running `make test`, its own process group
    [ ${#hogs[@]} -gt 0 ] && kill "${hogs[@]}" 2>/dev/null
    if [ "${KEEP:-0}" = 1 ]; then echo "stress: clone and logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

git clone -q --no-hardlinks "$SRC" "$CLONE" && git -C "$CLONE" checkout -q "$COMMIT" || exit 2
if [ -d "$SRC/../shared" ]; then
    ln -s "$(cd "$SRC/../shared" && pwd)" "$WORK/shared"
fi
echo "stress: $N x make test of ${COMMIT:0:7} in $CLONE; setting up its .venv first" >&2
make -s -C "$CLONE" .venv/.installed >"$WORK/setup.log" 2>&1 || { cat "$WORK/setup.log" >&2; exit 2; }

cores=$(nproc)
for _ in $(seq "$cores"); do
    nice -n "$HOG_NICE" bash -c 'while :; do :; done' &
    hogs+=($!)
done
echo "stress: $cores CPU hogs running (nice $HOG_NICE): pids ${hogs[*]}" >&2

failed=0
for i in $(seq "$N"); do
    log="$WORK/run$i.log"
    t0=$(date +%s)
    setsid make -C "$CLONE" test >"$log" 2>&1 &
    job=$!
    wait "$job"
    rc=$?
    job=
    secs=$(( $(date +%s) - t0 ))
    summary=$(grep -E '^[0-9]+ (passed|failed)|^=+ .*(passed|failed)' "$log" | tail -1 | tr -d '=' | xargs)
    if [ $rc -eq 0 ]; then
        echo "run $i/$N: PASS  ${secs}s  $summary"
    else
        failed=$((failed + 1))
        echo "run $i/$N: FAIL  ${secs}s  ${summary:-exit $rc}"
        grep -E '^(FAILED|ERROR) ' "$log" | sed 's/^/    /'
    fi
done
echo "stress: $((N - failed)) of $N runs passed"
[ $failed -eq 0 ]
