import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { requireRoot } from '../lib/index.js';
import { Fleet, portBase, waitFor } from '../lib/fleet.js';

// Emulated boards as fleet members: `bpfleet board up` boots qemu-dayu200 (arm64, 5.10 with BTF)
// and qemu-hi3516 (armv7, 5.10 armmp without BTF) under QEMU (TCG), their agents (the per-arch
// runtime: Node.js from npm + glibc loader on a busybox userland) enroll with a controller on this
// host through QEMU user networking, `bpfleet deploy` sends network probes, and the events that
// happen ON the guests (init.sh makes a loopback connection to port 7777 every few seconds; the
// agent's own gRPC traffic clones skbs) are stored with the right device. Then `bpfleet smoke`.
// Slow by nature: TCG on 2 shared cores, and Node takes minutes to start on emulated armv7.

const BOARDS = [
  { profile: 'qemu-dayu200', arch: 'arm64', btf: 'kernel' },
  { profile: 'qemu-hi3516', arch: 'arm', btf: 'embedded' },
] as const;
const PROBES = ['tcpstates', 'tcplife', 'skbclone'];
const ENROLL_TIMEOUT_S = 1200;

interface EventRow { deviceId: string; probe: string; fields: Record<string, unknown> }
interface Device { id: string; name: string; labels: Record<string, string>; facts?: Record<string, unknown> }

const base = portBase(4);
const fleet = new Fleet({ name: 'boards', grpcPort: base, adminPort: base + 1 });
fleet.env['BPFLEET_BOARDS_DIR'] = path.join(fleet.dir, 'boards');
let failed = false;
const devices = new Map<string, Device>();
const enrolledAfter = new Map<string, number>();

async function cliJson<T>(args: string[]): Promise<T> {
  const r = await fleet.cli([...args, '--json']);
  if (r.code !== 0) throw new Error(`bpfleet ${args.join(' ')} exited ${r.code}:\n${r.stderr}\n${r.stdout}`);
  return JSON.parse(r.stdout) as T;
}

function consoleTail(): string {
  try {
    return execFileSync('sh', ['-c', `for f in "${fleet.env['BPFLEET_BOARDS_DIR']}"/*/console.log; do echo "--- $f"; tail -n 30 "$f"; done`], { encoding: 'utf8' });
  } catch {
    return '';
  }
}

