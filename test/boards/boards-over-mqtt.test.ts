import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { requireRoot } from '../lib/index.js';
import { Fleet, portBase, waitFor } from '../lib/fleet.js';

// An emulated board over MQTT: a controller with its embedded broker (aedes) on 127.0.0.1, which a
// QEMU guest reaches as 10.0.2.2 (user networking); `bpfleet board up qemu-dayu200 --transport
// mqtt` boots the arm64 board (Debian 5.10 kernel with BTF and kprobes, busybox userland) whose
// agent enrolls over gRPC and then runs its session through the broker. The probes are deployed
// over MQTT, the events of the board's own loopback connections are stored, and the smoke matrix
// of the network probes passes over MQTT with its events in the store. One board only (arm64):
// armv7 under TCG takes minutes more and adds nothing to the transport.

const PROFILE = 'qemu-dayu200';
const BOARD = `${PROFILE}-1`;
const PROBES = ['tcpstates', 'tcplife', 'skbclone'];
const ENROLL_TIMEOUT_S = 900;
const SMOKE_PROBE_TIMEOUT_S = 120;

interface Device { id: string; name: string; online: boolean; transport?: string; labels: Record<string, string> }
interface UpRow { name: string; pid: number; transport: string; mqtt?: string; enrolledAfterMs?: number; error?: string }
interface SmokeRow {
  deviceId: string; probe: string; outcome: 'pass' | 'fail' | 'unsupported'; reason: string; runId: string; streamId: string;
  timeToFirstEventMs: number | null; attachMs: number | null; verifiedInsns: number | null; storedRecords: number;
}
interface SmokeDone { ok: boolean; results: SmokeRow[]; devices: { id: string; name: string; ok: boolean; error?: string }[] }

const base = portBase(4);
const brokerPort = base + 2;
const fleet = new Fleet({ name: 'boards-mqtt', grpcPort: base, adminPort: base + 1 });
fleet.env['BPFLEET_BOARDS_DIR'] = path.join(fleet.dir, 'boards');
const consoleFile = path.join(fleet.dir, 'boards', BOARD, 'console.log');
let failed = false;
let device: Device | undefined;
let up: UpRow | undefined;

async function cliJson<T>(args: string[]): Promise<T> {
  const r = await fleet.cli([...args, '--json']);
  if (r.code !== 0) throw new Error(`bpfleet ${args.join(' ')} exited ${r.code}:\n${r.stderr}\n${r.stdout}`);
  return JSON.parse(r.stdout) as T;
}

function boardConsole(): string {
  try {
    return readFileSync(consoleFile, 'utf8');
  } catch {
    return '';
  }
}
const consoleTail = (): string => `--- ${consoleFile}\n${boardConsole().split('\n').slice(-40).join('\n')}`;

