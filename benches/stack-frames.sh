#!/usr/bin/env bash
# Stack frame (bytes: saved registers + locals + return address) of each function on the
# control-step path, from the prologues of the release code:
#   x86-64: the bms-sim binary (push count * 8 + `sub rsp` + 8);
#   thumbv6m-none-eabi (Cortex-M0): the bms-core rlib (`push {..}` * 4 + `sub sp` or the
#   `ldr rN, =-size; add sp, rN` literal).
# Usage: benches/stack-frames.sh   (needs objdump, llvm-objdump, llvm-ar, c++filt, python3)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"
cargo build --release -q -p bms-hal-mock --bin bms-sim
cargo build --release -q -p bms-core --target thumbv6m-none-eabi
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
objdump -d --no-show-raw-insn "$TARGET/release/bms-sim" >"$TMP/x86.asm"
RLIB="$TARGET/thumbv6m-none-eabi/release/libbms_core.rlib"
(mkdir "$TMP/m0" && cd "$TMP/m0" && llvm-ar x "$RLIB")
llvm-objdump -d --no-show-raw-insn "$TMP"/m0/*.o >"$TMP/m0.asm" 2>/dev/null
python3 - "$TMP" <<'PY'
import glob, re, subprocess, sys
tmp = sys.argv[1]
KEYS = ['3Bms4step', 'Protection4step', 'Summary2of', 'SocEstimator6update',
        'SocEstimator9rest_step', 'SocEstimator4boot', '14learn_capacity', '6limits6limits',
        '11update_slow', 'soc_from_ocv', '11fill_values', '3ocv4fuse', '3ocv9soc_sigma',
        '9sigma_ppm', '12mul_div_wide', '8Balancer6update']

def demangle(n):
    return subprocess.run(['c++filt'], input=n, capture_output=True, text=True).stdout.strip().split('::h')[0]

def x86():
    # Saved registers and `sub rsp` within the first 40 instructions (the prologue may
    # follow an early test).
    out, cur, n = {}, None, 0
    for line in open(f'{tmp}/x86.asm'):
        m = re.match(r'^[0-9a-f]+ <(.*)>:$', line)
        if m:
            cur, n = m.group(1), 0
            if any(k in cur for k in KEYS) and 'bms_core' in cur:
                out[cur] = 8
            continue
        if cur not in out or not re.match(r'^\s+[0-9a-f]+:', line):
            continue
        n += 1
        if n > 40:
            continue
        if '\tpush ' in line:
            out[cur] += 8
        m = re.search(r'sub\s+\$0x([0-9a-f]+),%rsp', line)
        if m:
            out[cur] += int(m.group(1), 16)
            n = 41
    return out

def m0():
    words = {}
    for o in glob.glob(f'{tmp}/m0/*.o'):
        dump = subprocess.run(['llvm-objdump', '-s', o], capture_output=True, text=True).stdout
        sec = None
        for l in dump.split('\n'):
            m = re.match(r'^Contents of section (\S+):', l)
            if m:
                sec = m.group(1)
                continue
            m = re.match(r'^ ([0-9a-f]{4,}) ((?:[0-9a-f]{8} ?){1,4})', l)
            if m and sec and sec.startswith('.text.'):
                base = int(m.group(1), 16)
                for k, w in enumerate(m.group(2).split()):
                    words[(sec[6:], base + 4 * k)] = int.from_bytes(bytes.fromhex(w), 'little')
    out, cur, n, lit = {}, None, 0, {}
    for line in open(f'{tmp}/m0.asm'):
        m = re.match(r'^[0-9a-f]+ <(.*)>:$', line)
        if m:
            cur, n, lit = m.group(1), 0, {}
            if any(k in cur for k in KEYS):
                out[cur] = 4  # lr at least
            continue
        if cur not in out or not re.match(r'^\s+[0-9a-f]+:', line):
            continue
        n += 1
        if n > 8:
            continue
        m = re.search(r'\tpush\s+\{([^}]*)\}', line)
        if m:
            out[cur] = 4 * len(m.group(1).split(','))
        m = re.search(r'\tsub\s+sp, #(0x[0-9a-f]+|\d+)', line)
        if m:
            out[cur] += int(m.group(1), 0)
        m = re.search(r'\tldr\s+(r\d), \[pc, #\d+\]\s+@ (0x[0-9a-f]+)', line)
        if m:
            lit[m.group(1)] = int(m.group(2), 16)
        m = re.search(r'\tadd\s+sp, (r\d)$', line)
        if m and m.group(1) in lit:
            v = words.get((cur, lit[m.group(1)]))
            if v is not None:
                out[cur] += (1 << 32) - v
    return out

for title, table in (('x86-64', x86()), ('thumbv6m (Cortex-M0)', m0())):
    print(f'\n{title}: bytes  function')
    for name, size in sorted(table.items(), key=lambda x: -x[1]):
        print(f'{size:6}  {demangle(name)}')
PY
