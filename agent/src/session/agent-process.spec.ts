// bin/bpfleet-agent.js as a process: enrollment into <data-dir>/identity.json, refusal without
// identity or token, and the SIGTERM path (probes stopped, last batches spooled, exit 0).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProbeStatus_State as S } from '@bpfleet/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newSigner } from '../bundles/signed-bundle.fixture.js';
import { buildTcpgen, devDir, ensureProbesBuilt, pickPort, requireRoot, runTcpgen, tempDir } from '../probes/probe-test-support.js';
import { Spool } from '../spool/index.js';
import { TestController } from './session-test-support.js';

const BIN = fileURLToPath(new URL('../../bin/bpfleet-agent.js', import.meta.url));
let tmp: string;
let tcpgen: string;

/** Pids of processes whose command line contains every one of `parts`. */
function processesWith(...parts: string[]): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').join(' ');
    } catch {
      continue;
    }
    if (parts.every((p) => cmd.includes(p))) out.push(Number(e));
  }
  return out;
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

describe('bpfleet-agent process', () => {
  beforeAll(() => {
    requireRoot();
    ensureProbesBuilt();
    tmp = tempDir('agent-proc');
    tcpgen = buildTcpgen(tmp);
  }, 600_000);
  afterAll(() => {
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
  });

  it('refuses to start without an identity or an enrollment token, saying what to do', () => {
    const r = spawnSync(process.execPath, [BIN, '--controller', '127.0.0.1:1', '--data-dir', path.join(tmp, 'none')], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/no device identity at .*identity\.json and no --enroll-token/);
    const usage = spawnSync(process.execPath, [BIN, '--data-dir', tmp], { encoding: 'utf8', timeout: 30_000 });
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/--controller HOST:PORT is required/);
  }, 60_000);

  it('enrolls once, runs a probe on command, and on SIGTERM stops it, spools its last batches and exits 0', async () => {
    const ctrl = new TestController();
    const key = newSigner().publicKeyRaw;
    ctrl.enrollResponse = { deviceId: 'dev-proc', credential: ctrl.credential, bundleSigningKey: key, labels: { lab: '3' } };
    await ctrl.start();
    const dataDir = path.join(tmp, 'data');
    const args = ['--controller', ctrl.address, '--data-dir', dataDir, '--enroll-token', 'tok-1', '--board', 'workstation', '--dev-probes', devDir];
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const done = exited(child);
    const port = pickPort();
    try {
      await ctrl.waitFor('Hello', () => ctrl.hellos.length === 1, 30_000);
      expect(ctrl.enrolls).toHaveLength(1);
      expect(ctrl.enrolls[0]).toMatchObject({ token: 'tok-1', facts: { board: 'workstation', arch: 'x86_64' } });
      const idFile = path.join(dataDir, 'identity.json');
      expect(statSync(idFile).mode & 0o777).toBe(0o600);
      expect(JSON.parse(readFileSync(idFile, 'utf8'))).toMatchObject({
        deviceId: 'dev-proc',
        credential: ctrl.credential,
        bundleSigningKey: key.toString('base64'),
        labels: { lab: '3' },
      });

      const res = await ctrl.command({ $case: 'start', value: { commandId: 'c1', probe: 'tcpstates', runId: 'p1', args: ['--rport', String(port)] } });
      expect(res.ok).toBe(true);
      await ctrl.waitFor('RUNNING', () => ctrl.statuses.some((s) => s.state === S.STATE_RUNNING));
      expect(processesWith('tcpstates', '--rport', String(port))).toHaveLength(1);
      // Stop acking so what the agent holds at the end is visible in its spool.
      ctrl.acking = false;
      await runTcpgen(tcpgen, port, 10, 10, 6);

      child.kill('SIGTERM');
      const { code, signal } = await done;
      expect({ code, signal }).toEqual({ code: 0, signal: null });
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      ctrl.stop();
    }
    expect(stderr).toMatch(/SIGTERM: stopping probes/);
    expect(stderr).toMatch(/session: stopped \(1 probe runs ended/);
    // The loader is gone, it stopped cleanly, and all 30 records are in the spool.
    expect(processesWith('tcpstates', '--rport', String(port))).toEqual([]);
    expect(ctrl.statuses.find((s) => s.state === S.STATE_STOPPED)).toMatchObject({ runId: 'p1', exitCode: 0 });
    const spool = await Spool.open({ dir: path.join(dataDir, 'spool'), maxBytes: 64 << 20 });
    try {
      const [c] = spool.cursors();
      expect(c).toMatchObject({ streamId: 'dev-proc/tcpstates/p1', firstSeq: 1n, nextSeq: 31n });
      let n = 0;
      for await (const b of spool.replay()) n += b.count;
      expect(n).toBe(30);
    } finally {
      await spool.close();
    }

    // Started again without a token: the stored identity, no second enrollment, the spool replayed.
    ctrl.acking = true;
    await ctrl.start(ctrl.port);
    const second = spawn(process.execPath, [BIN, '--controller', ctrl.address, '--data-dir', dataDir, '--dev-probes', devDir], { stdio: 'ignore' });
    const secondDone = exited(second);
    try {
      await ctrl.waitFor('second Hello', () => ctrl.hellos.length === 2, 30_000);
      expect(ctrl.enrolls).toHaveLength(1);
      expect(ctrl.hellos[1]!.spooled).toEqual([{ streamId: 'dev-proc/tcpstates/p1', firstSeq: 1n, nextSeq: 31n }]);
      await ctrl.waitFor('30 records', () => ctrl.received('dev-proc/tcpstates/p1') >= 30);
      expect(ctrl.missing('dev-proc/tcpstates/p1', 30)).toEqual([]);
      second.kill('SIGINT');
      expect(await secondDone).toEqual({ code: 0, signal: null });
    } finally {
      if (second.exitCode === null && second.signalCode === null) second.kill('SIGKILL');
      ctrl.stop();
    }
  }, 90_000);
});
