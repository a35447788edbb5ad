// FleetCommander.deploy with the deploy limiter: a fake fleet whose "agents" answer after a delay
// (or never), the real bundles of bpf/out/x86_64 and the real PendingCommands timeouts.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandResult, KernelCaps } from '@bpfleet/proto';
import { loadOrCreateSigningKey, type BundleSigningKey } from '../bundles/signing-key.js';
import type { DeviceRow, Store } from '../store/store.js';
import { DeployLimiter } from './deploy-limiter.js';
import { FleetCommander, type CommanderHost, type CommandOutcome } from './fleet-commander.js';
import { CommandError, PendingCommands } from './pending-commands.js';

const OUT = fileURLToPath(new URL('../../../bpf/out', import.meta.url));
const CAPS: KernelCaps = { btf: true, kprobes: true, tracepoints: true, jit: true, bpfSyscall: true };

let dir: string;
let key: BundleSigningKey;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bpfleet-commander-'));
  key = await loadOrCreateSigningKey(dir);
});
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface FakeDevice {
  id: string;
  facts: Record<string, unknown>;
  online: boolean;
  /** ms after the bundle arrives that the device answers; undefined: never. */
  answerAfterMs: number | undefined;
}

/** A fleet of fake devices behind the CommanderHost interface, counting what is outstanding. */
class FakeFleet {
  readonly devices = new Map<string, FakeDevice>();
  readonly commands = new PendingCommands();
  readonly sentAt = new Map<string, number>();
  readonly deployments: string[] = [];
  outstanding = 0;
  maxOutstanding = 0;
  sends = 0;
  readonly limiter: DeployLimiter;
  readonly commander: FleetCommander;

  constructor(limit: number) {
    this.limiter = new DeployLimiter(limit);
    const store = {
      putManifest: async () => undefined,
      putBundle: async () => 1,
      setDeployment: async (id: string, _b: number, state: string) => { this.deployments.push(`${id} ${state}`); },
    } as unknown as Store;
    const host: CommanderHost = {
      store, log: { info: () => undefined, warn: () => undefined, error: () => undefined }, signingKey: key, bpfOutDir: OUT,
      deployTimeoutMs: 10_000, commandTimeoutMs: 10_000, deployLimiter: this.limiter,
      select: async () => [...this.devices.values()].map((d) => ({ id: d.id, name: d.id, facts: d.facts }) as unknown as DeviceRow),
      factsOf: (d) => this.devices.get(d.id)!.facts,
      online: (id) => this.devices.get(id)?.online ?? false,
      command: (id, what, build, timeoutMs = 10_000) => this.command(id, what, build, timeoutMs),
    };
    this.commander = new FleetCommander(host);
  }

  add(id: string, over: Partial<FakeDevice> = {}): void {
    this.devices.set(id, { id, facts: { arch: 'x86_64', kernelRelease: '6.1.0', caps: CAPS }, online: true, answerAfterMs: 5, ...over });
  }

  // As Fleet.command: offline is refused, the timeout starts when the message goes out.
  private command(id: string, what: string, build: Parameters<CommanderHost['command']>[2], timeoutMs: number): Promise<CommandResult> {
    const d = this.devices.get(id)!;
    if (!d.online) return Promise.reject(new CommandError('offline', `${what}: device ${id} is not connected`));
    const commandId = this.commands.newId();
    const result = this.commands.wait(commandId, id, d, what, timeoutMs);
    const msg = build(commandId);
    expect(msg.$case).toBe('deploy');
    this.sends++;
    this.sentAt.set(id, Date.now());
    this.outstanding++;
    this.maxOutstanding = Math.max(this.maxOutstanding, this.outstanding);
    const done = () => { this.outstanding--; };
    result.then(done, done);
    if (d.answerAfterMs !== undefined) {
      setTimeout(() => this.commands.settle(id, { commandId, ok: true, error: '', detailJson: '' }), d.answerAfterMs);
    }
    return result;
  }
}

