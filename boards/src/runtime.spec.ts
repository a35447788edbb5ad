import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { AGENT_NODE_FLAGS, RUNTIME_PINS, bundleAgent, launcherScript, zlibShimCrc32 } from './runtime.js';

describe('agent runtime bundle', () => {
  it('bundles the agent into one ESM file whose zlib import goes through the Node 20.11 shim', async () => {
    const js = await bundleAgent();
    expect(js.length).toBeGreaterThan(100_000);
    expect(js).toContain('bpfleet-agent');
    expect(js).not.toMatch(/import\{[^}]*crc32[^}]*\}from"node:zlib"/);
  }, 60_000);

  it('launches node with the default flags unless BPFLEET_NODE_FLAGS replaces them (even with nothing)', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bpfleet-launcher-'));
    try {
      // The loader's stand-in prints the arguments it would run node with.
      mkdirSync(path.join(dir, 'bin'));
      writeFileSync(path.join(dir, 'bin', 'bpfleet-agent'), '#!/bin/sh\necho "$@"\n', { mode: 0o755 });
      writeFileSync(path.join(dir, 'bpfleet-agent'), launcherScript('arm64', RUNTIME_PINS.arm64));
      chmodSync(path.join(dir, 'bpfleet-agent'), 0o755);
      const args = (env: NodeJS.ProcessEnv) => execFileSync(path.join(dir, 'bpfleet-agent'), ['--controller', 'h:1'], { env, encoding: 'utf8' })
        .trim().split(' ').slice(3).map((a) => a.replace(dir, '<dir>'));
      const { BPFLEET_NODE_FLAGS: _, ...env } = process.env;
      expect(args(env)).toEqual([...AGENT_NODE_FLAGS, '<dir>/app/agent.mjs', '--controller', 'h:1']);
      expect(args({ ...env, BPFLEET_NODE_FLAGS: '--jitless --stack-size=500' })).toEqual(['--jitless', '--stack-size=500', '<dir>/app/agent.mjs', '--controller', 'h:1']);
      expect(args({ ...env, BPFLEET_NODE_FLAGS: '' })).toEqual(['<dir>/app/agent.mjs', '--controller', 'h:1']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('computes the same CRC-32 as zlib.crc32 where Node lacks it (armv7: Node 20.11)', () => {
    for (const s of ['', 'a', 'bpfleet', 'x'.repeat(1000)]) {
      expect(zlibShimCrc32(Buffer.from(s))).toBe(zlibCrc32(Buffer.from(s)));
      expect(zlibShimCrc32(Buffer.from(s), 12345)).toBe(zlibCrc32(Buffer.from(s), 12345));
    }
  });
});
