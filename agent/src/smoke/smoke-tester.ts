// RunSmokeTest on the device: for each probe, one by one, start its loader with the manifest's
// smoke args (an ordinary probe run: its batches go to the session's sink, i.e. the spool and
// the stream to the controller, under the run id "smoke-<command>-<probe>"), wait until it is
// loaded and attached, fire the manifest's trigger, and wait for a record that meets the
// manifest's expectation. The outcome per probe says pass, fail (verifier, attach, nothing
// arrived) or unsupported (the loader's exit 3 message), with the timings and the verified
// instruction counts from the loader's HELLO.
import {
  ProbeStatus_State, decodeRecord, describeSmokeExpect, smokeArgs, smokeMismatches,
  type ManifestSmoke, type ProbeStatus, type SmokeVars,
} from '@bpfleet/proto';
import {
  ProbeRunner, type BatchLimits, type LoaderManifest, type ManifestCache, type ProbeBatch, type ProbeRegistry, type ProbeSink,
} from '../probes/index.js';
import { describeLoaderFailure } from './loader-failure.js';
import type { SmokeProbeResult, SmokeProgram, SmokeReport } from './smoke-types.js';
import { SmokeUnsupportedError } from './trigger-support.js';
import { makeTrigger as defaultMakeTrigger, KNOWN_TRIGGERS, type SmokeTrigger } from './triggers.js';

export interface SmokeTesterOptions {
  registry: ProbeRegistry;
  /** Shared with the session's runner: one --manifest call per installed loader. */
  manifests: ManifestCache;
  deviceId: string;
  /** Where the smoke runs' batches, stats and statuses go: the session's sink (spool, then stream). */
  sink: ProbeSink;
  /** Probes to test when a command names none: every installed probe. */
  installed: () => Promise<string[]>;
  batch?: Partial<BatchLimits>;
  statsIntervalMs?: number;
  /** Loader start until attached, at most (default 60 s: the verifier is slow on emulated boards). */
  attachTimeoutMs?: number;
  /** Trigger until the first matching record, at most, when the command says 0 (default 10 s). */
  probeTimeoutMs?: number;
  /** For specs: triggers by name. */
  makeTrigger?: (name: string) => SmokeTrigger | undefined;
  log?: (line: string) => void;
}

export interface SmokeCommand {
  commandId: string;
  probes: readonly string[];
  probeTimeoutMs?: number;
}

const { STATE_RUNNING, STATE_STOPPED, STATE_CRASHED, STATE_FAILED } = ProbeStatus_State;
const LOG_CHARS = 4000;
const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

interface HelloProgram {
  name?: string;
  kind?: string;
  target?: string;
  verified_insns?: number;
}

function programsOf(helloJson: string): SmokeProgram[] {
  if (!helloJson) return [];
  try {
    const h = JSON.parse(helloJson) as { programs?: HelloProgram[] };
    return (h.programs ?? []).map((p) => ({
      name: p.name ?? '', kind: p.kind ?? '', target: p.target ?? '', verifiedInsns: Number(p.verified_insns ?? 0),
    }));
  } catch {
    return [];
  }
}

/** What one smoke run has shown so far; waiters wake on every change. */
class RunWatch {
  running: ProbeStatus | undefined;
  ended: ProbeStatus | undefined;
  records = 0;
  /** Set when the trigger is about to fire: only records from then on can pass. */
  armedAt: number | undefined;
  matchedAt: number | undefined;
  /** The first record after arming that did not match, and why, for the failure reason. */
  firstMismatch: string | undefined;
  brokenManifest: string | undefined;
  private waiters = new Set<() => void>();

  constructor(private readonly lm: LoaderManifest, private readonly smoke: ManifestSmoke, private readonly vars: SmokeVars) {}

  onBatch(b: ProbeBatch): void {
    for (let i = 0; i < b.count; i++) {
      this.records++;
      if (this.armedAt === undefined || this.matchedAt !== undefined || this.brokenManifest !== undefined) continue;
      const rec = b.records.subarray(i * b.recordSize, (i + 1) * b.recordSize);
      try {
        const fields = decodeRecord(this.lm.manifest, rec);
        const missed = smokeMismatches(this.smoke, fields, this.vars);
        if (missed.length === 0) this.matchedAt = Date.now();
        else this.firstMismatch ??= `${missed.map((c) => `${c.field}=${String(fields[c.field])}`).join(', ')}`;
      } catch (err) {
        this.brokenManifest = message(err);
      }
    }
    this.wake();
  }

  onStatus(s: ProbeStatus): void {
    if (s.state === STATE_RUNNING) this.running = s;
    if (s.state === STATE_STOPPED || s.state === STATE_FAILED || s.state === STATE_CRASHED) this.ended ??= s;
    this.wake();
  }

  wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Resolves true once cond holds, false after ms. */
  until(cond: () => boolean, ms: number): Promise<boolean> {
    if (cond()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = (): void => {
        if (!cond()) return;
        done(true);
      };
      const timer = setTimeout(() => done(false), ms);
      const done = (v: boolean): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(v);
      };
      this.waiters.add(check);
    });
  }
}

export class SmokeTester {
  private readonly runner: ProbeRunner;
  private readonly watches = new Map<string, RunWatch>();
  private readonly log: (line: string) => void;
  private readonly makeTrigger: (name: string) => SmokeTrigger | undefined;
  private stopping = false;

  constructor(private readonly opts: SmokeTesterOptions) {
    this.log = opts.log ?? ((): void => undefined);
    this.makeTrigger = opts.makeTrigger ?? defaultMakeTrigger;
    const sink = opts.sink;
    this.runner = new ProbeRunner({
      registry: opts.registry,
      deviceId: opts.deviceId,
      manifests: opts.manifests,
      ...(opts.batch ? { batch: opts.batch } : {}),
      ...(opts.statsIntervalMs !== undefined ? { statsIntervalMs: opts.statsIntervalMs } : {}),
      stopGraceMs: 3000,
      sink: {
        // The smoke runs' records are stored like any other run's: the session's sink gets all of them.
        batch: (b) => {
          this.watches.get(b.runId)?.onBatch(b);
          return sink.batch(b);
        },
        stats: (s) => sink.stats?.(s),
        status: (s) => {
          this.watches.get(s.runId)?.onStatus(s);
          return sink.status?.(s);
        },
      },
      log: (runId, line) => this.log(`probe ${runId}: ${line}`),
    });
  }

  /** Tests the named probes (every installed one when none is named), one after the other. */
  async run(cmd: SmokeCommand): Promise<SmokeReport> {
    const t0 = Date.now();
    const probes = cmd.probes.length > 0 ? [...cmd.probes] : await this.opts.installed();
    const timeoutMs = cmd.probeTimeoutMs && cmd.probeTimeoutMs > 0 ? cmd.probeTimeoutMs : (this.opts.probeTimeoutMs ?? 10_000);
    const results: SmokeProbeResult[] = [];
    for (const probe of probes) {
      const r = await this.runOne(cmd.commandId, probe, timeoutMs);
      this.log(`smoke: ${probe}: ${r.outcome}${r.reason ? ` (${r.reason.split('\n', 1)[0]})` : ''}` +
        `${r.timeToFirstEventMs !== null ? `, first event after ${r.timeToFirstEventMs} ms` : ''}`);
      results.push(r);
    }
    return { deviceId: this.opts.deviceId, probes: results, durationMs: Date.now() - t0 };
  }

