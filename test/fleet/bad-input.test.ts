import { copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Metadata, Server, ServerCredentials, credentials, status, type ServerDuplexStream, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import {
  AgentServiceClient, AgentServiceService, type AgentMessage, type ControllerMessage, type DeployBundle, type EnrollRequest, type EnrollResponse,
} from '@bpfleet/proto';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Fleet, portBase, requireRoot, tcpgen, waitFor, type CliResult } from '../lib/index.js';

// Bad input end to end, with real processes and the CLI: bundles altered on the way (wrong
// signature, a file that does not match its signed sha256, a path escaping the install
// directory), deploys to devices of the wrong architecture, an unknown probe, a second agent
// presenting a connected device's identity (a cloned identity.json) and an agent presenting another
// device's credential with its own device id. Each is refused with a reason the CLI (or the agent's
// log) shows, nothing is installed, and the tcpstates run already going keeps every event.
//
// Altered bundles come from a man in the middle: a real gRPC proxy between agent and controller
// (below) that forwards every message and rewrites the next DeployBundle as told. Production code
// has no hook for this; the agent must catch it with its own checks.

const CLIENT_TRANSITIONS = 5;
let fleet: Fleet | undefined;
let mitm: BundleTamperer | undefined;

type AgentCall = ServerDuplexStream<AgentMessage, ControllerMessage>;

/** AgentService proxy: Enroll and Connect forwarded to the controller, the next deploy rewritten by `tamperNext`. */
class BundleTamperer {
  private next: ((b: DeployBundle) => DeployBundle) | undefined;
  /** Deploys rewritten so far. */
  tampered = 0;

  private constructor(private readonly server: Server, private readonly client: AgentServiceClient, readonly address: string) {}

  static async start(port: number, target: string): Promise<BundleTamperer> {
    const server = new Server();
    const client = new AgentServiceClient(target, credentials.createInsecure());
    const address = `127.0.0.1:${port}`;
    const self: { t?: BundleTamperer } = {};
    server.addService(AgentServiceService, {
      enroll: (call: ServerUnaryCall<EnrollRequest, EnrollResponse>, cb: sendUnaryData<EnrollResponse>) => {
        client.enroll(call.request, (err, res) => cb(err, res));
      },
      connect: (call: AgentCall) => self.t!.connect(call),
    });
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(address, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
    self.t = new BundleTamperer(server, client, address);
    return self.t;
  }

  /** The next DeployBundle going to an agent is replaced by fn(bundle). */
  tamperNext(fn: (b: DeployBundle) => DeployBundle): void {
    this.next = fn;
  }

  private connect(call: AgentCall): void {
    const md = new Metadata();
    for (const v of call.metadata.get('authorization')) md.add('authorization', v);
    const up = this.client.connect(md);
    call.on('data', (m: AgentMessage) => up.write(m));
    call.on('end', () => up.end());
    call.on('cancelled', () => up.cancel());
    call.on('error', () => up.cancel());
    up.on('data', (m: ControllerMessage) => {
      const fn = this.next;
      if (m.payload?.$case === 'deploy' && fn !== undefined) {
        this.next = undefined;
        this.tampered++;
        m = { payload: { $case: 'deploy', value: fn(m.payload.value) } };
      }
      call.write(m);
    });
    up.on('error', () => undefined); // the status below ends the agent's call
    up.on('status', (s) => {
      if (s.code === status.OK) call.end();
      else call.emit('error', { code: s.code, details: s.details });
    });
  }

  async close(): Promise<void> {
    this.client.close();
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
  }
}

/** Every path under `dir` with what it is (file sha-less size+mode, symlink target), to compare before/after. */
function tree(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const p = path.join(e.parentPath, e.name);
    const st = lstatSync(p);
    const rel = path.relative(dir, p);
    if (st.isSymbolicLink()) out.push(`${rel} -> ${readlinkSync(p)}`);
    else if (st.isFile()) out.push(`${rel} ${st.size} ${(st.mode & 0o7777).toString(8)} ${readFileSync(p).subarray(0, 64).toString('hex')}`);
    else out.push(`${rel}/`);
  }
  return out.sort();
}

interface DeployDone {
  ok: boolean;
  devices: { id: string; name: string; deployed: boolean; started?: boolean; error?: string }[];
}

