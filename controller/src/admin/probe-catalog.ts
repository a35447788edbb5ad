// The probes built on this machine: bpf/out/<arch>/<probe> next to <probe>.manifest.json.
import type { Manifest, ManifestField } from '@bpfleet/proto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const DEFAULT_BPF_OUT = fileURLToPath(new URL('../../../bpf/out', import.meta.url));

export interface BuiltProbe {
  probe: string;
  version: string;
  kind: Manifest['kind'];
  summary: string;
  fields: Pick<ManifestField, 'name' | 'type' | 'format' | 'unit' | 'description'>[];
  /** One entry per architecture the loader is built for. */
  builds: { arch: string; version: string; loaderBytes: number; builtAtMs: number }[];
}

/** Reads the catalog now (the build may have changed since the last request). */
export function listBuiltProbes(outDir: string = DEFAULT_BPF_OUT): BuiltProbe[] {
  if (!existsSync(outDir)) return [];
  const byName = new Map<string, BuiltProbe>();
  for (const arch of readdirSync(outDir).sort()) {
    const dir = join(outDir, arch);
    if (!statSync(dir).isDirectory()) continue;
    for (const file of readdirSync(dir).sort()) {
      if (!file.endsWith('.manifest.json')) continue;
      const name = file.slice(0, -'.manifest.json'.length);
      const loader = join(dir, name);
      if (!existsSync(loader)) continue;
      let m: Manifest & { summary?: string };
      try {
        m = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Manifest & { summary?: string };
      } catch {
        continue; // a half-written manifest during a build: the next request sees it
      }
      const st = statSync(loader);
      let p = byName.get(name);
      if (!p) {
        p = { probe: m.probe, version: m.version, kind: m.kind, summary: m.summary ?? '', builds: [],
          fields: m.record.fields.map(({ name: n, type, format, unit, description }) => ({ name: n, type, format, unit, description })) };
        byName.set(name, p);
      }
      p.builds.push({ arch, version: m.version, loaderBytes: st.size, builtAtMs: Math.round(st.mtimeMs) });
    }
  }
  return [...byName.values()].sort((a, b) => a.probe.localeCompare(b.probe));
}
