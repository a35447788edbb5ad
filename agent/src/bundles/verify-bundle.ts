// Every check a bundle must pass before a single byte of it touches the disk. Pure: reads
// nothing but the bundle, so a refusal leaves the install directory exactly as it was.
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import {
  bundleDigest,
  checkBundleFileEntry,
  checkBundleHeader,
  checkBundlePath,
  signingKeyFingerprint,
  type DeployBundle,
} from '@bpfleet/proto';
import { BundleInstallError } from './bundle-install-error.js';

export type BundleToInstall = Omit<DeployBundle, 'commandId'>;

export interface BundleLimits {
  /** Sum of all file contents, bytes. */
  maxBytes: number;
  maxFiles: number;
}

/** The controller's Ed25519 public key as pinned at enrollment (EnrollResponse.bundle_signing_key). */
export interface PinnedKey {
  key: KeyObject;
  fingerprint: string;
}

export function pinnedKeyFromRaw(raw: Uint8Array): PinnedKey {
  if (raw.length !== 32) throw new Error(`pinned bundle signing key is ${raw.length} bytes, an Ed25519 key is 32: re-enroll`);
  const x = Buffer.from(raw).toString('base64url');
  return { key: createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' }), fingerprint: signingKeyFingerprint(raw) };
}

export function bundleLabel(b: Pick<BundleToInstall, 'probe' | 'version'>): string {
  const plain = (s: unknown) => (typeof s === 'string' && /^[A-Za-z0-9._+-]{1,64}$/.test(s) ? s : JSON.stringify(String(s).slice(0, 64)));
  return `bundle ${plain(b.probe)} ${plain(b.version)}`;
}

/** Throws BundleInstallError unless the bundle is well-formed, signed by `pinned`, for `arch`, and intact. */
export function verifyBundle(b: BundleToInstall, pinned: PinnedKey, arch: string, limits: BundleLimits): void {
  const label = bundleLabel(b);
  function refuse(reason: BundleInstallError['reason'], why: string): never {
    throw new BundleInstallError(reason, `${label}: ${why}: refusing`);
  }

  try {
    checkBundleHeader(b);
  } catch (err) {
    refuse('malformed', (err as Error).message);
  }
  if (b.files.length > limits.maxFiles) refuse('too-large', `${b.files.length} files, this agent takes at most ${limits.maxFiles}`);
  const bytes = b.files.reduce((n, f) => n + f.content.length, 0);
  if (bytes > limits.maxBytes) {
    refuse('too-large', `${bytes} bytes of files exceed this agent's bundle limit of ${limits.maxBytes} bytes (maxBundleBytes)`);
  }

  const seen = new Set<string>();
  for (const f of b.files) {
    try {
      checkBundlePath(f.path);
    } catch (err) {
      refuse('unsafe-path', (err as Error).message);
    }
    try {
      checkBundleFileEntry(f);
    } catch (err) {
      refuse('malformed', (err as Error).message);
    }
    if (seen.has(f.path)) refuse('duplicate-path', `path ${f.path} appears twice`);
    seen.add(f.path);
  }
  for (const p of seen) {
    for (let i = p.indexOf('/'); i > 0; i = p.indexOf('/', i + 1)) {
      if (seen.has(p.slice(0, i))) refuse('duplicate-path', `path ${p.slice(0, i)} is both a file and the directory of ${p}`);
    }
  }

  let signed: boolean;
  try {
    signed = verify(null, bundleDigest(b), pinned.key, b.signature);
  } catch (_) {
    signed = false; // a signature of the wrong length is just as unsigned
  }
  if (!signed) {
    throw new BundleInstallError(
      'signature',
      `${label}: signature does not verify against the controller key pinned at enrollment (fingerprint ${pinned.fingerprint}): refusing; re-enroll if the controller key changed`,
    );
  }

  if (b.arch !== arch) {
    throw new BundleInstallError('arch', `${label}: built for ${b.arch}, this device is ${arch}: refusing; deploy the ${arch} build of ${b.probe}`);
  }

  for (const f of b.files) {
    const actual = createHash('sha256').update(f.content).digest('hex');
    if (actual !== f.sha256) {
      throw new BundleInstallError(
        'sha256',
        `${label}: file ${f.path} has sha256 ${actual.slice(0, 16)}.., its signed sha256 is ${f.sha256.slice(0, 16)}..: refusing; the bundle was altered or corrupted on the way, deploy it again`,
      );
    }
  }

  const loader = b.files.find((f) => f.path === b.probe);
  if (!loader) refuse('no-loader', `no loader (a file named ${b.probe})`);
  if ((loader.mode & 0o100) === 0) refuse('no-loader', `loader ${b.probe} is not executable (mode ${loader.mode.toString(8)})`);
}
