import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { signingKeyFingerprint } from '@bpfleet/proto';
import { BundleInstallError, type BundleInstallFailure } from './bundle-install-error.js';
import { BundleInstaller, type BundleInstallerOptions } from './bundle-installer.js';
import { BPF_OUT, builtBundle, fileOf, newSigner, signRaw, type TestSigner } from './signed-bundle.fixture.js';
import type { BundleToInstall } from './verify-bundle.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let root: string;
let installDir: string;
let signer: TestSigner;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'bpfleet-agent-bundles-'));
  installDir = join(root, 'install');
  signer = newSigner();
});
afterEach(async () => { await rm(root, { recursive: true, force: true }); });

function installer(opts: Partial<BundleInstallerOptions> = {}): BundleInstaller {
  return new BundleInstaller({ installDir, pinnedKey: signer.publicKeyRaw, arch: 'x86_64', ...opts });
}

/** Everything under `dir`: type, mode, content hash or link target (and inode, for no-rewrite checks). */
async function snapshot(dir: string, withInodes = false): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    for (const name of (await readdir(join(dir, rel))).sort()) {
      const p = rel ? `${rel}/${name}` : name;
      const st = await lstat(join(dir, p));
      const ino = withInodes ? ` ino=${st.ino}` : '';
      if (st.isSymbolicLink()) out.push(`${p} -> ${await readlink(join(dir, p))}${ino}`);
      else if (st.isDirectory()) { out.push(`${p}/ ${(st.mode & 0o7777).toString(8)}${ino}`); await walk(p); }
      else out.push(`${p} ${(st.mode & 0o7777).toString(8)} ${sha(await readFile(join(dir, p)))}${ino}`);
    }
  };
  await walk('');
  return out;
}

async function expectRefused(p: Promise<unknown>, reason: BundleInstallFailure, message: RegExp | string): Promise<void> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(BundleInstallError);
  expect((err as BundleInstallError).reason).toBe(reason);
  if (typeof message === 'string') expect((err as Error).message).toBe(message);
  else expect((err as Error).message).toMatch(message);
}

describe('BundleInstaller round trip with the real loaders', () => {
  it('installs x86_64 tcpstates, lists it, and the installed loader runs', async () => {
    const bundle = await builtBundle('tcpstates', 'x86_64', signer);
    const out = await installer().install(bundle);
    expect(out).toMatchObject({ probe: 'tcpstates', version: bundle.version, changed: true, previous: null });

    const probeDir = join(installDir, 'tcpstates');
    expect((await readdir(probeDir)).sort()).toEqual([bundle.version, 'current']);
    expect(await readlink(join(probeDir, 'current'))).toBe(bundle.version);
    expect((await stat(join(probeDir, 'current/tcpstates'))).mode & 0o7777).toBe(0o755);
    expect((await stat(join(probeDir, 'current/tcpstates.manifest.json'))).mode & 0o7777).toBe(0o644);
    const loaderSha = sha(await readFile(join(BPF_OUT, 'x86_64/tcpstates')));
    expect(await installer().list()).toEqual([{ name: 'tcpstates', version: bundle.version, sha256: loaderSha }]);

    const { stdout } = await promisify(execFile)(installer().loaderPath('tcpstates'), ['--manifest']);
    expect(JSON.parse(stdout)).toMatchObject({ probe: 'tcpstates', version: bundle.version });
  });

  it('installs arm tcpwin with the minimized BTF of the armmp kernel', async () => {
    const bundle = await builtBundle('tcpwin', 'arm', signer);
    expect(bundle.files.map((f) => f.path)).toContain('btf/5.10.0-32-armmp.btf');
    await installer({ arch: 'arm' }).install(bundle);
    const cur = join(installDir, 'tcpwin/current');
    expect((await readFile(join(cur, 'btf/5.10.0-32-armmp.btf'))).equals(await readFile(join(BPF_OUT, 'arm/btf/5.10.0-32-armmp/tcpwin.btf')))).toBe(true);
    expect(sha(await readFile(join(cur, 'tcpwin')))).toBe(sha(await readFile(join(BPF_OUT, 'arm/tcpwin'))));
    expect((await installer({ arch: 'arm' }).list()).map((p) => [p.name, p.version])).toEqual([['tcpwin', bundle.version]]);
  });

  it('lists every installed probe by name', async () => {
    const i = installer();
    await i.install(await builtBundle('tcpwin', 'x86_64', signer));
    await i.install(await builtBundle('tcpstates', 'x86_64', signer));
    const list = await i.list();
    expect(list.map((p) => p.name)).toEqual(['tcpstates', 'tcpwin']);
    expect(list[1]!.sha256).toBe(sha(await readFile(join(BPF_OUT, 'x86_64/tcpwin'))));
  });
});

