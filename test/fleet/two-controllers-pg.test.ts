import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Fleet, Mosquitto, Postgres, TcpProxy, portBase, requireMosquitto, requireRoot, tcpgen, waitFor } from '../lib/index.js';

// Scale-out over gRPC (docs/SCALE-OUT.md): two real `bpfleet controller` processes sharing one
// real PostgreSQL (`--store postgres://...`), the data dir (so the bundle signing key) shared,
// each on its own gRPC and admin ports, behind a least-connections TCP load balancer. Four real
// agents enroll through the balancer with tokens made on the first controller, so some enroll
// on the second; tcpstates is deployed through both admin APIs, real loopback connections are
// made, then the first controller is killed with -9 while traffic flows and its agents come
// back through the balancer to the second. Every transition must be stored exactly once, and
// each controller must have stored some of it (batches.stored_by says which one committed what).

const CLIENT_TRANSITIONS = 5;
const AGENTS = ['a', 'b', 'c', 'd'];

let fleet: Fleet | undefined;
let lb: TcpProxy | undefined;
let pg: Postgres | undefined;
let broker: Mosquitto | undefined;

interface DeployDone { ok: boolean; devices: { name: string; deployed: boolean; started: boolean; error?: string }[] }

describe('two controllers sharing PostgreSQL (gRPC behind a TCP balancer; MQTT through one broker)', () => {
  beforeAll(() => requireRoot());
  afterEach(async (ctx) => {
    const failed = ctx.task.result?.state === 'fail';
    if (failed && fleet) console.log(`logs of the failed run (kept in ${fleet.dir}):\n${fleet.logs()}\n--- postgres\n${pg?.log() ?? ''}`);
    await lb?.close();
    await broker?.stop();
    await fleet?.stop(failed);
    await pg?.stop(failed);
    lb = undefined;
    broker = undefined;
    fleet = undefined;
    pg = undefined;
  });

  it('stores every event once across both controllers, through kill -9 of one of them', async () => {
    const base = portBase(8);
    const [grpc1, admin1, grpc2, admin2, lbPort, pgPort, port] = [0, 1, 2, 3, 4, 5, 6].map((i) => base + i) as
      [number, number, number, number, number, number, number];
    // fsync off: this test is about what two controllers commit, not about PostgreSQL's durability.
    pg = await Postgres.start({ port: pgPort, settings: { fsync: 'off' } });
    const url = pg.createDatabase('fleet');
    const sql = (q: string) => pg!.psql('fleet', q).trim();
    const f = (fleet = new Fleet({ name: 'pg2', grpcPort: grpc1, adminPort: admin1 }));
    const logs = () => `${f.logs()}\n--- balancer ${JSON.stringify(lb?.counters)}`;

    // Both start at once against the empty database: the migrations race, one applies them.
    const [, c2] = await Promise.all([
      f.startController(['--store', url]),
      f.startExtraController('c2', { grpc: `127.0.0.1:${grpc2}`, admin: `127.0.0.1:${admin2}`, extra: ['--store', url] }),
    ]);
    expect(sql("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_version")).toMatch(/^1(,\d+)*$/);
    expect(c2.log()).toContain(`store postgres://bpfleet@127.0.0.1:${pgPort}/fleet`);
    const cli2 = (args: string[]) => f.cli(args, { XDG_CONFIG_HOME: f.configHome('c2') });

    // Least connections: enrollment connections are short, sessions long; this spreads sessions.
    lb = await TcpProxy.start({ port: lbPort, target: [{ port: grpc1 }, { port: grpc2 }], balance: 'least-connections' });
    // Tokens made on controller 1, used through the balancer: enrollment works on either.
    for (const name of AGENTS) {
      await f.startAgent(name, { token: await f.token(['lab=pg']), controller: lb.address, extra: ['--name', name] });
    }
    expect(lb.counters.perTarget.every((n) => n > 0), logs()).toBe(true);

    // Deploy through both admin APIs: each reaches the agents connected to it (the others are
    // "not connected" there). Agents enrolled through one controller accept bundles signed by the
    // other: the key is the same.
    const on = new Map<string, 'c1' | 'c2'>();
    for (const [ctl, run] of [['c1', (a: string[]) => f.cli(a)], ['c2', cli2]] as const) {
      const r = await run(['deploy', 'tcpstates', '--to', 'lab=pg', '--args', `--rport ${port}`, '--json']);
      const done = JSON.parse(r.stdout) as DeployDone;
      for (const d of done.devices) {
        if (d.deployed && d.started) on.set(d.name, ctl);
        else expect(d.error, `${ctl} ${d.name}: ${r.stdout}`).toMatch(/not connected/);
      }
    }
    const deviceNames = JSON.parse((await f.cli(['devices', '--json'])).stdout) as { name: string }[];
    expect(deviceNames).toHaveLength(AGENTS.length);
    expect(on.size, logs()).toBe(AGENTS.length);
    const onC1 = [...on].filter(([, c]) => c === 'c1').map(([n]) => n);
    expect(onC1.length, 'agents on controller 1').toBeGreaterThan(0);
    expect(on.size - onC1.length, 'agents on controller 2').toBeGreaterThan(0);
    for (const name of AGENTS) await waitFor(`probe of ${name} running`, () => f.agents.get(name)!.log().includes('ready'), 30_000, logs);

    const stored = () => Number(sql('SELECT coalesce(sum(count), 0) FROM batches'));
    // Each agent's tcpstates sees every transition of the test's connections: one stream each.
    let made = (await tcpgen({ port, send: 100, recv: 100, count: 40 })).conns.length * CLIENT_TRANSITIONS;
    await waitFor(`${made} x ${AGENTS.length} stored`, () => stored() === made * AGENTS.length, 30_000, logs);
    // stored_by -> records, e.g. "bpfleet <host>:<pid>" -> 1200.
    const byCtl = () => new Map(sql("SELECT stored_by || '=' || sum(count) FROM batches GROUP BY stored_by").split('\n')
      .map((kv) => [kv.slice(0, kv.lastIndexOf('=')), Number(kv.slice(kv.lastIndexOf('=') + 1))] as const));
    const before = byCtl();
    expect(before.size, `stored_by before the kill: ${[...before]}`).toBe(2);

    // kill -9 controller 1 with traffic flowing; its agents reconnect through the balancer
    // (a connection the dead one refuses is redispatched to controller 2).
    const traffic = tcpgen({ port, send: 100, recv: 100, count: 60 });
    await f.kill9(f.controller!);
    made += (await traffic).conns.length * CLIENT_TRANSITIONS;
    made += (await tcpgen({ port, send: 100, recv: 100, count: 30 })).conns.length * CLIENT_TRANSITIONS;
    await waitFor(`${made} x ${AGENTS.length} stored after controller 1 died`, () => stored() === made * AGENTS.length, 90_000, logs);

    // Exactly once: no seq in two stored pieces, no gap, counters equal to the rows.
    expect(sql(`SELECT count(*) FROM batches x JOIN batches y ON x.stream = y.stream AND x.first_seq < y.first_seq
      AND y.first_seq < x.first_seq + x.count`)).toBe('0');
    expect(sql('SELECT count(*) FROM streams WHERE open_gap_records + lost_gap_records > 0 OR stored_records <> next_seq - 1')).toBe('0');
    expect(sql('SELECT count(*) || \' \' || sum(stored_records) FROM streams')).toBe(`${AGENTS.length} ${made * AGENTS.length}`);
    // Controller 2 stored the late events of the agents that were on controller 1.
    const after = byCtl();
    const c1Name = [...before.keys()].find((k) => after.get(k) === before.get(k));
    const c2Name = [...after.keys()].find((k) => k !== c1Name)!;
    expect(c1Name, `controller 1 stored nothing after its kill: ${[...before]} -> ${[...after]}`).toBeDefined();
    expect(after.get(c2Name)).toBeGreaterThan(before.get(c2Name)!);
    const takenOver = sql(`SELECT count(DISTINCT s.device_id) FROM batches b JOIN streams s ON s.id = b.stream
      JOIN devices d ON d.id = s.device_id WHERE b.stored_by = '${c2Name}' AND d.name IN ('${onC1.join("','")}')`);
    expect(takenOver, `agents of controller 1 (${onC1}) whose later batches controller 2 stored`).toBe(String(onC1.length));
    console.log(`two controllers: ${made} transitions x ${AGENTS.length} agents stored once; records by controller before the ` +
      `kill ${JSON.stringify([...before])}, after ${JSON.stringify([...after])}; balancer ${JSON.stringify(lb.counters)}`);
    // The CLI through controller 2 reads every event back.
    const ev = await cli2(['events', '--probe', 'tcpstates', '--limit', '100000', '--json']);
    expect(ev.code, ev.stderr).toBe(0);
    const events = JSON.parse(ev.stdout) as { fields: Record<string, unknown> }[];
    expect(events).toHaveLength(made * AGENTS.length);
    expect(events.every((e) => e.fields['rport'] === port && e.fields['comm'] === 'tcpgen')).toBe(true);
  }, 300_000);

  it('two controllers + Mosquitto (shared subscription) + PostgreSQL: each event stored once, both controllers store', async () => {
    requireMosquitto();
    const base = portBase(8);
    const [grpc1, admin1, grpc2, admin2, brokerPort, pgPort, port] = [0, 1, 2, 3, 4, 5, 6].map((i) => base + i) as
      [number, number, number, number, number, number, number];
    pg = await Postgres.start({ port: pgPort, settings: { fsync: 'off' } });
    const url = pg.createDatabase('fleet');
    const sql = (q: string) => pg!.psql('fleet', q).trim();
    const f = (fleet = new Fleet({ name: 'pg2-mqtt', grpcPort: grpc1, adminPort: admin1 }));
    const files = path.join(f.dir, 'mosquitto');
    const pwFile = path.join(f.dir, 'controller-mqtt-password');
    mkdirSync(f.dir, { recursive: true });
    writeFileSync(pwFile, 'controller-secret-for-this-test\n', { mode: 0o600 });
    // The broker's password and ACL files come from the shared database (devices' credential hashes).
    const mqttFiles = async () => {
      const r = await f.cli(['mqtt-files', '--store', url, '--out', files, '--controller-password-file', pwFile]);
      expect(r.code, r.stderr).toBe(0);
    };
    await mqttFiles();
    const b = (broker = new Mosquitto({ dir: path.join(f.dir, 'broker'), port: brokerPort, passwordFile: path.join(files, 'passwd'),
      aclFile: path.join(files, 'acl') }));
    await b.start();
    const shared = (id: string) => ['--store', url, '--mqtt', b.url, '--mqtt-password-file', pwFile, '--mqtt-share', 'bpfleet',
      '--mqtt-client-id', id];
    await Promise.all([
      f.startController(shared('ctl-1')),
      f.startExtraController('c2', { grpc: `127.0.0.1:${grpc2}`, admin: `127.0.0.1:${admin2}`, extra: shared('ctl-2') }),
    ]);
    const logs = () => `${f.logs()}\n--- mosquitto\n${b.log()}`;
    const agents = ['a', 'b'];
    for (const name of agents) {
      const p = await f.startAgent(name, { token: await f.token(['lab=mqtt']), extra: ['--name', name, '--transport', 'mqtt', '--mqtt', b.url],
        wait: false });
      await waitFor(`agent ${name} enrolled`, () => p.log().includes('enrolled as'), 30_000, logs);
    }
    await mqttFiles();
    await b.reload();
    for (const name of agents) await waitFor(`agent ${name} welcomed`, () => f.agents.get(name)!.log().includes('welcomed'), 60_000, logs);
    // Over MQTT a command through one controller reaches every agent (through the broker).
    const dep = await f.cli(['deploy', 'tcpstates', '--to', 'lab=mqtt', '--args', `--rport ${port}`, '--json']);
    expect(dep.code, dep.stderr + dep.stdout).toBe(0);
    for (const name of agents) await waitFor(`probe of ${name} running`, () => f.agents.get(name)!.log().includes('ready'), 30_000, logs);

    let made = 0;
    for (let burst = 0; burst < 3; burst++) {
      made += (await tcpgen({ port, send: 100, recv: 100, count: 30 })).conns.length * CLIENT_TRANSITIONS;
      await new Promise((r) => setTimeout(r, 300));
    }
    const stored = () => Number(sql('SELECT coalesce(sum(count), 0) FROM batches'));
    await waitFor(`${made} x ${agents.length} stored`, () => stored() === made * agents.length, 60_000, logs);
    expect(sql(`SELECT count(*) FROM batches x JOIN batches y ON x.stream = y.stream AND x.first_seq < y.first_seq
      AND y.first_seq < x.first_seq + x.count`)).toBe('0');
    expect(sql('SELECT count(*) FROM streams WHERE open_gap_records + lost_gap_records > 0 OR stored_records <> next_seq - 1')).toBe('0');
    const by = sql("SELECT stored_by || '=' || sum(count) FROM batches GROUP BY stored_by ORDER BY stored_by").split('\n');
    expect(by, 'records stored per controller').toHaveLength(2);
    console.log(`two controllers + Mosquitto + PostgreSQL: ${made} x ${agents.length} events stored once; by controller ${JSON.stringify(by)}; ` +
      `duplicates dropped ${sql('SELECT sum(duplicate_records) FROM streams')}`);
  }, 300_000);
});
