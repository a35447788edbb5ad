import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AGENT, Fleet, portBase, requireRoot, tcpgen, waitFor } from '../lib/index.js';

// Mutual TLS end to end: `bpfleet controller --tls-cert --tls-key --tls-ca --mtls`, an agent
// enrolled and connected with a client certificate of the agents' CA, tcpstates events stored.
// Agents without a client certificate, with one from another CA, trusting another CA for the
// controller, or speaking plaintext are refused, and each says why in words a user can act on.
// Certificates are made here with openssl, valid for one day.

const CLIENT_TRANSITIONS = 5;
let fleet: Fleet | undefined;

interface Pki {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A client certificate signed by a CA the controller does not trust. */
  rogueCert: string;
  rogueKey: string;
  otherCa: string;
}

function openssl(dir: string, args: string[]): void {
  try {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`openssl ${args.join(' ')} failed (is openssl installed? toolchains/setup.sh installs it): ${e.stderr?.toString() ?? e.message}`, { cause: err });
  }
}

/** Two CAs (the agents' and a rogue one), a server certificate for 127.0.0.1, a client certificate from each CA. */
function makePki(dir: string): Pki {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  writeFileSync(path.join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  writeFileSync(path.join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const ca of ['ca', 'other-ca']) openssl(dir, ['req', '-x509', ...ec, '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-days', '1', '-subj', `/CN=bpfleet test ${ca}`]);
  const issue = (name: string, ca: string, ext: string): void => {
    openssl(dir, ['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
    openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`,
      '-days', '1', '-extfile', ext]);
  };
  issue('server', 'ca', 'server.ext');
  issue('agent', 'ca', 'client.ext');
  issue('rogue', 'other-ca', 'client.ext');
  const p = (f: string) => path.join(dir, f);
  return { ca: p('ca.crt'), serverCert: p('server.crt'), serverKey: p('server.key'), clientCert: p('agent.crt'), clientKey: p('agent.key'),
    rogueCert: p('rogue.crt'), rogueKey: p('rogue.key'), otherCa: p('other-ca.crt') };
}

describe('mutual TLS between agents and the controller', () => {
  beforeAll(() => requireRoot());
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail' && fleet) console.log(`logs of the failed run (kept in ${fleet.dir}):\n${fleet.logs()}`);
    await fleet?.stop(ctx.task.result?.state === 'fail');
    fleet = undefined;
  });

  it('stores events from an agent with a client certificate and refuses the others with a clear reason', async () => {
    const base = portBase(4);
    const f = (fleet = new Fleet({ name: 'mtls', grpcPort: base, adminPort: base + 1 }));
    const port = base + 2;
    const logs = () => f.logs();
    const pki = makePki(f.dir);
    const ctl = await f.startController(['--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--tls-ca', pki.ca, '--mtls']);
    expect(ctl.log()).toMatch(/serving agents on .* \(mutual TLS\)/);
    expect(ctl.log()).toContain(`grpcs://${f.grpc}`);

    const withCert = ['--tls-ca', pki.ca, '--tls-cert', pki.clientCert, '--tls-key', pki.clientKey];
    const agent = await f.startAgent('a', { token: await f.token(['lab=tls']), extra: withCert });
    expect(agent.log()).toContain('over TLS');
    const dep = await f.cli(['deploy', 'tcpstates', '--to', 'lab=tls', '--args', `--rport ${port}`, '--json']);
    expect(dep.code, dep.stderr + dep.stdout).toBe(0);
    await waitFor('probe running', () => agent.log().includes('ready'), 30_000, logs);
    let made = (await tcpgen({ port, send: 100, recv: 100, count: 30 })).conns.length * CLIENT_TRANSITIONS;
    await waitFor(`${made} stored over mutual TLS`, () => f.storedEvents() === made, 30_000, logs);

    // Enrollment is refused without the right credentials; each agent exits 1 saying what to fix.
    const refusals: [string, string[], RegExp][] = [
      ['no client certificate', ['--tls-ca', pki.ca], /requires a client certificate \(mutual TLS\): give --tls-cert and --tls-key/],
      ['a client certificate of another CA', ['--tls-ca', pki.ca, '--tls-cert', pki.rogueCert, '--tls-key', pki.rogueKey],
        /does not accept this client certificate \(--tls-cert\)/],
      ['another CA pinned for the controller', ['--tls-ca', pki.otherCa, '--tls-cert', pki.clientCert, '--tls-key', pki.clientKey],
        /controller's certificate does not verify against --tls-ca/],
      ['plaintext', [], /serves TLS and this agent speaks plaintext: give --tls-ca/],
    ];
    for (const [i, [what, extra, why]] of refusals.entries()) {
      const token = await f.token(['lab=refused']);
      const p = f.spawn(AGENT, ['--controller', f.grpc, '--data-dir', path.join(f.dir, `refused-${i}`), '--enroll-token', token, ...extra]);
      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([p.exited, new Promise<string>((r) => (timer = setTimeout(() => r('still running after 60 s'), 60_000)))]);
      clearTimeout(timer);
      if (typeof code === 'string' && code.startsWith('still')) p.child.kill('SIGKILL');
      expect(code, `agent with ${what}:\n${p.log()}`).toBe(1);
      expect(p.log(), `agent with ${what}`).toMatch(/enrollment at .* failed: UNAVAILABLE/);
      expect(p.log(), `agent with ${what}`).toMatch(why);
    }
    const devices = await f.cli(['devices', '--json']);
    expect(devices.code, devices.stderr).toBe(0);
    expect((JSON.parse(devices.stdout) as { name: string }[]).length, 'only the agent with a certificate is enrolled').toBe(1);

    // The enrolled device restarted without its client certificate cannot open a session: it says
    // why, keeps retrying, and the device stays offline.
    f.agents.get('a')!.child.kill('SIGTERM');
    await f.agents.get('a')!.exited;
    const noCert = await f.startAgent('a', { extra: ['--tls-ca', pki.ca], wait: false });
    await waitFor('the certificate-less agent says why it cannot connect', () => /transport: cannot reach [^\n]*: UNAVAILABLE[^\n]*; the controller requires a client certificate \(mutual TLS\)/.test(noCert.log()),
      30_000, logs);
    expect(noCert.log()).not.toContain('welcomed');
    // Logged once, not once per retry (gRPC's reasons carry a timestamp that must not defeat that).
    await new Promise((r) => setTimeout(r, 3000));
    expect(noCert.log().match(/transport: cannot reach/g)).toHaveLength(1);
    const after = JSON.parse((await f.cli(['devices', '--json'])).stdout) as { online: boolean }[];
    expect(after.map((d) => d.online)).toEqual([false]);
    noCert.child.kill('SIGTERM');
    await noCert.exited;

    // With its certificate again it reconnects; a new run's events are stored as well.
    const back = await f.startAgent('a', { extra: withCert });
    const dep2 = await f.cli(['deploy', 'tcpstates', '--to', 'lab=tls', '--args', `--rport ${port}`, '--json']);
    expect(dep2.code, dep2.stderr + dep2.stdout).toBe(0);
    await waitFor('probe running again', () => back.log().includes('ready'), 30_000, logs);
    made += (await tcpgen({ port, send: 100, recv: 100, count: 20 })).conns.length * CLIENT_TRANSITIONS;
    await waitFor(`${made} stored`, () => f.storedEvents() === made, 30_000, logs);
    expect(f.distinctEvents()).toBe(made);
  }, 300_000);
});
