import { createHash, createPublicKey, verify } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bundleDigest } from '@bpfleet/proto';
import { buildBundle, type SignedBundle } from './build-bundle.js';
import { loadOrCreateSigningKey, type BundleSigningKey } from './signing-key.js';

const OUT = fileURLToPath(new URL('../../../bpf/out', import.meta.url));
let dir: string;
beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'bpfleet-ctl-bundle-')); });
afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

function verifies(b: SignedBundle, key: BundleSigningKey): boolean {
  const pub = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: key.publicKeyRaw.toString('base64url') }, format: 'jwk' });
  return verify(null, bundleDigest(b), pub, b.signature);
}

describe('buildBundle', () => {
  let key: BundleSigningKey;
  beforeEach(async () => { key = await loadOrCreateSigningKey(join(dir, 'data')); });

  it('bundles the x86_64 loader (0755) and manifest (0644), signed over the canonical digest', async () => {
    const b = await buildBundle({ probe: 'tcpstates', arch: 'x86_64', outDir: OUT, key });
    const manifest = JSON.parse(await readFile(join(OUT, 'x86_64/tcpstates.manifest.json'), 'utf8'));
    expect(b.probe).toBe('tcpstates');
    expect(b.version).toBe(manifest.version);
    expect(b.arch).toBe('x86_64');
    expect(b.files.map((f) => [f.path, f.mode])).toEqual([['tcpstates', 0o755], ['tcpstates.manifest.json', 0o644]]);
    expect(b.files[0]!.content.equals(await readFile(join(OUT, 'x86_64/tcpstates')))).toBe(true);
    for (const f of b.files) {
      expect(f.sha256).toBe(createHash('sha256').update(f.content).digest('hex'));
    }
    expect(verifies(b, key)).toBe(true);
    expect(verifies({ ...b, version: '9.9.9' }, key)).toBe(false);
  });

  it('includes the minimized BTF of each release for arm as btf/<release>.btf', async () => {
    const b = await buildBundle({ probe: 'tcpwin', arch: 'arm', outDir: OUT, key });
    expect(b.files.map((f) => f.path)).toEqual(['tcpwin', 'tcpwin.manifest.json', 'btf/5.10.0-32-armmp.btf']);
    const btf = b.files[2]!;
    expect(btf.mode).toBe(0o644);
    expect(btf.content.equals(await readFile(join(OUT, 'arm/btf/5.10.0-32-armmp/tcpwin.btf')))).toBe(true);
    expect(verifies(b, key)).toBe(true);
  });

  it('says what to run when the probe or arch was not built', async () => {
    const out = join(dir, 'bpf/out');
    await mkdir(join(out, 'x86_64'), { recursive: true });
    await expect(buildBundle({ probe: 'tcpwin', arch: 'arm', outDir: out, key })).rejects.toThrow(
      `no loader ${join(out, 'arm/tcpwin')}: run make -C ${join(dir, 'bpf')} ARCH=arm`,
    );
    await copyFile(join(OUT, 'x86_64/tcpwin'), join(out, 'x86_64/tcpwin'));
    await expect(buildBundle({ probe: 'tcpwin', arch: 'x86_64', outDir: out, key })).rejects.toThrow(
      `no manifest ${join(out, 'x86_64/tcpwin.manifest.json')}: run make -C ${join(dir, 'bpf')} ARCH=x86_64`,
    );
    await expect(buildBundle({ probe: 'nosuch', arch: 'arm64', outDir: OUT, key })).rejects.toThrow(/^no loader .*arm64\/nosuch: run make -C .* ARCH=arm64$/);
    await expect(buildBundle({ probe: 'tcpwin', arch: 'mips', outDir: OUT, key })).rejects.toThrow('unknown arch "mips"');
  });

  it('refuses a loader built for another arch than its directory says', async () => {
    const out = join(dir, 'out');
    await mkdir(join(out, 'arm64'), { recursive: true });
    await copyFile(join(OUT, 'x86_64/tcpwin'), join(out, 'arm64/tcpwin'));
    await copyFile(join(OUT, 'arm64/tcpwin.manifest.json'), join(out, 'arm64/tcpwin.manifest.json'));
    await expect(buildBundle({ probe: 'tcpwin', arch: 'arm64', outDir: out, key })).rejects.toThrow(/is built for x86_64, not arm64/);
  });
});
