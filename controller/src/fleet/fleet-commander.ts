// Deploy, start, stop and smoke over the selected devices. Each device gets a PendingCommand
// whose result never rejects: it says ok, what the device answered, or why nothing was sent.
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  bundleDigest, ProbeStatus_State, type CommandResult, type ControllerMessage, type KernelCaps, type Manifest,
} from '@bpfleet/proto';
import { buildBundle, type SignedBundle } from '../bundles/build-bundle.js';
import { PROBE_ARCHES } from '../bundles/loader-arch.js';
import type { BundleSigningKey } from '../bundles/signing-key.js';
import type { DeviceRow, Store } from '../store/store.js';
import { FleetError } from './fleet-error.js';
import type { FleetLog } from './fleet.js';
import type { DeployLimiter } from './deploy-limiter.js';
import { CommandError } from './pending-commands.js';
import { whyNotRunnable } from './runnable.js';
import type { DeviceSelector } from './selector.js';

export interface CommandOutcome {
  ok: boolean;
  /**
   * ok / failed: the device answered. refused: nothing was sent (error says why). offline: no
   * session. timeout / disconnected: sent, but no answer came.
   */
  status: 'ok' | 'failed' | 'refused' | 'offline' | 'timeout' | 'disconnected';
  /** Why not, in words a user can act on. */
  error?: string;
  /** CommandResult.detail_json, parsed. */
  detail?: unknown;
  commandId?: string;
}

export interface StartOutcome extends CommandOutcome {
  runId?: string;
  /** "<device>/<probe>/<runId>": where the run's events are stored. */
  streamId?: string;
}

export interface PendingCommand<T extends CommandOutcome = CommandOutcome> {
  device: { id: string; name: string };
  /** The command's id, when it was sent (smoke: its runs are "smoke-<commandId>-<probe>"). */
  commandId?: string;
  /**
   * Deploy only: resolves when the command is sent, or when it is settled without being sent. A
   * deploy beyond the controller's deploy concurrency waits its turn; its timeout starts here.
   */
  sent?: Promise<void>;
  /** Settles when the device answers (or cannot); never rejects. */
  result: Promise<T>;
}

export interface DeployOptions {
  /** Send even to devices whose kernel capabilities say the probe cannot run. */
  force?: boolean;
  timeoutMs?: number;
}

export interface SmokeOptions {
  /** How long the device may wait for the whole test (default: the deploy timeout). */
  timeoutMs?: number;
  /** RunSmokeTest.probe_timeout_ms: per probe, trigger until a matching record (0: agent default). */
  probeTimeoutMs?: number;
}

export interface CommanderHost {
  store: Store;
  log: FleetLog;
  signingKey: BundleSigningKey;
  bpfOutDir: string;
  deployTimeoutMs: number;
  commandTimeoutMs: number;
  /** Bounds the deploys in flight across every deploy request. */
  deployLimiter: DeployLimiter;
  select(sel: string | DeviceSelector): Promise<DeviceRow[]>;
  factsOf(d: DeviceRow): Record<string, unknown>;
  online(deviceId: string): boolean;
  command(deviceId: string, what: string, build: (commandId: string) => NonNullable<ControllerMessage['payload']>,
    timeoutMs?: number): Promise<CommandResult>;
}

interface PreparedBundle {
  bundle: SignedBundle;
  manifest: Manifest;
  bundleId: number;
}

// Probe names become directory names on devices and parts of stream ids.
const PROBE_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;

function checkProbeName(probe: string): void {
  if (!PROBE_NAME.test(probe)) throw new FleetError('invalid_argument', `probe name ${JSON.stringify(probe)} is not a plain name (letters, digits, . _ + -)`);
}

