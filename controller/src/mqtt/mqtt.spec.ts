// The controller's MQTT transport end to end in one process: the embedded broker (aedes) on
// 127.0.0.1:0, the bridge, a real Fleet on a real SQLite store, and mqtt.js clients playing
// devices with their enrolled credentials. Also the topic ACL and the Mosquitto file formats.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt, { type MqttClient } from 'mqtt';
import { AgentMessage, ControllerMessage } from '@bpfleet/proto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadOrCreateSigningKey } from '../bundles/signing-key.js';
import { Fleet, type FleetLog } from '../fleet/fleet.js';
import { SqliteStore } from '../store/sqlite-store.js';
import { loadTcpstates, seqBatch } from '../store/tcpstates-fixture.js';
import { x86Facts } from '../server/test-agent.js';
import { mosquittoAclText, mosquittoPasswdText, mosquittoPasswordHash } from './mosquitto-files.js';
import { MqttBridge } from './mqtt-bridge.js';
import { renderMqttMetrics } from './mqtt-metrics.js';
import { startEmbeddedBroker } from './embedded-broker.js';
import { InProcessPort } from './inprocess-port.js';
import { startMqtt, type RunningMqtt } from './start-mqtt.js';
import { controllerFilters, deviceAclDenial, deviceTopic, parseDeviceTopic } from './topics.js';

const OUT = fileURLToPath(new URL('../../../bpf/out', import.meta.url));
const { schemaId, manifest } = loadTcpstates();

describe('topic scheme and device ACL', () => {
  const me = 'd-aaaaaaaaaaaaaaaa';
  it('lets a device publish only its own up/result/status and subscribe only to its own cmd', () => {
    for (const k of ['up', 'result', 'status'] as const) expect(deviceAclDenial(me, 'publish', deviceTopic(me, k))).toBeUndefined();
    expect(deviceAclDenial(me, 'subscribe', deviceTopic(me, 'cmd'))).toBeUndefined();
    expect(deviceAclDenial(me, 'publish', deviceTopic(me, 'cmd'))).toMatch(/may not publish on its cmd topic/);
    expect(deviceAclDenial(me, 'subscribe', deviceTopic(me, 'up'))).toMatch(/may not subscribe on its up topic/);
    expect(deviceAclDenial(me, 'publish', 'bpfleet/v1/d-bbbbbbbbbbbbbbbb/up')).toMatch(/belongs to device d-bbbbbbbbbbbbbbbb/);
    expect(deviceAclDenial(me, 'subscribe', 'bpfleet/v1/d-bbbbbbbbbbbbbbbb/cmd')).toMatch(/belongs to device/);
    for (const wild of ['#', 'bpfleet/#', 'bpfleet/v1/+/cmd', `bpfleet/v1/${me}/#`, '$SYS/#', `$share/g/bpfleet/v1/${me}/cmd`, 'other/topic']) {
      expect(deviceAclDenial(me, 'subscribe', wild), wild).toMatch(/only on its own topics/);
    }
    expect(parseDeviceTopic(`bpfleet/v1/${me}/up`)).toEqual({ deviceId: me, kind: 'up' });
    expect(parseDeviceTopic(`bpfleet/v1/${me}/up/extra`)).toBeUndefined();
    expect(controllerFilters('bpfleet')).toEqual({ up: '$share/bpfleet/bpfleet/v1/+/up', result: 'bpfleet/v1/+/result', status: 'bpfleet/v1/+/status' });
    expect(controllerFilters(undefined).up).toBe('bpfleet/v1/+/up');
  });
});

