// Emulated boards: one QEMU process per board (TCG, no KVM), booting a BoardImage with the
// agent's settings on the kernel command line. QEMU runs detached so `bpfleet board up` can return
// and `board list` / `board down` find it again through <boards-dir>/<name>/board.json.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cacheRoot } from './host.js';
import type { BoardImage } from './image.js';
import type { BoardProfile } from './profile.js';

/** QEMU user networking: the guest reaches the host's loopback at this address. */
export const HOST_FROM_GUEST = '10.0.2.2';

export interface BoardRecord {
  name: string;
  profile: string;
  arch: string;
  pid: number;
  /** The controller address as the guest dials it (enrollment; the session too with grpc). */
  controller: string;
  /** The agent's session transport (absent in records of older versions: grpc). */
  transport?: BoardTransport;
  /** With transport mqtt: the broker URL as the guest dials it. */
  mqtt?: string;
  image: string;
  console: string;
  startedAtMs: number;
}

export interface BoardStatus extends BoardRecord {
  running: boolean;
  /** Milliseconds from QEMU start to the agent's "welcomed" (known once seen on the console). */
  enrolledAfterMs?: number;
  /** Last VmRSS of the agent the board's init printed, in kB. */
  agentRssKb?: number;
  deviceId?: string;
}

export const boardsDir = (env: NodeJS.ProcessEnv = process.env): string => env['BPFLEET_BOARDS_DIR'] || path.join(cacheRoot(env), 'boards');

/** host:port as the guest must dial it: loopback addresses become the QEMU host alias. */
export function guestControllerAddress(hostPort: string): string {
  const m = /^(.*):(\d{1,5})$/.exec(hostPort);
  if (!m) throw new Error(`--controller ${hostPort}: expected HOST:PORT`);
  const host = m[1]!;
  const loopback = host === 'localhost' || host.startsWith('127.') || host === '[::1]' || host === '0.0.0.0';
  return `${loopback ? HOST_FROM_GUEST : host}:${m[2]}`;
}

export type BoardTransport = BoardProfile['transport'];

/** Port of the controller's embedded broker when it runs with plain `--mqtt embedded`. */
export const DEFAULT_MQTT_PORT = 1883;

const MQTT_URL = /^(mqtts?):\/\/([^\s/]+):(\d{1,5})\/?$/;

/** mqtt://HOST:PORT as the guest must dial it: loopback hosts become the QEMU host alias. */
export function guestMqttUrl(url: string): string {
  const m = MQTT_URL.exec(url);
  if (!m) throw new Error(`--mqtt ${url}: expected mqtt://HOST:PORT`);
  if (m[1] === 'mqtts') throw new Error(`--mqtt ${url}: emulated boards take mqtt:// only (an mqtts:// broker's CA would have to be in the image)`);
  return `mqtt://${guestControllerAddress(`${m[2]}:${m[3]}`)}`;
}

export interface TransportChoice {
  transport: BoardTransport;
  /** With mqtt: the broker URL as this machine names it (guestMqttUrl makes the guest's). */
  mqtt?: string;
}

/**
 * The session transport of a board: --transport, else the profile's `transport`; --mqtt alone
 * means mqtt. With mqtt the broker defaults to the embedded broker's default port on the
 * controller's host (enrollment always goes to the controller's gRPC address).
 */
export function chooseTransport(profile: BoardProfile, opts: { transport?: string; mqtt?: string; controller: string }): TransportChoice {
  const t = opts.transport ?? (opts.mqtt !== undefined ? 'mqtt' : profile.transport);
  if (t !== 'grpc' && t !== 'mqtt') throw new Error(`--transport ${t}: expected grpc or mqtt`);
  if (t === 'grpc') {
    if (opts.mqtt !== undefined) throw new Error(`--mqtt ${opts.mqtt} is for --transport mqtt`);
    return { transport: 'grpc' };
  }
  const host = /^(.*):\d{1,5}$/.exec(opts.controller)?.[1];
  if (!host) throw new Error(`--controller ${opts.controller}: expected HOST:PORT`);
  const url = opts.mqtt ?? `mqtt://${host}:${DEFAULT_MQTT_PORT}`;
  if (!MQTT_URL.test(url)) throw new Error(`--mqtt ${url}: expected mqtt://HOST:PORT or mqtts://HOST:PORT`);
  return { transport: 'mqtt', mqtt: url };
}

const QEMU_BIN: Record<string, string> = { arm64: 'qemu-system-aarch64', arm: 'qemu-system-arm' };

