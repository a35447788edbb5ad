// Builds a signed DeployBundle from what `make -C bpf` left in bpf/out/<arch>/: the static
// loader, its manifest and the minimized BTF for kernels without BTF.
import { createHash, sign } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { bundleDigest, type BundleFile, type DeployBundle } from '@bpfleet/proto';
import type { BundleSigningKey } from './signing-key.js';
import { isProbeArch, loaderArch, PROBE_ARCHES } from './loader-arch.js';

/** A DeployBundle ready to send once the caller adds its command id. */
export type SignedBundle = Omit<DeployBundle, 'commandId'>;

export interface BuildBundleOptions {
  probe: string;
  arch: string;
  /** bpf/out: holds <arch>/<probe>, <arch>/<probe>.manifest.json, <arch>/btf/<release>/<probe>.btf. */
  outDir: string;
  key: BundleSigningKey;
}

export async function buildBundle({ probe, arch, outDir, key }: BuildBundleOptions): Promise<SignedBundle> {
  if (!isProbeArch(arch)) throw new Error(`unknown arch "${arch}": probes are built for ${PROBE_ARCHES.join(', ')}`);
  const archDir = join(outDir, arch);
  const hint = `run make -C ${shown(dirname(outDir))} ARCH=${arch}`;
  const loaderPath = join(archDir, probe);
  const manifestPath = `${loaderPath}.manifest.json`;

  const loader = await readBuilt(loaderPath, `no loader ${shown(loaderPath)}: ${hint}`);
  const built = await loaderArch(loaderPath);
  if (built !== arch) throw new Error(`${shown(loaderPath)} is ${built === 'not an ELF file' ? built : `built for ${built}`}, not ${arch}: ${hint}`);
  const manifestText = await readBuilt(manifestPath, `no manifest ${shown(manifestPath)}: ${hint}`);
  const manifest = parseManifest(manifestText, manifestPath);
  if (manifest.probe !== probe) throw new Error(`${shown(manifestPath)} describes probe "${manifest.probe}", not "${probe}"`);

  const files: BundleFile[] = [file(probe, loader, 0o755), file(`${probe}.manifest.json`, manifestText, 0o644)];
  for (const release of await btfReleases(archDir)) {
    const btf = await readFile(join(archDir, 'btf', release, `${probe}.btf`)).catch(missingIsNull);
    if (btf) files.push(file(`btf/${release}.btf`, btf, 0o644));
  }

  const unsigned = { probe, version: manifest.version, arch, files };
  return { ...unsigned, signature: sign(null, bundleDigest(unsigned), key.privateKey) };
}

function file(path: string, content: Buffer, mode: number): BundleFile {
  return { path, content, sha256: createHash('sha256').update(content).digest('hex'), mode };
}

async function readBuilt(path: string, missing: string): Promise<Buffer> {
  const content = await readFile(path).catch(missingIsNull);
  if (!content) throw new Error(missing);
  return content;
}

function missingIsNull(err: NodeJS.ErrnoException): null {
  if (err.code === 'ENOENT') return null;
  throw err;
}

function parseManifest(text: Buffer, path: string): { probe: string; version: string } {
  let m: unknown;
  try {
    m = JSON.parse(text.toString('utf8'));
  } catch (err) {
    throw new Error(`${shown(path)} is not JSON (${(err as Error).message}): rebuild the probe`, { cause: err });
  }
  const { probe, version } = (m ?? {}) as Record<string, unknown>;
  if (typeof probe !== 'string' || typeof version !== 'string') throw new Error(`${shown(path)} has no probe name or version`);
  return { probe, version };
}

async function btfReleases(archDir: string): Promise<string[]> {
  const entries = await readdir(join(archDir, 'btf'), { withFileTypes: true }).catch(missingIsNull);
  return (entries ?? []).filter((e) => e.isDirectory()).map((e) => e.name).sort();
}

// Paths in messages as the user would type them from where they are.
function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel === '' ? '.' : rel.startsWith('..') || isAbsolute(rel) ? path : rel;
}