describe('embedded broker bus', () => {
  const quietLog: FleetLog = { info: () => undefined, warn: () => undefined, error: () => undefined };
  it('carries 20,000 messages that all arrive while 200 deliveries are outstanding, without overflowing the stack', async () => {
    // With aedes' default cap of 100 in flight, the 19,900 queued behind the held deliveries
    // were drained by recursion on release (mqemitter 7.1): RangeError, and the controller died.
    const broker = await startEmbeddedBroker({ fleet: { authenticate: () => Promise.reject(new Error('no devices here')), log: quietLog }, port: 0 });
    try {
      // aedes' types leave out its bus; this is the part of mqemitter's API the test uses.
      const mq = (broker.aedes as unknown as { mq: {
        on(topic: string, listener: (packet: unknown, done: () => void) => void, added: () => void): void;
        emit(packet: { topic: string; payload: Buffer }, done: () => void): void;
      } }).mq;
      const held: (() => void)[] = [];
      let delivered = 0;
      await new Promise<void>((r) => mq.on('bus/#', (_packet: unknown, done: () => void) => {
        delivered++;
        if (held.length < 200) held.push(done);
        else done();
      }, r));
      let emitted = 0;
      for (let i = 0; i < 20_000; i++) mq.emit({ topic: 'bus/x', payload: Buffer.alloc(8) }, () => { emitted++; });
      for (const done of held.splice(0)) done();
      await new Promise((r) => setImmediate(r));
      expect(delivered).toBe(20_000);
      expect(emitted).toBe(20_000);
    } finally {
      await broker.close();
    }
  });
});

describe('in-process port (the bridge on the embedded broker\'s bus)', () => {
  const quietLog: FleetLog = { info: () => undefined, warn: () => undefined, error: () => undefined };
  it('hands over one device\'s messages one at a time and in order, different devices at once', async () => {
    // Devices log in with username = client id = password = their id (a stand-in for enrollment).
    const broker = await startEmbeddedBroker({ port: 0, fleet: { log: quietLog,
      authenticate: (pass: string) => Promise.resolve({ id: pass } as Awaited<ReturnType<Fleet['authenticate']>>) } });
    const port = new InProcessPort(broker.aedes, quietLog);
    const seen = new Map<string, number[]>();
    const busy = new Map<string, number>();
    let perDeviceMax = 0, across = 0, acrossMax = 0;
    const devices = ['d-aaaaaaaaaaaaaaa1', 'd-aaaaaaaaaaaaaaa2'];
    const clients: MqttClient[] = [];
    try {
      await port.start(['bpfleet/v1/+/up'], async (topic, payload) => {
        const dev = parseDeviceTopic(topic)!.deviceId;
        busy.set(dev, (busy.get(dev) ?? 0) + 1);
        perDeviceMax = Math.max(perDeviceMax, busy.get(dev)!);
        acrossMax = Math.max(acrossMax, ++across);
        await new Promise((r) => setTimeout(r, 5)); // a store commit
        (seen.get(dev) ?? seen.set(dev, []).get(dev)!).push(payload.readUInt32BE(0));
        busy.set(dev, busy.get(dev)! - 1);
        across--;
      });
      const N = 60;
      // Both connected first, so that both devices' messages are there at once (a slow connect
      // of one on a loaded machine cannot let the other's 60 x 5 ms pass alone).
      for (const id of devices) {
        const c = mqtt.connect(`mqtt://127.0.0.1:${new URL(broker.url).port}`, { clientId: id, username: id, password: id, reconnectPeriod: 0 });
        clients.push(c);
        await new Promise<void>((res, rej) => { c.once('connect', () => res()); c.once('error', rej); });
      }
      // All N written at once: aedes parses several from one read and hands them over together.
      await Promise.all(devices.map((id, d) => Promise.all(Array.from({ length: N }, (_, i) => {
        const b = Buffer.alloc(4);
        b.writeUInt32BE(i);
        return clients[d]!.publishAsync(deviceTopic(id, 'up'), b, { qos: 1 });
      }))));
      const deadline = Date.now() + 10_000;
      while (devices.some((d) => (seen.get(d)?.length ?? 0) < N) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const d of devices) expect(seen.get(d), d).toEqual(Array.from({ length: N }, (_, i) => i));
      expect(perDeviceMax).toBe(1);
      expect(acrossMax).toBe(2);
      // Published into the bus, delivered to a device's subscription, called back once written.
      const got = new Promise<Buffer>((res) => clients[0]!.once('message', (_t, m) => res(m)));
      await new Promise<void>((res) => clients[0]!.subscribe(deviceTopic(devices[0]!, 'cmd'), { qos: 1 }, () => res()));
      const written = new Promise<void>((res) => port.publish(deviceTopic(devices[0]!, 'cmd'), Buffer.from('welcome'), res));
      await written;
      expect((await got).toString()).toBe('welcome');
    } finally {
      await Promise.all(clients.map((c) => c.endAsync()));
      await port.close();
      await broker.close();
    }
  });
});

