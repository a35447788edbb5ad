import { readFileSync } from 'node:fs';
import path from 'node:path';
import { bpfOutDir, type Arch } from '../lib/index.js';
import type { Manifest } from '@bpfleet/proto';

export { decodeRecord, type Manifest, type ManifestField } from '@bpfleet/proto';

export function loadManifest(probe: string, arch: Arch = 'x86_64'): Manifest {
  const file = path.join(bpfOutDir, arch, `${probe}.manifest.json`);
  return JSON.parse(readFileSync(file, 'utf8')) as Manifest;
}


/** Sum of one numeric field over records (byte counts, interval counts). */
export function sumField(records: readonly Record<string, unknown>[], key: string): number {
  return records.reduce((n, r) => n + Number(r[key]), 0);
}

// Below the kernel's ephemeral range (32768+): a connection storm leaves thousands of client
// ports in TIME_WAIT there, and a listener on one of them would fail with EADDRINUSE.
const PORT_LO = 20000;
const PORT_HI = 32000;
let nextPort = PORT_LO + (process.pid % (PORT_HI - PORT_LO));

/** A loopback port for one test, different per call and per test process. */
export function pickPort(): number {
  nextPort = nextPort + 7 >= PORT_HI ? PORT_LO + (nextPort % 7) : nextPort + 7;
  return nextPort;
}
