// A real Mosquitto (Debian's /usr/sbin/mosquitto) for MQTT tests: its own config, password and
// ACL files and persistence directory in a temporary directory, on a port the test chooses.
// Never the system service, never port 1883.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';

export const MOSQUITTO = '/usr/sbin/mosquitto';

/** Fails loudly when Mosquitto is not installed (toolchains/setup.sh installs it). */
export function requireMosquitto(): void {
  if (!existsSync(MOSQUITTO)) throw new Error(`${MOSQUITTO} missing: install mosquitto (bash toolchains/setup.sh)`);
}

export interface MosquittoOptions {
  /** Directory for mosquitto.conf, the data dir and, unless given elsewhere, passwd and acl. */
  dir: string;
  port: number;
  /** password_file and acl_file; both absent: anonymous access (never for bpfleet tests of ACLs). */
  passwordFile?: string;
  aclFile?: string;
  /** PEM files: serve mqtts:// on the port instead of mqtt://. */
  tls?: { ca: string; cert: string; key: string };
}

export class Mosquitto {
  private child: ChildProcess | undefined;
  private output = '';
  private exitedP: Promise<number | string> | undefined;
  readonly url: string;
  readonly conf: string;

  constructor(private readonly opts: MosquittoOptions) {
    this.url = `${opts.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${opts.port}`;
    this.conf = path.join(opts.dir, 'mosquitto.conf');
    mkdirSync(path.join(opts.dir, 'data'), { recursive: true });
    this.writeConf(false);
  }

  /**
   * Debug logging on or off, applied on the next start or reload(). Mosquitto logs refused
   * publishes ("Denied PUBLISH ...") only at debug level, next to a line for every message.
   */
  writeConf(debug: boolean): void {
    const opts = this.opts;
    const auth = opts.passwordFile
      ? [`password_file ${opts.passwordFile}`, ...(opts.aclFile ? [`acl_file ${opts.aclFile}`] : []), 'allow_anonymous false']
      : ['allow_anonymous true'];
    writeFileSync(this.conf, [
      `listener ${opts.port} 127.0.0.1`,
      ...(opts.tls ? [`cafile ${opts.tls.ca}`, `certfile ${opts.tls.cert}`, `keyfile ${opts.tls.key}`] : []),
      // Started as root it would switch to user mosquitto, who cannot read the test's 0700 directory.
      ...(process.getuid?.() === 0 ? ['user root'] : []),
      ...auth,
      'persistence true',
      `persistence_location ${path.join(opts.dir, 'data')}/`,
      'autosave_interval 1',
      // Persistent sessions (agents' cmd topics, a lone controller's up topics) may queue a lot.
      'max_queued_messages 0',
      'max_inflight_messages 64',
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      'log_type notice',
      'log_type information',
      ...(debug ? ['log_type debug'] : []),
      'connection_messages true',
      '',
    ].join('\n'));
  }

  /** Everything Mosquitto logged, over all its runs. */
  log(): string {
    return this.output;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts it and waits until the port accepts connections. */
  async start(): Promise<void> {
    const child = spawn(MOSQUITTO, ['-c', this.conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout!.on('data', (d: Buffer) => (this.output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.output += d.toString()));
    this.exitedP = new Promise((r) => child.once('exit', (code, sig) => r(code ?? sig ?? 'unknown')));
    const end = Date.now() + 15_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`mosquitto exited with ${child.exitCode}:\n${this.output}`);
      if (await this.accepting()) return;
      if (Date.now() > end) throw new Error(`mosquitto not listening on ${this.opts.port} within 15 s:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private accepting(): Promise<boolean> {
    return new Promise((resolve) => {
      const s = connect(this.opts.port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
  }

  /**
   * Rereads the configuration, password and ACL files (SIGHUP); resolves once Mosquitto has
   * logged "Reloading config.": the files are read in that same turn of its loop, so a client
   * connecting after this is checked against them.
   */
  async reload(timeoutMs = 10_000): Promise<void> {
    const count = () => this.output.split('Reloading config.').length - 1;
    const before = count();
    if (!this.child?.kill('SIGHUP')) throw new Error('mosquitto is not running: cannot reload it');
    const until = Date.now() + timeoutMs;
    while (count() === before) {
      if (Date.now() > until) throw new Error(`mosquitto did not log "Reloading config." within ${timeoutMs} ms of SIGHUP:\n${this.output.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async kill9(): Promise<void> {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGKILL');
    await this.exitedP;
  }

  async stop(): Promise<void> {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child?.kill('SIGKILL'), 10_000);
    await this.exitedP;
    clearTimeout(t);
  }
}
