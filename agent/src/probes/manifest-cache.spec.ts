// How often the manifest caches run `<loader> --manifest`: per installed file (agent), per
// content (the simulator's cache shared by its devices).
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ContentManifestCache, ManifestCache } from './manifest-cache.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'bpfleet-manifests-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A loader that prints a manifest of `version` and notes each --manifest call in `calls`. */
function loaderScript(calls: string, version: string): string {
  const manifest = JSON.stringify({ schema: 'bpfleet.manifest/v1', probe: 'fake', version, kind: 'stream', record: { name: 'e', size: 8, fields: [] }, hooks: [] });
  return `#!/bin/sh\nif [ "$1" = "--manifest" ]; then echo x >> '${calls}'; printf '%s' '${manifest}'; exit 0; fi\nexit 1\n`;
}

/** The same loader installed under `n` device directories. */
function install(tag: string, n: number, version = '0.0.1'): { bins: string[]; calls: () => number } {
  const calls = path.join(root, `${tag}.calls`);
  const bins = Array.from({ length: n }, (_, i) => {
    const dir = path.join(root, tag, `dev-${i}`, 'fake', 'current');
    mkdirSync(dir, { recursive: true });
    const bin = path.join(dir, 'fake');
    writeFileSync(bin, loaderScript(calls, version));
    chmodSync(bin, 0o755);
    return bin;
  });
  return { bins, calls: () => readFileSync(calls, 'utf8').split('\n').filter(Boolean).length };
}

describe('manifest caches', () => {
  it('ManifestCache runs --manifest once per installed file', async () => {
    const { bins, calls } = install('agent', 3);
    const cache = new ManifestCache();
    await Promise.all([...bins, ...bins].map((b) => cache.get(b)));
    expect(calls()).toBe(3);
  });

  it('ContentManifestCache runs it once per content, again for a changed binary', async () => {
    const { bins, calls } = install('sim', 20);
    const cache = new ContentManifestCache();
    const got = await Promise.all(bins.map((b) => cache.get(b)));
    expect(calls()).toBe(1);
    expect(new Set(got.map((m) => m.schemaId)).size).toBe(1);
    expect(got[0]!.manifest.version).toBe('0.0.1');
    await cache.get(bins[3]!); // a restart of a device's loader
    expect(calls()).toBe(1);

    // One device gets a new version: its own --manifest, the others keep theirs.
    writeFileSync(bins[0]!, loaderScript(path.join(root, 'sim.calls'), '0.0.2'));
    expect((await cache.get(bins[0]!)).manifest.version).toBe('0.0.2');
    expect((await cache.get(bins[1]!)).manifest.version).toBe('0.0.1');
    expect(calls()).toBe(2);
  });
});
