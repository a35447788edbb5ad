import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import {
  FrameKind,
  createVethPair,
  nsSnmpCounter,
  parsePing,
  probeBinary,
  requireRoot,
  runProbe,
  type VethPair,
} from '../lib/index.js';
import { decodeRecord, loadManifest, sumField, type Manifest } from './support.js';

// The probe runs inside the target namespace: `ip netns exec` execs it (same pid), so the
// run's SIGINT/SIGKILL reach the loader itself.
function runIn(pair: VethPair, ns: string, ifname: string, args: readonly string[], stdout: 'json' | 'frames' = 'json') {
  return runProbe('xdpping', [...pair.nsArgs(ns), probeBinary('xdpping'), '--ifname', ifname, ...(stdout === 'json' ? ['--json'] : []), ...args], {
    bin: 'ip',
    waitReady: true,
    stdout,
  });
}

/** True while some XDP program is attached to the interface (`ip link` prints "prog/xdp"). */
function xdpAttached(pair: VethPair, ns: string, ifname: string): boolean {
  return /prog\/xdp|xdpgeneric|xdpdrv|\sxdp\s/.test(execFileSync('ip', ['-n', ns, '-d', 'link', 'show', 'dev', ifname]).toString());
}

function decodeFrames(frames: readonly { kind: number; payload: Buffer }[], m: Manifest) {
  const hello = frames.filter((f) => f.kind === FrameKind.Hello).map((f) => JSON.parse(f.payload.toString('utf8')));
  expect(hello).toHaveLength(1);
  const records = frames.filter((f) => f.kind === FrameKind.Event).map((f) => decodeRecord(m, f.payload));
  return { hello: hello[0] as Record<string, unknown>, records };
}

