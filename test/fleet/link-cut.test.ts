import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Fleet, TcpProxy, portBase, requireRoot, tcpgen, waitFor, type CutMode } from '../lib/index.js';

// The link between a real agent and a real controller cut by a real TCP proxy while tcpstates
// events flow: first for 30 s with every connection reset (the agent sees the cut at once), then
// as a silent blackhole (no RST, bytes just stop: only keepalive can notice). Traffic goes on
// during each cut; the agent's spool must hold it, and after restore every transition must be
// stored exactly once, with no loss counted anywhere.

const CLIENT_TRANSITIONS = 5;
const RESET_CUT_MS = 30_000;
/** The blackhole lasts until the agent noticed it, and this much longer. */
const BLACKHOLE_AFTER_NOTICE_MS = 5_000;

let fleet: Fleet | undefined;
let proxy: TcpProxy | undefined;

/** Bytes in the agent's spool segment files now. */
function spoolBytes(dir: string): number {
  const spool = path.join(dir, 'spool');
  let n = 0;
  for (const f of readdirSync(spool, { recursive: true, withFileTypes: true })) {
    if (f.isFile()) n += statSync(path.join(f.parentPath, f.name)).size;
  }
  return n;
}

/** The first match of `re` in `log` after offset `from` (what a process printed since then). */
function lineAfter(log: string, from: number, re: RegExp): RegExpExecArray | undefined {
  return re.exec(log.slice(from)) ?? undefined;
}

