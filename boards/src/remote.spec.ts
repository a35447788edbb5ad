import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadProfile } from './profile.js';
import { HdcShell, SshShell, installAgent } from './remote.js';
import type { Runtime } from './runtime.js';

// No OpenHarmony board and no hdc binary exist here: a fake `hdc` (and a fake ssh/scp) records
// its arguments and answers like the device would, so the adapters' command lines are checked.
const dir = mkdtempSync(path.join(os.tmpdir(), 'bpfleet-fake-hdc-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fake(name: string, machine: string): { bin: string; calls: () => string[][] } {
  const log = path.join(dir, `${name}.log`);
  const bin = path.join(dir, name);
  writeFileSync(bin, `#!/bin/sh
for a in "$@"; do printf '%s\\037' "$a"; done >>'${log}'; echo >>'${log}'
case "$*" in
  *"uname -m"*) echo '${machine}' ;;
  *"echo BPFLEET-PID"*) echo 'BPFLEET-PID 4242' ;;
  *"echo BPFLEET-OK"*) echo 'BPFLEET-OK' ;;
  *"file send"*) echo 'FileTransfer finish, Size:123, File count = 1, time:5ms rate:1.00kB/s' ;;
esac
`);
  chmodSync(bin, 0o755);
  return { bin, calls: () => readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split('\x1f').filter(Boolean)) };
}

const runtime = { arch: 'arm', tarball: '/cache/runtime/arm.tar.gz' } as Runtime;

describe('installing the agent on real boards', () => {
  it('over hdc: checks the arch, sends the runtime, unpacks it, starts the agent', async () => {
    const hdc = fake('hdc', 'armv7l');
    const r = await installAgent(new HdcShell('7001005458323933', hdc.bin), loadProfile('hi3516dv300'), runtime,
      { controller: '192.168.1.20:7474', token: 'tok', name: 'hi-1' });
    expect(r).toEqual({ installDir: '/data/local/bpfleet/arm', machine: 'armv7l', pid: 4242, log: '/data/local/bpfleet/agent.log' });
    const calls = hdc.calls();
    expect(calls.every((c) => c[0] === '-t' && c[1] === '7001005458323933')).toBe(true);
    expect(calls[0]).toEqual(['-t', '7001005458323933', 'shell', 'uname -m']);
    expect(calls.find((c) => c[2] === 'file')).toEqual(['-t', '7001005458323933', 'file', 'send', '/cache/runtime/arm.tar.gz', '/data/local/bpfleet.runtime.tar.gz']);
    const start = calls.at(-1)!.join(' ');
    expect(start).toContain("nohup '/data/local/bpfleet/arm/bpfleet-agent' '--controller' '192.168.1.20:7474'");
    expect(start).toContain("'--board' 'hi3516dv300' '--name' 'hi-1' '--enroll-token' 'tok'");
  });

  it('refuses a board of another arch and a loopback controller, saying why', async () => {
    const hdc = fake('hdc2', 'aarch64');
    await expect(installAgent(new HdcShell('', hdc.bin), loadProfile('hi3516dv300'), runtime, { controller: '10.0.0.1:7474', name: 'x' }))
      .rejects.toThrow(/hdc is aarch64, but profile hi3516dv300 is arm: pick the profile of this board/);
    await expect(installAgent(new HdcShell('', hdc.bin), loadProfile('hi3516dv300'), runtime, { controller: '127.0.0.1:7474', name: 'x' }))
      .rejects.toThrow(/loopback, which hdc cannot reach/);
  });

  it('over ssh: scp to the board, then the same steps', async () => {
    const ssh = fake('ssh', 'aarch64');
    const scp = fake('scp', '');
    const r = await installAgent(new SshShell('root@10.1.2.3', 2222, { ssh: ssh.bin, scp: scp.bin }), loadProfile('dayu200'), { ...runtime, arch: 'arm64', tarball: '/c/arm64.tar.gz' },
      { controller: '10.1.2.1:7474', name: 'd-1' });
    expect(r.pid).toBe(4242);
    expect(scp.calls()[0]!.slice(-4)).toEqual(['-P', '2222', '/c/arm64.tar.gz', 'root@10.1.2.3:/data/local/bpfleet.runtime.tar.gz']);
    expect(ssh.calls()[0]!.slice(-4)).toEqual(['-p', '2222', 'root@10.1.2.3', 'uname -m']);
    expect(() => new SshShell('root@host; rm -rf /')).toThrow(/expected \[user@\]host/);
  });

  it('starts the agent with --transport mqtt --mqtt URL when asked, never with a loopback broker', async () => {
    const ssh = fake('ssh-mqtt', 'aarch64');
    const scp = fake('scp-mqtt', '');
    const shell = new SshShell('root@10.1.2.3', 22, { ssh: ssh.bin, scp: scp.bin });
    const rt = { ...runtime, arch: 'arm64', tarball: '/c/arm64.tar.gz' };
    await installAgent(shell, loadProfile('dayu200'), rt, { controller: '10.1.2.1:7474', name: 'd-1', token: 'tok', transport: 'mqtt', mqtt: 'mqtt://10.1.2.1:1883' });
    const start = ssh.calls().at(-1)!.join(' ');
    expect(start).toContain("'--controller' '10.1.2.1:7474'");
    expect(start).toContain("'--enroll-token' 'tok' '--transport' 'mqtt' '--mqtt' 'mqtt://10.1.2.1:1883'");
    await installAgent(shell, loadProfile('dayu200'), rt, { controller: '10.1.2.1:7474', name: 'd-1', transport: 'grpc' });
    expect(ssh.calls().at(-1)!.join(' ')).not.toContain('--transport');
    await expect(installAgent(shell, loadProfile('dayu200'), rt, { controller: '10.1.2.1:7474', name: 'd-1', transport: 'mqtt', mqtt: 'mqtt://127.0.0.1:1883' }))
      .rejects.toThrow(/not this machine's loopback/);
  });
});