describe('bridge counters', () => {
  it('report the port\'s reconnects as they happen, not when the next message comes', () => {
    const port = { reconnects: 0, start: () => Promise.resolve(), publish: (_t: string, _p: Buffer, done: () => void) => done(), close: () => Promise.resolve() };
    const log: FleetLog = { info: () => undefined, warn: () => undefined, error: () => undefined };
    const bridge = new MqttBridge({ fleet: { log } as unknown as Fleet, port });
    port.reconnects = 2;
    expect(bridge.counters.reconnects).toBe(2);
    expect(renderMqttMetrics({ bridge: bridge.counters })).toContain('\nbpfleet_mqtt_reconnects_total 2\n');
  });
});

describe('Mosquitto files', () => {
  it('hashes a credential exactly as mosquitto_passwd does ($7$, PBKDF2-SHA512, 101 rounds)', () => {
    // `mosquitto_passwd -b -c f alice secret` (mosquitto 2.0.11) wrote this line.
    const line = 'alice:$7$101$cIA2BNGFATQzS4ql$1/3gyrLFI+L92B4+u+TbBkmguSQcusEY+lXAdNA5a3CBw6vKEdlgRdZTtIRb9O7xomRDhBgcDAhIUvB8ogzolA==';
    expect(`alice:${mosquittoPasswordHash('secret', Buffer.from('cIA2BNGFATQzS4ql', 'base64'))}`).toBe(line);
    expect(mosquittoPasswordHash('secret')).not.toBe(mosquittoPasswordHash('secret')); // a fresh salt each time
  });
  it('writes device lines, skips devices without an MQTT hash, confines devices in the ACL', () => {
    const { text, skipped } = mosquittoPasswdText([{ username: 'd-1', hash: '$7$x' }, { username: 'd-2', hash: null }]);
    expect(text).toBe('d-1:$7$x\n');
    expect(skipped).toEqual(['d-2']);
    const acl = mosquittoAclText(['bpfleet-controller']);
    expect(acl).toContain('user bpfleet-controller\ntopic readwrite bpfleet/v1/#');
    for (const l of ['pattern write bpfleet/v1/%u/up', 'pattern write bpfleet/v1/%u/result', 'pattern write bpfleet/v1/%u/status', 'pattern read bpfleet/v1/%u/cmd']) {
      expect(acl).toContain(l);
    }
    expect(acl).not.toMatch(/pattern (read|readwrite) bpfleet\/v1\/%u\/(up|result|status)|pattern (write|readwrite) bpfleet\/v1\/%u\/cmd/);
  });
});

