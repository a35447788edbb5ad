// TLS and mutual TLS with certificates made by openssl for the test: a CA, a server certificate
// for 127.0.0.1, and an agent (client) certificate.
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { credentials, status as Status } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadOrCreateSigningKey } from '../bundles/signing-key.js';
import { Fleet } from '../fleet/fleet.js';
import { SqliteStore } from '../store/sqlite-store.js';
import { startGrpcServer, type GrpcServerHandle } from './grpc-server.js';
import { bearer, enroll, TestAgent } from './test-agent.js';

const OUT = fileURLToPath(new URL('../../../bpf/out', import.meta.url));
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
let certs: string;
const pem = (name: string) => readFile(join(certs, name));

async function makeCerts(dir: string): Promise<void> {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=bpfleet test CA', '-days', '2');
  await writeFile(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  await writeFile(join(dir, 'agent.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const [name, cn] of [['server', 'bpfleet controller'], ['agent', 'bench-1']] as const) {
    ssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`,
      '-days', '2', '-extfile', `${name}.ext`);
  }
  // A CA the server does not trust, and an agent certificate from it.
  ssl('req', '-x509', ...ec, '-keyout', 'rogue-ca.key', '-out', 'rogue-ca.crt', '-subj', '/CN=rogue CA', '-days', '2');
  ssl('req', ...ec, '-keyout', 'rogue.key', '-out', 'rogue.csr', '-subj', '/CN=rogue');
  ssl('x509', '-req', '-in', 'rogue.csr', '-CA', 'rogue-ca.crt', '-CAkey', 'rogue-ca.key', '-CAcreateserial', '-out', 'rogue.crt',
    '-days', '2', '-extfile', 'agent.ext');
}

beforeAll(async () => {
  certs = await mkdtemp(join(tmpdir(), 'bpfleet-certs-'));
  await makeCerts(certs);
});
afterAll(async () => { await rm(certs, { recursive: true, force: true }); });

let dir: string;
let store: SqliteStore;
let fleet: Fleet;
let server: GrpcServerHandle | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bpfleet-tls-'));
  store = SqliteStore.open(join(dir, 'store.db'));
  fleet = new Fleet({ store, signingKey: await loadOrCreateSigningKey(join(dir, 'data')), bpfOutDir: OUT, log: quiet });
});
afterEach(async () => {
  await server?.close(500);
  server = undefined;
  await fleet.close();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const token = async () => (await store.createEnrollmentToken({ ttlMs: 60_000 })).token;

describe('TLS', () => {
  it('serves agents over TLS, refusing a client that does not trust the server', async () => {
    server = await startGrpcServer({ fleet, address: '127.0.0.1:0', tls: { cert: join(certs, 'server.crt'), key: join(certs, 'server.key') } });
    expect(server.tls).toBe(true);
    const trusting = credentials.createSsl(await pem('ca.crt'));
    const res = await enroll(server.address, { token: await token(), deviceName: 'bench-1' }, trusting);
    const agent = TestAgent.connect(server.address, bearer(res.credential), trusting);
    agent.hello(res.deviceId);
    await agent.welcome();
    expect((await agent.end()).code).toBe(Status.OK);
    agent.close();

    const err = await enroll(server.address, { token: await token(), deviceName: 'x' }, credentials.createSsl(await pem('rogue-ca.crt')))
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: Status.UNAVAILABLE });
    const plain = await enroll(server.address, { token: await token(), deviceName: 'y' }).catch((e: unknown) => e);
    expect(plain).toMatchObject({ code: Status.UNAVAILABLE });
    expect((await store.devices()).map((d) => d.name)).toEqual(['bench-1']);
  });
});

describe('mutual TLS', () => {
  beforeEach(async () => {
    server = await startGrpcServer({ fleet, address: '127.0.0.1:0',
      tls: { cert: await pem('server.crt'), key: await pem('server.key'), ca: await pem('ca.crt') } });
  });

  it('serves an agent with a certificate from the CA', async () => {
    const creds = credentials.createSsl(await pem('ca.crt'), await pem('agent.key'), await pem('agent.crt'));
    const res = await enroll(server!.address, { token: await token(), deviceName: 'bench-1' }, creds);
    expect(res.deviceId).toMatch(/^d-/);
  });

  it('refuses a client without a certificate, or with one from another CA, before any request is seen', async () => {
    const t = await token();
    const noCert = await enroll(server!.address, { token: t, deviceName: 'a' }, credentials.createSsl(await pem('ca.crt')))
      .catch((e: unknown) => e);
    expect(noCert).toMatchObject({ code: Status.UNAVAILABLE });
    const rogue = await enroll(server!.address, { token: t, deviceName: 'b' },
      credentials.createSsl(await pem('ca.crt'), await pem('rogue.key'), await pem('rogue.crt'))).catch((e: unknown) => e);
    expect(rogue).toMatchObject({ code: Status.UNAVAILABLE });
    expect(await store.devices()).toEqual([]); // the token was never presented
    const ok = await enroll(server!.address, { token: t, deviceName: 'c' },
      credentials.createSsl(await pem('ca.crt'), await pem('agent.key'), await pem('agent.crt')));
    expect(ok.deviceId).toMatch(/^d-/);
  });

  it('needs the CA to require client certificates', async () => {
    await expect(startGrpcServer({ fleet, address: '127.0.0.1:0',
      tls: { cert: await pem('server.crt'), key: await pem('server.key'), requireClientCert: true } }))
      .rejects.toThrow('tls.requireClientCert needs tls.ca, the CA that signs agent certificates');
  });
});
