import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadOrCreateSigningKey, SIGNING_KEY_FILE } from './signing-key.js';

let dir: string;
beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'bpfleet-ctl-key-')); });
afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

describe('bundle signing key', () => {
  it('is generated on first use as a 0600 PEM and loaded again unchanged', async () => {
    const dataDir = join(dir, 'data');
    const k1 = await loadOrCreateSigningKey(dataDir);
    const st = await stat(join(dataDir, SIGNING_KEY_FILE));
    expect(st.mode & 0o777).toBe(0o600);
    expect(await readFile(k1.path, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(k1.publicKeyRaw.length).toBe(32);
    expect(k1.fingerprint).toMatch(/^[0-9a-f]{16}$/);
    const k2 = await loadOrCreateSigningKey(dataDir);
    expect(k2.publicKeyRaw.equals(k1.publicKeyRaw)).toBe(true);
  });

  it('gives one key to concurrent first users', async () => {
    const keys = await Promise.all([1, 2, 3, 4].map(() => loadOrCreateSigningKey(dir)));
    expect(new Set(keys.map((k) => k.fingerprint)).size).toBe(1);
  });

  it('refuses a key others can read', async () => {
    const k = await loadOrCreateSigningKey(dir);
    await chmod(k.path, 0o644);
    await expect(loadOrCreateSigningKey(dir)).rejects.toThrow(`mode 644): run chmod 600 ${k.path}`);
  });
});
