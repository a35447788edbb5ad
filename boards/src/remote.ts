// Real boards: copy the agent runtime (runtime.ts) to the device and start the agent there, over
// ssh/scp or over OpenHarmony's `hdc` (`hdc file send`, `hdc shell`). Both are thin adapters behind
// one RemoteShell interface; installAgent() is the one sequence of steps they share.
//
// The hdc adapter cannot run on the development machines or in CI: there is no DAYU200 or
// Hi3516DV300 attached and no hdc binary. It is unit-tested against a fake `hdc` script that
// records its arguments (remote.spec.ts); the command lines it builds follow hdc's documented
// syntax (`hdc [-t SERIAL] file send LOCAL REMOTE`, `hdc [-t SERIAL] shell CMD`).
import path from 'node:path';
import { run } from './host.js';
import type { BoardProfile } from './profile.js';
import type { Runtime } from './runtime.js';

export interface RemoteShell {
  /** For messages: "ssh root@10.0.0.7", "hdc 7001005458323933". */
  readonly describe: string;
  exec(command: string): Promise<string>;
  send(localFile: string, remotePath: string): Promise<void>;
}

/** POSIX-sh single quoting of one word. */
export const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export class SshShell implements RemoteShell {
  readonly describe: string;
  constructor(private readonly target: string, private readonly port = 22, private readonly bins = { ssh: 'ssh', scp: 'scp' }) {
    if (!/^([A-Za-z0-9._-]+@)?[A-Za-z0-9.:_-]+$/.test(target)) throw new Error(`--ssh ${target}: expected [user@]host`);
    this.describe = `ssh ${target}`;
  }
  private common(): string[] {
    return ['-o', 'BatchMode=yes', '-o', 'ConnectTimeout=15'];
  }
  async exec(command: string): Promise<string> {
    return (await run(this.bins.ssh, [...this.common(), '-p', String(this.port), this.target, command])).stdout;
  }
  async send(localFile: string, remotePath: string): Promise<void> {
    await run(this.bins.scp, [...this.common(), '-q', '-P', String(this.port), localFile, `${this.target}:${remotePath}`]);
  }
}

/** OpenHarmony Device Connector. Not runnable here (no device, no hdc): see the file comment. */
export class HdcShell implements RemoteShell {
  readonly describe: string;
  constructor(private readonly serial = '', private readonly bin = process.env['BPFLEET_HDC'] || 'hdc') {
    this.describe = `hdc${serial ? ` ${serial}` : ''}`;
  }
  private target(): string[] {
    return this.serial ? ['-t', this.serial] : [];
  }
  async exec(command: string): Promise<string> {
    const { stdout } = await run(this.bin, [...this.target(), 'shell', command]);
    // hdc shell does not pass the remote exit status through; installAgent's commands print a
    // marker on success instead.
    return stdout.replace(/\r\n/g, '\n');
  }
  async send(localFile: string, remotePath: string): Promise<void> {
    const { stdout } = await run(this.bin, [...this.target(), 'file', 'send', localFile, remotePath]);
    if (/\[Fail\]|error/i.test(stdout)) throw new Error(`hdc file send ${localFile} ${remotePath}: ${stdout.trim()}`);
  }
}

export interface InstallOptions {
  controller: string;
  token?: string;
  name: string;
  /** Overrides the profile's installDir. */
  installDir?: string;
  /** Session transport (default grpc; enrollment is gRPC at `controller` either way) and, with mqtt, the broker URL. */
  transport?: 'grpc' | 'mqtt';
  mqtt?: string;
}

export interface InstallResult {
  installDir: string;
  machine: string;
  pid: number;
  log: string;
}

const MACHINES: Record<string, RegExp> = { arm64: /^(aarch64|arm64)$/, arm: /^(armv7l|armv8l|armv7|arm)$/, x86_64: /^x86_64$/ };

/**
 * Checks the device is the profile's architecture, copies the runtime tarball, unpacks it into
 * the install directory and starts the agent in the background (it keeps running after the shell
 * closes). Each remote step echoes a marker, since `hdc shell` loses exit codes.
 */
export async function installAgent(shell: RemoteShell, profile: BoardProfile, runtime: Runtime, opts: InstallOptions): Promise<InstallResult> {
  if (/^(127\.|localhost:|\[::1\])/.test(opts.controller)) {
    throw new Error(`--controller ${opts.controller} is this machine's loopback, which ${shell.describe} cannot reach: give an address of this machine the board can reach`);
  }
  if (opts.transport === 'mqtt' && (opts.mqtt === undefined || /^mqtts?:\/\/(127\.|localhost:|\[::1\])/.test(opts.mqtt))) {
    throw new Error(`--mqtt ${opts.mqtt ?? '(none)'}: give the broker as an mqtt://HOST:PORT the board can reach, not this machine's loopback`);
  }
  if (opts.mqtt?.startsWith('mqtts:')) throw new Error(`--mqtt ${opts.mqtt}: mqtts:// needs the broker's CA on the board, which installAgent does not copy yet; use mqtt:// or gRPC with TLS`);
  const dir = opts.installDir ?? profile.installDir;
  const machine = (await shell.exec('uname -m')).trim();
  if (!MACHINES[profile.arch]?.test(machine)) {
    throw new Error(`${shell.describe} is ${machine || 'unknown (uname -m printed nothing)'}, but profile ${profile.name} is ${profile.arch}: pick the profile of this board`);
  }
  const tmp = `${dir}.runtime.tar.gz`;
  await shell.exec(`mkdir -p ${shq(path.posix.dirname(dir))} && echo BPFLEET-OK`).then(expectOk(shell, 'mkdir'));
  await shell.send(runtime.tarball, tmp);
  await shell.exec(`mkdir -p ${shq(dir)} && tar -xzf ${shq(tmp)} -C ${shq(dir)} && rm -f ${shq(tmp)} && ${shq(`${dir}/${runtime.arch}/bpfleet-agent`)} --help >/dev/null && echo BPFLEET-OK`)
    .then(expectOk(shell, 'unpacking the runtime'));
  const home = `${dir}/${runtime.arch}`;
  const log = `${dir}/agent.log`;
  const args = ['--controller', opts.controller, '--data-dir', `${dir}/data`, '--board', profile.name, '--name', opts.name, ...(opts.token ? ['--enroll-token', opts.token] : []),
    ...(opts.transport === 'mqtt' && opts.mqtt !== undefined ? ['--transport', 'mqtt', '--mqtt', opts.mqtt] : [])];
  const out = await shell.exec(`cd / && nohup ${shq(`${home}/bpfleet-agent`)} ${args.map(shq).join(' ')} >${shq(log)} 2>&1 </dev/null & echo BPFLEET-PID $!`);
  const pid = Number(/BPFLEET-PID (\d+)/.exec(out)?.[1]);
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`${shell.describe}: starting the agent printed no pid: ${out.trim()}`);
  return { installDir: home, machine, pid, log };
}

const expectOk = (shell: RemoteShell, step: string) => (out: string): void => {
  if (!out.includes('BPFLEET-OK')) throw new Error(`${shell.describe}: ${step} failed: ${out.trim().slice(-500) || '(no output)'}`);
};
