#!/usr/bin/env bash
# Fuzz CI: builds every cargo-fuzz target in fuzz/ and runs each for FUZZ_RUNS inputs
# (default 20000) from a fixed seed, so a CI run is repeatable; FUZZ_SECONDS=N runs each
# for N seconds instead (for longer local campaigns). Installs cargo-fuzz when missing. Exits non-zero when a target
# crashes, hangs (an input running over 10 s) or fails to build; the crashing input is
# left in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export CARGO_TERM_COLOR=never
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
if [ -n "${FUZZ_SECONDS:-}" ]; then
    budget=(-max_total_time="$FUZZ_SECONDS")
    what="${FUZZ_SECONDS} s"
else
    budget=(-runs="${FUZZ_RUNS:-20000}" -seed=1)
    what="${FUZZ_RUNS:-20000} runs"
fi

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
cargo +nightly fuzz --version >/dev/null 2>&1 || cargo install --locked cargo-fuzz

echo "== cargo +nightly fuzz build"
cargo +nightly fuzz build

failed=()
for t in $(cargo +nightly fuzz list); do
    echo "== $t: $what"
    mkdir -p "corpus/$t"
    if ! cargo +nightly fuzz run "$t" -- "${budget[@]}" -timeout=10 -print_final_stats=1 2>"$t.log"; then
        grep -m1 -A4 'panicked at\|ERROR: libFuzzer' "$t.log" || tail -n 40 "$t.log"
        grep -m1 'Test unit written to' "$t.log" || true
        failed+=("$t")
    fi
    grep -E '^stat::number_of_executed_units' "$t.log" | sed "s/^/$t /" || true
    rm -f "$t.log"
done

if ((${#failed[@]})); then
    echo "fuzz: crashing targets: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: all targets ran $what without a crash"
