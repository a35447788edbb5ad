// A loader's manifest comes from the loader itself (`<bin> --manifest`, no kernel access), read
// once per installed binary. The schema id hashes the exact text, so the controller, holding
// the same <probe>.manifest.json the build wrote from that output, derives the same id.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Manifest } from '@bpfleet/proto';

export interface LoaderManifest {
  manifest: Manifest;
  /** The exact text the loader printed. */
  text: string;
  schemaId: string;
}

/** "<probe>@<version>:<first 16 hex of sha256(text)>". */
export function schemaIdOf(manifest: Pick<Manifest, 'probe' | 'version'>, text: string | Buffer): string {
  const digest = createHash('sha256').update(text).digest('hex').slice(0, 16);
  return `${manifest.probe}@${manifest.version}:${digest}`;
}

export function parseLoaderManifest(text: string, source: string): LoaderManifest {
  let m: Manifest;
  try {
    m = JSON.parse(text) as Manifest;
  } catch (err) {
    throw new Error(`${source} --manifest did not print JSON: ${(err as Error).message}`, { cause: err });
  }
  if (typeof m.probe !== 'string' || typeof m.version !== 'string' || !(m.record?.size > 0)) {
    throw new Error(`${source} --manifest lacks probe, version or record.size: ${text.slice(0, 200)}`);
  }
  return { manifest: m, text, schemaId: schemaIdOf(m, text) };
}

function runManifest(bin: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(bin, ['--manifest'], { timeout: timeoutMs, maxBuffer: 4 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${bin} --manifest failed: ${err.message}${stderr ? `\n${stderr.trim()}` : ''}`, { cause: err }));
      else resolve(stdout);
    });
  });
}

export class ManifestCache {
  private cache = new Map<string, Promise<LoaderManifest>>();

  constructor(private readonly timeoutMs = 10_000) {}

  async get(bin: string): Promise<LoaderManifest> {
    const key = await this.keyOf(bin);
    let hit = this.cache.get(key);
    if (hit === undefined) {
      hit = runManifest(bin, this.timeoutMs).then((text) => parseLoaderManifest(text, bin));
      this.cache.set(key, hit);
      hit.catch(() => this.cache.delete(key)); // a failure is not cached
    }
    return hit;
  }

  /** Path plus identity of the file, so reinstalling a loader reads the new manifest. */
  protected async keyOf(bin: string): Promise<string> {
    const st = await stat(bin);
    return `${bin}\0${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
  }
}

/**
 * Keyed by the loader's content (sha256) instead of its path, for one cache shared by many
 * agents in a process (the fleet simulator): each device installs the same loader under its
 * own directory, and a `--manifest` spawn per device was a tenth of a sim worker's CPU. The
 * manifest is a function of the binary, so equal bytes give the same answer. A real agent has
 * one copy per loader and uses ManifestCache.
 */
// Streamed: hundreds of devices starting together would otherwise hold a copy each.
function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file)
      .on('data', (d) => h.update(d))
      .on('error', reject)
      .on('end', () => resolve(`sha256:${h.digest('hex')}`));
  });
}

export class ContentManifestCache extends ManifestCache {
  // Digest per path and file identity: a loader restart does not hash the file again.
  private readonly digests = new Map<string, Promise<string>>();

  protected override async keyOf(bin: string): Promise<string> {
    const id = await super.keyOf(bin);
    let digest = this.digests.get(id);
    if (digest === undefined) {
      digest = sha256File(bin);
      this.digests.set(id, digest);
      digest.catch(() => this.digests.delete(id));
    }
    return digest;
  }
}
