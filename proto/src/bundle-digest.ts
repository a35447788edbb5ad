// The canonical digest a probe bundle's Ed25519 signature covers (fleet.proto, DeployBundle.signature),
// and the checks both signer and verifier apply before computing it. The controller signs with
// this function and the agent verifies with it, so the two can never disagree on the bytes.
import { createHash } from 'node:crypto';
import type { BundleFile, DeployBundle } from './gen/bpfleet/v1/fleet.js';

export const BUNDLE_DIGEST_DOMAIN = 'bpfleet-bundle-v1';

/** Mode bits a bundle file may carry: rwxr-xr-x at most (no setuid/setgid/sticky, not group or world writable). */
export const BUNDLE_MODE_MASK = 0o755;

/** What the digest covers: everything in a DeployBundle but the command id, the contents and the signature. */
export type BundleDigestInput = Pick<DeployBundle, 'probe' | 'version' | 'arch'> & {
  files: readonly Pick<BundleFile, 'path' | 'sha256' | 'mode'>[];
};

const MAX_PATH_BYTES = 1024;
const MAX_COMPONENT_BYTES = 255;
// Portable file-name characters only: nothing a shell, a terminal or the newline-separated digest
// could misread.
const PATH_COMPONENT = /^[A-Za-z0-9_][A-Za-z0-9._+-]*$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
// The names next to version directories in a probe's install directory.
const RESERVED_VERSIONS = new Set(['current', 'previous']);

/**
 * Throws when `path` could name anything outside the directory it is relative to: empty,
 * absolute, `.`/`..` or empty components, NUL, backslash, control or non-portable characters.
 */
export function checkBundlePath(path: string): void {
  const bad = (why: string): never => {
    throw new Error(`unsafe bundle path ${JSON.stringify(path)}: ${why}`);
  };
  if (typeof path !== 'string' || path.length === 0) bad('empty');
  if (path.includes('\0')) bad('contains NUL');
  if (path.includes('\\')) bad('contains a backslash');
  if (path.startsWith('/')) bad('absolute');
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) bad(`longer than ${MAX_PATH_BYTES} bytes`);
  for (const part of path.split('/')) {
    if (part === '') bad('empty component (leading, trailing or doubled "/")');
    if (part === '.' || part === '..') bad(`"${part}" component`);
    if (Buffer.byteLength(part) > MAX_COMPONENT_BYTES) bad(`component longer than ${MAX_COMPONENT_BYTES} bytes`);
    if (!PATH_COMPONENT.test(part)) bad('only letters, digits and . _ + - are allowed, starting with a letter, digit or _');
  }
}

/**
 * Throws unless probe, version and arch are plain names: each becomes a directory name on the
 * device (probe, version) or is compared as is (arch).
 */
export function checkBundleHeader(b: Pick<DeployBundle, 'probe' | 'version' | 'arch'>): void {
  for (const [what, v] of [['probe', b.probe], ['version', b.version], ['arch', b.arch]] as const) {
    if (typeof v !== 'string' || !NAME.test(v)) {
      throw new Error(`bundle ${what} ${JSON.stringify(v)} is not a plain name (letters, digits, . _ + -; at most 64)`);
    }
  }
  if (RESERVED_VERSIONS.has(b.version)) throw new Error(`bundle version "${b.version}" is a reserved name`);
}

/** Throws unless a file entry can be put into the digest unambiguously. */
export function checkBundleFileEntry(f: Pick<BundleFile, 'path' | 'sha256' | 'mode'>): void {
  checkBundlePath(f.path);
  if (!SHA256_HEX.test(f.sha256)) throw new Error(`bundle file ${f.path}: sha256 "${f.sha256}" is not 64 lowercase hex digits`);
  if (!Number.isInteger(f.mode) || f.mode < 0 || (f.mode & ~BUNDLE_MODE_MASK) !== 0) {
    throw new Error(`bundle file ${f.path}: mode ${Number(f.mode).toString(8)} not allowed (at most 755)`);
  }
}

/**
 * The canonical text of a bundle, exactly as fleet.proto documents it. Modes are written as
 * plain octal without a leading zero ("755", "644"). Throws on any field that could make the
 * newline-separated text ambiguous.
 */
export function bundleCanonicalText(b: BundleDigestInput): string {
  checkBundleHeader(b);
  let text = `${BUNDLE_DIGEST_DOMAIN}\n${b.probe}\n${b.version}\n${b.arch}\n`;
  for (const f of b.files) {
    checkBundleFileEntry(f);
    text += `${f.path}\n${f.sha256}\n${f.mode.toString(8)}\n`;
  }
  return text;
}

/** sha256 of the canonical text: the 32 bytes the Ed25519 signature is made over. */
export function bundleDigest(b: BundleDigestInput): Buffer {
  return createHash('sha256').update(bundleCanonicalText(b), 'utf8').digest();
}

/** Short fingerprint of a raw Ed25519 public key, as the controller and agent both display it. */
export function signingKeyFingerprint(rawPublicKey: Uint8Array): string {
  return createHash('sha256').update(rawPublicKey).digest('hex').slice(0, 16);
}