describe('embedded broker + bridge with a real fleet', () => {
  let dir: string;
  let store: SqliteStore;
  let fleet: Fleet;
  let mq: RunningMqtt;
  let logs: string[];
  const clients: MqttClient[] = [];
  const log: FleetLog = { info: (m) => logs.push(`info ${m}`), warn: (m) => logs.push(`warn ${m}`), error: (m) => logs.push(`error ${m}`) };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bpfleet-mqtt-'));
    store = SqliteStore.open(join(dir, 'store.db'));
    await store.putManifest(schemaId, manifest);
    logs = [];
    fleet = new Fleet({ store, signingKey: await loadOrCreateSigningKey(join(dir, 'data')), bpfOutDir: OUT, log, groupCommit: { intervalMs: 5 } });
    mq = await startMqtt({ fleet, embedded: { host: '127.0.0.1', port: 0 } });
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.end(true);
    await mq.close();
    await fleet.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function device(name: string) {
    const { token } = await store.createEnrollmentToken({ ttlMs: 60_000, labels: {} });
    const e = await store.enroll({ token, deviceName: name, transport: 'grpc' });
    return { id: e.deviceId, credential: e.credential };
  }

  async function connectAs(d: { id: string; credential: string }, clientId = d.id, will = true): Promise<{ c: MqttClient; got: ControllerMessage[] }> {
    const c = mqtt.connect(mq.url, {
      clientId, username: d.id, password: d.credential, reconnectPeriod: 0, clean: false,
      ...(will ? { will: { topic: deviceTopic(d.id, 'status'), payload: Buffer.from('{"state":"offline","conn":"c1"}'), qos: 1, retain: true } } : {}),
    });
    clients.push(c);
    await new Promise<void>((resolve, reject) => { c.once('connect', () => resolve()); c.once('error', reject); });
    const got: ControllerMessage[] = [];
    c.on('message', (_t, p) => got.push(ControllerMessage.decode(p)));
    await c.subscribeAsync(deviceTopic(d.id, 'cmd'), { qos: 1 });
    return { c, got };
  }

  const up = (c: MqttClient, id: string, m: AgentMessage) => c.publishAsync(deviceTopic(id, 'up'), Buffer.from(AgentMessage.encode(m).finish()), { qos: 1 });
  const hello = (id: string): AgentMessage => ({ payload: { $case: 'hello', value: { deviceId: id, facts: x86Facts(), agentVersion: '0.1.0', installed: [], spooled: [], agentInstance: '' } } });
  const batchMsg = (stream: string, first: number, n: number): AgentMessage => ({ payload: { $case: 'eventBatch', value: seqBatch(schemaId, manifest, stream, first, n) } });
  async function until<T>(what: string, fn: () => T | undefined | false, ms = 10_000): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
      const v = fn();
      if (v) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${logs.join('\n')}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  const lastAck = (got: ControllerMessage[]) => got.flatMap((m) => (m.payload?.$case === 'ack' ? [m.payload.value.ackedThrough] : [])).at(-1);

  it('Hello gets a Welcome; batches are stored once (a QoS 1 redelivery is a duplicate) and acked; offline status ends the session', async () => {
    const d = await device('mq-1');
    const { c, got } = await connectAs(d);
    await c.publishAsync(deviceTopic(d.id, 'status'), Buffer.from('{"state":"online","conn":"c1"}'), { qos: 1, retain: true });
    await up(c, d.id, hello(d.id));
    await until('welcome', () => got.find((m) => m.payload?.$case === 'welcome'));
    expect(fleet.sessionsInfo().find((s) => s.deviceId === d.id)).toMatchObject({ transport: 'mqtt' });
    expect((await store.devices()).find((x) => x.id === d.id)).toMatchObject({ online: true, transport: 'mqtt' });

    const stream = `${d.id}/tcpstates/r1`;
    await up(c, d.id, batchMsg(stream, 1, 10));
    await up(c, d.id, batchMsg(stream, 11, 10));
    await up(c, d.id, batchMsg(stream, 11, 10)); // as a QoS 1 redelivery would
    await until('ack through 20', () => lastAck(got) === 20n);
    const seqs = (await store.events({ streamId: stream, limit: 1000 })).map((e) => e.seq);
    expect(seqs).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect((await store.streams({ deviceId: d.id }))[0]).toMatchObject({ storedRecords: 20, duplicateRecords: 10 });

    // The device's last will (same connection id as its online status) ends the session.
    (c as unknown as { stream: { destroy(): void } }).stream.destroy();
    await until('offline', () => !fleet.devicesOnline().has(d.id));
    expect(logs.some((l) => l.includes(`device ${d.id} (mq-1) offline: status offline (connection c1 gone)`))).toBe(true);
    expect(mq.counters().bridge).toMatchObject({ sessionsOpened: 1, sessionsEnded: 1 });
  });

  it('adopts a session for a device that says no Hello here (welcomed elsewhere): no Welcome, batches still acked', async () => {
    const d = await device('mq-2');
    const { c, got } = await connectAs(d);
    const stream = `${d.id}/tcpstates/r2`;
    await up(c, d.id, batchMsg(stream, 1, 5));
    await until('ack through 5', () => lastAck(got) === 5n);
    expect(got.some((m) => m.payload?.$case === 'welcome')).toBe(false);
    expect(fleet.devicesOnline().has(d.id)).toBe(true);
    expect(mq.counters().bridge.sessionsAdopted).toBe(1);
  });

  it('drops and logs what breaks the protocol, and goes on', async () => {
    const d = await device('mq-3');
    const { c, got } = await connectAs(d);
    await up(c, d.id, hello(d.id));
    await until('welcome', () => got.find((m) => m.payload?.$case === 'welcome'));
    await c.publishAsync(deviceTopic(d.id, 'up'), Buffer.from([0xff, 0xff, 0xff, 0xff]), { qos: 1 });
    await c.publishAsync(deviceTopic(d.id, 'result'), Buffer.from(AgentMessage.encode(hello(d.id)).finish()), { qos: 1 });
    await c.publishAsync(deviceTopic(d.id, 'status'), Buffer.from('not json'), { qos: 1 });
    const stream = `${d.id}/tcpstates/r3`;
    await up(c, d.id, batchMsg(stream, 1, 3));
    await until('ack through 3', () => lastAck(got) === 3n);
    expect(mq.counters().bridge.malformed).toBe(3);
    expect(logs.filter((l) => l.startsWith(`warn mqtt: device ${d.id}: dropped`))).toHaveLength(3);
    expect(logs.join('\n')).toMatch(/not a bpfleet\.v1 AgentMessage/);
    expect(logs.join('\n')).toMatch(/hello on .*\/result: command results go on/);
  });

  it('refuses wrong logins and ACL violations, logs and counts them; the metrics show them', async () => {
    const a = await device('mq-a');
    const b = await device('mq-b');
    await expect(connectAs({ id: a.id, credential: 'x' + a.credential })).rejects.toThrow(/Bad username or password/);
    await expect(connectAs(b, a.id, false)).rejects.toThrow(/Not authorized/); // b's credential, a's client id
    await expect(connectAs({ id: a.id, credential: b.credential })).rejects.toThrow(/Not authorized/); // b's credential as a
    const { c } = await connectAs(b, b.id, false);
    await expect(c.subscribeAsync('#', { qos: 1 })).rejects.toThrow(/Subscribe error/);
    await expect(c.subscribeAsync(deviceTopic(a.id, 'cmd'), { qos: 1 })).rejects.toThrow(/Subscribe error/);
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    c.on('error', () => undefined);
    c.publish(deviceTopic(a.id, 'up'), Buffer.from(AgentMessage.encode(hello(a.id)).finish()), { qos: 1 });
    await closed;
    const broker = mq.counters().broker!;
    expect(broker).toMatchObject({ authFailures: 3, subscribeDenied: 2, publishDenied: 1 });
    expect(logs.join('\n')).toMatch(new RegExp(`ACL refused a publish by client "${b.id}": device ${b.id} may not publish on "bpfleet/v1/${a.id}/up"`));
    expect(fleet.devicesOnline().has(a.id)).toBe(false); // the forged Hello never reached the fleet
    const text = renderMqttMetrics(mq.counters());
    expect(text).toMatch(/^bpfleet_mqtt_acl_denied_total\{action="publish"\} 1$/m);
    expect(text).toMatch(/^bpfleet_mqtt_acl_denied_total\{action="subscribe"\} 2$/m);
    expect(text).toMatch(/^bpfleet_mqtt_auth_failures_total 3$/m);
    expect(fleet.transportMetrics()).toBe(text);
  });
});
