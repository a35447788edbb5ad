// The controller's bundle signing key: one Ed25519 keypair per controller, generated on first
// use and kept as PKCS#8 PEM (mode 0600) in the data dir. Agents pin its public half at
// enrollment (EnrollResponse.bundle_signing_key), so losing or replacing this file means every
// device has to re-enroll.
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { link, mkdir, open, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { signingKeyFingerprint } from '@bpfleet/proto';

export const SIGNING_KEY_FILE = 'bundle-signing-key.pem';

export interface BundleSigningKey {
  /** Where the key lives. */
  path: string;
  privateKey: KeyObject;
  /** The 32 raw bytes agents pin (EnrollResponse.bundle_signing_key). */
  publicKeyRaw: Buffer;
  /** signingKeyFingerprint(publicKeyRaw), as agents print it in refusals. */
  fingerprint: string;
}

/** Loads `<dataDir>/bundle-signing-key.pem`, creating it (and dataDir, mode 0700) if missing. */
export async function loadOrCreateSigningKey(dataDir: string): Promise<BundleSigningKey> {
  const path = join(dataDir, SIGNING_KEY_FILE);
  try {
    return await loadSigningKey(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' });
  // Write the whole key under a temporary name, then link it into place: a crash never leaves
  // a half-written key, and of two controllers starting at once exactly one key wins.
  const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.chmod(0o600);
    await fh.writeFile(pem);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await link(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    await unlink(tmp);
  }
  await syncDir(dataDir);
  return loadSigningKey(path);
}

/** Loads an existing key; refuses one other users could read, as ssh does. */
export async function loadSigningKey(path: string): Promise<BundleSigningKey> {
  const st = await stat(path);
  if ((st.mode & 0o077) !== 0) {
    throw new Error(
      `bundle signing key ${path} is accessible by group or others (mode ${(st.mode & 0o777).toString(8)}): run chmod 600 ${path}`,
    );
  }
  const privateKey = createPrivateKey(await readFile(path));
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new Error(`bundle signing key ${path} is a ${privateKey.asymmetricKeyType} key, not Ed25519`);
  }
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  const publicKeyRaw = Buffer.from(jwk.x ?? '', 'base64url');
  if (publicKeyRaw.length !== 32) throw new Error(`bundle signing key ${path}: public key is not 32 bytes`);
  return { path, privateKey, publicKeyRaw, fingerprint: signingKeyFingerprint(publicKeyRaw) };
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