/** Whether `p` settled within `ms`. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return Promise.race([p.then(() => true), sleep(ms).then(() => false)]);
}

describe('FleetCommander.deploy with a deploy limiter', () => {
  it('keeps at most the limit outstanding, and answers every device', async () => {
    const f = new FakeFleet(4);
    for (let i = 0; i < 40; i++) f.add(`d${i}`, { answerAfterMs: 2 + (i % 7) * 3 });
    const pending = await f.commander.deploy('all', 'tcpstates');
    expect(pending).toHaveLength(40);
    // Only the first four went out before deploy() resolved; the rest are queued, not refused.
    expect(f.sends).toBe(4);
    const outcomes = await Promise.all(pending.map((p) => p.result));
    expect(outcomes.every((o) => o.ok && o.status === 'ok')).toBe(true);
    expect(f.sends).toBe(40);
    expect(f.maxOutstanding).toBe(4);
    expect(f.limiter.peak).toBe(4);
    expect(f.limiter.inFlight).toBe(0);
    expect(f.deployments.filter((d) => d.endsWith('installed'))).toHaveLength(40);
  });

  it('bounds deploys across concurrent requests with the one limiter', async () => {
    const f = new FakeFleet(3);
    for (let i = 0; i < 10; i++) f.add(`d${i}`, { answerAfterMs: 3 });
    const [a, b] = await Promise.all([f.commander.deploy('all', 'tcpstates'), f.commander.deploy('all', 'tcpstates')]);
    const outcomes = await Promise.all([...a, ...b].map((p) => p.result));
    expect(outcomes.filter((o) => o.ok)).toHaveLength(20);
    expect(f.maxOutstanding).toBe(3);
  });

  it('starts a queued device\'s timeout when its bundle is sent, not when it was queued', async () => {
    const f = new FakeFleet(1);
    f.add('first', { answerAfterMs: 300 });
    f.add('second', { answerAfterMs: undefined }); // never answers
    const t0 = Date.now();
    const [first, second] = await f.commander.deploy('all', 'tcpstates', { timeoutMs: 400 });
    let secondSentAt = 0;
    void second!.sent!.then(() => { secondSentAt = Date.now(); });
    expect(await first!.result).toMatchObject({ ok: true, status: 'ok' });
    const o = await second!.result;
    const settledAt = Date.now();
    expect(o).toMatchObject({ ok: false, status: 'timeout' });
    expect(o.error).toMatch(/no answer from device second within 400 ms/);
    // Sent once the first answered, and given its whole 400 ms from then.
    expect(secondSentAt - t0).toBeGreaterThanOrEqual(290);
    expect(settledAt - f.sentAt.get('second')!).toBeGreaterThanOrEqual(390);
    expect(settledAt - t0).toBeGreaterThanOrEqual(690);
  });

  it('answers refusals and offline devices at once while the limit is taken', async () => {
    const f = new FakeFleet(1);
    f.add('busy', { answerAfterMs: undefined });
    f.add('queued', { answerAfterMs: 1 });
    f.add('gone', { online: false });
    f.add('noarch', { facts: {} });
    f.add('oldkernel', { facts: { arch: 'x86_64', kernelRelease: '3.10', caps: { ...CAPS, bpfSyscall: false } } });
    f.add('otherarch', { facts: { arch: 'sparc64', caps: CAPS } });
    const pending = await f.commander.deploy('all', 'tcpstates', { timeoutMs: 2000 });
    const by = Object.fromEntries(pending.map((p) => [p.device.id, p]));
    const quick = (id: string) => settlesWithin(by[id]!.result, 50);
    expect(await quick('gone')).toBe(true);
    expect(await by['gone']!.result).toMatchObject({ ok: false, status: 'offline' });
    for (const id of ['noarch', 'oldkernel', 'otherarch']) {
      expect(await quick(id)).toBe(true);
      expect((await by[id]!.result).status).toBe('refused');
      expect(await settlesWithin(by[id]!.sent!, 0)).toBe(true);
    }
    expect((await by['oldkernel']!.result).error).toMatch(/bpf\(\) syscall/);
    // "queued" waits behind "busy" (never answers): not sent, not refused.
    expect(await settlesWithin(by['queued']!.sent!, 50)).toBe(false);
    expect(await settlesWithin(by['queued']!.result, 0)).toBe(false);
    expect(f.sends).toBe(1);
  });

  it('answers offline for a device that disconnected while it waited for its turn', async () => {
    const f = new FakeFleet(1);
    f.add('slow', { answerAfterMs: 80 });
    f.add('leaves', { answerAfterMs: 1 });
    const [slow, leaves] = await f.commander.deploy('all', 'tcpstates');
    f.devices.get('leaves')!.online = false;
    expect(await slow!.result).toMatchObject({ ok: true });
    const o: CommandOutcome = await leaves!.result;
    expect(o).toMatchObject({ ok: false, status: 'offline' });
    expect(o.error).toMatch(/device leaves is not connected/);
    expect(f.sends).toBe(1);
    expect(f.limiter.inFlight).toBe(0);
  });
});

describe('DeployLimiter', () => {
  it('frees the slot when an answer rejects or send throws, and refuses a nonsense limit', async () => {
    const l = new DeployLimiter(1);
    const a = await l.run(() => Promise.reject(new Error('x')));
    await expect(a.answer).rejects.toThrow('x');
    const b = await l.run(() => { throw new Error('y'); });
    await expect(b.answer).rejects.toThrow('y');
    const c = await l.run(async () => 'ok');
    expect(await c.answer).toBe('ok');
    expect(l.inFlight).toBe(0);
    expect(() => new DeployLimiter(0)).toThrow(/whole number >= 1/);
  });
});
