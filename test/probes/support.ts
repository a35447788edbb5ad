import { readFileSync } from 'node:fs';
import path from 'node:path';
import { bpfOutDir, type Arch } from '../lib/index.js';
import type { Manifest } from '@bpfleet/proto';

export { decodeRecord, type Manifest, type ManifestField } from '@bpfleet/proto';

export function loadManifest(probe: string, arch: Arch = 'x86_64'): Manifest {
  const file = path.join(bpfOutDir, arch, `${probe}.manifest.json`);
  return JSON.parse(readFileSync(file, 'utf8')) as Manifest;
}


let nextPort = 20000 + (process.pid % 20000);

/** A loopback port for one test, different per call and per test process. */
export function pickPort(): number {
  nextPort = nextPort >= 59000 ? 20000 : nextPort + 7;
  return nextPort;
}
