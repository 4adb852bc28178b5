#!/usr/bin/env bash
# Decode serial status frames with a real client (aiobmsble) through shared/peers/ant_decode.py.
#
#   .ci/peers-serial.sh FILE                  FILE has lines `time_ms,hex` (what
#                                             `bms-sim run --serial-log FILE` writes); prints one
#                                             JSON object per line: {"time_ms": .., "decoded": {..}}
#   .ci/peers-serial.sh FILE --trace TRACE    also compares with TRACE (trace.csv columns
#                                             time_ms, current_ma, soc_permille, cellN_mv; the row
#                                             at the frame's time_ms or the last before it): cells
#                                             exact, current within 0.1 A, SOC within 1 %; exit 1
#                                             on any mismatch or rejected frame
#   .ci/peers-serial.sh --self-test           encodes synthetic frames (8S/16S/20S, charge,
#                                             discharge, faults; new and legacy layouts) with
#                                             `cargo test --test serial_peers`, checks them as above
#
# Current: both layouts send positive = discharge (the trace's convention). aiobmsble passes
# the new layout's sign through and negates the legacy layout's; the comparison undoes that.
#
# Environment: PEERS_DIR (default ../shared/peers next to the repository), PEERS_VENV (default
# /tmp/venv-peers-serial; created with Python >= 3.12 and `pip install aiobmsble==0.31.0`
# if missing; the golden values in bms-core/tests/serial_golden.rs come from that version).
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
PEERS_DIR="${PEERS_DIR:-$here/../shared/peers}"
PEERS_VENV="${PEERS_VENV:-/tmp/venv-peers-serial}"

if [[ ! -f "$PEERS_DIR/ant_decode.py" ]]; then
    echo "peers-serial: $PEERS_DIR/ant_decode.py not found (set PEERS_DIR)" >&2
    exit 2
fi

find_python() {
    local c
    for c in "$(pyenv root 2>/dev/null)/versions/3.13.0/bin/python" python3.13 python3.12 python3; do
        if [[ -x "$c" ]] || command -v "$c" >/dev/null 2>&1; then
            if "$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
                echo "$c"
                return 0
            fi
        fi
    done
    return 1
}

if ! "$PEERS_VENV/bin/python" -c 'import aiobmsble' 2>/dev/null; then
    py="$(find_python)" || { echo "peers-serial: Python >= 3.12 needed" >&2; exit 2; }
    "$py" -m venv "$PEERS_VENV"
    "$PEERS_VENV/bin/pip" install --quiet "aiobmsble==0.31.0" >&2
fi

if [[ "${1:-}" == "--self-test" ]]; then
    out="$(mktemp -d)"
    (cd "$here" && SERIAL_PEERS_DIR="$out" CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}" \
        cargo test --quiet -p bms-core --test serial_peers >&2)
    "$0" "$out/serial.log" --trace "$out/trace.csv"
    exec "$0" "$out/serial-legacy.log" --trace "$out/trace.csv"
fi

file="${1:?usage: peers-serial.sh FILE [--trace TRACE] | --self-test}"
trace=""
if [[ "${2:-}" == "--trace" ]]; then
    trace="${3:?--trace needs a file}"
fi

exec "$PEERS_VENV/bin/python" - "$PEERS_DIR" "$file" "$trace" <<'PY'
import asyncio, bisect, csv, json, sys

peers, log_path, trace_path = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, peers)
import ant_decode  # noqa: E402

def decode(frame: bytes) -> dict:
    # ant_decode fails fast (50 ms) when no valid reply arrives; retry on a loaded machine.
    for attempt in range(3):
        try:
            result, _ = asyncio.run(ant_decode.decode(frame, "auto", False, 20))
            return result
        except TimeoutError:
            continue
    return None

expected = {}
if trace_path:
    with open(trace_path, newline="") as f:
        for row in csv.DictReader(f):
            expected[int(row["time_ms"])] = row

times = sorted(expected)
failures = 0
frames = 0
with open(log_path) as f:
    for line in f:
        line = line.strip()
        if not line or line.startswith("time_ms"):
            continue
        t, hexstr = line.split(",", 1)
        t = int(t)
        frames += 1
        frame = ant_decode.parse_hex(hexstr)
        legacy = frame[:4] == b"\xaa\x55\xaa\xff"
        d = decode(frame)
        print(json.dumps({"time_ms": t, "decoded": d}, sort_keys=True))
        if not trace_path:
            if d is None:
                failures += 1
            continue
        # The trace row of the same time, else the last one before it.
        row = expected.get(t)
        if row is None and times:
            k = bisect.bisect_right(times, t) - 1
            row = expected[times[k]] if k >= 0 else None
        problems = []
        if d is None:
            problems.append("frame rejected by aiobmsble")
        elif row is None:
            problems.append("no trace row")
        else:
            cells = [int(row[k]) for k in sorted(
                (k for k in row if k.startswith("cell") and k.endswith("_mv") and k[4:-3].isdigit() and row[k] != ""),
                key=lambda k: int(k[4:-3]))]
            got = [round(v * 1000) for v in d.get("cell_voltages", [])]
            if got != cells:
                problems.append(f"cells {got} != {cells}")
            cur = d.get("current")
            if cur is not None and legacy:
                cur = -cur
            if cur is None or abs(cur * 1000 - int(row["current_ma"])) > 100:
                problems.append(f"current {cur} A vs {row['current_ma']} mA")
            soc = d.get("battery_level")
            if soc is None or abs(soc * 10 - int(row["soc_permille"])) > 10:
                problems.append(f"SOC {soc} % vs {row['soc_permille']} permille")
        if problems:
            failures += 1
            print(f"MISMATCH t={t}: " + "; ".join(problems), file=sys.stderr)

if trace_path:
    print(f"peers-serial: {frames - failures} passed, {failures} failed", file=sys.stderr)
sys.exit(1 if failures or frames == 0 else 0)
PY
