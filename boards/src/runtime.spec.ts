import { crc32 as zlibCrc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { bundleAgent, zlibShimCrc32 } from './runtime.js';

describe('agent runtime bundle', () => {
  it('bundles the agent into one ESM file whose zlib import goes through the Node 20.11 shim', async () => {
    const js = await bundleAgent();
    expect(js.length).toBeGreaterThan(100_000);
    expect(js).toContain('bpfleet-agent');
    expect(js).not.toMatch(/import\{[^}]*crc32[^}]*\}from"node:zlib"/);
  }, 60_000);

  it('computes the same CRC-32 as zlib.crc32 where Node lacks it (armv7: Node 20.11)', () => {
    for (const s of ['', 'a', 'bpfleet', 'x'.repeat(1000)]) {
      expect(zlibShimCrc32(Buffer.from(s))).toBe(zlibCrc32(Buffer.from(s)));
      expect(zlibShimCrc32(Buffer.from(s), 12345)).toBe(zlibCrc32(Buffer.from(s), 12345));
    }
  });
});
