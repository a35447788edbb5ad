// GrpcTransport against an in-test AgentService server: credential metadata, up/down and
// reconnect on the same port, backpressure with ordered delivery, mutual TLS with a pinned CA.
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ServerCredentials } from '@grpc/grpc-js';
import type { AgentMessage, ControllerMessage } from '@bpfleet/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep, tempDir } from '../probes/probe-test-support.js';
import { TestController } from '../session/session-test-support.js';
import { GrpcTransport, grpcEnroll, type GrpcTransportOptions } from './grpc-transport.js';
import { ReconnectBackoff, TransportDownError } from './transport.js';

function batch(seq: number, bytes: number): AgentMessage {
  return {
    payload: {
      $case: 'eventBatch',
      value: { streamId: 'd/p/r', firstSeq: BigInt(seq), count: 1, records: Buffer.alloc(bytes, seq & 0xff), recordSize: bytes, schemaId: 'p@1:0', clockOffsetNs: 0n, intervalIndex: [] },
    },
  };
}

function transport(ctrl: TestController, over: Partial<GrpcTransportOptions> = {}): { t: GrpcTransport; events: string[]; got: ControllerMessage[] } {
  const events: string[] = [];
  const got: ControllerMessage[] = [];
  const t = new GrpcTransport({ address: ctrl.address, credential: ctrl.credential, backoff: { initialMs: 50, maxMs: 400 }, ...over });
  t.on('up', () => events.push('up'));
  t.on('down', (why) => events.push(`down: ${why}`));
  t.onMessage((m) => got.push(m));
  return { t, events, got };
}

const hello: AgentMessage = { payload: { $case: 'hello', value: { deviceId: 'd', facts: undefined, agentVersion: '0', installed: [], spooled: [], agentInstance: 'i' } } };

describe('ReconnectBackoff', () => {
  it('full jitter under a cap that doubles from 0.5 s to 30 s, reset by a healthy link', () => {
    const top = new ReconnectBackoff({ initialMs: 500, maxMs: 30_000 }, () => 0.9999);
    const caps = Array.from({ length: 9 }, () => top.next());
    expect(caps).toEqual([499, 999, 1999, 3999, 7999, 15998, 29997, 29997, 29997]);
    top.reset();
    expect(top.next()).toBe(499);
    expect(new ReconnectBackoff({ initialMs: 500, maxMs: 30_000 }, () => 0).next()).toBe(0);
  });
});

