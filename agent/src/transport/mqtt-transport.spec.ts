// MqttTransport against a real MQTT broker in this process (aedes, the broker the controller
// embeds; a dev-only import here): login as the device, topics, retained status and last will,
// reconnect to a broker restarted on the same port, the in-flight window as backpressure,
// malformed controller messages, and the ack watchdog.
import { createServer, type Server, type Socket } from 'node:net';
import { Aedes, type AedesPublishPacket, type Client } from 'aedes';
import { AgentMessage, ControllerMessage } from '@bpfleet/proto';
import { afterEach, describe, expect, it } from 'vitest';
import { sleep } from '../probes/probe-test-support.js';
import { MqttTransport, parseMqttUrl, type MqttTransportOptions } from './mqtt-transport.js';
import { deviceTopics } from './mqtt-topics.js';
import { TransportDownError } from './transport.js';

const DEVICE = 'd-0123456789abcdef';
const SECRET = 'the-credential';

interface Broker {
  port: number;
  published: { topic: string; payload: Buffer; retain: boolean; client: string | undefined }[];
  logins: { clientId: string; username: string | undefined; clean: boolean }[];
  /** While set, PUBLISHes from the device wait here before the broker takes them (and PUBACKs). */
  hold: (() => void)[] | undefined;
  aedes: Aedes;
  publish(topic: string, payload: Buffer): Promise<void>;
  close(): Promise<void>;
}

async function startBroker(port = 0): Promise<Broker> {
  const b = { published: [], logins: [], hold: undefined } as unknown as Broker;
  const aedes = await Aedes.createBroker({
    authenticate: (client: Client, username, password, done) => {
      b.logins.push({ clientId: client.id, username, clean: client.clean });
      done(null, username === DEVICE && password?.toString() === SECRET);
    },
    authorizePublish: (client, packet, done) => {
      if (client && b.hold) b.hold.push(() => done(null));
      else done(null);
    },
  });
  aedes.on('publish', (p: AedesPublishPacket, client: Client | null) => {
    if (!p.topic.startsWith('$SYS')) b.published.push({ topic: p.topic, payload: Buffer.from(p.payload as Buffer), retain: p.retain, client: client?.id });
  });
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => { sockets.add(s); s.once('close', () => sockets.delete(s)); aedes.handle(s); });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  b.port = (server.address() as { port: number }).port;
  b.aedes = aedes;
  b.publish = (topic, payload) => new Promise((r) => aedes.publish({ cmd: 'publish', topic, payload, qos: 1, retain: false, dup: false }, () => r()));
  b.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    await new Promise<void>((r) => aedes.close(() => r()));
  };
  return b;
}

const topics = deviceTopics(DEVICE);
const hello: AgentMessage = { payload: { $case: 'hello', value: { deviceId: DEVICE, facts: undefined, agentVersion: '0', installed: [], spooled: [], agentInstance: '' } } };
const batch = (seq: number): AgentMessage => ({
  payload: { $case: 'eventBatch', value: { streamId: `${DEVICE}/p/r`, firstSeq: BigInt(seq), count: 1, records: Buffer.alloc(8, seq & 0xff),
    recordSize: 8, schemaId: 'p@1:0', clockOffsetNs: 0n, intervalIndex: [] } },
});
const result: AgentMessage = { payload: { $case: 'commandResult', value: { commandId: 'c-1', ok: true, error: '', detailJson: '' } } };
const ack = (through: number): ControllerMessage => ({ payload: { $case: 'ack', value: { streamId: `${DEVICE}/p/r`, ackedThrough: BigInt(through), gapRecords: 0n } } });

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function transport(port: number, over: Partial<MqttTransportOptions> = {}) {
  const events: string[] = [];
  const got: ControllerMessage[] = [];
  const logs: string[] = [];
  const t = new MqttTransport({ url: `mqtt://127.0.0.1:${port}`, deviceId: DEVICE, credential: SECRET, backoff: { initialMs: 50, maxMs: 300 },
    log: (l) => logs.push(l), ...over });
  t.on('up', () => events.push('up'));
  t.on('down', (why) => events.push(`down: ${why}`));
  t.onMessage((m) => got.push(m));
  cleanups.push(() => t.close());
  return { t, events, got, logs };
}