describe('an emulated board over MQTT', () => {
  beforeAll(async () => {
    requireRoot();
    for (const bin of ['qemu-system-aarch64', 'cpio']) {
      try {
        execFileSync('sh', ['-c', `command -v ${bin}`]);
      } catch {
        throw new Error(`${bin} not found: run bash toolchains/setup.sh (it installs QEMU and cpio)`);
      }
    }
    await fleet.startController(['--mqtt-listen', `127.0.0.1:${brokerPort}`]);
    expect(fleet.controller!.log()).toContain(`MQTT for agents on mqtt://127.0.0.1:${brokerPort} (embedded broker)`);
    const img = await cliJson<{ initrdBytes: number; cached: boolean; ms: number }>(['board', 'image', PROFILE]);
    console.log(`${PROFILE}: image ${(img.initrdBytes / 1048576).toFixed(1)} MiB (${img.cached ? 'cached' : `built in ${(img.ms / 1000).toFixed(1)} s`})`);
    // The broker as this machine names it: board up turns the loopback into 10.0.2.2 for the guest.
    const r = await fleet.cli(['board', 'up', PROFILE, '--controller', fleet.grpc, '--transport', 'mqtt', '--mqtt', `mqtt://127.0.0.1:${brokerPort}`,
      '--traffic', '3', '--timeout', String(ENROLL_TIMEOUT_S), '--json']);
    if (r.code !== 0) throw new Error(`bpfleet board up ${PROFILE} --transport mqtt exited ${r.code}:\n${r.stderr}\n${r.stdout}\n${consoleTail()}\n${fleet.logs()}`);
    up = (JSON.parse(r.stdout) as UpRow[])[0];
    device = (await cliJson<Device[]>(['devices'])).find((d) => d.name === BOARD);
  }, (ENROLL_TIMEOUT_S + 600) * 1000);

  afterAll(async () => {
    const r = await fleet.cli(['board', 'down', '--all', ...(failed ? ['--keep-logs'] : [])]);
    if (r.code !== 0) console.error(`board down: ${r.stderr}`);
    if (failed) console.error(`logs kept in ${fleet.dir}`);
    await fleet.stop(failed);
  }, 120_000);

  it('boots the board, whose agent enrolls over gRPC and then runs its session over the broker', async () => {
    try {
      expect(up).toMatchObject({ name: BOARD, transport: 'mqtt', mqtt: `mqtt://10.0.2.2:${brokerPort}` });
      expect(up!.enrolledAfterMs).toBeGreaterThan(0);
      console.log(`${BOARD}: boot-to-enrolled over MQTT ${(up!.enrolledAfterMs! / 1000).toFixed(1)} s`);
      // The boot parameters reached the agent: it dialled the broker through the QEMU host alias.
      const text = boardConsole();
      expect(text).toContain(`BPFLEET-TRANSPORT mqtt mqtt://10.0.2.2:${brokerPort}`);
      expect(text).toContain(`to MQTT broker mqtt://10.0.2.2:${brokerPort}`);
      expect(text).toMatch(/session: welcomed/);
      expect(device, `${BOARD} among the devices`).toBeDefined();
      expect(device).toMatchObject({ online: true, transport: 'mqtt' });
      expect(device!.labels).toMatchObject({ board: PROFILE, arch: 'arm64' });
      const list = await cliJson<{ name: string; running: boolean; transport?: string; mqtt?: string }[]>(['board', 'list']);
      expect(list).toMatchObject([{ name: BOARD, running: true, transport: 'mqtt', mqtt: `mqtt://10.0.2.2:${brokerPort}` }]);
    } catch (err) { failed = true; throw err; }
  });

  it('deploys tcpstates over MQTT and stores the board\'s own connections', async () => {
    try {
      const d = await fleet.cli(['deploy', 'tcpstates', '--to', `board=${PROFILE}`]);
      expect(d.code, `deploy tcpstates:\n${d.stdout}\n${d.stderr}`).toBe(0);
      // init.sh makes a loopback connection to port 7777 every 3 s on the board.
      const n = await waitFor('tcpstates events of port 7777 from the board', async () => {
        const r = await fleet.cli(['events', '--probe', 'tcpstates', '--device', device!.id, '--limit', '2000', '--json']);
        if (r.code !== 0) return undefined;
        const mine = (JSON.parse(r.stdout) as { deviceId: string; fields: Record<string, unknown> }[])
          .filter((e) => e.deviceId === device!.id && (e.fields['lport'] === 7777 || e.fields['rport'] === 7777));
        return mine.length > 0 ? mine.length : undefined;
      }, 600_000, () => `${consoleTail()}\n${fleet.logs()}`);
      console.log(`${BOARD}: ${n} tcpstates events of port 7777 stored`);
      // tcplife and skbclone installed, not started: the smoke test runs them.
      for (const p of PROBES.filter((x) => x !== 'tcpstates')) {
        const r = await fleet.cli(['deploy', p, '--to', `board=${PROFILE}`, '--no-start']);
        expect(r.code, `deploy ${p} --no-start:\n${r.stdout}\n${r.stderr}`).toBe(0);
      }
      expect((await cliJson<Device[]>(['devices'])).find((x) => x.id === device!.id)).toMatchObject({ online: true, transport: 'mqtt' });
    } catch (err) { failed = true; throw err; }
  }, 900_000);

  it('passes the smoke matrix over MQTT, with the smoke events in the store', async () => {
    try {
      const t0 = Date.now();
      const r = await fleet.cli(['smoke', '--to', `board=${PROFILE}`, ...PROBES.flatMap((p) => ['--probe', p]), '--timeout', String(SMOKE_PROBE_TIMEOUT_S), '--json']);
      const smokeMs = Date.now() - t0;
      expect(r.stdout, `bpfleet smoke printed no JSON (exit ${r.code}):\n${r.stderr}`).toMatch(/^\s*\{/);
      const done = JSON.parse(r.stdout) as SmokeDone;
      const pad = (s: string, n: number) => s.padEnd(n);
      console.log([
        `smoke matrix over MQTT (${BOARD}, exit ${r.code}, ${(smokeMs / 1000).toFixed(1)} s):`,
        `${pad('DEVICE', 16)} ${pad('PROBE', 10)} ${pad('RESULT', 11)} ${pad('FIRST EVENT', 12)} ${pad('INSNS', 6)} ${pad('STORED', 7)} REASON`,
        ...done.results.map((x) => `${pad(BOARD, 16)} ${pad(x.probe, 10)} ${pad(x.outcome, 11)} ${pad(x.timeToFirstEventMs === null ? '-' : `${x.timeToFirstEventMs} ms`, 12)} ` +
          `${pad(String(x.verifiedInsns ?? '-'), 6)} ${pad(String(x.storedRecords), 7)} ${x.reason.split('\n', 1)[0]}`),
      ].join('\n'));
      expect(r.code, `bpfleet smoke failed:\n${r.stderr}\n${consoleTail()}`).toBe(0);
      expect(done.ok).toBe(true);
      expect(done.devices.map((x) => [x.name, x.ok])).toEqual([[BOARD, true]]);
      expect(done.results.map((x) => x.probe).sort()).toEqual([...PROBES].sort());
      for (const x of done.results) {
        expect(x.outcome, `${x.probe}: ${x.reason}`).toBe('pass');
        expect(x.deviceId).toBe(device!.id);
        // Unknown (null, shown "-") on this 5.10 kernel: its bpf_prog_info has no verified_insns
        // yet (Linux 5.16 added it); the host test checks a real count.
        expect(x.verifiedInsns, x.probe).toBeNull();
        expect(x.timeToFirstEventMs, x.probe).toBeGreaterThanOrEqual(0);
        expect(x.storedRecords, x.probe).toBeGreaterThan(0);
        // The controller's word checked against its database: the smoke run's stream of this
        // device holds those records, in batches that came through the broker.
        const s = fleet.query((db) => db.prepare(
          'SELECT s.device_id, s.run_id, s.stored_records, (SELECT COALESCE(SUM(b.count), 0) FROM batches b WHERE b.stream = s.id) AS in_batches FROM streams s WHERE s.stream_id = ?',
        ).get(x.streamId)) as { device_id: string; run_id: string; stored_records: number; in_batches: number } | undefined;
        expect(s, `stream ${x.streamId} stored`).toMatchObject({ device_id: device!.id, run_id: x.runId });
        expect(s!.stored_records).toBeGreaterThanOrEqual(x.storedRecords);
        expect(s!.in_batches).toBe(s!.stored_records);
      }
      console.log(`${BOARD}: smoke of ${PROBES.length} probes over MQTT took ${(smokeMs / 1000).toFixed(1)} s`);
      expect(fleet.distinctEvents()).toBeGreaterThan(0); // throws if any event were stored twice
    } catch (err) { failed = true; throw err; }
  }, 1_200_000);
});
