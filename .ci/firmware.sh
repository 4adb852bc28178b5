#!/usr/bin/env bash
# Firmware CI: cross-compiles the STM32G474 firmware and the QEMU example, then runs the
# QEMU scenario, whose own checks decide the exit status. Installs the thumb targets and
# qemu-system-arm when missing. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"

installed="$(rustup target list --installed)"
for t in thumbv6m-none-eabi thumbv7m-none-eabi thumbv7em-none-eabihf; do
    grep -qx "$t" <<<"$installed" || rustup target add "$t"
done

if ! command -v qemu-system-arm >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-system-arm >/dev/null
fi

echo "== stm32-firmware: cargo build --release (thumbv7em-none-eabihf)"
(cd examples/stm32-firmware && cargo build --release)

echo "== qemu: cargo build --release (thumbv7m-none-eabi)"
(cd examples/qemu && cargo build --release)

echo "== qemu: scenario on lm3s6965evb"
set +e
timeout 120 qemu-system-arm -cpu cortex-m3 -machine lm3s6965evb -nographic \
    -semihosting-config enable=on,target=native \
    -kernel examples/qemu/target/thumbv7m-none-eabi/release/bms-qemu
status=$?
set -e
if [ "$status" -ne 0 ]; then
    echo "qemu scenario failed (exit status $status)" >&2
    exit "$status"
fi
echo "firmware CI passed"