describe('GrpcTransport', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = tempDir('transport');
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('presents the credential, reports up and down, reconnects to a controller restarted on the same port', async () => {
    const ctrl = new TestController();
    await ctrl.start();
    const { t, events, got } = transport(ctrl);
    try {
      await expect(t.send(hello)).rejects.toBeInstanceOf(TransportDownError);
      t.connect();
      await ctrl.waitFor('up', () => t.isUp);
      await t.send(hello);
      await ctrl.waitFor('Welcome', () => got.some((m) => m.payload?.$case === 'welcome'));
      expect(ctrl.authorizations).toEqual([`Bearer ${ctrl.credential}`]);

      ctrl.stop();
      await ctrl.waitFor('down', () => !t.isUp);
      expect(events[0]).toBe('up');
      expect(events[1]).toMatch(/^down: /);
      await expect(t.send(hello)).rejects.toBeInstanceOf(TransportDownError);
      await sleep(500); // a few failed attempts
      await ctrl.start(ctrl.port);
      await ctrl.waitFor('up again', () => t.isUp, 5000);
      await t.send(hello);
      await ctrl.waitFor('second Hello', () => ctrl.hellos.length === 2);
      expect(events.filter((e) => e === 'up')).toHaveLength(2);
    } finally {
      await t.close();
      ctrl.stop();
    }
  });

  it('a refused credential is a down with the reason, and retried', async () => {
    const ctrl = new TestController();
    await ctrl.start();
    const { t, events } = transport(ctrl, { credential: 'wrong' });
    try {
      t.connect();
      await ctrl.waitFor('two refusals', () => events.filter((e) => e.startsWith('down')).length >= 2, 5000);
      expect(events.find((e) => e.startsWith('down'))).toBe('down: UNAUTHENTICATED: unknown device credential');
      expect(ctrl.authorizations[0]).toBe('Bearer wrong');
    } finally {
      await t.close();
      ctrl.stop();
    }
  });

  it('honours backpressure: writable goes false, queued sends resolve after drain, everything arrives in order', async () => {
    const ctrl = new TestController();
    ctrl.acking = false;
    await ctrl.start();
    const { t } = transport(ctrl);
    try {
      t.connect();
      await ctrl.waitFor('up', () => t.isUp);
      await t.send(hello);
      let sawFull = false;
      const sends: Promise<void>[] = [];
      for (let i = 1; i <= 200; i++) {
        sends.push(t.send(batch(i, 256 * 1024)));
        if (!t.writable) sawFull = true;
      }
      expect(sawFull).toBe(true);
      await Promise.all(sends);
      await ctrl.waitFor('200 batches', () => ctrl.batches.length === 200, 20_000);
      expect(ctrl.batches.map((b) => Number(b.firstSeq))).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    } finally {
      await t.close();
      ctrl.stop();
    }
  }, 30_000);

  it('mutual TLS against a pinned CA; a controller certificate from another CA is refused', async () => {
    const ssl = (args: string[]): void => void execFileSync('openssl', args, { cwd: tmp, stdio: 'ignore' });
    for (const ca of ['ca', 'other-ca']) {
      ssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '1', '-subj', `/CN=${ca}`]);
    }
    const leaf = (name: string): void => {
      ssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
      ssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', `${name}.ext`]);
    };
    writeFileSync(path.join(tmp, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
    writeFileSync(path.join(tmp, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
    leaf('server');
    leaf('client');
    const f = (n: string): Buffer => readFileSync(path.join(tmp, n));

    const ctrl = new TestController();
    ctrl.serverCredentials = ServerCredentials.createSsl(f('ca.pem'), [{ cert_chain: f('server.pem'), private_key: f('server.key') }], true);
    ctrl.enrollResponse = { deviceId: 'd-tls', credential: ctrl.credential, bundleSigningKey: Buffer.alloc(32), labels: {} };
    await ctrl.start();
    const good = transport(ctrl, { tls: { ca: f('ca.pem'), cert: f('client.pem'), key: f('client.key') } });
    const logs: string[] = [];
    const bad = transport(ctrl, { tls: { ca: f('other-ca.pem'), cert: f('client.pem'), key: f('client.key') }, log: (l) => logs.push(l) });
    try {
      good.t.connect();
      await ctrl.waitFor('TLS up', () => good.t.isUp);
      await good.t.send(hello);
      await ctrl.waitFor('Hello over TLS', () => ctrl.hellos.length === 1);
      const enrolled = await grpcEnroll({ address: ctrl.address, tls: { ca: f('ca.pem'), cert: f('client.pem'), key: f('client.key') } }, { token: 't', deviceName: 'n', facts: undefined });
      expect(enrolled.deviceId).toBe('d-tls');

      bad.t.connect();
      await ctrl.waitFor('a refusal logged', () => logs.length > 0, 10_000);
      expect(bad.t.isUp).toBe(false);
      expect(logs[0]).toMatch(/^transport: cannot reach 127\.0\.0\.1:\d+: UNAVAILABLE/);
      expect(logs[0]).toMatch(/; the controller's certificate does not verify against --tls-ca \(SELF_SIGNED_CERT_IN_CHAIN\): give the CA that signed/);
      await expect(grpcEnroll({ address: ctrl.address }, { token: 't', deviceName: 'n', facts: undefined })).rejects.toThrow(/enrollment at 127\.0\.0\.1:\d+ failed: UNAVAILABLE/);
      await expect(grpcEnroll({ address: ctrl.address }, { token: 't', deviceName: 'n', facts: undefined })).rejects.toThrow(/serves TLS and this agent speaks plaintext: give --tls-ca/);
      await expect(grpcEnroll({ address: ctrl.address, tls: { ca: f('ca.pem') } }, { token: 't', deviceName: 'n', facts: undefined }))
        .rejects.toThrow(/the controller requires a client certificate \(mutual TLS\): give --tls-cert and --tls-key/);
    } finally {
      await good.t.close();
      await bad.t.close();
      ctrl.stop();
    }
  }, 30_000);
});
