// The disk failing under an install: nothing may be left behind, and what was current stays.
import { lstat, readdir, readFile, readlink, rm, writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BundleInstallError } from './bundle-install-error.js';
import { BundleInstaller } from './bundle-installer.js';
import { builtBundle, newSigner, type TestSigner } from './signed-bundle.fixture.js';
import * as versionDir from './version-dir.js';

vi.mock('./version-dir.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('./version-dir.js')>();
  return { ...real, writeFiles: vi.fn(real.writeFiles) };
});
const realWriteFiles = (await vi.importActual<typeof import('./version-dir.js')>('./version-dir.js')).writeFiles;

let installDir: string;
let signer: TestSigner;
beforeEach(async () => {
  installDir = join(await mkdtemp(join(tmpdir(), 'bpfleet-agent-disk-')), 'install');
  signer = newSigner();
});
afterEach(async () => {
  vi.mocked(versionDir.writeFiles).mockReset().mockImplementation(realWriteFiles);
  await rm(join(installDir, '..'), { recursive: true, force: true });
});

const installer = () => new BundleInstaller({ installDir, pinnedKey: signer.publicKeyRaw, arch: 'x86_64' });

describe('BundleInstaller when the disk fails', () => {
  it('refuses files that read back differently and keeps the current version', async () => {
    await installer().install(await builtBundle('tcpstates', 'x86_64', signer));
    vi.mocked(versionDir.writeFiles).mockImplementationOnce(async (dir, files) => {
      await realWriteFiles(dir, files);
      const p = join(dir, 'tcpstates');
      const bytes = await readFile(p);
      bytes[100] = bytes[100]! ^ 0xff; // a bit flipped on the way to the disk
      await writeFile(p, bytes);
    });
    const err = await installer().install(await builtBundle('tcpstates', 'x86_64', signer, '2.0.0')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BundleInstallError);
    expect((err as BundleInstallError).reason).toBe('io');
    expect((err as Error).message).toMatch(/^bundle tcpstates 2\.0\.0: read back from disk, tcpstates has sha256 .*: not installed; check the device's storage$/);
    expect((await readdir(join(installDir, 'tcpstates'))).sort()).toEqual(['1.0.0', 'current']);
    expect(await readlink(join(installDir, 'tcpstates/current'))).toBe('1.0.0');
  });

  it('leaves no probe directory behind when the first install cannot write', async () => {
    vi.mocked(versionDir.writeFiles).mockRejectedValueOnce(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }));
    const err = await installer().install(await builtBundle('tcpwin', 'x86_64', signer)).catch((e: unknown) => e);
    expect((err as BundleInstallError).reason).toBe('io');
    expect((err as Error).message).toBe('bundle tcpwin 1.0.0: failed staging the files: ENOSPC: no space left on device, write');
    await expect(lstat(join(installDir, 'tcpwin'))).rejects.toThrow(/ENOENT/);
  });
});