describe('emulated boards in the fleet', () => {
  beforeAll(async () => {
    requireRoot();
    for (const bin of ['qemu-system-aarch64', 'qemu-system-arm', 'cpio']) {
      try {
        execFileSync('sh', ['-c', `command -v ${bin}`]);
      } catch {
        throw new Error(`${bin} not found: run bash toolchains/setup.sh (it installs QEMU and cpio)`);
      }
    }
    await fleet.startController();
    // Images one after the other (they share the Debian download cache), boots in parallel.
    for (const b of BOARDS) {
      const img = await cliJson<{ initrdBytes: number; runtime: { node: string; unpackedBytes: number; compressedBytes: number }; ms: number; cached: boolean }>(['board', 'image', b.profile]);
      const mib = (n: number) => (n / 1048576).toFixed(1);
      console.log(`${b.profile}: image ${mib(img.initrdBytes)} MiB (${img.cached ? 'cached' : `built in ${(img.ms / 1000).toFixed(1)} s`}); ` +
        `runtime node ${img.runtime.node} ${mib(img.runtime.unpackedBytes)} MiB unpacked, ${mib(img.runtime.compressedBytes)} MiB .tar.gz`);
    }
    const ups = await Promise.all(BOARDS.map((b) => fleet.cli(['board', 'up', b.profile, '--controller', fleet.grpc, '--traffic', '3', '--timeout', String(ENROLL_TIMEOUT_S), '--json'])));
    for (const [i, r] of ups.entries()) {
      if (r.code !== 0) throw new Error(`bpfleet board up ${BOARDS[i]!.profile} exited ${r.code}:\n${r.stderr}\n${r.stdout}\n${consoleTail()}\n${fleet.logs()}`);
      for (const x of JSON.parse(r.stdout) as { name: string; enrolledAfterMs: number }[]) enrolledAfter.set(x.name, x.enrolledAfterMs);
    }
    for (const d of await cliJson<Device[]>(['devices'])) devices.set(d.name, d);
  }, (ENROLL_TIMEOUT_S + 600) * 1000);

  afterAll(async () => {
    const r = await fleet.cli(['board', 'down', '--all', ...(failed ? ['--keep-logs'] : [])]);
    if (r.code !== 0) console.error(`board down: ${r.stderr}`);
    if (failed) console.error(`logs kept in ${fleet.dir}`);
    await fleet.stop(failed);
  }, 120_000);

  it('boots both boards and their agents enroll with board and arch labels', () => {
    try {
      for (const b of BOARDS) {
        const name = `${b.profile}-1`;
        const d = devices.get(name);
        expect(d, `device ${name} enrolled`).toBeDefined();
        expect(d!.labels).toMatchObject({ board: b.profile, arch: b.arch });
        console.log(`${name}: boot-to-enrolled ${(enrolledAfter.get(name)! / 1000).toFixed(1)} s (device ${d!.id})`);
      }
    } catch (err) { failed = true; throw err; }
  });

  it('deploys the network probes to both boards and stores what happened on each board', async () => {
    try {
      for (const probe of PROBES) {
        const r = await fleet.cli(['deploy', probe, '--to', 'all']);
        expect(r.code, `deploy ${probe}:\n${r.stdout}\n${r.stderr}`).toBe(0);
      }
      // What each board must have produced: its own loopback connections to port 7777 (made by
      // the board's init), and skb clones of its own traffic.
      const want = (e: EventRow): string | undefined => {
        if (e.probe === 'skbclone') return 'skbclone';
        const f = e.fields;
        if ((e.probe === 'tcpstates' || e.probe === 'tcplife') && (f['lport'] === 7777 || f['rport'] === 7777)) return e.probe;
        return undefined;
      };
      const seen = await waitFor('events from both boards for every probe', async () => {
        const got = new Map<string, Set<string>>();
        for (const probe of PROBES) {
          const r = await fleet.cli(['events', '--probe', probe, '--limit', '2000', '--json']);
          if (r.code !== 0) continue;
          for (const e of JSON.parse(r.stdout) as EventRow[]) {
            const w = want(e);
            if (w) got.set(e.deviceId, (got.get(e.deviceId) ?? new Set()).add(w));
          }
        }
        const ok = BOARDS.every((b) => PROBES.every((p) => got.get(devices.get(`${b.profile}-1`)!.id)?.has(p)));
        return ok ? got : undefined;
      }, 600_000, () => `${consoleTail()}\n${fleet.logs()}`);
      for (const b of BOARDS) expect([...seen.get(devices.get(`${b.profile}-1`)!.id)!].sort()).toEqual([...PROBES].sort());

      // The armv7 board has no kernel BTF: its loaders must have used the BTF they embed.
      const consoles = consoleTail();
      expect(consoles).toMatch(/tcpstates: ready \(hooks: [^;]+; btf: embedded\)/);
      expect(consoles).toMatch(/tcpstates: ready \(hooks: [^;]+; btf: kernel\)/);
    } catch (err) { failed = true; throw err; }
  }, 900_000);

  it('reports the agent RSS on each board', async () => {
    try {
      await waitFor('a heartbeat with the agent RSS from each board', () => BOARDS.every((b) => rss(devices.get(`${b.profile}-1`)!.id) > 0), 300_000, consoleTail);
      for (const b of BOARDS) {
        const kb = rss(devices.get(`${b.profile}-1`)!.id) / 1024;
        console.log(`${b.profile}-1: agent VmRSS ${(kb / 1024).toFixed(1)} MiB (heartbeat)`);
        expect(kb).toBeGreaterThan(10_000); // node + the bundled agent: tens of MiB, never a few kB
      }
      const list = await cliJson<{ name: string; running: boolean; agentRssKb?: number }[]>(['board', 'list']);
      expect(list.map((b) => [b.name, b.running])).toEqual(BOARDS.map((b) => [`${b.profile}-1`, true]));
    } catch (err) { failed = true; throw err; }
  }, 360_000);

  it('passes the smoke tests on both boards', async () => {
    try {
      const r = await fleet.cli(['smoke', '--to', 'all', ...PROBES.flatMap((p) => ['--probe', p]), '--timeout', '120']);
      console.log(`bpfleet smoke on the emulated boards (exit ${r.code}):\n${r.stdout}${r.stderr}`);
      expect(r.code, `bpfleet smoke failed:\n${r.stdout}\n${r.stderr}`).toBe(0);
    } catch (err) { failed = true; throw err; }
  }, 1_200_000);
});

function rss(deviceId: string): number {
  return fleet.query((db) => (db.prepare('SELECT COALESCE(MAX(agent_rss_bytes), 0) AS n FROM heartbeats WHERE device_id = ?').get(deviceId) as { n: number | bigint }).n) as number;
}
