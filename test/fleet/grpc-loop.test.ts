import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AGENT, Fleet, portBase, requireRoot, tcpgen, waitFor } from '../lib/index.js';

// The whole loop over gRPC with real parts: `bpfleet controller` (SQLite), `bpfleet-agent`
// enrolled with a one-time token, a tcpstates bundle deployed through the CLI, real loopback
// connections, and the events counted in the controller's database. Then faults: kill -9 of the
// controller and of the agent while events flow; every transition must end up stored once.

const CLIENT_TRANSITIONS = 5;
let fleet: Fleet | undefined;

describe('fleet loop over gRPC: controller + agent + tcpstates', () => {
  beforeAll(() => requireRoot());
  afterEach(async (ctx) => {
    await fleet?.stop(ctx.task.result?.state === 'fail');
    fleet = undefined;
  });

  it('stores every transition exactly once, through kill -9 of the controller and of the agent', async () => {
    const base = portBase(4);
    const f = (fleet = new Fleet({ name: 'loop', grpcPort: base, adminPort: base + 1 }));
    const port = base + 2;
    const logs = () => f.logs();
    await f.startController();
    const token = await f.token(['lab=ci']);
    let agent = await f.startAgent('a', { token });

    // A used token is refused: a second device cannot enroll with it.
    const thief = f.spawn(AGENT, ['--controller', f.grpc, '--data-dir', `${f.dir}/thief`, '--enroll-token', token]);
    expect(await thief.exited).not.toBe(0);
    expect(thief.log()).toMatch(/token/i);

    const dep = await f.cli(['deploy', 'tcpstates', '--to', 'lab=ci', '--args', `--rport ${port}`, '--json']);
    expect(dep.code, dep.stderr + dep.stdout).toBe(0);
    const stored = () => f.storedEvents();
    await waitFor('probe running', () => agent.log().includes('ready'), 30_000, logs);

    // Phase 1: plain traffic.
    let made = (await tcpgen({ port, send: 100, recv: 100, count: 40 })).conns.length * CLIENT_TRANSITIONS;
    await waitFor(`${made} stored`, () => stored() === made, 20_000, logs);

    // Phase 2: kill -9 the controller, keep traffic flowing, restart it.
    await f.kill9(f.controller!);
    made += (await tcpgen({ port, send: 100, recv: 100, count: 60 })).conns.length * CLIENT_TRANSITIONS;
    await f.startController();
    await waitFor(`${made} stored after controller restart`, () => stored() === made, 60_000, logs);

    // Phase 3: kill -9 the agent (its loader dies with the pipe), restart it; traffic after.
    await f.kill9(agent);
    agent = await f.startAgent('a');
    // The run is the controller's to restart: start it again through the CLI.
    const dep2 = await f.cli(['deploy', 'tcpstates', '--to', 'lab=ci', '--args', `--rport ${port}`, '--json']);
    expect(dep2.code, dep2.stderr + dep2.stdout).toBe(0);
    await waitFor('probe running again', () => agent.log().includes('ready'), 30_000, logs);
    made += (await tcpgen({ port, send: 100, recv: 100, count: 30 })).conns.length * CLIENT_TRANSITIONS;
    await waitFor(`${made} stored after agent restart`, () => stored() === made, 30_000, logs);

    // Exactly once: no sequence number stored twice in any stream, and nothing beyond what was made.
    expect(f.distinctEvents()).toBe(made);

    // The CLI reads the same events back through the admin API, decoded.
    const ev = await f.cli(['events', '--probe', 'tcpstates', '--limit', '100000', '--json']);
    expect(ev.code, ev.stderr).toBe(0);
    const events = JSON.parse(ev.stdout) as { seq: number; fields: Record<string, unknown> }[];
    expect(events).toHaveLength(made);
    expect(events.every((e) => e.fields['rport'] === port && e.fields['comm'] === 'tcpgen')).toBe(true);
    const chains = events.filter((e) => e.fields['newstate'] === 'ESTABLISHED').length;
    expect(chains * CLIENT_TRANSITIONS).toBe(made);
  }, 240_000);
});
