// Test fixture: stack-probe records laid out from a manifest (the contract of bpf/README.md,
// "Stack probes": `stack` a `str` char array of folded frames, `value`, `pid`, `comm`): a small
// synthetic manifest, and the real ones from the probe build.
import type { EventBatch, Manifest } from '@bpfleet/proto';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { encodeRecord, makeBatch, type RecordValues } from '../store/tcpstates-fixture.js';

const schemaIdOf = (m: Manifest, text: string) => `${m.probe}@${m.version}:${createHash('sha256').update(text).digest('hex').slice(0, 16)}`;

/** A small stack probe: `value` in `unit`, a 260-byte `stack`. */
export function stackManifest(probe = 'profile', unit = 'samples'): { schemaId: string; manifest: Manifest } {
  const manifest: Manifest = {
    schema: 'bpfleet.manifest/v1', probe, version: '0.1.0', kind: 'stream',
    record: { name: `${probe}_event`, size: 296, endian: 'little', fields: [
      { name: 'ts_ns', type: 'u64', offset: 0, size: 8, format: 'ktime_ns', unit: 'ns', description: 'monotonic time' },
      { name: 'value', type: 'u64', offset: 8, size: 8, format: 'plain', unit, description: 'samples, ns or bytes of this stack' },
      { name: 'pid', type: 'u32', offset: 16, size: 4, format: 'plain', unit: '', description: 'tgid' },
      { name: 'comm', type: 'comm', offset: 20, size: 16, format: 'plain', unit: '', description: 'command name' },
      { name: 'stack', type: 'str', offset: 36, size: 260, format: 'plain', unit: '', description: 'folded frames, root first' },
    ] },
    hooks: [{ group: 'sample', program: `${probe}_sample`, kind: 'perf_event', target: 'cpu-clock' }],
  };
  return { schemaId: schemaIdOf(manifest, JSON.stringify(manifest)), manifest };
}

/** The manifest a stack probe's loader printed in the probe build (bpf/out/x86_64). */
export function loadBuiltManifest(probe: string): { schemaId: string; manifest: Manifest } {
  const path = fileURLToPath(new URL(`../../../bpf/out/x86_64/${probe}.manifest.json`, import.meta.url));
  if (!existsSync(path)) throw new Error(`${path} is missing: build the probes first (make -C bpf)`);
  const text = readFileSync(path, 'utf8');
  const manifest = JSON.parse(text) as Manifest;
  return { schemaId: schemaIdOf(manifest, text), manifest };
}

/** encodeRecord, plus `str` fields as UTF-8 (NUL-terminated when shorter than the field). */
export function encodeStackRecord(m: Manifest, values: RecordValues): Buffer {
  const rec = encodeRecord(m, values);
  for (const f of m.record.fields) {
    if (f.type === 'str' && values[f.name] !== undefined) rec.write(String(values[f.name]), f.offset, f.size - 1, 'utf8');
  }
  return rec;
}

export interface StackSample { stack: string; value: number; comm?: string; pid?: number; tsNs: bigint; extra?: RecordValues }

/** makeBatch's clock offset: ts_ns + this = Unix ns. */
export const CLOCK_OFFSET_NS = 1_700_000_000_000_000_000n;

export function stackBatch(schemaId: string, m: Manifest, streamId: string, firstSeq: number, samples: StackSample[]): EventBatch {
  const recs = samples.map((s) => encodeStackRecord(m, { ts_ns: s.tsNs, value: s.value, pid: s.pid ?? 100, comm: s.comm ?? 'app', stack: s.stack, ...s.extra }));
  return makeBatch(schemaId, streamId, recs, firstSeq);
}
