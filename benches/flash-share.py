#!/usr/bin/env python3
"""Flash bytes of an ELF per source crate: code (.text) from its debug information, and
the named constants of .rodata from the code that loads their addresses.

Every range of the DWARF line table is attributed through its inline chain
(`llvm-symbolizer --inlining`) to the innermost frame that is not Rust's standard library
(/rustc/...): `core` code inlined into a crate's function counts for that crate, and a
crate's function inlined into the firmware's still counts for the crate. Needs a build with
debug information (`debug = 2`); symbol sizes alone would credit inlined code to the caller.

A .rodata object (tables, switch tables, constant structures; each has a local symbol
with its size) belongs to the crates whose code loads its address (a `movw`/`movt` pair,
or a literal-pool word); one loaded from several crates is split evenly among them.
Constants without a symbol (merged strings and the like) and objects whose address no
code loads are reported as unattributed.

Usage: benches/flash-share.py ELF [-v]   (-v: bms-core bytes per source file as well)
"""
import collections
import bisect
import json
import re
import struct
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


def owner_of(frames):
    """The crate and file of the innermost frame that is not the standard library."""
    owner = next((f for f in frames if crate(f)), None)
    return (crate(owner) if owner else 'core/std'), owner


crates = collections.Counter()
core_files = collections.Counter()
for (_, n), line in zip(ranges, symbolized):
    c, owner = owner_of([f['FileName'] for f in json.loads(line).get('Symbol', [])])
    crates[c] += n
    if c == 'bms-core':
        core_files[owner.split('/bms-core/', 1)[1]] += n


def rodata_shares():
    """Bytes of .rodata per crate (objects split among the crates loading them), and the
    bytes left unattributed."""
    sections = {}
    out = subprocess.run(['readelf', '-SW', elf], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        m = re.match(r'\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)',
                     line)
        if m:
            sections[m.group(1)] = tuple(int(m.group(i), 16) for i in (2, 3, 4))
    if '.rodata' not in sections:
        return collections.Counter(), 0
    base, _, size = sections['.rodata']
    objects = []
    out = subprocess.run(['nm', '-S', elf], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        p = line.split()
        if len(p) == 4 and p[2] in 'rR':
            a, n = int(p[0], 16), int(p[1], 16)
            if base <= a < base + size and n > 0:
                objects.append((a, n))
    objects.sort()
    starts = [a for a, _ in objects]

    def object_at(x):
        i = bisect.bisect_right(starts, x) - 1
        return objects[i] if i >= 0 and x < objects[i][0] + objects[i][1] else None

    loads = collections.defaultdict(set)  # object -> addresses of the code loading it
    # Cortex-M3/M4 code builds addresses with movw/movt pairs (per register).
    dis = subprocess.run(['llvm-objdump', '-d', '--no-show-raw-insn', elf],
                         capture_output=True, text=True, check=True).stdout
    low = {}
    for line in dis.splitlines():
        m = re.match(r'^\s*([0-9a-f]+):\s+(movw|movt)(?:\.w)?\s+(\w+),\s+#(-?\d+)', line)
        if not m:
            continue
        pc, op, reg, imm = int(m.group(1), 16), m.group(2), m.group(3), int(m.group(4))
        if op == 'movw':
            low[reg] = imm & 0xFFFF
        elif reg in low:
            o = object_at((imm & 0xFFFF) << 16 | low.pop(reg))
            if o:
                loads[o].add(pc)
    # Cortex-M0 code loads them from literal pools: words of .text equal to an address.
    if '.text' in sections:
        addr, offset, n = sections['.text']
        with open(elf, 'rb') as f:
            f.seek(offset)
            text = f.read(n)
        for i in range(0, len(text) - 3, 2):
            o = object_at(struct.unpack_from('<I', text, i)[0])
            if o:
                loads[o].add(addr + i)
    pcs = sorted({pc for s in loads.values() for pc in s})
    out = subprocess.run(
        ['llvm-symbolizer', '--inlining', '--obj=' + elf, '--output-style=JSON'],
        input='\n'.join(hex(a) for a in pcs), capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    crate_at = {pc: owner_of([f['FileName'] for f in json.loads(line).get('Symbol', [])])[0]
                for pc, line in zip(pcs, out)}
    shares = collections.Counter()
    for o, at in loads.items():
        users = sorted({crate_at[pc] for pc in at})
        for c in users:
            shares[c] += o[1] / len(users)
    return shares, size - sum(shares.values())


print('.text')
for c, n in crates.most_common():
    print(f'{c:32} {n:7}')
print(f'{"total":32} {sum(crates.values()):7}')
ro, unattributed = rodata_shares()
print()
print('.rodata')
for c, n in ro.most_common():
    print(f'{c:32} {round(n):7}')
print(f'{"unattributed":32} {round(unattributed):7}')
print()
print(f'{"bms-core, .text + .rodata":32} {crates["bms-core"] + round(ro["bms-core"]):7}')
if '-v' in sys.argv:
    print()
    for f, n in core_files.most_common():
        print(f'  bms-core/{f:40} {n:7}')
