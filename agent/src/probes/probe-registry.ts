// Where installed loaders live. The bundle installer writes `<installDir>/<probe>/current/<probe>`
// (the layout is an option); a development agent can fall back to the build output
// `bpf/out/<arch>/<probe>`.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { access, constants, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { InstalledProbe } from '@bpfleet/proto';
import type { ManifestCache } from './manifest-cache.js';

export interface ProbeRegistryOptions {
  /** Root of installed probes. */
  installDir: string;
  /** Loader path below installDir; `{probe}` is replaced. */
  layout?: string;
  /** Fallback directory holding `<probe>` binaries directly (bpf/out/<arch>), for development. */
  devDir?: string;
}

export const DEFAULT_LAYOUT = '{probe}/current/{probe}';

export interface ResolvedProbe {
  path: string;
  source: 'installed' | 'dev';
}

export class ProbeNotInstalledError extends Error {
  override name = 'ProbeNotInstalledError';
}

// Probe names become path components: no separators, no dots leading anywhere.
const PROBE_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file)
      .on('data', (d) => h.update(d))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

export class ProbeRegistry {
  private readonly layout: string;

  constructor(private readonly opts: ProbeRegistryOptions) {
    this.layout = opts.layout ?? DEFAULT_LAYOUT;
  }

  installedPath(probe: string): string {
    return path.join(this.opts.installDir, this.layout.replaceAll('{probe}', probe));
  }

  /** The loader to run for `probe`: installed first, then the dev directory. */
  async resolve(probe: string): Promise<ResolvedProbe> {
    if (!PROBE_NAME.test(probe)) throw new ProbeNotInstalledError(`"${probe}" is not a valid probe name`);
    const installed = this.installedPath(probe);
    if (await isExecutable(installed)) return { path: installed, source: 'installed' };
    const tried = [installed];
    if (this.opts.devDir !== undefined) {
      const dev = path.join(this.opts.devDir, probe);
      if (await isExecutable(dev)) return { path: dev, source: 'dev' };
      tried.push(dev);
    }
    throw new ProbeNotInstalledError(`probe ${probe} is not installed (no executable loader at ${tried.join(' or ')})`);
  }

  /** Every probe with a runnable loader, named by its manifest (for Hello.installed). */
  async list(manifests: ManifestCache): Promise<InstalledProbe[]> {
    const names = new Set<string>();
    for (const dir of [this.opts.installDir, this.opts.devDir]) {
      if (dir === undefined) continue;
      const entries = await readdir(dir).catch(() => [] as string[]);
      for (const e of entries) if (PROBE_NAME.test(e)) names.add(e);
    }
    const out: InstalledProbe[] = [];
    for (const name of [...names].sort()) {
      const found = await this.resolve(name).catch(() => undefined);
      if (found === undefined) continue;
      const lm = await manifests.get(found.path).catch(() => undefined);
      if (lm === undefined || lm.manifest.probe !== name) continue; // not a loader (or a foreign file)
      out.push({ name, version: lm.manifest.version, sha256: await sha256File(found.path) });
    }
    return out;
  }
}

/** The build output directory of one architecture, for ProbeRegistryOptions.devDir. */
export function devLoaderDir(repoRoot: string, arch: string): string {
  return path.join(repoRoot, 'bpf', 'out', arch);
}