async function until(what: string, fn: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const status = (b: Broker) => b.published.filter((p) => p.topic === topics.status).map((p) => ({ ...JSON.parse(p.payload.toString()) as { state: string; conn: string }, retain: p.retain }));

describe('parseMqttUrl', () => {
  it('takes mqtt:// and mqtts:// with host and port, and names what it expected otherwise', () => {
    expect(parseMqttUrl('mqtt://127.0.0.1:1884').port).toBe('1884');
    expect(parseMqttUrl('mqtts://broker.lab:8883').hostname).toBe('broker.lab');
    for (const bad of ['127.0.0.1:1883', 'http://x:1', 'mqtt://host', 'nonsense']) expect(() => parseMqttUrl(bad)).toThrow(/mqtt:\/\/HOST:PORT/);
    expect(() => new MqttTransport({ url: 'mqtts://h:8883', deviceId: DEVICE, credential: SECRET })).toThrow(/needs the broker's CA/);
  });
});

describe('MqttTransport', () => {
  it('logs in as the device with a persistent session, routes messages to their topics, says online and leaves a will', async () => {
    const b = await startBroker();
    cleanups.push(() => b.close());
    const { t, events, got } = transport(b.port);
    await expect(t.send(hello)).rejects.toBeInstanceOf(TransportDownError);
    t.connect();
    await until('up', () => t.isUp);
    expect(b.logins[0]).toEqual({ clientId: DEVICE, username: DEVICE, clean: false });
    await t.send(hello);
    await t.send(batch(1));
    await t.send(result);
    await until('3 messages', () => b.published.filter((p) => p.client === DEVICE && p.topic !== topics.status).length === 3);
    const mine = b.published.filter((p) => p.client === DEVICE && p.topic !== topics.status);
    expect(mine.map((p) => p.topic)).toEqual([topics.up, topics.up, topics.result]);
    expect(AgentMessage.decode(mine[1]!.payload)).toEqual(batch(1));
    const online = status(b)[0]!;
    expect(online).toMatchObject({ state: 'online', retain: true });

    // The controller's messages arrive on cmd, decoded; one that does not decode is dropped and counted.
    await b.publish(topics.cmd, Buffer.from(ControllerMessage.encode(ack(1)).finish()));
    await b.publish(topics.cmd, Buffer.from([0xff, 0xff, 0xff]));
    await b.publish(topics.cmd, Buffer.from(ControllerMessage.encode(ack(2)).finish()));
    await until('2 messages', () => got.length === 2);
    expect(got).toEqual([ack(1), ack(2)]);
    expect(t.counters.malformed).toBe(1);

    // An abrupt loss: the broker publishes the will, offline for that very connection.
    for (const c of Object.values((b.aedes as unknown as { clients: Record<string, Client> }).clients)) c.conn.destroy();
    await until('down', () => events.some((e) => e.startsWith('down')));
    await until('will', () => status(b).some((s) => s.state === 'offline'));
    expect(status(b).find((s) => s.state === 'offline')).toEqual({ state: 'offline', conn: online.conn, retain: true });
    // ...and it comes back by itself, as a new connection.
    await until('up again', () => events.filter((e) => e === 'up').length === 2);
    expect(status(b).at(-1)).toMatchObject({ state: 'online' });
    expect(status(b).at(-1)!.conn).not.toBe(online.conn);
  });

  it('says offline itself on close()', async () => {
    const b = await startBroker();
    cleanups.push(() => b.close());
    const { t } = transport(b.port);
    t.connect();
    await until('up', () => t.isUp);
    await t.close();
    expect(status(b).map((s) => s.state)).toEqual(['online', 'offline']);
    expect(t.isUp).toBe(false);
  });

  it('reconnects to a broker restarted on the same port, and is refused with a wrong credential', async () => {
    let b = await startBroker();
    const port = b.port;
    const { t, events } = transport(port);
    t.connect();
    await until('up', () => t.isUp);
    await b.close();
    await until('down', () => !t.isUp);
    b = await startBroker(port);
    cleanups.push(() => b.close());
    await until('up again', () => t.isUp);
    expect(events.filter((e) => e === 'up')).toHaveLength(2);
    // The restarted broker lost the session: the transport subscribed again, so cmd still arrives.
    const got: ControllerMessage[] = [];
    t.onMessage((m) => got.push(m));
    await b.publish(topics.cmd, Buffer.from(ControllerMessage.encode(ack(7)).finish()));
    await until('ack after restart', () => got.length === 1);

    const bad = transport(port, { credential: 'wrong' });
    bad.t.connect();
    await until('a logged refusal', () => bad.logs.some((l) => /cannot reach .*(Bad username or password|Not authorized)/i.test(l)));
    expect(bad.t.isUp).toBe(false);
  });

  it('bounds the PUBLISHes waiting for PUBACK: send() waits for a free slot, order is kept', async () => {
    const b = await startBroker();
    cleanups.push(() => b.close());
    const { t } = transport(b.port, { maxInflight: 4 });
    t.connect();
    await until('up', () => t.isUp);
    b.hold = [];
    const sends = Array.from({ length: 10 }, (_, i) => t.send(batch(i + 1)));
    let resolved = 0;
    for (const s of sends) void s.then(() => resolved++);
    await until('4 held at the broker', () => b.hold!.length === 4);
    await sleep(100);
    expect(t.inFlight).toBe(4);
    expect(t.writable).toBe(false);
    expect(resolved).toBe(4); // the first 4 were written; the rest wait for PUBACKs
    const held = b.hold;
    b.hold = undefined;
    for (const release of held) release();
    await Promise.all(sends);
    await until('all taken', () => b.published.filter((p) => p.topic === topics.up).length === 10);
    const seqs = b.published.filter((p) => p.topic === topics.up).map((p) => {
      const m = AgentMessage.decode(p.payload);
      return m.payload?.$case === 'eventBatch' ? Number(m.payload.value.firstSeq) : -1;
    });
    expect(seqs).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    await until('window empty', () => t.inFlight === 0 && t.writable);
  });

  it('reconnects when sent batches stay unacknowledged (a controller that never saw them)', async () => {
    const b = await startBroker();
    cleanups.push(() => b.close());
    // 1 s: the acks of the second part come through the broker, late on a loaded machine.
    const { t, events, logs } = transport(b.port, { ackTimeoutMs: 1000 });
    t.connect();
    await until('up', () => t.isUp);
    await t.send(batch(1));
    await until('ack timeout', () => t.counters.ackTimeouts === 1, 5000);
    expect(logs.some((l) => l.includes(`no ack for ${DEVICE}/p/r beyond 0 (sent through 1)`))).toBe(true);
    await until('up again', () => events.filter((e) => e === 'up').length === 2);

    // Acks that keep up keep the link.
    await t.send(batch(2));
    await b.publish(topics.cmd, Buffer.from(ControllerMessage.encode(ack(2)).finish()));
    await sleep(1500);
    expect(t.counters.ackTimeouts).toBe(1);
  });
});
