#!/usr/bin/env python3
"""check_can_trace.py CAN_LOG TRACE_CSV DBC -- the CAN traffic of `bms-sim run` says what the trace says.

Decodes the log with python-can + cantools (bms.dbc, matched by PGN) and checks, for every frame,
against the trace row of the same step (trace.csv written every 100 ms):
  - the first frame is the address claim (PGN 60928);
  - HVES1D1 VoltageLevel within 0.1 V of pack_mv, Current (positive = charging on the bus)
    within 0.5 A of -current_ma; HVES1D2 FastUpdateSoc within 1 % of soc_permille;
  - every DM1 (single frame or BAM) lists exactly the tripped faults of that step (red-stop-lamp
    DTCs, by the SPN/FMI table of bms-core/src/j1939/dm.rs), so each injected fault shows while it
    is active and none after release.
Exit 1 on any mismatch.
"""
import bisect
import csv
import sys

import can
import cantools

# fault -> (SPN, trip FMI), bms-core/src/j1939/dm.rs
DTC = {
    "cell_ov": (5922, 0), "cell_uv": (5923, 1), "pack_ov": (5919, 0), "pack_uv": (5919, 1),
    "chg_oc": (5920, 0), "dsg_oc1": (5920, 1), "dsg_oc2": (520198, 1), "sc": (5920, 6),
    "chg_ot": (520200, 0), "chg_ut": (520201, 1), "dsg_ot": (8075, 0), "dsg_ut": (8076, 1),
    "mos_ot": (8204, 0), "cell_imbalance": (5924, 0), "open_wire": (5923, 5),
    "afe_comm": (520207, 12), "sensor_fault": (520208, 2), "precharge_fail": (520209, 12),
}
TRIP = {v: k for k, v in DTC.items()}


def pgn_of(i):
    pf, ps, dp = (i >> 16) & 0xFF, (i >> 8) & 0xFF, (i >> 24) & 1
    return (dp << 16) | (pf << 8) | (0 if pf < 240 else ps)


def dm1_faults(payload):
    """Tripped faults named by a DM1 payload (lamps, then 4-byte DTCs)."""
    out = set()
    for k in range(2, len(payload) - 3, 4):
        d = payload[k:k + 4]
        spn = d[0] | d[1] << 8 | (d[2] >> 5) << 16
        fmi = d[2] & 0x1F
        if spn == 0 and fmi == 0:
            continue
        if (spn, fmi) in TRIP:
            out.add(TRIP[(spn, fmi)])
    return out


def main():
    log, trace_path, dbc = sys.argv[1:4]
    db = cantools.database.load_file(dbc, strict=True)
    by_pgn = {cantools.j1939.pgn_from_frame_id(m.frame_id): m for m in db.messages}
    rows = list(csv.DictReader(open(trace_path)))
    times = [int(r["time_ms"]) for r in rows]

    def row_at(t_ms):
        i = bisect.bisect_right(times, t_ms) - 1
        if i < 0 or times[i] != t_ms:
            raise SystemExit(f"no trace row at {t_ms} ms (run with a 100 ms trace)")
        return rows[i]

    errors, checked, dm1s, seen = [], 0, 0, set()
    bam = None
    first = True
    for msg in can.LogReader(log):
        t_ms = round(msg.timestamp * 1000)
        pgn = pgn_of(msg.arbitration_id)
        data = bytes(msg.data)
        if first:
            first = False
            if pgn != 0xEE00:
                errors.append(f"first frame is PGN {pgn:#x}, not the address claim")
        if pgn == 0xECFF or pgn == 0xEC00:
            if data[0] == 0x20 and (data[5] | data[6] << 8 | data[7] << 16) == 0xFECA:
                bam = {"t": t_ms, "size": data[1] | data[2] << 8, "data": bytearray()}
            continue
        if pgn == 0xEBFF or pgn == 0xEB00:
            if bam is not None:
                bam["data"] += data[1:]
                if len(bam["data"]) >= bam["size"]:
                    payload, t0 = bytes(bam["data"][:bam["size"]]), bam["t"]
                    bam = None
                    check_dm1(payload, row_at(t0), t0, errors, seen)
                    dm1s += 1
            continue
        if pgn == 0xFECA:
            check_dm1(data, row_at(t_ms), t_ms, errors, seen)
            dm1s += 1
            continue
        m = by_pgn.get(pgn)
        if m is None or m.name not in ("HVES1D1", "HVES1D2"):
            continue
        v = m.decode(data)
        r = row_at(t_ms)
        if m.name == "HVES1D1":
            if abs(v["VoltageLevel"] - int(r["pack_mv"]) / 1000) > 0.1:
                errors.append(f"{t_ms} ms: VoltageLevel {v['VoltageLevel']} V vs pack_mv {r['pack_mv']}")
            sig = m.get_signal_by_name("Current")
            want_a = min(max(-int(r["current_ma"]) / 1000, sig.minimum), sig.maximum)  # saturates
            if abs(v["Current"] - want_a) > 0.5:
                errors.append(f"{t_ms} ms: Current {v['Current']} A (charge +) vs current_ma {r['current_ma']}")
        else:
            if abs(v["FastUpdateSoc"] - int(r["soc_permille"]) / 10) > 1.0:
                errors.append(f"{t_ms} ms: SOC {v['FastUpdateSoc']} % vs soc_permille {r['soc_permille']}")
        checked += 1
    expected = set()
    for r in rows:
        expected |= {f for f in r["faults"].split("|") if f}
    missing = expected - seen
    if missing:
        errors.append(f"faults of the trace never shown by DM1: {sorted(missing)}")
    for e in errors[:20]:
        print("ERROR", e, file=sys.stderr)
    print(f"{checked} HVES frames and {dm1s} DM1 checked against the trace; "
          f"faults shown by DM1: {sorted(seen)}; {len(errors)} errors", file=sys.stderr)
    return 1 if errors or checked == 0 or dm1s == 0 else 0


def check_dm1(payload, row, t_ms, errors, seen):
    want = {f for f in row["faults"].split("|") if f}
    got = dm1_faults(payload)
    seen |= got
    if got != want:
        errors.append(f"{t_ms} ms: DM1 shows {sorted(got)}, trace has {sorted(want)}")


if __name__ == "__main__":
    sys.exit(main())
