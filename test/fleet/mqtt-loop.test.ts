import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import mqtt from 'mqtt';
import { AgentMessage } from '@bpfleet/proto';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLI, Fleet, Mosquitto, TcpProxy, portBase, requireMosquitto, requireRoot, tcpgen, waitFor, type Proc } from '../lib/index.js';

// The fleet loop over MQTT with real parts: `bpfleet controller` (SQLite) with its embedded
// broker or against a real Mosquitto started here, `bpfleet-agent --transport mqtt` enrolled with
// a one-time token (enrollment is gRPC), tcpstates deployed through the CLI, real loopback
// connections, events counted in the database. The agent reaches the broker through a TCP proxy
// so its link can be cut while its probe keeps capturing. Faults: the broker restarted while
// events flow, the agent offline for 30 s, a device stepping outside its topics, and two
// controllers sharing one Mosquitto (shared subscription) and one SQLite file.

const CLIENT_TRANSITIONS = 5;
let fleet: Fleet | undefined;
const cleanups: (() => Promise<void>)[] = [];

interface DeviceJson { id: string; name: string; online: boolean; transport: string | null }
interface Identity { deviceId: string; credential: string }

const identityOf = (f: Fleet, agent: string) => JSON.parse(readFileSync(path.join(f.agentDir(agent), 'identity.json'), 'utf8')) as Identity;

