import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { ARCHES, bpfOutDir, probeBinary, repoRoot, type Arch } from '../lib/index.js';
import { loadManifest, type ManifestField } from './support.js';

/** Every probe that has a source folder must be built and described, for every architecture. */
const probes = readdirSync(path.join(repoRoot, 'bpf', 'probes')).sort();

interface BtfType {
  id: number;
  kind: string;
  name?: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  encoding?: string;
  members?: { name: string; type_id: number; bits_offset: number }[];
}

function loadBtf(arch: Arch, probe: string): Map<number, BtfType> {
  const obj = path.join(bpfOutDir, arch, 'obj', `${probe}.bpf.o`);
  const json = JSON.parse(execFileSync('bpftool', ['btf', 'dump', 'file', obj, '-j'], { maxBuffer: 64 << 20 }).toString());
  return new Map((json.types as BtfType[]).map((t) => [t.id, t]));
}

/** Size in bytes and a coarse shape of a BTF type, through typedefs and qualifiers. */
function shape(types: Map<number, BtfType>, id: number): { size: number; kind: string; elem?: number } {
  let t = types.get(id)!;
  while (['TYPEDEF', 'CONST', 'VOLATILE', 'RESTRICT', 'TYPE_TAG'].includes(t.kind)) t = types.get(t.type_id!)!;
  if (t.kind === 'ARRAY') {
    const e = shape(types, t.type_id!);
    return { size: e.size * t.nr_elems!, kind: 'array', elem: e.size };
  }
  if (t.kind === 'INT') return { size: t.size!, kind: t.encoding === 'SIGNED' || t.encoding === 'CHAR' ? 'signed-int' : 'int' };
  return { size: t.size ?? 0, kind: t.kind.toLowerCase() };
}

function expectedShape(f: ManifestField): { size: number; kind: string } {
  switch (f.type) {
    case 'comm': return { size: 16, kind: 'array' };
    case 'addr': return { size: 16, kind: 'array' };
    case 'str': return { size: f.size, kind: 'array' };
    case 'u8': return { size: 1, kind: 'int' };
    case 'u16': return { size: 2, kind: 'int' };
    case 'u32': return { size: 4, kind: 'int' };
    case 'u64': return { size: 8, kind: 'int' };
    case 's32': return { size: 4, kind: 'signed-int' };
    case 's64': return { size: 8, kind: 'signed-int' };
  }
}

describe('probe artifacts', () => {
  it('the probe set is the one the toolchain issue names (at least)', () => {
    for (const p of ['tcpstates', 'tcpwin', 'tcpbytes', 'tcplife', 'tcptop', 'skbclone']) expect(probes).toContain(p);
  });

  for (const arch of ARCHES) {
    describe(arch, () => {
      const want = { x86_64: /ELF 64-bit LSB .*x86-64.*statically linked/, arm64: /ELF 64-bit LSB .*ARM aarch64.*statically linked/, arm: /ELF 32-bit LSB .*ARM, EABI5.*statically linked/ }[arch];

      for (const probe of probes) {
        it(`${probe}: static loader for ${arch}`, () => {
          const out = execFileSync('file', ['-b', probeBinary(probe, arch)]).toString();
          expect(out).toMatch(want);
        });

        it(`${probe}: manifest matches the record layout in the ${arch} BPF object's BTF`, () => {
          const m = loadManifest(probe, arch);
          expect(m.probe).toBe(probe);
          const types = loadBtf(arch, probe);
          const st = [...types.values()].find((t) => t.kind === 'STRUCT' && t.name === m.record.name);
          expect(st, `struct ${m.record.name} missing from ${probe}.bpf.o BTF`).toBeDefined();
          expect(st!.size).toBe(m.record.size);
          expect(m.record.size % 8).toBe(0);
          const members = new Map(st!.members!.map((x) => [x.name, x]));
          for (const f of m.record.fields) {
            const mem = members.get(f.name);
            expect(mem, `${m.record.name}.${f.name} not in BTF`).toBeDefined();
            expect(mem!.bits_offset % 8).toBe(0);
            expect(mem!.bits_offset / 8, `${f.name} offset`).toBe(f.offset);
            const s = shape(types, mem!.type_id);
            const e = expectedShape(f);
            expect(s.size, `${f.name} size`).toBe(f.size);
            expect(s.size, `${f.name} size vs type`).toBe(e.size);
            expect(s.kind, `${f.name} kind`).toBe(e.kind);
          }
          // Every member but explicit padding is described: nothing reaches users undocumented.
          const described = new Set(m.record.fields.map((f) => f.name));
          const undocumented = [...members.keys()].filter((n) => !n.startsWith('__pad') && !described.has(n));
          expect(undocumented).toEqual([]);
          for (const f of m.record.fields) expect(f.description.length).toBeGreaterThan(3);
        });

        it(`${probe}: manifest is identical to x86_64's`, () => {
          expect(loadManifest(probe, arch)).toEqual(loadManifest(probe, 'x86_64'));
        });
      }
    });
  }
});
