// Installs signed probe bundles on the device:
//
//   <installDir>/<probe>/<version>/...       one directory per installed version
//   <installDir>/<probe>/current -> <version> what runs
//   <installDir>/<probe>/previous -> <version> what rollback() returns to
//
// A bundle is verified in memory first (verify-bundle.ts), so a refusal writes nothing. It is
// then staged in <probe>/.staging-<random>, fsynced, verified again from disk, renamed into
// place and made current by an atomic symlink switch. Versions other than current and
// previous are pruned. One installer (one agent) owns an install directory.
import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, rename, rm, rmdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { InstalledProbe } from '@bpfleet/proto';
import { BundleInstallError } from './bundle-install-error.js';
import { readProbeLink, setProbeLink } from './probe-links.js';
import { diffAgainstDisk, syncDir, writeFiles } from './version-dir.js';
import { bundleLabel, pinnedKeyFromRaw, verifyBundle, type BundleToInstall, type PinnedKey } from './verify-bundle.js';

export interface BundleInstallerOptions {
  installDir: string;
  /** EnrollResponse.bundle_signing_key: the controller's raw 32-byte Ed25519 public key. */
  pinnedKey: Uint8Array;
  /** This device's architecture as probes name it: x86_64, arm64 or arm. */
  arch: string;
  /** Largest bundle accepted, sum of file sizes (default 64 MiB). */
  maxBundleBytes?: number;
  /** Most files in one bundle (default 64). */
  maxBundleFiles?: number;
}

export interface InstallOutcome {
  probe: string;
  version: string;
  /** The version directory now current. */
  dir: string;
  /** False when this version was already current (installing again is a no-op). */
  changed: boolean;
  /** The version rollback() would return to, if any. */
  previous: string | null;
}

export interface RollbackOutcome {
  probe: string;
  /** The version now current. */
  version: string;
  /** The version it replaced, now `previous`. */
  replaced: string;
}

// Installs and rollbacks of one probe directory run one at a time, across installer instances.
const queues = new Map<string, Promise<unknown>>();
function serialized<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const run = (queues.get(key) ?? Promise.resolve()).then(fn, fn);
  const tail = run.catch(() => undefined);
  queues.set(key, tail);
  void tail.then(() => { if (queues.get(key) === tail) queues.delete(key); });
  return run;
}

export class BundleInstaller {
  readonly installDir: string;
  private readonly pinned: PinnedKey;
  private readonly arch: string;
  private readonly limits: { maxBytes: number; maxFiles: number };

  constructor(opts: BundleInstallerOptions) {
    this.installDir = resolve(opts.installDir);
    this.pinned = pinnedKeyFromRaw(opts.pinnedKey);
    this.arch = opts.arch;
    this.limits = { maxBytes: opts.maxBundleBytes ?? 64 << 20, maxFiles: opts.maxBundleFiles ?? 64 };
  }

  /** Where the current loader of `probe` is (through the `current` symlink). */
  loaderPath(probe: string): string {
    return join(this.installDir, probe, 'current', probe);
  }

  /** Verifies and installs `bundle`; throws BundleInstallError (message for CommandResult.error). */
  async install(bundle: BundleToInstall): Promise<InstallOutcome> {
    verifyBundle(bundle, this.pinned, this.arch, this.limits);
    const probeDir = join(this.installDir, bundle.probe);
    return serialized(probeDir, () => this.installVerified(bundle, probeDir));
  }

  private async installVerified(bundle: BundleToInstall, probeDir: string): Promise<InstallOutcome> {
    const { probe, version } = bundle;
    const label = bundleLabel(bundle);
    const versionDir = join(probeDir, version);
    const current = await readProbeLink(probeDir, 'current');

    const installed = await exists(versionDir);
    if (installed) {
      const diff = await diffAgainstDisk(versionDir, bundle.files).catch(ioError(label, 'checking the installed version'));
      if (diff !== null) {
        throw new BundleInstallError(
          'version-conflict',
          `${label}: version ${version} is already installed with other files (${diff}): refusing to change an installed version; bump the probe version and rebuild`,
        );
      }
    }
    if (installed && current === version) {
      return { probe, version, dir: versionDir, changed: false, previous: await readProbeLink(probeDir, 'previous') };
    }

    if (!installed) await this.stage(bundle, probeDir, versionDir, label);
    try {
      if (current !== null && current !== version) await setProbeLink(probeDir, 'previous', current);
      await setProbeLink(probeDir, 'current', version);
      await this.prune(probeDir);
    } catch (err) {
      return ioError(label, 'switching to the new version')(err);
    }
    return { probe, version, dir: versionDir, changed: true, previous: await readProbeLink(probeDir, 'previous') };
  }

