// A real fleet for integration tests and benchmarks: `bpfleet controller` and `bpfleet-agent`
// started as child processes (the same entry points users run), the CLI called the same way,
// and the controller's SQLite database read directly to count what was stored.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { repoRoot } from './paths.js';

export const CLI = path.join(repoRoot, 'controller', 'bin', 'bpfleet.js');
export const AGENT = path.join(repoRoot, 'agent', 'bin', 'bpfleet-agent.js');
export const X86_PROBES = path.join(repoRoot, 'bpf', 'out', 'x86_64');

export interface Proc {
  child: ChildProcess;
  /** Everything written to stdout and stderr so far. */
  log: () => string;
  /** Resolves with the exit code (or the signal name) once the process is gone and its output read. */
  exited: Promise<number | string>;
}

export interface CliResult { code: number; stdout: string; stderr: string }

/** One stream of `bpfleet stats --json` (the fields fault tests look at). */
export interface StreamStats {
  streamId: string;
  probe: string;
  /** Records the loader wrote (as of the agent's last sample), decimal. */
  records: string;
  storedRecords: number;
  duplicateRecords: number;
  gapRecords: number;
  rejectedRecords: number;
  lost: Record<string, string>;
}

export async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, ms: number, logs: () => string = () => ''): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}\n${logs()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A block of `span` ports for one test file, chosen by pid so reruns do not collide with
 * lingering sockets; always below 20000, where tcpgen's listeners (pickPort) never go.
 */
export function portBase(span = 8): number {
  return 11000 + (process.pid % Math.floor(9000 / span)) * span;
}

/**
 * One controller plus any number of agents, in a temporary directory that is removed by stop()
 * unless the test failed (keep: true) so its logs and database can be read.
 */
export class Fleet {
  readonly dir: string;
  readonly env: NodeJS.ProcessEnv;
  readonly grpc: string;
  readonly admin: string;
  controller: Proc | undefined;
  /** Controllers started by startExtraController (scale-out tests), by name. */
  readonly extraControllers = new Map<string, Proc>();
  readonly agents = new Map<string, Proc>();
  private readonly procs: Proc[] = [];

  /** Node options for the controller and agents (not the CLI), e.g. --cpu-prof for a benchmark. */
  readonly nodeArgs: string[];

  constructor(opts: { name?: string; grpcPort: number; adminPort: number; env?: NodeJS.ProcessEnv; nodeArgs?: string[] }) {
    this.dir = mkdtempSync(path.join(os.tmpdir(), `bpfleet-${opts.name ?? 'fleet'}-`));
    this.nodeArgs = opts.nodeArgs ?? [];
    this.env = { ...process.env, XDG_CONFIG_HOME: path.join(this.dir, 'cfg'), ...opts.env };
    this.grpc = `127.0.0.1:${opts.grpcPort}`;
    this.admin = `127.0.0.1:${opts.adminPort}`;
  }

  get dbPath(): string {
    return path.join(this.dir, 'ctl', 'bpfleet.db');
  }

  controllerArgs(extra: string[] = []): string[] {
    return ['controller', '--data-dir', path.join(this.dir, 'ctl'), '--grpc', this.grpc, '--admin', this.admin, ...extra];
  }

  /** Starts (or restarts) the controller and waits for its admin API. */
  async startController(extra: string[] = []): Promise<Proc> {
    this.controller = this.spawn(CLI, this.controllerArgs(extra));
    await waitFor('controller admin API', () => this.controller!.log().includes('admin API on'), 30_000, () => this.logs());
    return this.controller;
  }

  /** XDG_CONFIG_HOME of extra controller `name`: its CLI config (admin URL and token). */
  configHome(name: string): string {
    return path.join(this.dir, `cfg-${name}`);
  }

  /**
   * Starts another controller (scale-out: it must share a postgres:// --store, given in
   * `extra`, with the first) on its own gRPC and admin addresses and with its own CLI config
   * (configHome), sharing the data dir and so the bundle signing key. Waits for its admin API.
   */
  async startExtraController(name: string, opts: { grpc: string; admin: string; extra?: string[] }): Promise<Proc> {
    const p = this.spawn(CLI, ['controller', '--data-dir', path.join(this.dir, 'ctl'), '--grpc', opts.grpc, '--admin', opts.admin,
      ...(opts.extra ?? [])], { XDG_CONFIG_HOME: this.configHome(name) });
    this.extraControllers.set(name, p);
    await waitFor(`controller ${name} admin API`, () => p.log().includes('admin API on'), 30_000, () => this.logs());
    return p;
  }

  /** `bpfleet token create --json`, returning the one-time token. */
  async token(labels: string[] = []): Promise<string> {
    const r = await this.cli(['token', 'create', ...labels.flatMap((l) => ['--label', l]), '--json']);
    if (r.code !== 0) throw new Error(`token create failed: ${r.stderr}`);
    return (JSON.parse(r.stdout) as { token: string }).token;
  }

  agentArgs(name: string, extra: string[] = [], controller: string = this.grpc): string[] {
    return ['--controller', controller, '--data-dir', this.agentDir(name), '--board', 'host', '--dev-probes', X86_PROBES, ...extra];
  }

  /** The data directory of agent `name` (identity.json, spool/, probes/). */
  agentDir(name: string): string {
    return path.join(this.dir, `agent-${name}`);
  }

  /**
   * Starts the agent called `name` (its data dir is kept across restarts); with a token it
   * enrolls first. Waits until the controller welcomed it unless wait is false. `controller`
   * overrides the address it connects to (a proxy in front of the controller); `env` is added
   * to its environment.
   */
  async startAgent(name: string, opts: { token?: string; extra?: string[]; wait?: boolean; controller?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Proc> {
    // --enroll-token=T: a token is base64url and may start with '-', which parseArgs would take for an option.
    const args = this.agentArgs(name, [...(opts.extra ?? []), ...(opts.token ? [`--enroll-token=${opts.token}`] : [])], opts.controller);
    const p = this.spawn(AGENT, args, opts.env);
    this.agents.set(name, p);
    if (opts.wait !== false) await waitFor(`agent ${name} welcomed`, () => p.log().includes('welcomed'), 30_000, () => this.logs());
    return p;
  }

  /** Starts `node bin args` with the fleet's environment plus `env`, its output collected. */
  spawn(bin: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
    const child = spawn(process.execPath, [...this.nodeArgs, bin, ...args], { env: { ...this.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    // 'close', not 'exit': output can still be in flight at 'exit', and tests read log() right after.
    const exited = new Promise<number | string>((r) => child.once('close', (code, sig) => r(code ?? sig ?? 'unknown')));
    const p = { child, log: () => log, exited };
    this.procs.push(p);
    return p;
  }

  cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [CLI, ...args], { env: { ...this.env, ...env } });
      let stdout = '', stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    });
  }

  /** Opens the controller's database read-only for one query. */
  query<T>(fn: (db: Database.Database) => T): T {
    const db = new Database(this.dbPath, { readonly: true, fileMustExist: true });
    try {
      return fn(db);
    } finally {
      db.close();
    }
  }

  /** Events stored, summed over all batches (0 before the database exists). */
  storedEvents(): number {
    try {
      return this.query((d) => (d.prepare('SELECT COALESCE(SUM(count), 0) AS n FROM batches').get() as { n: number }).n);
    } catch {
      return 0;
    }
  }

  /** Throws when any (stream, seq) is stored twice; returns how many distinct events there are. */
  distinctEvents(): number {
    return this.query((d) => {
      const batches = d.prepare('SELECT stream, first_seq, count FROM batches').all() as { stream: number; first_seq: number; count: number }[];
      const seen = new Set<string>();
      for (const b of batches) for (let s = b.first_seq; s < b.first_seq + b.count; s++) {
        const k = `${b.stream}:${s}`;
        if (seen.has(k)) throw new Error(`event ${k} stored twice`);
        seen.add(k);
      }
      return seen.size;
    });
  }

  /**
   * `bpfleet stats --json`: per stream, what the loader wrote, what was stored, and what each
   * stage lost (`lost`: "stage.reason" -> count, as decimal strings).
   */
  async streamStats(): Promise<StreamStats[]> {
    const r = await this.cli(['stats', '--json']);
    if (r.code !== 0) throw new Error(`bpfleet stats failed (${r.code}): ${r.stderr}`);
    return JSON.parse(r.stdout) as StreamStats[];
  }

  logs(): string {
    const parts = [`--- controller\n${this.controller?.log() ?? ''}`];
    for (const [n, p] of this.extraControllers) parts.push(`--- controller ${n}\n${p.log()}`);
    for (const [n, p] of this.agents) parts.push(`--- agent ${n}\n${p.log()}`);
    return parts.join('\n');
  }

  /** SIGKILL, and waits until the process is gone. */
  async kill9(p: Proc): Promise<void> {
    p.child.kill('SIGKILL');
    await p.exited;
  }

  /** SIGTERM to everything still running (SIGKILL after 10 s), then removes the directory unless keep. */
  async stop(keep = false): Promise<void> {
    for (const p of this.procs.splice(0).reverse()) {
      if (p.child.exitCode !== null || p.child.signalCode !== null) continue;
      p.child.kill('SIGTERM');
      const t = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
      await p.exited;
      clearTimeout(t);
    }
    if (!keep) rmSync(this.dir, { recursive: true, force: true });
  }
}
