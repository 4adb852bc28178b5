#!/usr/bin/env bash
# bms-core's share of the reference firmware's flash (examples/stm32-firmware, release:
# opt-level "s", LTO, thumbv7em-none-eabihf), attributed from the debug information by
# benches/flash-share.py. Usage: benches/size.sh [-v]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FW="$ROOT/examples/stm32-firmware"
(cd "$FW" && CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}" cargo build --release --quiet)
ELF="$FW/target/thumbv7em-none-eabihf/release/bms-stm32-firmware"
size "$ELF"
python3 "$ROOT/benches/flash-share.py" "$ELF" "$@"