  private async stage(bundle: BundleToInstall, probeDir: string, versionDir: string, label: string): Promise<void> {
    const created = await mkdir(probeDir, { recursive: true, mode: 0o755 }).catch(ioError(label, `creating ${probeDir}`));
    const staging = join(probeDir, `.staging-${randomBytes(6).toString('hex')}`);
    try {
      await mkdir(staging, { mode: 0o755 });
      await writeFiles(staging, bundle.files);
      const diff = await diffAgainstDisk(staging, bundle.files);
      if (diff) throw new BundleInstallError('io', `${label}: read back from disk, ${diff}: not installed; check the device's storage`);
      await rename(staging, versionDir);
      await syncDir(probeDir);
    } catch (err) {
      await rm(staging, { recursive: true, force: true }).catch(() => undefined);
      // Leave no empty probe directory behind from a first install that failed (rmdir: only if
      // empty, and never the install dir, which another probe's install may be using).
      if (created) await rmdir(probeDir).catch(() => undefined);
      if (err instanceof BundleInstallError) throw err;
      ioError(label, 'staging the files')(err);
    }
  }

  /** Makes `previous` current again (and the replaced version previous). */
  async rollback(probe: string): Promise<RollbackOutcome> {
    if (!/^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/.test(probe)) throw new BundleInstallError('no-previous', `no probe named ${JSON.stringify(probe)}`);
    const probeDir = join(this.installDir, probe);
    return serialized(probeDir, async () => {
      const current = await readProbeLink(probeDir, 'current');
      const previous = await readProbeLink(probeDir, 'previous');
      if (current === null || previous === null || previous === current || !(await exists(join(probeDir, previous)))) {
        throw new BundleInstallError(
          'no-previous',
          `${probe}: no previous version to roll back to (current ${current ?? 'none'}): deploy the version you want instead`,
        );
      }
      // current first: a crash in between leaves the rolled-back version running.
      await setProbeLink(probeDir, 'current', previous);
      await setProbeLink(probeDir, 'previous', current);
      return { probe, version: previous, replaced: current };
    });
  }

  /** Installed probes with their current version and loader sha256, for Hello.installed. */
  async list(): Promise<InstalledProbe[]> {
    const entries = await readdir(this.installDir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [];
      throw err;
    });
    const out: InstalledProbe[] = [];
    for (const e of entries) {
      if (!e.isDirectory() || e.name.startsWith('.')) continue;
      const version = await readProbeLink(join(this.installDir, e.name), 'current');
      if (version === null) continue;
      const loader = await readFile(join(this.installDir, e.name, version, e.name)).catch(() => null);
      if (!loader) continue;
      out.push({ name: e.name, version, sha256: createHash('sha256').update(loader).digest('hex') });
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  // Everything but current, previous and the links themselves: older versions, leftovers of
  // installs that crashed half way.
  private async prune(probeDir: string): Promise<void> {
    const keep = new Set(['current', 'previous']);
    for (const link of ['current', 'previous'] as const) {
      const v = await readProbeLink(probeDir, link);
      if (v !== null) keep.add(v);
    }
    for (const name of await readdir(probeDir)) {
      if (!keep.has(name)) await rm(join(probeDir, name), { recursive: true, force: true });
    }
    await syncDir(probeDir);
  }
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(() => true, () => false);
}

function ioError(label: string, doing: string): (err: unknown) => never {
  return (err) => {
    if (err instanceof BundleInstallError) throw err;
    throw new BundleInstallError('io', `${label}: failed ${doing}: ${(err as Error).message}`, { cause: err });
  };
}