async function waitDetached(pair: VethPair, ns: string, ifname: string): Promise<boolean> {
  // A released link is detached right away; allow for a slow, shared machine.
  for (let i = 0; i < 50; i++) {
    if (!xdpAttached(pair, ns, ifname)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

async function ping(pair: VethPair, count: number): Promise<ReturnType<typeof parsePing>> {
  // -i 0.01 needs root (we are); -W 1: a lost reply costs one second, not the default ten.
  const out = await pair
    .exec(pair.peerNs, 'ping', ['-n', '-q', '-c', String(count), '-i', '0.01', '-W', '1', pair.targetAddr])
    .catch((e: Error) => e.message); // ping exits 1 when replies are missing: parse anyway
  return parsePing(out);
}

describe('xdpping', () => {
  let pair: VethPair;

  beforeAll(() => {
    requireRoot();
    pair = createVethPair('xping');
  });

  afterAll(() => {
    pair?.remove();
  });

  it('--manifest: an interval record with answered/passed counters and the sampled echo fields', () => {
    const m = JSON.parse(execFileSync(probeBinary('xdpping'), ['--manifest']).toString());
    expect(m).toEqual(loadManifest('xdpping'));
    expect(m.kind).toBe('interval');
    expect(m.record).toMatchObject({ name: 'xdpping_event', size: 88 });
    expect(m.hooks).toEqual([{ group: 'rx', program: 'xdpping_xdp', kind: 'xdp', target: '--ifname' }]);
    expect(m.args.map((a: { name: string }) => a.name)).toEqual(['ifname', 'xdp-mode', 'sample']);
  });

  it('exits 2 naming the problem when --ifname is missing or unknown', () => {
    for (const [args, msg] of [
      [[], /--ifname IF is required/],
      [['--ifname', 'nosuchif0'], /no interface 'nosuchif0'/],
      [['--ifname', 'lo', '--xdp-mode', 'fast'], /--xdp-mode takes auto, native or generic/],
    ] as const) {
      let status = 0;
      let stderr = '';
      try {
        execFileSync(probeBinary('xdpping'), [...args], { stdio: 'pipe' });
      } catch (err) {
        const e = err as { status: number; stderr: Buffer };
        status = e.status;
        stderr = e.stderr.toString();
      }
      expect(status).toBe(2);
      expect(stderr).toMatch(msg);
    }
  });

  // veth in native mode sends XDP_TX frames to the peer only when the peer runs XDP itself
  // (its NAPI receive path); a second xdpping on the peer end is that program there (it only
  // answers requests; the replies it sees pass).
  for (const mode of ['native', 'generic'] as const) {
    it(`${mode} mode: answers every ping from the peer namespace; the target's stack sends no reply`, async () => {
      const peerRun = mode === 'native' ? runIn(pair, pair.peerNs, pair.peerIf, ['--xdp-mode', 'native']) : undefined;
      await peerRun?.ready;
      const run = runIn(pair, pair.targetNs, pair.targetIf, ['--machine', '--xdp-mode', mode, '--interval', '200', '--sample', '1'], 'frames');
      await run.ready;
      expect(xdpAttached(pair, pair.targetNs, pair.targetIf)).toBe(true);
      const stackBefore = nsSnmpCounter(pair, pair.targetNs, 'Icmp', 'OutEchoReps');
      const N = 50;
      const p = await ping(pair, N);
      await new Promise((r) => setTimeout(r, 500)); // two intervals past the last echo
      const res = await run.stop();
      const peerRes = await peerRun?.stop();
      const stackAfter = nsSnmpCounter(pair, pair.targetNs, 'Icmp', 'OutEchoReps');

      expect(res.code).toBe(0);
      const manifest = loadManifest('xdpping');
      const { hello, records } = decodeFrames(res.frames, manifest);
      expect(hello).toMatchObject({ probe: 'xdpping', xdp: { ifname: pair.targetIf, mode } });
      const intervals = records.filter((r) => r.type === 0);
      const echoes = records.filter((r) => r.type === 1);
      const answered = sumField(intervals, 'answered');
      expect(p.sent).toBe(N);
      expect(p.received).toBe(N);
      expect(answered).toBe(p.received);
      expect(intervals.at(-1)!.answered_total).toBe(answered);
      // The stack never saw the requests, so it sent no replies.
      expect(stackAfter - stackBefore).toBe(0);
      // --sample 1: every echo is reported, with the asker and the sequence numbers 1..N.
      expect(echoes).toHaveLength(N);
      expect(echoes.every((e) => e.saddr === pair.peerAddrs[0] && e.daddr === pair.targetAddr)).toBe(true);
      expect(echoes.map((e) => e.seq).sort((a, b) => Number(a) - Number(b))).toEqual(Array.from({ length: N }, (_, i) => i + 1));
      expect(new Set(echoes.map((e) => e.id)).size).toBe(1);
      // The peer's program answered nothing (it saw replies only, and ARP).
      if (peerRes) {
        expect(peerRes.code).toBe(0);
        expect(sumField(peerRes.events.filter((e) => e.type === 0), 'answered')).toBe(0);
        expect(sumField(peerRes.events.filter((e) => e.type === 0), 'passed')).toBeGreaterThanOrEqual(N);
      }
      expect(await waitDetached(pair, pair.targetNs, pair.targetIf)).toBe(true);
    });
  }

  it('without the probe the stack answers (OutEchoReps grows); latency of both printed', async () => {
    const N = 200;
    const before = nsSnmpCounter(pair, pair.targetNs, 'Icmp', 'OutEchoReps');
    const stack = await ping(pair, N);
    const after = nsSnmpCounter(pair, pair.targetNs, 'Icmp', 'OutEchoReps');
    expect(stack.received).toBe(N);
    expect(after - before).toBe(N);

    const peerRun = runIn(pair, pair.peerNs, pair.peerIf, ['--xdp-mode', 'native']);
    await peerRun.ready;
    const lat: Record<string, ReturnType<typeof parsePing>> = { stack };
    for (const mode of ['native', 'generic'] as const) {
      const run = runIn(pair, pair.targetNs, pair.targetIf, ['--xdp-mode', mode]);
      await run.ready;
      lat[`xdp ${mode}`] = await ping(pair, N);
      expect((await run.stop()).code).toBe(0);
    }
    await peerRun.stop();
    // Printed, not asserted: a shared 2-core machine makes timings noise.
    const base = lat.stack!.avgMs!;
    console.log(
      `xdpping vs stack, ${N} pings at 10 ms over veth (avg/min/max ms, ratio of avg to stack):\n` +
        Object.entries(lat)
          .map(([k, v]) => `  ${k.padEnd(12)} ${v.avgMs}/${v.minMs}/${v.maxMs}  ${(v.avgMs! / base).toFixed(2)}`)
          .join('\n'),
    );
    for (const v of Object.values(lat)) expect(v.received).toBe(N);
  });

  it('leaves nothing on the interface when killed with SIGTERM or SIGKILL', async () => {
    for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
      const run = runIn(pair, pair.targetNs, pair.targetIf, []);
      await run.ready;
      expect(xdpAttached(pair, pair.targetNs, pair.targetIf)).toBe(true);
      process.kill(run.pid!, sig);
      const res = await run.catch((e: Error) => e);
      if (sig === 'SIGTERM') expect((res as { code: number }).code).toBe(0);
      expect(await waitDetached(pair, pair.targetNs, pair.targetIf), `XDP still attached after ${sig}`).toBe(true);
    }
  });

  it('a second loader on the same interface fails with exit 5 and says what is attached', async () => {
    const run = runIn(pair, pair.targetNs, pair.targetIf, []);
    await run.ready;
    let status = 0;
    let stderr = '';
    try {
      execFileSync('ip', [...pair.nsArgs(pair.targetNs), probeBinary('xdpping'), '--ifname', pair.targetIf, '--duration', '1'], { stdio: 'pipe' });
    } catch (err) {
      const e = err as { status: number; stderr: Buffer };
      status = e.status;
      stderr = e.stderr.toString();
    }
    await run.stop();
    expect(status).toBe(5);
    expect(stderr).toMatch(/an XDP program is already attached/);
  });
});