describe('fleet loop through a cut link (TCP proxy between agent and controller)', () => {
  beforeAll(() => requireRoot());
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail' && fleet) console.log(`logs of the failed run (kept in ${fleet.dir}):\n${fleet.logs()}`);
    await proxy?.close();
    proxy = undefined;
    await fleet?.stop(ctx.task.result?.state === 'fail');
    fleet = undefined;
  });

  it('spools through a 30 s reset cut and a blackhole cut, then stores every transition exactly once', async () => {
    const base = portBase(6);
    const f = (fleet = new Fleet({ name: 'linkcut', grpcPort: base, adminPort: base + 1 }));
    const port = base + 2;
    const logs = () => `${f.logs()}\n--- proxy ${JSON.stringify(proxy?.counters)}`;
    await f.startController();
    const px = (proxy = await TcpProxy.start({ port: base + 3, target: { port: base } }));
    const token = await f.token(['lab=cut']);
    const agent = await f.startAgent('a', { token, controller: px.address });
    expect(px.counters.accepted).toBeGreaterThan(0); // the agent really goes through the proxy

    const dep = await f.cli(['deploy', 'tcpstates', '--to', 'lab=cut', '--args', `--rport ${port}`, '--json']);
    expect(dep.code, dep.stderr + dep.stdout).toBe(0);
    await waitFor('probe running', () => agent.log().includes('ready'), 30_000, logs);
    const stored = () => f.storedEvents();

    let made = (await tcpgen({ port, send: 100, recv: 100, count: 40 })).conns.length * CLIENT_TRANSITIONS;
    await waitFor(`${made} stored before the cut`, () => stored() === made, 30_000, logs);

    /** Makes connections in rounds until stop() is called; resolves with the transitions made. */
    function trafficUntil(): { stop: () => Promise<number> } {
      let running = true;
      const loop = (async () => {
        let n = 0;
        while (running) {
          n += (await tcpgen({ port, send: 50, recv: 50, count: 10 })).conns.length * CLIENT_TRANSITIONS;
          await new Promise((r) => setTimeout(r, 500));
        }
        return n;
      })();
      return { stop: () => { running = false; return loop; } };
    }

    const figures: Record<string, unknown> = {};
    async function cutAndRestore(mode: CutMode, holdMs: (noticedAfterMs: number) => number): Promise<void> {
      const storedBefore = stored();
      const spoolBefore = spoolBytes(f.agentDir('a'));
      const logFrom = agent.log().length;
      const t0 = Date.now();
      px.cut(mode);
      const traffic = trafficUntil();
      // The agent's session notices the link is gone: at once for a reset, by keepalive for a blackhole.
      await waitFor(`agent notices the ${mode} cut`, () => lineAfter(agent.log(), logFrom, /session: disconnected \(([^)]*)\)/), 90_000, logs);
      const noticedMs = Date.now() - t0;
      const reason = lineAfter(agent.log(), logFrom, /session: disconnected \(([^)]*)\)/)![1];
      const until = t0 + noticedMs + holdMs(noticedMs);
      while (Date.now() < until) await new Promise((r) => setTimeout(r, 200));
      const during = await traffic.stop();
      made += during;
      // Nothing crossed the cut: the store did not move, and the agent's spool grew by what was made.
      expect(stored(), 'events stored while the link was cut').toBe(storedBefore);
      const spoolGrowth = spoolBytes(f.agentDir('a')) - spoolBefore;
      expect(spoolGrowth, 'bytes the spool gained during the cut').toBeGreaterThan(0);
      const cutMs = Date.now() - t0;

      const restoreLog = agent.log().length;
      const t1 = Date.now();
      px.restore();
      await waitFor(`${made} stored after the ${mode} cut`, () => stored() === made, 120_000, logs);
      const drainedMs = Date.now() - t1;
      // What the store lacked at reconnect came from the agent's spool (its Welcome log line).
      const replay = lineAfter(agent.log(), restoreLog, /replaying (\d+) unacknowledged records from the spool/);
      expect(replay, `agent log after restore:\n${agent.log().slice(restoreLog)}`).toBeDefined();
      const replayed = Number(replay![1]);
      if (mode === 'reset') {
        // Every connection was aborted at the cut: all made during it waited in the spool.
        expect(replayed).toBeGreaterThanOrEqual(during);
      } else {
        // Until the agent noticed, it kept writing batches into the silent connection; when the
        // partition heals TCP delivers those late (as retransmission would), the rest is replayed.
        expect(replayed).toBeGreaterThan(0);
        expect(replayed).toBeLessThanOrEqual(during);
      }
      figures[mode] = { noticedMs, reason, cutMs, madeDuringCut: during, replayedFromSpool: replayed,
        deliveredLateOverOldConnection: Math.max(0, during - replayed), spoolGrowthBytes: spoolGrowth, restoreToAllStoredMs: drainedMs };
      console.log(`link-cut ${mode}: ${JSON.stringify(figures[mode])}`);
    }

    // 1. 30 s with every connection reset and new ones refused.
    await cutAndRestore('reset', (noticed) => Math.max(0, RESET_CUT_MS - noticed));
    expect(px.counters.reset).toBeGreaterThan(0);
    expect(px.counters.refused, 'reconnect attempts refused during the cut').toBeGreaterThan(0);

    // 2. Silent blackhole: no RST, no FIN; held until the agent noticed, and a little longer.
    await cutAndRestore('blackhole', () => BLACKHOLE_AFTER_NOTICE_MS);
    const noticed = (figures['blackhole'] as { noticedMs: number }).noticedMs;
    // The agent's keepalive (10 s ping, 5 s answer) must notice within 15 s, plus scheduling slack.
    expect(noticed, 'time for the agent to notice a blackhole').toBeLessThan(25_000);

    // Exactly once: no (stream, seq) twice, nothing more or less than the transitions made.
    expect(f.distinctEvents()).toBe(made);
    // Loss per stage: none here, and the store saw no gap, duplicate stored, or rejection.
    await waitFor('agent pipeline stats sample after the cuts', async () => {
      const st = await f.streamStats();
      return st.length > 0 && st.every((s) => BigInt(s.records) === BigInt(s.storedRecords)) && st;
    }, 30_000, logs);
    for (const s of await f.streamStats()) {
      expect(s.storedRecords).toBe(made);
      expect(Object.values(s.lost).every((v) => v === '0'), `lost counters ${JSON.stringify(s.lost)}`).toBe(true);
      expect(s.gapRecords).toBe(0);
      expect(s.rejectedRecords).toBe(0);
    }
    console.log(`link-cut figures: ${JSON.stringify({ ...figures, made, proxy: px.counters })}`);
  }, 300_000);
});