export function qemuArgs(profile: BoardProfile, image: BoardImage, append: string, consoleFile: string): string[] {
  if (profile.access.kind !== 'qemu') throw new Error(`profile ${profile.name} is not an emulated board`);
  return [
    '-M', profile.access.machine, '-cpu', profile.cpu, '-m', String(profile.memoryMiB), '-smp', String(profile.access.smp),
    '-display', 'none', '-monitor', 'none', '-serial', `file:${consoleFile}`, '-no-reboot',
    '-netdev', 'user,id=net0', '-device', 'virtio-net-device,netdev=net0',
    '-device', 'virtio-rng-device',
    '-kernel', image.kernel.vmlinuz, '-initrd', image.initrd, '-append', append,
  ];
}

export interface StartOptions {
  name: string;
  controller: string;
  token?: string;
  /** Seconds between loopback connections the board's init makes (0 = none). */
  traffic?: number;
  /** Node.js flags for the agent, in place of the runtime's defaults (["none"]: no flags). */
  nodeOptions?: string[];
  /** Session transport (default the profile's); with mqtt, the broker as this machine names it. */
  transport?: BoardTransport;
  mqtt?: string;
  env?: NodeJS.ProcessEnv;
}

const SAFE_WORD = /^[A-Za-z0-9._:@+=/-]+$/;

/**
 * The kernel command line of a board: console, init, and the agent's settings that image/init.sh
 * reads (bpfleet.*). Addresses are the guest's (10.0.2.2 for the host's loopback). The transport
 * is a boot-time setting, so one image serves gRPC and MQTT boards.
 */
export function bootAppend(profile: BoardProfile, opts: StartOptions): { append: string; controller: string; transport: BoardTransport; mqtt?: string } {
  const controller = guestControllerAddress(opts.controller);
  const transport = opts.transport ?? profile.transport;
  if (transport === 'grpc' && opts.mqtt !== undefined) throw new Error(`board ${opts.name}: --mqtt ${opts.mqtt} is for transport mqtt`);
  let mqtt: string | undefined;
  if (transport === 'mqtt') {
    if (opts.mqtt === undefined) throw new Error(`board ${opts.name}: transport mqtt needs the broker URL (--mqtt mqtt://HOST:PORT)`);
    mqtt = guestMqttUrl(opts.mqtt);
  }
  for (const [what, v] of [['name', opts.name], ['token', opts.token ?? 'x'], ['controller', controller],
    ...(opts.nodeOptions ?? []).map((o) => ['node option', o] as const), ['MQTT broker', mqtt ?? 'x']] as const) {
    if (!SAFE_WORD.test(v)) throw new Error(`board ${what} "${v}" cannot go on a kernel command line (letters, digits and ._:@+=/- only)`);
  }
  const append = [
    'console=ttyAMA0', 'rdinit=/init', 'panic=-1', 'loglevel=4',
    `bpfleet.controller=${controller}`, `bpfleet.name=${opts.name}`, `bpfleet.board=${profile.name}`,
    ...(opts.token ? [`bpfleet.token=${opts.token}`] : []),
    ...(opts.traffic ? [`bpfleet.traffic=${opts.traffic}`] : []),
    ...(opts.nodeOptions?.length ? [`bpfleet.node_options=${opts.nodeOptions.join(',')}`] : []),
    `bpfleet.transport=${transport}`,
    ...(mqtt ? [`bpfleet.mqtt=${mqtt}`] : []),
  ].join(' ');
  return { append, controller, transport, ...(mqtt ? { mqtt } : {}) };
}