describe('BundleInstaller refusals install nothing', () => {
  const other = newSigner();
  // Each case gets a correctly signed v2.0.0 of tcpstates to spoil; v1 is installed already.
  type Case = [string, (b: BundleToInstall) => BundleToInstall, BundleInstallFailure, RegExp | ((fp: string) => string), Partial<BundleInstallerOptions>?];
  const cases: Case[] = [
    ['one byte of the loader changed', (b) => {
      const content = Buffer.from(b.files[0]!.content);
      content[4096] = content[4096]! ^ 1;
      return { ...b, files: [{ ...b.files[0]!, content }, ...b.files.slice(1)] };
    }, 'sha256', /^bundle tcpstates 2\.0\.0: file tcpstates has sha256 [0-9a-f]{16}\.\., its signed sha256 is [0-9a-f]{16}\.\.: refusing; the bundle was altered/],
    ['signed by another key', (b) => signRaw(b, other), 'signature', (fp) =>
      `bundle tcpstates 2.0.0: signature does not verify against the controller key pinned at enrollment (fingerprint ${fp}): refusing; re-enroll if the controller key changed`],
    ['a truncated signature', (b) => ({ ...b, signature: b.signature.subarray(0, 63) }), 'signature', /signature does not verify/],
    ['built for arm', (b) => signRaw({ ...b, arch: 'arm' }, signer), 'arch', /^bundle tcpstates 2\.0\.0: built for arm, this device is x86_64: refusing/],
    ...['../../etc/passwd', '/abs', 'a/../../b', '', 'a\0b', '..\\..\\b', 'btf/../../../x'].map((path): Case => [
      `path ${JSON.stringify(path)}`,
      (b: BundleToInstall) => signRaw({ ...b, files: [...b.files, fileOf(path, Buffer.from('root::0:0::/:/bin/sh\n'), 0o644)] }, signer),
      'unsafe-path',
      new RegExp(`^bundle tcpstates 2\\.0\\.0: unsafe bundle path ${JSON.stringify(path).replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&')}: `),
    ]),
    ['a duplicate path', (b) => signRaw({ ...b, files: [...b.files, { ...b.files[1]!, mode: 0o755 }] }, signer), 'duplicate-path', /path tcpstates\.manifest\.json appears twice/],
    ['a path that is a file and a directory', (b) => signRaw({ ...b, files: [...b.files, fileOf('tcpstates/x', Buffer.from('x'), 0o644)] }, signer), 'duplicate-path', /path tcpstates is both a file and the directory of tcpstates\/x/],
    ['no loader', (b) => signRaw({ ...b, files: b.files.slice(1) }, signer), 'no-loader', /^bundle tcpstates 2\.0\.0: no loader \(a file named tcpstates\): refusing$/],
    ['a loader that is not executable', (b) => signRaw({ ...b, files: [{ ...b.files[0]!, mode: 0o644 }, ...b.files.slice(1)] }, signer), 'no-loader', /loader tcpstates is not executable \(mode 644\)/],
    ['a setuid loader', (b) => signRaw({ ...b, files: [{ ...b.files[0]!, mode: 0o4755 }, ...b.files.slice(1)] }, signer), 'malformed', /mode 4755 not allowed/],
    ['a version naming another directory', (b) => signRaw({ ...b, version: '../x' }, signer), 'malformed', /^bundle "\.\.\/x"|version "\.\.\/x" is not a plain name/],
    ['a version named current', (b) => signRaw({ ...b, version: 'current' }, signer), 'malformed', /reserved/],
    ['more bytes than the agent takes', (b) => b, 'too-large', /bytes of files exceed this agent's bundle limit of 200000 bytes/, { maxBundleBytes: 200_000 }],
    ['more files than the agent takes', (b) => b, 'too-large', /2 files, this agent takes at most 1/, { maxBundleFiles: 1 }],
  ];

  it.each(cases)('refuses %s', async (_name, spoil, reason, message, opts) => {
    await installer().install(await builtBundle('tcpstates', 'x86_64', signer));
    const before = await snapshot(installDir);
    expect(before).toContain('tcpstates/current -> 1.0.0');

    const bad = spoil(await builtBundle('tcpstates', 'x86_64', signer, '2.0.0'));
    const expected = typeof message === 'function' ? message(signingKeyFingerprint(signer.publicKeyRaw)) : message;
    await expectRefused(installer(opts).install(bad), reason, expected);
    expect(await snapshot(installDir)).toEqual(before);
  });

  it('a refused first install does not even create the install directory', async () => {
    const b = await builtBundle('tcpstates', 'x86_64', newSigner());
    await expectRefused(installer().install(b), 'signature', /signature does not verify/);
    await expect(lstat(installDir)).rejects.toThrow(/ENOENT/);
  });

  it('refuses to change the files of an installed version', async () => {
    const i = installer();
    const v1 = await builtBundle('tcpstates', 'x86_64', signer);
    await i.install(v1);
    const before = await snapshot(installDir);
    const manifest = fileOf('tcpstates.manifest.json', Buffer.concat([v1.files[1]!.content, Buffer.from('\n')]), 0o644);
    const changed = signRaw({ ...v1, files: [v1.files[0]!, manifest] }, signer);
    await expectRefused(i.install(changed), 'version-conflict',
      /^bundle tcpstates 1\.0\.0: version 1\.0\.0 is already installed with other files \(tcpstates\.manifest\.json has sha256 .*\): refusing to change an installed version; bump the probe version/);
    expect(await snapshot(installDir)).toEqual(before);
  });
});

describe('BundleInstaller versions', () => {
  it('installing the same version again changes nothing, not even inodes', async () => {
    const i = installer();
    const b = await builtBundle('tcpstates', 'x86_64', signer);
    await i.install(b);
    const before = await snapshot(installDir, true);
    expect(await i.install(b)).toMatchObject({ changed: false, version: b.version });
    expect(await snapshot(installDir, true)).toEqual(before);
  });

  it('switches current atomically, keeps previous for rollback and prunes the rest', async () => {
    const i = installer();
    const probeDir = join(installDir, 'tcpstates');
    const link = (name: string) => readlink(join(probeDir, name)).catch(() => null);
    const v = (version: string) => builtBundle('tcpstates', 'x86_64', signer, version);

    await i.install(await v('1.0.0'));
    expect([await link('current'), await link('previous')]).toEqual(['1.0.0', null]);
    await expectRefused(i.rollback('tcpstates'), 'no-previous', /^tcpstates: no previous version to roll back to \(current 1\.0\.0\)/);

    expect(await i.install(await v('2.0.0'))).toMatchObject({ version: '2.0.0', changed: true, previous: '1.0.0' });
    expect([await link('current'), await link('previous')]).toEqual(['2.0.0', '1.0.0']);

    expect(await i.rollback('tcpstates')).toEqual({ probe: 'tcpstates', version: '1.0.0', replaced: '2.0.0' });
    expect([await link('current'), await link('previous')]).toEqual(['1.0.0', '2.0.0']);
    expect((await i.list())[0]!.version).toBe('1.0.0');

    await mkdir(join(probeDir, '.staging-deadbeef'));   // left by an install that crashed
    await i.install(await v('3.0.0'));
    expect([await link('current'), await link('previous')]).toEqual(['3.0.0', '1.0.0']);
    expect((await readdir(probeDir)).sort()).toEqual(['1.0.0', '3.0.0', 'current', 'previous']);

    // Reinstalling the previous version makes it current again without rewriting it.
    expect(await i.install(await v('1.0.0'))).toMatchObject({ changed: true, previous: '3.0.0' });
    expect([await link('current'), await link('previous')]).toEqual(['1.0.0', '3.0.0']);
  });

  it('current always resolves to a complete version while installs and rollbacks run', async () => {
    const i = installer();
    const bundles = await Promise.all(['1.0.0', '2.0.0', '3.0.0', '4.0.0', '5.0.0'].map((ver) => builtBundle('tcpstates', 'x86_64', signer, ver)));
    await i.install(bundles[0]!);
    const loaderSha = bundles[0]!.files[0]!.sha256;
    const loaderSize = bundles[0]!.files[0]!.content.length;
    const cur = join(installDir, 'tcpstates/current');

    let looks = 0;
    const broken: string[] = [];
    let running = true;
    const { statSync, readFileSync, readlinkSync } = await import('node:fs');
    const look = () => {
      if (!running) return;
      looks++;
      try {
        const target = readlinkSync(cur);
        if (statSync(join(cur, 'tcpstates')).size !== loaderSize) broken.push(`${target}: loader incomplete`);
        readFileSync(join(cur, 'tcpstates.manifest.json'));
      } catch (err) {
        broken.push(String(err));
      }
      setImmediate(look);
    };
    look();
    for (const b of bundles.slice(1)) {
      await i.install(b);
      await i.rollback('tcpstates');
      await i.rollback('tcpstates');
    }
    running = false;
    expect(broken).toEqual([]);
    expect(looks).toBeGreaterThan(20);
    expect(sha(await readFile(join(cur, 'tcpstates')))).toBe(loaderSha);
    expect(await readlink(cur)).toBe('5.0.0');
  });
});
