import { beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { requireRoot, runProbe, tcpgen } from '../lib/index.js';
import { pickPort } from './support.js';

const LIBBPF_TOOLS_TCPSTATES = '/usr/sbin/tcpstates';

/** Runs Debian's libbpf-tools tcpstates with a remote-port filter; resolves with its output lines. */
function startReference(port: number) {
  const child = spawn('stdbuf', ['-oL', LIBBPF_TOOLS_TCPSTATES, '-D', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('SKADDR')) resolve();
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => reject(new Error(`libbpf-tools tcpstates exited ${code}: ${err}`)));
    setTimeout(() => reject(new Error(`libbpf-tools tcpstates not ready after 20 s: ${err}`)), 20_000).unref();
  });
  const stop = () =>
    new Promise<string[]>((resolve) => {
      child.on('exit', () => resolve(out.split('\n').filter((l) => /^[0-9a-f]+\s/.test(l))));
      child.kill('SIGINT');
    });
  return { ready, stop };
}

describe('tcpstates vs libbpf-tools tcpstates on the same workload', () => {
  beforeAll(() => {
    requireRoot();
    if (!existsSync(LIBBPF_TOOLS_TCPSTATES)) {
      throw new Error(`${LIBBPF_TOOLS_TCPSTATES} missing: run bash toolchains/setup.sh (installs libbpf-tools)`);
    }
  });

  it('sees the same transitions, socket by socket, in the same order', async () => {
    const port = pickPort();
    const ref = startReference(port);
    const ours = runProbe('tcpstates', ['--json', '--rport', String(port)], { waitReady: true });
    await Promise.all([ref.ready, ours.ready]);
    const gen = await tcpgen({ port, send: 2000, recv: 3000, count: 25 });
    await ours.waitForEvent(() => ours.events.length >= 25 * 5, 5000);
    await new Promise((r) => setTimeout(r, 300));
    const refLines = await ref.stop();
    const res = await ours.stop();

    // libbpf-tools: SKADDR PID COMM LADDR LPORT RADDR RPORT OLD -> NEW MS
    const refBySock = new Map<string, string[]>();
    for (const line of refLines) {
      const f = line.trim().split(/\s+/);
      const key = `0x${f[0]}`;
      refBySock.set(key, [...(refBySock.get(key) ?? []), `${f[4]}:${f[6]}:${f[7]}>${f[9]}`]);
    }
    const oursBySock = new Map<string, string[]>();
    for (const e of res.events) {
      const key = String(e.skaddr);
      oursBySock.set(key, [...(oursBySock.get(key) ?? []), `${e.lport}:${e.rport}:${e.oldstate}>${e.newstate}`]);
    }
    // Socket addresses are reused across connections; compare per-connection chains instead.
    const chains = (m: Map<string, string[]>) =>
      [...m.values()].flatMap((c) => {
        const out: string[] = [];
        let cur: string[] = [];
        for (const t of c) {
          cur.push(t);
          if (t.endsWith('>CLOSE')) { out.push(cur.join(' ')); cur = []; }
        }
        if (cur.length) out.push(cur.join(' '));
        return out;
      }).sort();
    expect(res.events.length).toBe(25 * 5);
    expect(refLines.length).toBe(25 * 5);
    expect(chains(oursBySock)).toEqual(chains(refBySock));
    expect(new Set(res.events.map((e) => e.pid))).toEqual(new Set([gen.pid]));
  });
});
