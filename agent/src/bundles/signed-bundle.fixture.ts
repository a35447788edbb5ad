// Test fixture: signed bundles made from the real bpf/out/ build, the way the controller makes
// them (the agent may not import controller code), plus a raw signer that skips every check so
// tests can sign bundles the controller would never produce.
import { createHash, generateKeyPairSync, createPublicKey, sign, type KeyObject } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleDigest, type BundleFile } from '@bpfleet/proto';
import type { BundleToInstall } from './verify-bundle.js';

export const BPF_OUT = fileURLToPath(new URL('../../../bpf/out', import.meta.url));

export interface TestSigner {
  privateKey: KeyObject;
  publicKeyRaw: Buffer;
}

export function newSigner(): TestSigner {
  const { privateKey } = generateKeyPairSync('ed25519');
  const x = createPublicKey(privateKey).export({ format: 'jwk' }).x ?? '';
  return { privateKey, publicKeyRaw: Buffer.from(x, 'base64url') };
}

export function fileOf(path: string, content: Buffer, mode: number): BundleFile {
  return { path, content, sha256: createHash('sha256').update(content).digest('hex'), mode };
}

/** The bundle of a built probe, signed through the shared digest (as the controller does). */
export async function builtBundle(probe: string, arch: string, signer: TestSigner, version?: string): Promise<BundleToInstall> {
  const dir = join(BPF_OUT, arch);
  const manifest = await readFile(join(dir, `${probe}.manifest.json`));
  const files = [fileOf(probe, await readFile(join(dir, probe)), 0o755), fileOf(`${probe}.manifest.json`, manifest, 0o644)];
  const releases = await readdir(join(dir, 'btf')).catch(() => []);
  for (const r of releases.sort()) files.push(fileOf(`btf/${r}.btf`, await readFile(join(dir, 'btf', r, `${probe}.btf`)), 0o644));
  const b = { probe, version: version ?? (JSON.parse(manifest.toString()) as { version: string }).version, arch, files };
  return { ...b, signature: sign(null, bundleDigest(b), signer.privateKey) };
}

/** Re-signs `b` as is, with no validation: the canonical text written out by hand. */
export function signRaw(b: Omit<BundleToInstall, 'signature'>, signer: TestSigner): BundleToInstall {
  let text = `bpfleet-bundle-v1\n${b.probe}\n${b.version}\n${b.arch}\n`;
  for (const f of b.files) text += `${f.path}\n${f.sha256}\n${f.mode.toString(8)}\n`;
  const digest = createHash('sha256').update(text).digest();
  return { ...b, signature: sign(null, digest, signer.privateKey) };
}
