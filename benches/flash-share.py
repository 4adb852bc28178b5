#!/usr/bin/env python3
"""Flash (.text) bytes of an ELF per source crate, from its debug information.

Every range of the DWARF line table is attributed through its inline chain
(`llvm-symbolizer --inlining`) to the innermost frame that is not Rust's standard library
(/rustc/...): `core` code inlined into a crate's function counts for that crate, and a
crate's function inlined into the firmware's still counts for the crate. Needs a build with
debug information (`debug = 2`); symbol sizes alone would credit inlined code to the caller.

Usage: benches/flash-share.py ELF [-v]   (-v: bms-core bytes per source file as well)
"""
import collections
import json
import re
import subprocess
import sys

elf = sys.argv[1]
lines = subprocess.run(['llvm-dwarfdump', '--debug-line', elf],
                       capture_output=True, text=True, check=True).stdout
rows = []
for line in lines.splitlines():
    m = re.match(r'^0x([0-9a-f]{16})\s+\d+\s+\d+\s+\d+\s+\d+\s+\d+(.*)$', line)
    if m:
        rows.append((int(m.group(1), 16), 'end_sequence' in m.group(2)))
rows.sort()
ranges = [(a, b - a) for (a, end), (b, _) in zip(rows, rows[1:]) if not end and b > a]
symbolized = subprocess.run(
    ['llvm-symbolizer', '--inlining', '--obj=' + elf, '--output-style=JSON'],
    input='\n'.join(hex(a) for a, _ in ranges), capture_output=True, text=True, check=True,
).stdout.splitlines()


def crate(path):
    """The crate a source path belongs to; None for the standard library."""
    if path.startswith('/rustc/'):
        return None
    m = re.search(r'/registry/src/[^/]+/([A-Za-z0-9_\-]+?)-\d+\.\d+', path)
    if m:
        return m.group(1)
    for k in ('bms-core', 'bms-hal-stm32', 'examples/stm32-firmware', 'examples/qemu'):
        if '/' + k + '/' in path:
            return k
    return '?'


crates = collections.Counter()
core_files = collections.Counter()
for (_, n), line in zip(ranges, symbolized):
    frames = [f['FileName'] for f in json.loads(line).get('Symbol', [])]
    owner = next((f for f in frames if crate(f)), None)
    c = crate(owner) if owner else 'core/std'
    crates[c] += n
    if c == 'bms-core':
        core_files[owner.split('/bms-core/', 1)[1]] += n
for c, n in crates.most_common():
    print(f'{c:32} {n:7}')
print(f'{"total":32} {sum(crates.values()):7}')
if '-v' in sys.argv:
    print()
    for f, n in core_files.most_common():
        print(f'  bms-core/{f:40} {n:7}')
