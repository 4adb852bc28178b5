#!/usr/bin/env bash
# Peer checks of the J1939 node's traffic, with third-party clients:
#  - cantools (via python-can's candump reader) decodes every frame with bms-core/dbc/bms.dbc,
#    matching extended frames by PGN, and fails on any value outside its DBC range;
#  - can-j1939 reassembles every TP.BAM and parses every DM1; the script also checks TP.DT
#    sequence, padding and timing (T1).
#
# Usage: VENV=/path/to/venv .ci/peers-can.sh [LOG]
#   LOG   a candump -L log (`(secs.usecs) can0 ID#DATA`). Without it, the log is produced by
#         `cargo test -p bms-core --test j1939_candump` (60 s of simulated time with faults),
#         and the inverter port's log of the same run is decoded with inverter.dbc as well.
#   VENV  a Python >= 3.12 virtual environment; created when missing, with
#         `pip install python-can cantools can-j1939`. PYTHON picks the interpreter used to
#         create it (default python3).
#   PEERS the directory of check_dbc.py / check_tp.py (default: ../shared/peers beside the repo).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
peers=${PEERS:-$root/../shared/peers}
: "${VENV:?set VENV to a Python virtual environment path}"

if [ ! -x "$VENV/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$VENV"
    "$VENV/bin/pip" install -q python-can cantools can-j1939
fi

log=${1:-}
inv_log=
if [ -z "$log" ]; then
    log=$(mktemp --suffix=.log)
    inv_log=$(mktemp --suffix=.log)
    (cd "$root" && BMS_CAN_LOG="$log" BMS_INVERTER_LOG="$inv_log" \
        cargo test -q -p bms-core --test j1939_candump >/dev/null)
fi

echo "check_dbc: $log"
"$VENV/bin/python" "$peers/check_dbc.py" "$log" "$root/bms-core/dbc/bms.dbc" --j1939 --strict -q
echo "check_tp: $log"
"$VENV/bin/python" "$peers/check_tp.py" "$log" --dm1 >/dev/null
if [ -n "$inv_log" ]; then
    echo "check_dbc (inverter): $inv_log"
    "$VENV/bin/python" "$peers/check_dbc.py" "$inv_log" "$root/bms-core/dbc/inverter.dbc" --strict --require-all -q
fi
echo "peer checks passed"
