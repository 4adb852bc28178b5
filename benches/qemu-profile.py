#!/usr/bin/env python3
"""Where the Cortex-M instructions of a QEMU exec trace go, per source function.

Reads a `qemu-system-arm -singlestep -d exec,nochain -D LOG` trace, counts executed
instructions per program counter and attributes each, through the inline chain of the ELF's
debug information (`llvm-symbolizer --inlining`), to the innermost function outside Rust's
standard library. Prints instructions per step (divided by STEPS) per function.

Usage: benches/qemu-profile.py ELF LOG STEPS [TOP]
"""
import collections
import json
import re
import subprocess
import sys

elf, log, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
top = int(sys.argv[4]) if len(sys.argv) > 4 else 40
pcs = collections.Counter()
with open(log, errors='replace') as f:
    for line in f:
        m = re.match(r'^Trace \d+: \S+ \[[0-9a-f]+/([0-9a-f]+)/', line)
        if m:
            pcs[int(m.group(1), 16)] += 1
addrs = sorted(pcs)
out = subprocess.run(['llvm-symbolizer', '--inlining', '--obj=' + elf, '--output-style=JSON'],
                     input='\n'.join(hex(a) for a in addrs), capture_output=True, text=True,
                     check=True).stdout.splitlines()
per_fn = collections.Counter()
for a, line in zip(addrs, out):
    frames = json.loads(line).get('Symbol', [])
    owner = next((f for f in frames if not f['FileName'].startswith('/rustc/')), None)
    if owner is None:
        name = frames[-1]['FunctionName'] if frames else '?'
    else:
        name = owner['FunctionName']
    name = re.sub(r'::h[0-9a-f]{16}$', '', name)
    per_fn[name] += pcs[a]
total = sum(per_fn.values())
print(f'{total / steps:8.0f}  total per step')
for name, n in per_fn.most_common(top):
    print(f'{n / steps:8.0f}  {name[:110]}')