function parseDone(r: CliResult): DeployDone {
  try {
    return JSON.parse(r.stdout) as DeployDone;
  } catch {
    throw new Error(`bpfleet deploy --json printed no JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
}

describe('bad input through the CLI and real processes', () => {
  beforeAll(() => requireRoot());
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail' && fleet) console.log(`logs of the failed run (kept in ${fleet.dir}):\n${fleet.logs()}`);
    await mitm?.close();
    mitm = undefined;
    await fleet?.stop(ctx.task.result?.state === 'fail');
    fleet = undefined;
  });

  it('refuses each with a clear reason, installs nothing and loses no event of the running probe', async () => {
    const base = portBase(6);
    const f = (fleet = new Fleet({ name: 'badinput', grpcPort: base, adminPort: base + 1 }));
    const port = base + 2;
    const logs = () => f.logs();
    await f.startController();
    const m = (mitm = await BundleTamperer.start(base + 3, f.grpc));

    // Device "a" talks to the controller through the man in the middle and runs tcpstates.
    const agent = await f.startAgent('a', { token: await f.token(['lab=bad']), controller: m.address });
    const dep = await f.cli(['deploy', 'tcpstates', '--to', 'lab=bad', '--args', `--rport ${port}`, '--json']);
    expect(dep.code, dep.stderr + dep.stdout).toBe(0);
    await waitFor('probe running', () => agent.log().includes('ready'), 30_000, logs);
    let made = 0;
    const traffic = async (count: number) => {
      made += (await tcpgen({ port, send: 64, recv: 64, count })).conns.length * CLIENT_TRANSITIONS;
    };
    await traffic(20);
    await waitFor(`${made} stored`, () => f.storedEvents() === made, 30_000, logs);

    const installDir = path.join(f.agentDir('a'), 'probes');
    const installed = tree(installDir);
    expect(installed.some((l) => l.startsWith('tcpstates/current ->')), `install dir:\n${installed.join('\n')}`).toBe(true);

    // 1. Bundles altered between controller and agent: the agent refuses, the CLI shows why.
    const flip = (b: Buffer, at = 0): Buffer => { const c = Buffer.from(b); c[at]! ^= 0xff; return c; };
    const tampers: [string, (b: DeployBundle) => DeployBundle, RegExp][] = [
      ['a wrong signature', (b) => ({ ...b, signature: flip(b.signature) }),
        /signature does not verify against the controller key pinned at enrollment/],
      ['a loader that does not match its signed sha256', (b) => ({ ...b, files: b.files.map((x) => (x.path === b.probe ? { ...x, content: flip(x.content, 100) } : x)) }),
        /file tcpstates has sha256 [0-9a-f]+\.\., its signed sha256 is [0-9a-f]+\.\.: refusing; the bundle was altered or corrupted on the way/],
      ['a path escaping the install directory', (b) => ({ ...b, files: b.files.map((x) => (x.path.endsWith('.manifest.json') ? { ...x, path: '../../../escaped.json' } : x)) }),
        /unsafe bundle path "\.\.\/\.\.\/\.\.\/escaped\.json": "\.\." component: refusing/],
    ];
    for (const [i, [what, fn, why]] of tampers.entries()) {
      m.tamperNext(fn);
      // People get a table; scripts get JSON. Both carry the device's reason and exit 1.
      const r = await f.cli(['deploy', 'tcpstates', '--to', 'lab=bad', '--args', `--rport ${port}`, ...(i === 0 ? [] : ['--json'])]);
      expect(m.tampered, `the proxy rewrote the deploy with ${what}`).toBe(i + 1);
      expect(r.code, `deploy of a bundle with ${what}:\n${r.stdout}${r.stderr}`).toBe(1);
      if (i === 0) {
        expect(r.stdout).toMatch(/DEVICE\s+DEPLOY\s+START\s+RUN\s+ERROR/);
        expect(r.stdout).toMatch(/FAILED/);
        expect(r.stdout).toMatch(why);
        expect(r.stderr).toContain('1 of 1 devices failed');
      } else {
        const done = parseDone(r);
        expect(done.ok).toBe(false);
        expect(done.devices).toHaveLength(1);
        expect(done.devices[0]).toMatchObject({ deployed: false });
        expect(done.devices[0]!.error).toMatch(why);
      }
      expect(tree(installDir), `install dir after the bundle with ${what}`).toEqual(installed);
      await traffic(5);
    }
    expect(readdirSync(f.dir).filter((n) => n.includes('escaped'))).toEqual([]);
    expect(existsSync(path.join(f.dir, 'escaped.json')) || existsSync(path.join(f.agentDir('a'), 'escaped.json'))).toBe(false);

    // 2. An unknown probe: refused by the controller before any device is asked.
    const unknown = await f.cli(['deploy', 'nosuchprobe', '--to', 'lab=bad', '--json']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^bpfleet: no built probe "nosuchprobe" \(built: .*tcpstates.*\)/);
    expect(tree(installDir)).toEqual(installed);

    // 3. Devices of the wrong architecture (BPFLEET_FAKE_ARCH, test only: they report it, their
    // installers know the truth). arm64 is built: the controller sends the arm64 bundle and the
    // agent refuses it. riscv64 is not: the controller refuses before sending anything.
    const oddToken = async () => f.token(['odd=1']);
    await f.startAgent('arm', { token: await oddToken(), extra: ['--name', 'fake-arm64'], env: { BPFLEET_FAKE_ARCH: 'arm64' } });
    await f.startAgent('riscv', { token: await oddToken(), extra: ['--name', 'fake-riscv64'], env: { BPFLEET_FAKE_ARCH: 'riscv64' } });
    expect(f.agents.get('arm')!.log()).toContain('TEST ONLY: BPFLEET_FAKE_ARCH is set: reporting arch arm64, this machine is x86_64');
    const odd = await f.cli(['deploy', 'tcpstates', '--to', 'odd=1', '--json']);
    expect(odd.code, odd.stdout + odd.stderr).toBe(1);
    const oddDone = parseDone(odd);
    expect(oddDone.devices).toHaveLength(2);
    const reasons = Object.fromEntries(oddDone.devices.map((d) => [d.id, d.error ?? '']));
    const idOf = (name: string) => (JSON.parse(readFileSync(path.join(f.agentDir(name), 'identity.json'), 'utf8')) as { deviceId: string }).deviceId;
    expect(reasons[idOf('arm')]).toMatch(/bundle tcpstates [\w.+-]+: built for arm64, this device is x86_64: refusing; deploy the x86_64 build of tcpstates/);
    expect(reasons[idOf('riscv')]).toMatch(/tcpstates for fake-riscv64 \(riscv64\): unknown arch "riscv64": probes are built for x86_64, arm64, arm/);
    expect(oddDone.devices.every((d) => !d.deployed)).toBe(true);
    expect(tree(path.join(f.agentDir('arm'), 'probes'))).toEqual([]);
    expect(tree(path.join(f.agentDir('riscv'), 'probes'))).toEqual([]);
    await traffic(5);

    // 4. A second agent presenting device a's credential (a copied identity.json): refused while
    // a is connected; a keeps its session and its events.
    mkdirSync(f.agentDir('clone'), { recursive: true, mode: 0o700 });
    copyFileSync(path.join(f.agentDir('a'), 'identity.json'), path.join(f.agentDir('clone'), 'identity.json'));
    const aLogBefore = agent.log().length;
    const clone = await f.startAgent('clone', { wait: false });
    const refusal = /session: disconnected \(PERMISSION_DENIED: device (d-[0-9a-f]+) \([^)]*\) is already connected from .*refusing a second agent/;
    await waitFor('the clone refused', () => refusal.test(clone.log()), 30_000, logs);
    expect(refusal.exec(clone.log())![1]).toBe(idOf('a'));
    expect(clone.log()).toMatch(/Two agents must not share one identity\.json/);
    expect(clone.log()).not.toContain('welcomed');
    await traffic(10);
    await waitFor(`${made} stored while the clone knocks`, () => f.storedEvents() === made, 30_000, logs);
    expect(agent.log().slice(aLogBefore), 'device a was never disconnected').not.toContain('session: disconnected');
    expect(f.controller!.log()).not.toMatch(/replaces the one from/);
    const devs = JSON.parse((await f.cli(['devices', '--json'])).stdout) as { id: string; online: boolean }[];
    expect(devs.find((d) => d.id === idOf('a'))?.online).toBe(true);
    clone.child.kill('SIGTERM');
    await clone.exited;

    // 5. Device "arm"'s agent presenting device a's credential with its own device id: refused.
    const hybrid = JSON.parse(readFileSync(path.join(f.agentDir('arm'), 'identity.json'), 'utf8')) as Record<string, unknown>;
    hybrid['credential'] = (JSON.parse(readFileSync(path.join(f.agentDir('a'), 'identity.json'), 'utf8')) as { credential: string }).credential;
    mkdirSync(f.agentDir('hybrid'), { recursive: true, mode: 0o700 });
    writeFileSync(path.join(f.agentDir('hybrid'), 'identity.json'), JSON.stringify(hybrid), { mode: 0o600 });
    const thief = await f.startAgent('hybrid', { wait: false });
    const denied = new RegExp(`session: disconnected \\(PERMISSION_DENIED: credential belongs to device ${idOf('a')}, hello says ${idOf('arm')}: ` +
      'the agent must use the device id and credential it got together at enrollment\\)');
    await waitFor('the agent with another device\'s credential refused', () => denied.test(thief.log()), 30_000, logs);
    expect(thief.log()).not.toContain('welcomed');
    thief.child.kill('SIGTERM');
    await thief.exited;
    expect(agent.log().slice(aLogBefore), 'device a was never disconnected').not.toContain('session: disconnected');

    // Nothing lost: every transition of the run that went on through all of this, stored once.
    await traffic(10);
    await waitFor(`${made} stored at the end`, () => f.storedEvents() === made, 30_000, logs);
    expect(f.distinctEvents()).toBe(made);
    await waitFor('pipeline stats caught up', async () => {
      const st = await f.streamStats();
      return st.length === 1 && BigInt(st[0]!.records) === BigInt(made) && st;
    }, 30_000, logs);
    const [s] = await f.streamStats();
    expect(Object.values(s!.lost).every((v) => v === '0'), JSON.stringify(s!.lost)).toBe(true);
    expect(s!.gapRecords).toBe(0);
  }, 240_000);
});