/** "<probe>@<version>:<first 16 hex of sha256(manifest text)>", as the agent derives it from the same file. */
export function schemaIdOf(m: Pick<Manifest, 'probe' | 'version'>, text: Buffer | string): string {
  return `${m.probe}@${m.version}:${createHash('sha256').update(text).digest('hex').slice(0, 16)}`;
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

function answered(r: CommandResult): CommandOutcome {
  let detail: unknown;
  if (r.detailJson) {
    try { detail = JSON.parse(r.detailJson); } catch { detail = r.detailJson; }
  }
  return { ok: r.ok, status: r.ok ? 'ok' : 'failed', commandId: r.commandId,
    ...(r.ok ? {} : { error: r.error || 'the device reported a failure without a reason' }), ...(detail === undefined ? {} : { detail }) };
}

function noAnswer(err: unknown): CommandOutcome {
  return { ok: false, status: err instanceof CommandError ? err.kind : 'failed', error: message(err) };
}

const offline = (d: DeviceRow): CommandOutcome =>
  ({ ok: false, status: 'offline', error: `device ${d.name} (${d.id}) is not connected; nothing was sent` });

export class FleetCommander {
  constructor(private readonly host: CommanderHost) {}

  async deploy(selector: string | DeviceSelector, probe: string, opts: DeployOptions = {}): Promise<PendingCommand[]> {
    checkProbeName(probe);
    const devices = await this.host.select(selector);
    const perArch = new Map<string, Promise<PreparedBundle>>();
    const prepare = (arch: string) => {
      let p = perArch.get(arch);
      if (!p) { p = this.prepare(probe, arch); perArch.set(arch, p); p.catch(() => undefined); }
      return p;
    };
    // Every refusal is decided and every bundle sent or queued (deployLimiter) before this resolves.
    return Promise.all(devices.map(async (d) => ({ device: { id: d.id, name: d.name }, ...await this.deployOne(d, probe, prepare, opts) })));
  }

  /**
   * Refuses, or queues the send and returns the pending answer (in an object, so awaiting this
   * does not wait for it). Refusals are immediate; only a device that gets the bundle waits for a slot.
   */
  private async deployOne(d: DeviceRow, probe: string, prepare: (arch: string) => Promise<PreparedBundle>,
    opts: DeployOptions): Promise<{ result: Promise<CommandOutcome>; sent: Promise<void> }> {
    const now = Promise.resolve();
    const refused = (error: string) => ({ result: Promise.resolve<CommandOutcome>({ ok: false, status: 'refused', error }), sent: now });
    const facts = this.host.factsOf(d);
    const arch = typeof facts['arch'] === 'string' ? facts['arch'] : '';
    if (!arch) return refused(`device ${d.name} (${d.id}) has not reported its architecture yet: connect its agent first`);
    let prepared: PreparedBundle;
    try {
      prepared = await prepare(arch);
    } catch (err) {
      return refused(`${probe} for ${d.name} (${arch}): ${message(err)}`);
    }
    if (!opts.force) {
      const why = whyNotRunnable(prepared.manifest, facts['caps'] as KernelCaps | undefined);
      const release = typeof facts['kernelRelease'] === 'string' ? facts['kernelRelease'] : '?';
      if (why) return refused(`${d.name} (${arch}, kernel ${release}): ${why}`);
    }
    if (!this.host.online(d.id)) return { result: Promise.resolve(offline(d)), sent: now };
    const { bundle, bundleId } = prepared;
    await this.host.store.setDeployment(d.id, bundleId, 'pending');
    const what = `deploy ${probe} ${bundle.version} (${arch}) to ${d.name}`;
    let markSent!: () => void;
    const sent = new Promise<void>((resolve) => { markSent = resolve; });
    // The slot is held until the answer settles; command() starts the timeout at the send, and
    // answers 'offline' for a device that left while it waited. The spread shares the files' buffers.
    const answer = this.host.deployLimiter.run(() => {
      markSent();
      return this.host.command(d.id, what, (commandId) => ({ $case: 'deploy', value: { ...bundle, commandId } }),
        opts.timeoutMs ?? this.host.deployTimeoutMs).then(answered, noAnswer);
    }).then((turn) => turn.answer).catch(noAnswer);
    return { sent, result: answer.then(async (o) => {
      if (o.status === 'ok' || o.status === 'failed') {
        await this.host.store.setDeployment(d.id, bundleId, o.ok ? 'installed' : 'failed', o.error ?? '').catch((err: unknown) => {
          this.host.log.error(`${what}: cannot record the deployment: ${message(err)}`);
        });
      }
      return o;
    }) };
  }

  /** Builds and signs the bundle for one arch, and records it and its manifest in the store. */
  private async prepare(probe: string, arch: string): Promise<PreparedBundle> {
    const bundle = await buildBundle({ probe, arch, outDir: this.host.bpfOutDir, key: this.host.signingKey });
    const mf = bundle.files.find((f) => f.path === `${probe}.manifest.json`);
    if (!mf) throw new Error(`the bundle has no ${probe}.manifest.json`);
    const manifest = JSON.parse(mf.content.toString('utf8')) as Manifest;
    // The agent's batches name this schema id: with the manifest stored they decode.
    await this.host.store.putManifest(schemaIdOf(manifest, mf.content), manifest);
    const bundleId = await this.host.store.putBundle({ probe, version: bundle.version, arch, sha256: bundleDigest(bundle).toString('hex'),
      signature: bundle.signature });
    return { bundle, manifest, bundleId };
  }

  async start(selector: string | DeviceSelector, probe: string, args: string[], opts: { timeoutMs?: number } = {}):
    Promise<PendingCommand<StartOutcome>[]> {
    checkProbeName(probe);
    if (!Array.isArray(args) || args.some((a) => typeof a !== 'string')) throw new FleetError('invalid_argument', 'loader args must be strings');
    const devices = await this.host.select(selector);
    return Promise.all(devices.map(async (d) => {
      const device = { id: d.id, name: d.name };
      if (!this.host.online(d.id)) return { device, result: Promise.resolve<StartOutcome>(offline(d)) };
      const runId = `r${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
      const streamId = `${d.id}/${probe}/${runId}`;
      await this.host.store.startRun({ runId, deviceId: d.id, probe, args });
      const what = `start ${probe} on ${d.name} (run ${runId})`;
      const result = this.host.command(d.id, what, (commandId) => ({ $case: 'start', value: { commandId, probe, runId, args } }),
        opts.timeoutMs ?? this.host.commandTimeoutMs).then(answered, noAnswer).then(async (o): Promise<StartOutcome> => {
        if (o.status === 'failed') await this.recordFailedStart(d, probe, runId, o.error ?? '');
        return { ...o, runId, streamId };
      });
      return { device, result };
    }));
  }

  /** A start the device refused leaves a failed run, not one that looks like it is starting forever. */
  private async recordFailedStart(d: DeviceRow, probe: string, runId: string, reason: string): Promise<void> {
    await this.host.store.recordProbeStatus(d.id, { runId, probe, state: ProbeStatus_State.STATE_FAILED, reason, exitCode: 0,
      restarts: 0, loaderHelloJson: '', streamId: '' }).catch((err: unknown) => {
      this.host.log.error(`run ${runId}: cannot record the failed start: ${message(err)}`);
    });
  }

  async stop(runId: string, opts: { timeoutMs?: number } = {}): Promise<CommandOutcome> {
    const run = (await this.host.store.runs()).find((r) => r.runId === runId);
    if (!run) return { ok: false, status: 'refused', error: `no run "${runId}" (see bpfleet runs)` };
    if (!this.host.online(run.deviceId)) {
      return { ok: false, status: 'offline', error: `device ${run.deviceId} of run ${runId} is not connected; nothing was sent` };
    }
    return this.host.command(run.deviceId, `stop run ${runId}`, (commandId) => ({ $case: 'stop', value: { commandId, runId } }),
      opts.timeoutMs ?? this.host.commandTimeoutMs).then(answered, noAnswer);
  }

  /**
   * Sends RunSmokeTest. commandId is known as soon as it is sent: the smoke runs are
   * "smoke-<commandId>-<probe>", so a caller can follow their statuses before the answer.
   */
  async smoke(selector: string | DeviceSelector, probes: string[], opts: SmokeOptions = {}): Promise<PendingCommand[]> {
    probes.forEach(checkProbeName);
    const devices = await this.host.select(selector);
    return devices.map((d) => {
      const device = { id: d.id, name: d.name };
      if (!this.host.online(d.id)) return { device, result: Promise.resolve(offline(d)) };
      let sent: string | undefined;
      const result = this.host.command(d.id, `smoke test on ${d.name}`, (commandId) => {
        sent = commandId;
        return { $case: 'smoke', value: { commandId, probes, probeTimeoutMs: opts.probeTimeoutMs ?? 0 } };
      }, opts.timeoutMs ?? this.host.deployTimeoutMs).then(answered, noAnswer);
      return { device, result, ...(sent !== undefined ? { commandId: sent } : {}) };
    });
  }

  async registerBuiltManifests(): Promise<string[]> {
    const ids: string[] = [];
    for (const arch of PROBE_ARCHES) {
      const dir = join(this.host.bpfOutDir, arch);
      const names = await readdir(dir).catch(() => [] as string[]);
      for (const name of names.filter((n) => n.endsWith('.manifest.json')).sort()) {
        const text = await readFile(join(dir, name));
        const m = JSON.parse(text.toString('utf8')) as Manifest;
        const id = schemaIdOf(m, text);
        await this.host.store.putManifest(id, m);
        ids.push(id);
      }
    }
    return ids;
  }
}