  /** Agent shutdown: ends the smoke runs; a test in progress reports its probes as failed. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const w of this.watches.values()) w.wake();
    await this.runner.stopAll();
  }

  private async runOne(commandId: string, probe: string, timeoutMs: number): Promise<SmokeProbeResult> {
    const t0 = Date.now();
    const runId = `smoke-${commandId}-${probe}`;
    const r: SmokeProbeResult = {
      probe, version: '', outcome: 'fail', reason: '', runId, streamId: `${this.opts.deviceId}/${probe}/${runId}`, schemaId: '',
      trigger: '', vars: {}, args: [], expect: '', attachMs: null, timeToFirstEventMs: null, verifiedInsns: null, programs: [],
      records: 0, durationMs: 0,
    };
    const fail = (reason: string, extra: Partial<SmokeProbeResult> = {}): SmokeProbeResult =>
      Object.assign(r, { outcome: 'fail', reason, durationMs: Date.now() - t0 }, extra);
    if (this.stopping) return fail('the agent is stopping');

    let lm: LoaderManifest;
    try {
      lm = await this.opts.manifests.get((await this.opts.registry.resolve(probe)).path);
    } catch (err) {
      return fail(message(err));
    }
    r.version = lm.manifest.version;
    r.schemaId = lm.schemaId;
    const smoke = lm.manifest.smoke;
    if (smoke === undefined) {
      return fail(`the ${probe} loader's manifest has no smoke entry (built before smoke tests existed?): rebuild it and deploy it again`);
    }
    r.trigger = smoke.trigger;
    const trigger = this.makeTrigger(smoke.trigger);
    if (trigger === undefined) {
      return fail(`${probe} needs the smoke trigger "${smoke.trigger}", which this agent does not know ` +
        `(it knows ${KNOWN_TRIGGERS.join(', ')}): update the agent`);
    }
    try {
      return await this.attachAndTrigger(r, lm, smoke, trigger, timeoutMs, fail, t0);
    } finally {
      await this.runner.stop(runId);
      this.watches.delete(runId);
      await trigger.close();
    }
  }

  private async attachAndTrigger(r: SmokeProbeResult, lm: LoaderManifest, smoke: ManifestSmoke, trigger: SmokeTrigger,
    timeoutMs: number, fail: (reason: string, extra?: Partial<SmokeProbeResult>) => SmokeProbeResult, t0: number): Promise<SmokeProbeResult> {
    const attachTimeoutMs = this.opts.attachTimeoutMs ?? 60_000;
    try {
      r.vars = await trigger.prepare();
      r.args = smokeArgs(smoke, r.vars);
      r.expect = describeSmokeExpect(smoke, r.vars);
    } catch (err) {
      // The device cannot make the activity (no /dev/kvm, no ping): like a loader's exit 3.
      if (err instanceof SmokeUnsupportedError) return Object.assign(r, { outcome: 'unsupported', reason: err.message, durationMs: Date.now() - t0 });
      return fail(`smoke trigger ${smoke.trigger} could not be readied: ${message(err)}`);
    }
    const unknown = smoke.expect.filter((c) => !lm.manifest.record.fields.some((f) => f.name === c.field));
    if (unknown.length > 0) {
      return fail(`the ${r.probe} manifest's smoke entry names fields its record does not have: ${unknown.map((c) => c.field).join(', ')}`);
    }
    const watch = new RunWatch(lm, smoke, r.vars);
    this.watches.set(r.runId, watch);
    // A safety net: the loader ends on its own even if nobody stops it.
    const durationS = Math.ceil((attachTimeoutMs + timeoutMs) / 1000) + 5;
    const startedAt = Date.now();
    try {
      this.runner.start({ runId: r.runId, probe: r.probe, args: [...r.args, '--duration', String(durationS)] });
    } catch (err) {
      return fail(`cannot start the smoke run: ${message(err)}`);
    }
    const settled = await watch.until(() => watch.running !== undefined || watch.ended !== undefined || this.stopping, attachTimeoutMs);
    if (this.stopping) return fail('the agent is stopping');
    if (!settled) return fail(`the loader did not load and attach within ${attachTimeoutMs} ms`);
    if (watch.running === undefined) return watch.ended ? this.ended(r, watch.ended, fail, t0) : fail('the loader ended without a status');
    r.attachMs = Date.now() - startedAt;
    r.programs = programsOf(watch.running.loaderHelloJson);
    // Kernels before 5.16 have no verified_insns in bpf_prog_info (the loader prints 0): unknown,
    // shown as "-", not as a count of 0.
    r.verifiedInsns = r.programs.length > 0 && r.programs.every((p) => p.verifiedInsns > 0)
      ? r.programs.reduce((n, p) => n + p.verifiedInsns, 0) : null;

    watch.armedAt = Date.now();
    try {
      await trigger.fire();
    } catch (err) {
      return fail(message(err), { records: watch.records });
    }
    const remaining = Math.max(0, watch.armedAt + timeoutMs - Date.now());
    await watch.until(() => watch.matchedAt !== undefined || watch.ended !== undefined || watch.brokenManifest !== undefined ||
      this.stopping, remaining);
    r.records = watch.records;
    if (watch.matchedAt !== undefined) {
      return Object.assign(r, { outcome: 'pass', reason: '', timeToFirstEventMs: watch.matchedAt - watch.armedAt, durationMs: Date.now() - t0 });
    }
    if (watch.brokenManifest !== undefined) return fail(`cannot judge the records: ${watch.brokenManifest}`);
    if (this.stopping) return fail('the agent is stopping');
    if (watch.ended !== undefined) return this.ended(r, watch.ended, fail, t0);
    return fail(`attached, but no record with ${r.expect} within ${timeoutMs} ms of the trigger ` +
      `(${watch.records} records seen${watch.firstMismatch ? `; the first had ${watch.firstMismatch}` : ''})`);
  }

  /** The loader ended before passing: exit code and stderr say why. */
  private ended(r: SmokeProbeResult, s: ProbeStatus, fail: (reason: string, extra?: Partial<SmokeProbeResult>) => SmokeProbeResult,
    t0: number): SmokeProbeResult {
    const log = s.reason.length > LOG_CHARS ? `...${s.reason.slice(-LOG_CHARS)}` : s.reason;
    r.programs = programsOf(s.loaderHelloJson);
    // FAILED: a permanent exit (3 unsupported, 4 verifier, 6 permission); CRASHED: the others (5 attach).
    if ((s.state === STATE_FAILED || s.state === STATE_CRASHED) && s.exitCode > 0) {
      const f = describeLoaderFailure(s.exitCode, s.reason);
      return Object.assign(r, { outcome: f.outcome, reason: f.reason, exitCode: s.exitCode, log, durationMs: Date.now() - t0 });
    }
    const what = s.state === STATE_CRASHED ? 'the loader crashed' : s.state === STATE_STOPPED ? 'the loader stopped' : 'the loader failed';
    return fail(`${what} before a matching record arrived: ${s.reason.split('\n').filter(Boolean).pop() ?? ''}`,
      { exitCode: s.exitCode, log });
  }
}
