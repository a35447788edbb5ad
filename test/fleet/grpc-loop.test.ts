import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { repoRoot, requireRoot, tcpgen } from '../lib/index.js';

// The whole loop over gRPC with real parts: `bpfleet controller` (SQLite), `bpfleet-agent`
// enrolled with a one-time token, a tcpstates bundle deployed through the CLI, real loopback
// connections, and the events counted in the controller's database. Then faults: kill -9 of the
// controller and of the agent while events flow; every transition must end up stored once.

const CLI = path.join(repoRoot, 'controller', 'bin', 'bpfleet.js');
const AGENT = path.join(repoRoot, 'agent', 'bin', 'bpfleet-agent.js');
const CLIENT_TRANSITIONS = 5;

interface Proc { child: ChildProcess; log: () => string }
const procs: Proc[] = [];

function start(bin: string, args: string[], env: NodeJS.ProcessEnv): Proc {
  const child = spawn(process.execPath, [bin, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const p = { child, log: () => log };
  procs.push(p);
  return p;
}

async function waitFor<T>(what: string, fn: () => T | undefined | false, ms: number, logs: () => string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}\n${logs()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

async function stopAll(): Promise<void> {
  for (const p of procs.splice(0)) {
    if (p.child.exitCode !== null || p.child.signalCode !== null) continue;
    p.child.kill('SIGTERM');
    await new Promise((r) => { p.child.once('exit', r); setTimeout(r, 10_000).unref(); });
  }
}

describe('fleet loop over gRPC: controller + agent + tcpstates', () => {
  beforeAll(() => requireRoot());
  afterEach(stopAll);

  it('stores every transition exactly once, through kill -9 of the controller and of the agent', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bpfleet-loop-'));
    const base = 11000 + (process.pid % 500) * 4;
    const grpc = `127.0.0.1:${base}`, admin = `127.0.0.1:${base + 1}`, port = base + 2;
    const env = { ...process.env, XDG_CONFIG_HOME: path.join(dir, 'cfg') };
    const ctlArgs = ['controller', '--data-dir', path.join(dir, 'ctl'), '--grpc', grpc, '--admin', admin];
    let ctl = start(CLI, ctlArgs, env);
    await waitFor('controller', () => ctl.log().includes('admin API on'), 30_000, ctl.log);

    const tok = await cli(['token', 'create', '--label', 'lab=ci', '--json'], env);
    expect(tok.code, tok.stderr).toBe(0);
    const token = JSON.parse(tok.stdout).token as string;
    const agentArgs = ['--controller', grpc, '--data-dir', path.join(dir, 'agent'), '--board', 'host',
      '--dev-probes', path.join(repoRoot, 'bpf', 'out', 'x86_64')];
    let agent = start(AGENT, [...agentArgs, '--enroll-token', token], env);
    const logs = () => `--- controller\n${ctl.log()}\n--- agent\n${agent.log()}`;
    await waitFor('agent welcomed', () => agent.log().includes('welcomed'), 30_000, logs);

    // A used token is refused: a second device cannot enroll with it.
    const thief = start(AGENT, ['--controller', grpc, '--data-dir', path.join(dir, 'thief'), '--enroll-token', token], env);
    await new Promise((r) => thief.child.once('exit', r));
    expect(thief.child.exitCode).not.toBe(0);
    expect(thief.log()).toMatch(/token/i);

    const dep = await cli(['deploy', 'tcpstates', '--to', 'lab=ci', '--args', `--rport ${port}`, '--json'], env);
    expect(dep.code, dep.stderr + dep.stdout).toBe(0);
    const db = () => new Database(path.join(dir, 'ctl', 'bpfleet.db'), { readonly: true, fileMustExist: true });
    const stored = () => {
      const d = db();
      try {
        return (d.prepare('SELECT COALESCE(SUM(count), 0) AS n FROM batches').get() as { n: number }).n;
      } finally { d.close(); }
    };
    await waitFor('probe running', () => agent.log().includes('ready'), 30_000, logs);

    // Phase 1: plain traffic.
    let made = (await tcpgen({ port, send: 100, recv: 100, count: 40 })).conns.length * CLIENT_TRANSITIONS;
    await waitFor(`${made} stored`, () => stored() === made, 20_000, logs);

    // Phase 2: kill -9 the controller, keep traffic flowing, restart it.
    ctl.child.kill('SIGKILL');
    made += (await tcpgen({ port, send: 100, recv: 100, count: 60 })).conns.length * CLIENT_TRANSITIONS;
    ctl = start(CLI, ctlArgs, env);
    await waitFor(`${made} stored after controller restart`, () => stored() === made, 60_000, logs);

    // Phase 3: kill -9 the agent (its loader dies with the pipe), restart it; traffic after.
    agent.child.kill('SIGKILL');
    await new Promise((r) => agent.child.once('exit', r));
    agent = start(AGENT, agentArgs, env);
    await waitFor('agent back', () => agent.log().includes('welcomed'), 30_000, logs);
    // The run is the controller's to restart: start it again through the CLI.
    const dep2 = await cli(['deploy', 'tcpstates', '--to', 'lab=ci', '--args', `--rport ${port}`, '--json'], env);
    expect(dep2.code, dep2.stderr + dep2.stdout).toBe(0);
    await waitFor('probe running again', () => (agent.log().match(/ready/g) ?? []).length >= 1, 30_000, logs);
    made += (await tcpgen({ port, send: 100, recv: 100, count: 30 })).conns.length * CLIENT_TRANSITIONS;
    await waitFor(`${made} stored after agent restart`, () => stored() === made, 30_000, logs);

    // Exactly once: no sequence number stored twice in any stream, and nothing beyond what was made.
    const d = db();
    try {
      const batches = d.prepare('SELECT stream AS stream_id, first_seq, count FROM batches').all() as { stream_id: number; first_seq: number; count: number }[];
      const seen = new Set<string>();
      for (const b of batches) for (let s = b.first_seq; s < b.first_seq + b.count; s++) {
        const k = `${b.stream_id}:${s}`;
        expect(seen.has(k), `seq ${k} stored twice`).toBe(false);
        seen.add(k);
      }
      expect(seen.size).toBe(made);
    } finally { d.close(); }

    // The CLI reads the same events back through the admin API, decoded.
    const ev = await cli(['events', '--probe', 'tcpstates', '--limit', '100000', '--json'], env);
    expect(ev.code, ev.stderr).toBe(0);
    const events = JSON.parse(ev.stdout) as { seq: number; fields: Record<string, unknown> }[];
    expect(events).toHaveLength(made);
    expect(events.every((e) => e.fields['rport'] === port && e.fields['comm'] === 'tcpgen')).toBe(true);
    const chains = events.filter((e) => e.fields['newstate'] === 'ESTABLISHED').length;
    expect(chains * CLIENT_TRANSITIONS).toBe(made);
  }, 240_000);
});