/** Boots one board detached; returns its record at once (see waitEnrolled). */
export function startBoard(profile: BoardProfile, image: BoardImage, opts: StartOptions): BoardRecord {
  const env = opts.env ?? process.env;
  const bin = QEMU_BIN[profile.arch];
  if (!bin) throw new Error(`no QEMU for arch ${profile.arch}`);
  const { append, controller, transport, mqtt } = bootAppend(profile, opts);
  const dir = path.join(boardsDir(env), opts.name);
  const existing = readRecord(dir);
  if (existing && isAlive(existing.pid)) throw new Error(`board ${opts.name} is already running (QEMU pid ${existing.pid}); bpfleet board down ${opts.name} first`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const consoleFile = path.join(dir, 'console.log');
  writeFileSync(consoleFile, '');
  const out = openSync(path.join(dir, 'qemu.log'), 'a');
  const child = spawn(bin, qemuArgs(profile, image, append, consoleFile), { detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  if (child.pid === undefined) throw new Error(`cannot start ${bin}: install it with apt-get install qemu-system-arm`);
  child.unref();
  const rec: BoardRecord = {
    name: opts.name, profile: profile.name, arch: profile.arch, pid: child.pid, controller, transport, ...(mqtt ? { mqtt } : {}),
    image: image.dir, console: consoleFile, startedAtMs: Date.now(),
  };
  writeFileSync(path.join(dir, 'board.json'), JSON.stringify(rec, null, 2) + '\n');
  return rec;
}

function readRecord(dir: string): BoardRecord | undefined {
  try {
    return JSON.parse(readFileSync(path.join(dir, 'board.json'), 'utf8')) as BoardRecord;
  } catch {
    return undefined;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A recycled pid is not ours: QEMU's /proc/<pid>/cmdline names the binary.
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('qemu-system-');
  } catch {
    return false;
  }
}

/** What the board's console says so far. */
export function boardStatus(rec: BoardRecord): BoardStatus {
  let text = '';
  try {
    text = readFileSync(rec.console, 'utf8');
  } catch { /* not written yet */ }
  const st: BoardStatus = { ...rec, running: isAlive(rec.pid) };
  const rss = [...text.matchAll(/BPFLEET-RSS (\d+) kB/g)].pop();
  if (rss) st.agentRssKb = Number(rss[1]);
  const id = /enrolled as (\S+?);|already enrolled as (\S+)/.exec(text);
  if (id) st.deviceId = (id[1] ?? id[2])!;
  const enrolled = readEnrolledMark(rec);
  if (enrolled !== undefined) st.enrolledAfterMs = enrolled;
  return st;
}

// The moment "welcomed" first appeared is only known to whoever watched the console: waitEnrolled
// stores it next to the record.
function readEnrolledMark(rec: BoardRecord): number | undefined {
  try {
    return Number(readFileSync(path.join(path.dirname(rec.console), 'enrolled-after-ms'), 'utf8'));
  } catch {
    return undefined;
  }
}

/** Every board recorded in the boards directory (running or not). */
export function listBoards(env: NodeJS.ProcessEnv = process.env): BoardStatus[] {
  const root = boardsDir(env);
  if (!existsSync(root)) return [];
  return readdirSync(root).sort().map((n) => readRecord(path.join(root, n))).filter((r): r is BoardRecord => r !== undefined).map(boardStatus);
}

/**
 * Waits until the board's agent says "welcomed" on the console; returns ms since QEMU started.
 * Fails early when QEMU exits or the kernel panics, with the console's last lines.
 */
export async function waitEnrolled(rec: BoardRecord, timeoutMs: number, onLine?: (line: string) => void): Promise<number> {
  const end = Date.now() + timeoutMs;
  let seen = 0;
  for (;;) {
    let text = '';
    try {
      text = readFileSync(rec.console, 'utf8');
    } catch { /* not yet */ }
    if (onLine && text.length > seen) {
      const chunk = text.slice(seen);
      const lastNl = chunk.lastIndexOf('\n');
      if (lastNl >= 0) {
        for (const l of chunk.slice(0, lastNl).split('\n')) onLine(l.replace(/\r$/, ''));
        seen += lastNl + 1;
      }
    }
    if (text.includes('session: welcomed')) {
      const ms = Date.now() - rec.startedAtMs;
      writeFileSync(path.join(path.dirname(rec.console), 'enrolled-after-ms'), String(ms));
      return ms;
    }
    const tail = (): string => text.split('\n').slice(-40).map((l) => `  | ${l}`).join('\n');
    if (/Kernel panic/.test(text)) throw new Error(`board ${rec.name}: kernel panic; console ${rec.console}:\n${tail()}`);
    if (!isAlive(rec.pid)) throw new Error(`board ${rec.name}: QEMU (pid ${rec.pid}) exited before the agent enrolled; console ${rec.console}:\n${tail()}`);
    if (Date.now() > end) throw new Error(`board ${rec.name}: agent not enrolled after ${Math.round(timeoutMs / 1000)} s; console ${rec.console}:\n${tail()}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Stops a board's QEMU (SIGTERM, SIGKILL after 5 s) and forgets it. */
export async function stopBoard(rec: BoardRecord, opts: { keepLogs?: boolean } = {}): Promise<boolean> {
  let was = false;
  if (isAlive(rec.pid)) {
    was = true;
    process.kill(rec.pid, 'SIGTERM');
    const end = Date.now() + 5000;
    while (isAlive(rec.pid) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    if (isAlive(rec.pid)) process.kill(rec.pid, 'SIGKILL');
    while (isAlive(rec.pid)) await new Promise((r) => setTimeout(r, 100));
  }
  if (!opts.keepLogs) rmSync(path.dirname(rec.console), { recursive: true, force: true });
  return was;
}