async function devices(f: Fleet, env: NodeJS.ProcessEnv = {}): Promise<DeviceJson[]> {
  const r = await f.cli(['devices', '--json'], env);
  if (r.code !== 0) throw new Error(`bpfleet devices failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as DeviceJson[];
}

/** Connections made by tcpgen in `rounds` rounds of `count`, `gapMs` apart; the transitions they make. */
async function traffic(port: number, rounds: number, count: number, gapMs: number): Promise<number> {
  let made = 0;
  for (let i = 0; i < rounds; i++) {
    made += (await tcpgen({ port, send: 100, recv: 100, count })).conns.length * CLIENT_TRANSITIONS;
    if (i + 1 < rounds) await new Promise((r) => setTimeout(r, gapMs));
  }
  return made;
}

/** bpfleet_ingest_batches_total of one controller's /metrics. */
async function ingestBatches(admin: string): Promise<number> {
  const text = await (await fetch(`http://${admin}/metrics`)).text();
  const m = /^bpfleet_ingest_batches_total (\d+)$/m.exec(text);
  if (!m) throw new Error(`no bpfleet_ingest_batches_total in the metrics of ${admin}`);
  return Number(m[1]);
}

/**
 * Deploy, plain traffic, a broker restart while events flow (`restartBroker`), the agent cut off
 * for 30 s while its probe captures: every transition stored exactly once.
 */
async function loopWithFaults(f: Fleet, opts: { name: string; agent: () => Proc; proxy: TcpProxy; port: number; restartBroker: () => Promise<void> }): Promise<number> {
  const { proxy, port } = opts;
  const logs = () => f.logs();
  const stored = () => f.storedEvents();
  const dep = await f.cli(['deploy', 'tcpstates', '--to', 'lab=mqtt', '--args', `--rport ${port}`, '--json']);
  expect(dep.code, dep.stderr + dep.stdout).toBe(0);
  await waitFor('probe running', () => opts.agent().log().includes('ready'), 30_000, logs);

  // Phase 1: plain traffic.
  let made = await traffic(port, 1, 40, 0);
  await waitFor(`${made} stored`, () => stored() === made, 30_000, logs);

  // Phase 2: the broker goes down and comes back while connections keep being made.
  const flowing = traffic(port, 10, 10, 300);
  await new Promise((r) => setTimeout(r, 800));
  const downAt = Date.now();
  await opts.restartBroker();
  const upAt = Date.now();
  made += await flowing;
  await waitFor(`${made} stored after the broker restart`, () => stored() === made, 90_000, logs);
  const restartMs = [upAt - downAt, Date.now() - upAt];

  // Phase 3: the agent cannot reach the broker for 30 s; its probe keeps capturing into the spool.
  const deviceId = (await devices(f)).find((d) => d.transport === 'mqtt' && d.online)?.id;
  expect(deviceId, 'an online mqtt device before the cut').toBeDefined();
  proxy.cut('reset');
  const cutAt = Date.now();
  await waitFor('the controller to see the device offline', async () => (await devices(f)).find((d) => d.id === deviceId)?.online === false, 30_000, logs);
  const before = stored();
  made += await traffic(port, 6, 10, 4000);
  await new Promise((r) => setTimeout(r, Math.max(0, 30_000 - (Date.now() - cutAt))));
  expect(stored(), 'nothing arrives while the agent is cut off').toBe(before);
  expect(proxy.counters.refused, 'the agent kept trying while cut off').toBeGreaterThan(0);
  proxy.restore();
  const restoredAt = Date.now();
  await waitFor(`${made} stored after 30 s offline`, () => stored() === made, 90_000, logs);
  process.stderr.write(`${opts.name}: broker down and back in ${restartMs[0]} ms, all stored ${restartMs[1]} ms later; ` +
    `after 30 s cut off all stored ${Date.now() - restoredAt} ms after the link came back (agent backoff included); ${made} events\n`);
  expect((await devices(f)).find((d) => d.id === deviceId)).toMatchObject({ online: true, transport: 'mqtt' });

  // Exactly once: no (stream, seq) stored twice, nothing beyond what was made.
  expect(f.distinctEvents()).toBe(made);
  const ev = await f.cli(['events', '--probe', 'tcpstates', '--limit', '100000', '--json']);
  expect(ev.code, ev.stderr).toBe(0);
  const events = JSON.parse(ev.stdout) as { fields: Record<string, unknown> }[];
  expect(events).toHaveLength(made);
  expect(events.every((e) => e.fields['rport'] === port && e.fields['comm'] === 'tcpgen')).toBe(true);
  return made;
}

/** Connects as a device with its real credential; resolves once connected. */
async function connectAs(url: string, id: Identity, clientId = id.deviceId): Promise<mqtt.MqttClient> {
  const c = mqtt.connect(url, { clientId, username: id.deviceId, password: id.credential, reconnectPeriod: 0, clean: true, protocolVersion: 4 });
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
  return c;
}

/** A forged batch for another device's stream: if a broker let it through, the store would keep it. */
function forgedBatch(victim: string): Buffer {
  const msg: AgentMessage = { payload: { $case: 'eventBatch', value: {
    streamId: `${victim}/tcpstates/forged`, firstSeq: 1n, count: 1, records: Buffer.alloc(64), recordSize: 64,
    schemaId: 'tcpstates@0:0', clockOffsetNs: 0n, intervalIndex: [] } } };
  return Buffer.from(AgentMessage.encode(msg).finish());
}

/** Device `thief` subscribes to '#' and publishes on `victim`'s up topic: both refused. */
async function aclAttempts(f: Fleet, url: string, thief: Identity, victim: string, port: number):
  Promise<{ subscribeError: string; closed: boolean; received: string[]; made: number }> {
  const c = await connectAs(url, thief);
  const received: string[] = [];
  c.on('message', (topic) => received.push(topic));
  // mqtt.js turns a SUBACK return code 0x80 into an error ("Subscribe error: Unspecified error").
  const subscribeError = await new Promise<string>((resolve) => c.subscribe('#', { qos: 1 }, (err) => resolve(err?.message ?? '')));
  let closed = false;
  c.once('close', () => (closed = true));
  c.on('error', () => undefined);
  await new Promise<void>((r) => {
    c.publish(`bpfleet/v1/${victim}/up`, forgedBatch(victim), { qos: 1 }, () => r());
    setTimeout(r, 3000);
  });
  // The victim keeps working meanwhile: its batches and acks must not reach the thief.
  const made = await traffic(port, 3, 10, 500);
  await new Promise((r) => setTimeout(r, 1500));
  c.end(true);
  void f;
  return { subscribeError, closed, received, made };
}

const forgedStored = (f: Fleet) => f.query((d) => d.prepare("SELECT count(*) AS n FROM streams WHERE stream_id LIKE '%/forged'").get() as { n: number }).n;

/** A CA, a broker certificate for 127.0.0.1 from it, and an unrelated CA; valid for one day. */
function makeBrokerPki(dir: string): { ca: string; otherCa: string; cert: string; key: string } {
  mkdirSync(dir, { recursive: true });
  const openssl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  writeFileSync(path.join(dir, 'broker.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  for (const ca of ['ca', 'other-ca']) openssl(['req', '-x509', ...ec, '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-days', '1', '-subj', `/CN=bpfleet test ${ca}`]);
  openssl(['req', ...ec, '-keyout', 'broker.key', '-out', 'broker.csr', '-subj', '/CN=broker']);
  openssl(['x509', '-req', '-in', 'broker.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'broker.crt', '-days', '1', '-extfile', 'broker.ext']);
  const p = (f: string) => path.join(dir, f);
  return { ca: p('ca.crt'), otherCa: p('other-ca.crt'), cert: p('broker.crt'), key: p('broker.key') };
}

describe('fleet loop over MQTT: controller + agent (--transport mqtt) + tcpstates', () => {
  beforeAll(() => {
    requireRoot();
    requireMosquitto();
  });
  afterEach(async (ctx) => {
    const failed = ctx.task.result?.state === 'fail';
    for (const c of cleanups.splice(0).reverse()) await c();
    await fleet?.stop(failed);
    fleet = undefined;
  });

  it('embedded broker: deploy, exactly once through a controller restart and 30 s offline; ACL refusals logged', async () => {
    const base = portBase(8);
    const f = (fleet = new Fleet({ name: 'mqtt-embedded', grpcPort: base, adminPort: base + 1 }));
    const brokerPort = base + 2, port = base + 3;
    const ctlArgs = ['--mqtt-listen', `127.0.0.1:${brokerPort}`];
    await f.startController(ctlArgs);
    expect(f.controller!.log()).toContain(`MQTT for agents on mqtt://127.0.0.1:${brokerPort} (embedded broker)`);
    const proxy = await TcpProxy.start({ port: base + 4, target: { port: brokerPort } });
    cleanups.push(() => proxy.close());
    const viaProxy = ['--transport', 'mqtt', '--mqtt', `mqtt://127.0.0.1:${proxy.port}`];
    const agent = await f.startAgent('a', { token: await f.token(['lab=mqtt']), extra: viaProxy });
    const a = identityOf(f, 'a');
    expect((await devices(f)).find((d) => d.id === a.deviceId)).toMatchObject({ online: true, transport: 'mqtt' });

    await loopWithFaults(f, {
      name: 'embedded', agent: () => agent, proxy, port,
      restartBroker: async () => {
        await f.kill9(f.controller!);
        await f.startController(ctlArgs);
      },
    });

    // A second device steps outside its topics: refused, logged, counted, nothing stored.
    await f.startAgent('b', { token: await f.token(['lab=other']), extra: ['--name', 'b', '--transport', 'mqtt', '--mqtt', `mqtt://127.0.0.1:${brokerPort}`] });
    const b = identityOf(f, 'b');
    f.agents.get('b')!.child.kill('SIGTERM');
    await f.agents.get('b')!.exited;
    const storedBefore = f.storedEvents();
    const r = await aclAttempts(f, `mqtt://127.0.0.1:${brokerPort}`, b, a.deviceId, port);
    expect(r.received).toEqual([]);
    expect(r.subscribeError, 'SUBACK for # is a failure').toMatch(/Subscribe error/);
    expect(r.closed, 'the publisher is disconnected').toBe(true);
    const log = f.controller!.log();
    expect(log).toMatch(new RegExp(`ACL refused a subscription by client "${b.deviceId}": .*not on "#"`));
    expect(log).toMatch(new RegExp(`ACL refused a publish by client "${b.deviceId}": .*bpfleet/v1/${a.deviceId}/up.*belongs to device ${a.deviceId}`));
    // A wrong password and a client id that is not the device's are refused at login.
    await expect(connectAs(`mqtt://127.0.0.1:${brokerPort}`, { deviceId: b.deviceId, credential: 'x' + b.credential })).rejects.toThrow(/authori|password/i);
    await expect(connectAs(`mqtt://127.0.0.1:${brokerPort}`, b, a.deviceId)).rejects.toThrow(/authori/i);
    const metrics = await (await fetch(`http://${f.admin}/metrics`)).text();
    expect(metrics).toMatch(/^bpfleet_mqtt_acl_denied_total\{action="publish"\} 1$/m);
    expect(metrics).toMatch(/^bpfleet_mqtt_acl_denied_total\{action="subscribe"\} 1$/m);
    expect(metrics).toMatch(/^bpfleet_mqtt_auth_failures_total 2$/m);
    expect(forgedStored(f)).toBe(0);
    await waitFor('the victim\'s own events stored, nothing else', () => f.storedEvents() === storedBefore + r.made, 30_000, () => f.logs());
    expect(f.distinctEvents()).toBe(storedBefore + r.made);
    // The real agent was not disturbed by its neighbour.
    expect((await devices(f)).find((d) => d.id === a.deviceId)).toMatchObject({ online: true, transport: 'mqtt' });
  }, 400_000);

  it('real Mosquitto: exactly once through kill -9 of the broker and 30 s offline; its ACL refuses a device outside its topics', async () => {
    const base = portBase(8);
    const f = (fleet = new Fleet({ name: 'mqtt-mosquitto', grpcPort: base, adminPort: base + 1 }));
    const brokerPort = base + 2, port = base + 3;
    const files = path.join(f.dir, 'mosquitto');
    const pwFile = path.join(f.dir, 'controller-mqtt-password');
    writeFileSync(pwFile, 'controller-secret-for-this-test\n', { mode: 0o600 });
    mkdirSync(path.join(f.dir, 'ctl'), { mode: 0o700 }); // the controller's data dir, its database made by mqtt-files
    const mqttFiles = async () => {
      const r = await f.cli(['mqtt-files', '--data-dir', path.join(f.dir, 'ctl'), '--out', files, '--controller-password-file', pwFile, '--json']);
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as { devices: number };
    };
    expect((await mqttFiles()).devices).toBe(0);
    const broker = new Mosquitto({ dir: path.join(f.dir, 'broker'), port: brokerPort, passwordFile: path.join(files, 'passwd'), aclFile: path.join(files, 'acl') });
    cleanups.push(() => broker.stop());
    await broker.start();
    await f.startController(['--mqtt', broker.url, '--mqtt-password-file', pwFile]);
    const proxy = await TcpProxy.start({ port: base + 4, target: { port: brokerPort } });
    cleanups.push(() => proxy.close());

    // Enrolled over gRPC; the broker knows the device once the files are written again and reloaded.
    const agent = await f.startAgent('a', { token: await f.token(['lab=mqtt']), extra: ['--transport', 'mqtt', '--mqtt', `mqtt://127.0.0.1:${proxy.port}`], wait: false });
    await waitFor('agent a enrolled', () => agent.log().includes('enrolled as'), 30_000, () => f.logs());
    expect((await mqttFiles()).devices).toBe(1);
    await broker.reload();
    await waitFor('agent a welcomed', () => agent.log().includes('welcomed'), 60_000, () => f.logs() + broker.log());
    const a = identityOf(f, 'a');
    expect((await devices(f)).find((d) => d.id === a.deviceId)).toMatchObject({ online: true, transport: 'mqtt' });

    await loopWithFaults(f, {
      name: 'mosquitto', agent: () => agent, proxy, port,
      restartBroker: async () => {
        await broker.kill9();
        await new Promise((r) => setTimeout(r, 1000));
        await broker.start();
      },
    });
    expect(f.controller!.log()).toMatch(/mqtt: reconnected to/);

    // The generated ACL confines a device to its own topics at Mosquitto too.
    await f.startAgent('b', { token: await f.token(['lab=other']), extra: ['--name', 'b', '--transport', 'mqtt', '--mqtt', broker.url], wait: false });
    await waitFor('agent b enrolled', () => f.agents.get('b')!.log().includes('enrolled as'), 30_000, () => f.logs());
    f.agents.get('b')!.child.kill('SIGTERM');
    await f.agents.get('b')!.exited;
    await mqttFiles();
    broker.writeConf(true); // refused publishes are logged at debug level only
    await broker.reload();
    const b = identityOf(f, 'b');
    const storedBefore = f.storedEvents();
    // Mosquitto's acl_file grants any SUBSCRIBE and applies read rights per message: '#' gets nothing.
    const r = await aclAttempts(f, broker.url, b, a.deviceId, port);
    expect(r.received, 'messages of other devices delivered to the thief').toEqual([]);
    expect(forgedStored(f)).toBe(0);
    await waitFor('the victim\'s own events stored, nothing else', () => f.storedEvents() === storedBefore + r.made, 30_000, () => f.logs());
    expect(f.distinctEvents()).toBe(storedBefore + r.made);
    expect(broker.log()).toMatch(new RegExp(`Denied PUBLISH from ${b.deviceId}.*bpfleet/v1/${a.deviceId}/up`));
    await expect(connectAs(broker.url, { deviceId: b.deviceId, credential: 'x' + b.credential })).rejects.toThrow(/authori|password/i);
  }, 400_000);

  it('Mosquitto over mqtts://: agent and controller pin the broker\'s CA; an agent pinning another CA is refused', async () => {
    const base = portBase(8);
    const f = (fleet = new Fleet({ name: 'mqtt-tls', grpcPort: base, adminPort: base + 1 }));
    const brokerPort = base + 2, port = base + 3;
    const pki = makeBrokerPki(path.join(f.dir, 'pki'));
    const files = path.join(f.dir, 'mosquitto');
    const pwFile = path.join(f.dir, 'controller-mqtt-password');
    writeFileSync(pwFile, 'controller-secret-for-this-test\n', { mode: 0o600 });
    mkdirSync(path.join(f.dir, 'ctl'), { mode: 0o700 });
    const mqttFiles = async () => {
      const r = await f.cli(['mqtt-files', '--data-dir', path.join(f.dir, 'ctl'), '--out', files, '--controller-password-file', pwFile]);
      expect(r.code, r.stderr).toBe(0);
    };
    await mqttFiles();
    const broker = new Mosquitto({ dir: path.join(f.dir, 'broker'), port: brokerPort, passwordFile: path.join(files, 'passwd'),
      aclFile: path.join(files, 'acl'), tls: { ca: pki.ca, cert: pki.cert, key: pki.key } });
    cleanups.push(() => broker.stop());
    await broker.start();
    expect(broker.url).toBe(`mqtts://127.0.0.1:${brokerPort}`);
    await f.startController(['--mqtt', broker.url, '--mqtt-ca', pki.ca, '--mqtt-password-file', pwFile]);
    const agent = await f.startAgent('a', { token: await f.token(['lab=mqtt']), extra: ['--transport', 'mqtt', '--mqtt', broker.url, '--mqtt-ca', pki.ca], wait: false });
    await waitFor('agent a enrolled', () => agent.log().includes('enrolled as'), 30_000, () => f.logs());
    await mqttFiles();
    await broker.reload();
    await waitFor('agent a welcomed', () => agent.log().includes('welcomed'), 60_000, () => f.logs() + broker.log());
    const dep = await f.cli(['deploy', 'tcpstates', '--to', 'lab=mqtt', '--args', `--rport ${port}`, '--json']);
    expect(dep.code, dep.stderr + dep.stdout).toBe(0);
    await waitFor('probe running', () => agent.log().includes('ready'), 30_000, () => f.logs());
    const made = await traffic(port, 1, 20, 0);
    await waitFor(`${made} stored`, () => f.storedEvents() === made, 30_000, () => f.logs());
    expect(f.distinctEvents()).toBe(made);

    // An agent that pins another CA does not talk to this broker, and says why.
    const rogue = await f.startAgent('b', { token: await f.token(['lab=other']),
      extra: ['--name', 'b', '--transport', 'mqtt', '--mqtt', broker.url, '--mqtt-ca', pki.otherCa], wait: false });
    await waitFor('a logged TLS refusal', () => /cannot reach mqtts:\/\/127\.0\.0\.1:\d+: .*certificate/i.test(rogue.log()), 30_000, () => f.logs());
    expect(rogue.log()).not.toContain('welcomed');
  }, 200_000);

  it('two controllers + Mosquitto: a shared subscription splits the events, one SQLite file stores each once', async () => {
    const base = portBase(8);
    const f = (fleet = new Fleet({ name: 'mqtt-two', grpcPort: base, adminPort: base + 1 }));
    const brokerPort = base + 2, port = base + 3, grpc2 = `127.0.0.1:${base + 4}`, admin2 = `127.0.0.1:${base + 5}`;
    const files = path.join(f.dir, 'mosquitto');
    const pwFile = path.join(f.dir, 'controller-mqtt-password');
    writeFileSync(pwFile, 'controller-secret-for-this-test\n', { mode: 0o600 });
    mkdirSync(path.join(f.dir, 'ctl'), { mode: 0o700 }); // the controller's data dir, its database made by mqtt-files
    const mqttFiles = async () => {
      const r = await f.cli(['mqtt-files', '--data-dir', path.join(f.dir, 'ctl'), '--out', files, '--controller-password-file', pwFile]);
      expect(r.code, r.stderr).toBe(0);
    };
    await mqttFiles();
    const broker = new Mosquitto({ dir: path.join(f.dir, 'broker'), port: brokerPort, passwordFile: path.join(files, 'passwd'), aclFile: path.join(files, 'acl') });
    cleanups.push(() => broker.stop());
    await broker.start();
    const shared = (id: string) => ['--mqtt', broker.url, '--mqtt-password-file', pwFile, '--mqtt-share', 'bpfleet', '--mqtt-client-id', id];
    await f.startController(shared('ctl-1'));
    // The second controller: same data directory (database and signing key), its own ports.
    const ctl2 = f.spawn(CLI, ['controller', '--data-dir', path.join(f.dir, 'ctl'), '--grpc', grpc2, '--admin', admin2, ...shared('ctl-2')]);
    await waitFor('second controller', () => ctl2.log().includes('admin API on'), 30_000, () => f.logs() + ctl2.log());
    const logs = () => `${f.logs()}\n--- controller 2\n${ctl2.log()}\n--- mosquitto\n${broker.log()}`;
    const viaCtl1 = { BPFLEET_ADMIN_URL: `http://${f.admin}` };

    const agents: Proc[] = [];
    for (const name of ['a', 'b']) {
      agents.push(await f.startAgent(name, { token: await f.token(['lab=mqtt']), extra: ['--name', name, '--transport', 'mqtt', '--mqtt', broker.url], wait: false }));
      await waitFor(`agent ${name} enrolled`, () => agents.at(-1)!.log().includes('enrolled as'), 30_000, logs);
    }
    await mqttFiles();
    await broker.reload();
    for (const p of agents) await waitFor('agents welcomed', () => p.log().includes('welcomed'), 60_000, logs);
    // Both controllers see both devices online over MQTT (one got each Hello, the other adopted the session from the status).
    for (const env of [viaCtl1, { BPFLEET_ADMIN_URL: `http://${admin2}` }]) {
      await waitFor('both devices online at both controllers', async () => {
        const ds = await devices(f, env);
        return ds.length === 2 && ds.every((d) => d.online && d.transport === 'mqtt');
      }, 30_000, logs);
    }

    const dep = await f.cli(['deploy', 'tcpstates', '--to', 'lab=mqtt', '--args', `--rport ${port}`, '--json'], viaCtl1);
    expect(dep.code, dep.stderr + dep.stdout).toBe(0);
    for (const p of agents) await waitFor('probes running', () => p.log().includes('ready'), 30_000, logs);
    const made = await traffic(port, 10, 30, 200);
    await waitFor(`${made} stored (x2 agents)`, () => f.storedEvents() === 2 * made, 60_000, logs);
    expect(f.distinctEvents()).toBe(2 * made);
    const [b1, b2] = [await ingestBatches(f.admin), await ingestBatches(admin2)];
    expect(b1, 'controller 1 stored batches').toBeGreaterThan(0);
    expect(b2, 'controller 2 stored batches').toBeGreaterThan(0);
    const dup = f.query((d) => (d.prepare('SELECT coalesce(sum(duplicate_records), 0) AS n FROM streams').get() as { n: number }).n);
    process.stderr.write(`two controllers: ${b1} + ${b2} batches received, ${2 * made} events stored once, ${dup} duplicate records dropped\n`);
  }, 300_000);
});
