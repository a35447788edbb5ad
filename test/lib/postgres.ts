// A throwaway PostgreSQL cluster (Debian's postgresql package) for tests and benchmarks: initdb
// into a temporary directory, a postmaster on 127.0.0.1:<port> and a Unix socket in that
// directory, stopped and removed by stop(). Never the system service, never port 5432.
//
// PostgreSQL refuses to run as root. Run as root (as these tests do), the cluster belongs to
// the `postgres` user the Debian package creates: its directory is chowned to it and the
// binaries are spawned with its uid/gid (no su/runuser in between, so the pid we hold is the
// postmaster's own). Run as another user, the cluster runs as that user.
//
// This file has no dependencies beyond Node, so the controller's specs and benchmarks import it
// too (controller/src/store/pg/pg-store.spec.ts).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Where Debian puts the server binaries: /usr/lib/postgresql/<major>/bin, the newest major. */
export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root) ? readdirSync(root).filter((d) => /^\d+$/.test(d)).sort((a, b) => Number(b) - Number(a)) : [];
  for (const m of majors) {
    const bin = path.join(root, m, 'bin');
    if (existsSync(path.join(bin, 'initdb')) && existsSync(path.join(bin, 'postgres'))) return bin;
  }
  throw new Error(`no PostgreSQL server binaries (initdb, postgres) under ${root}/<version>/bin: ` +
    'install Debian\'s postgresql package (bash toolchains/setup.sh does); these tests need a real server and do not skip');
}

/** uid and gid of `name` from /etc/passwd. */
function lookupUser(name: string): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
  if (!line) {
    throw new Error(`running as root, the throwaway PostgreSQL needs the "${name}" user (PostgreSQL refuses to run as root); ` +
      'Debian\'s postgresql package creates it: apt-get install postgresql');
  }
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

export interface PostgresOptions {
  /** TCP port on 127.0.0.1. */
  port: number;
  /** Extra server settings (-c name=value), e.g. { fsync: 'off' } for tests that need no durability. */
  settings?: Record<string, string>;
  /** Parent of the temporary directory (default os.tmpdir()). */
  parentDir?: string;
}

export class Postgres {
  /** The superuser initdb creates; trust authentication on the socket and 127.0.0.1 only. */
  static readonly USER = 'bpfleet';
  readonly dir: string;
  readonly port: number;
  private readonly bin: string;
  private readonly owner: { uid: number; gid: number } | undefined;
  private child: ChildProcess | undefined;
  private exited: Promise<number | string> | undefined;
  private output = '';

  private constructor(opts: PostgresOptions) {
    this.bin = postgresBinDir();
    this.port = opts.port;
    this.owner = process.getuid?.() === 0 ? lookupUser('postgres') : undefined;
    this.dir = mkdtempSync(path.join(opts.parentDir ?? os.tmpdir(), 'bpfleet-pg-'));
    if (this.owner) chownSync(this.dir, this.owner.uid, this.owner.gid);
  }

  /** initdb, start, wait until it accepts connections. */
  static async start(opts: PostgresOptions): Promise<Postgres> {
    const pg = new Postgres(opts);
    try {
      pg.run('initdb', ['-D', pg.dataDir, '-U', Postgres.USER, '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
      const settings = {
        listen_addresses: '127.0.0.1', port: String(opts.port), unix_socket_directories: pg.dir, max_connections: '100',
        logging_collector: 'off', ...opts.settings,
      };
      const args = ['-D', pg.dataDir, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
      const child = spawn(path.join(pg.bin, 'postgres'), args, { stdio: ['ignore', 'pipe', 'pipe'], ...(pg.owner ?? {}) });
      pg.child = child;
      child.stdout!.on('data', (d: Buffer) => (pg.output += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (pg.output += d.toString()));
      pg.exited = new Promise((r) => child.once('exit', (code, sig) => r(code ?? sig ?? 'unknown')));
      const end = Date.now() + 60_000;
      for (;;) {
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Error(`postgres exited (${child.exitCode ?? child.signalCode}) at start, port ${opts.port}:\n${pg.output}`);
        }
        if (pg.ready()) break;
        if (Date.now() > end) throw new Error(`postgres not accepting connections on port ${opts.port} within 60 s:\n${pg.output}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      return pg;
    } catch (err) {
      await pg.stop();
      throw err;
    }
  }

  get dataDir(): string {
    return path.join(this.dir, 'data');
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Everything the server logged. */
  log(): string {
    return this.output;
  }

  /** postgres://bpfleet@127.0.0.1:<port>/<database> */
  url(database: string): string {
    return `postgres://${Postgres.USER}@127.0.0.1:${this.port}/${database}`;
  }

  /** postgres://bpfleet@localhost/<database>?host=<dir>&port=<port>: through the Unix socket. */
  socketUrl(database: string): string {
    return `postgres://${Postgres.USER}@localhost/${database}?host=${encodeURIComponent(this.dir)}&port=${this.port}`;
  }

  /** Creates an empty database and returns its URL (TCP on 127.0.0.1, or the socket with listen_addresses ''). */
  createDatabase(name: string, via: 'tcp' | 'socket' = 'tcp'): string {
    this.run('createdb', ['-h', this.dir, '-p', String(this.port), '-U', Postgres.USER, name]);
    return via === 'tcp' ? this.url(name) : this.socketUrl(name);
  }

  /** Runs an SQL statement with psql (as the superuser), returning its unaligned output. */
  psql(database: string, sql: string): string {
    return this.run('psql', ['-h', this.dir, '-p', String(this.port), '-U', Postgres.USER, '-d', database, '-XAtq',
      '-v', 'ON_ERROR_STOP=1', '-c', sql]);
  }

  private ready(): boolean {
    const r = spawnSync(path.join(this.bin, 'pg_isready'), ['-q', '-h', this.dir, '-p', String(this.port), '-U', Postgres.USER], this.owner ?? {});
    return r.status === 0;
  }

  private run(tool: string, args: string[]): string {
    const r = spawnSync(path.join(this.bin, tool), args, { encoding: 'utf8', ...(this.owner ?? {}) });
    if (r.error) throw new Error(`${tool} failed to start: ${r.error.message}`);
    if (r.status !== 0) throw new Error(`${tool} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stdout}${r.stderr}`);
    return r.stdout;
  }

  /** Fast shutdown (SIGINT: clients disconnected, no waiting), then removes the directory unless keep. */
  async stop(keep = false): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGINT');
      const t = setTimeout(() => child.kill('SIGQUIT'), 15_000);
      await this.exited;
      clearTimeout(t);
    }
    if (!keep) rmSync(this.dir, { recursive: true, force: true });
  }
}
