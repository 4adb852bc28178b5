#!/usr/bin/env bash
# Instructions per control step (x86-64, valgrind callgrind), independent of machine noise.
#
# For each case: (Ir collected in run_steps at N=10000 - at N=0) / 10000, where run_steps
# is the loop that only calls Bms::step over pre-generated snapshots (`bms-sim bench`).
# Usage: benches/callgrind-step.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-10000}"
CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}" cargo build --release -q -p bms-hal-mock --bin bms-sim
BIN="${CARGO_TARGET_DIR:-target}/release/bms-sim"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

# Ir collected inside run_steps for one run of `bms-sim bench --steps $1 ...`.
count() {
    local steps="$1"
    shift
    valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.out" \
        --toggle-collect='*bench*run_steps*' "$BIN" bench --steps "$steps" "$@" \
        >/dev/null 2>"$OUT/log"
    # "summary: <Ir>" (or "totals:") holds the collected instructions.
    awk '/^(summary|totals):/ { print $2; exit }' "$OUT/cg.out"
}

printf '| case | Ir per step |\n|---|---:|\n'
run_case() {
    local name="$1"
    shift
    local a b
    a="$(count "$N" "$@")"
    b="$(count 0 "$@")"
    printf '| %s | %s |\n' "$name" "$(( (a - b) / N ))"
}
run_case "8S steady" --cells 8
run_case "16S steady" --cells 16
run_case "20S steady" --cells 20
run_case "20S faults" --cells 20 --faults
run_case "20S rest (readings move)" --cells 20 --rest
run_case "20S still (nothing changes)" --cells 20 --still
run_case "20S steady + J1939 (update + drain frames)" --cells 20 --can
