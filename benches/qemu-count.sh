#!/usr/bin/env bash
# Instructions per control step of bms-core on a Cortex-M3 (thumbv7m-none-eabi), counted by
# QEMU: `examples/qemu` is built with BMS_BENCH=1 (the steady 20S workload of `bms-sim
# bench`: 10 A discharge, cells 3298..3302 mV, from a ring of 16 snapshots built once,
# after a warm-up of 100 steps) for 0 and for N measured steps (BMS_STEPS at compile time)
# and run under `-singlestep -d exec,nochain`, which logs one `Trace` line per executed
# instruction. Prints (lines(N) - lines(0)) / N for each of:
# - decision step: one `Bms::step` (plus storing the timestamp and draining its events);
# - with CAN (`BMS_CAN=1`): the same plus a J1939 node update and every due frame
#   handed out by `drain_transmit` (encoded): the frames `poll_transmit` returns one by
#   one, which the reference firmware's CAN port polls after each step;
# - at rest (`BMS_REST=1`): the decision step with the current within ±50 mA of zero;
# - nothing changing (`BMS_STILL=1`): the decision step at 0 A with every cell at 3300 mV
#   in every snapshot (only the time moves).
#
# Usage: benches/qemu-count.sh [N]   (default N = 300)
set -euo pipefail

N="${1:-300}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
EX="$ROOT/examples/qemu"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

command -v qemu-system-arm >/dev/null || { echo "qemu-system-arm not found" >&2; exit 1; }

build() { # $1 = steps, $2 = output file, $3 = mode: "", "can", "rest" or "still"
    (cd "$EX" && unset BMS_CAN BMS_REST BMS_STILL &&
        if [ "${3:-}" = can ]; then export BMS_CAN=1; fi &&
        if [ "${3:-}" = rest ]; then export BMS_REST=1; fi &&
        if [ "${3:-}" = still ]; then export BMS_STILL=1; fi &&
        BMS_STEPS="$1" BMS_BENCH=1 CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}" \
        cargo build --release --quiet)
    cp "$EX/target/thumbv7m-none-eabi/release/bms-qemu" "$2"
}

count() { # $1 = kernel; prints the number of executed instructions
    local fifo="$WORK/log.fifo"
    rm -f "$fifo"
    mkfifo "$fifo"
    grep -c '^Trace' "$fifo" > "$WORK/count" &
    local reader=$!
    timeout 600 qemu-system-arm -cpu cortex-m3 -machine lm3s6965evb -nographic \
        -semihosting-config enable=on,target=native \
        -singlestep -d exec,nochain -D "$fifo" -kernel "$1" > "$WORK/out" 2>&1
    wait "$reader" || true
    cat "$WORK/count"
}

measure() { # $1 = label, $2 = mode (see build)
    build 0 "$WORK/k0" "$2"
    build "$N" "$WORK/kN" "$2"
    local l0 ln
    l0=$(count "$WORK/k0")
    ln=$(count "$WORK/kN")
    echo "$1: steps=$N instructions(0)=$l0 instructions($N)=$ln"
    echo "$1: instructions_per_step=$(( (ln - l0) / N ))"
}

measure "decision step" ""
grep '^can_frames' "$WORK/out" || true
measure "with CAN" can
grep '^can_frames' "$WORK/out" || true
measure "decision step at rest" rest
measure "decision step, nothing changing" still
