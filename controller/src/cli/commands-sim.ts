// `bpfleet sim`: a simulated fleet against a running controller. Creates one enrollment token per
// device through the admin API, runs the agent package's simulator (agent/bin/bpfleet-sim.js) as
// a child process (the CLI never imports agent code), and once every device is connected deploys
// and starts the probe on them through the admin API, like `bpfleet deploy` does.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CliError } from './admin-client.js';
import { str, type Command, type RunContext } from './command.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const SIM_BIN = path.join(repoRoot, 'agent', 'bin', 'bpfleet-sim.js');

interface DeployLine { type: string; phase?: string; ok?: boolean; error?: string; devices?: { deployed: boolean; started?: boolean; error?: string }[] }

function int(ctx: RunContext, k: string, dflt: number): number {
  const v = str(ctx.values, k);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new CliError(`--${k} takes a number, not '${v}'`, 2);
  return n;
}

async function pool<T>(items: T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

/** Tag, device names and tokens: a data directory used before keeps its devices (no new tokens). */
async function prepareDevices(ctx: RunContext, dataDir: string, devices: number): Promise<{ tag: string; tokensFile: string }> {
  const tagFile = path.join(dataDir, 'sim.json');
  const tag = existsSync(tagFile) ? (JSON.parse(readFileSync(tagFile, 'utf8')) as { tag: string }).tag : `s${Date.now().toString(36)}`;
  writeFileSync(tagFile, JSON.stringify({ tag }));
  const tokens: string[] = new Array<string>(devices).fill('');
  const missing = tokens.map((_, i) => i).filter((i) => !existsSync(path.join(dataDir, `dev-${String(i).padStart(4, '0')}`, 'identity.json')));
  const started = Date.now();
  await pool(missing, 16, async (i) => {
    const t = await ctx.client().post<{ token: string }>('/api/v1/tokens', {
      labels: { sim: tag }, ttl: '1h', name: `${tag}-${String(i).padStart(4, '0')}`,
    });
    tokens[i] = t.token;
  });
  if (missing.length > 0) ctx.err(`bpfleet sim: ${missing.length} enrollment tokens created in ${((Date.now() - started) / 1000).toFixed(1)} s (label sim=${tag})\n`);
  const tokensFile = path.join(dataDir, 'tokens.txt');
  writeFileSync(tokensFile, tokens.join('\n') + '\n', { mode: 0o600 });
  return { tag, tokensFile };
}

/**
 * Deploys and starts `probe` on the devices, `wave` per request (0: all in one; the controller
 * bounds the bundles in flight itself, --deploy-concurrency of bpfleet controller).
 */
async function deploy(ctx: RunContext, probe: string, names: string[], wave: number, args: string[]): Promise<void> {
  const started = Date.now();
  const failed: string[] = [];
  let ok = 0;
  const per = wave > 0 ? wave : names.length;
  for (let i = 0; i < names.length; i += per) {
    let done: DeployLine | undefined;
    const devices = names.slice(i, i + per);
    for await (const l of ctx.client().lines<DeployLine>('POST', '/api/v1/deploy', {}, { probe, selector: { devices }, args })) {
      if (l.type === 'done') done = l;
    }
    for (const d of done?.devices ?? []) {
      if (d.deployed && d.started) ok++;
      else failed.push(d.error ?? '?');
    }
  }
  ctx.err(`bpfleet sim: ${probe} deployed and started on ${ok}/${names.length} devices in ` +
    `${((Date.now() - started) / 1000).toFixed(1)} s${failed.length ? `; ${failed.length} failed, first: ${failed[0]!}` : ''}\n`);
}

export const simCommand: Command = {
  name: 'sim',
  summary: 'run a simulated fleet (many real agents, replayed probe output) against the controller',
  help: `Usage: bpfleet sim --devices N --rate R [--processes P] [--transport grpc|mqtt] [--mqtt URL]
                   [--controller HOST:PORT] [--seconds S] [--data-dir DIR] [--probe tcpstates]

  --devices N         simulated devices (default 10), each a real agent session with its own
                      identity (enrolled with a token created here), spool and connection
  --rate R            events/s per device, replayed from test/fixtures/recorded/<probe>.machine (default 100)
  --processes P       worker processes (default 2)
  --transport T       grpc (default) or mqtt (--mqtt URL: the broker, default mqtt://127.0.0.1:1883)
  --controller H:P    the controller's gRPC address (default 127.0.0.1:7474)
  --seconds S         how long every device's run emits (default 60)
  --data-dir DIR      device directories; reused on the next run (default: a temporary one, removed)
  --drain-seconds S   wait this long at most for every event to be acknowledged (default 60)
  --start-seconds S   wait this long at most for every device to connect, and again for every
                      run to start (default 180; one request starts the runs once all are deployed)
  --spool-max-bytes B per device spool bound (default 16 MiB)
  --spool-sync P      spool fsync policy: interval (the agent's default), always, none
  --probe NAME        probe to deploy and replay (default tcpstates)
  --deploy-wave N     devices per deploy request (default 0: all in one request; the controller
                      sends at most its --deploy-concurrency bundles at once)
Once every device is connected the probe is deployed and started on all of them (label sim=<tag>).
Ends with a table per worker process: devices connected, events generated, acked, lost per stage.
--json prints the result as JSON on stdout (the table still goes to stderr). --token is the
admin API token, as for every command.`,
  options: {
    devices: { type: 'string' }, rate: { type: 'string' }, processes: { type: 'string' }, transport: { type: 'string' },
    mqtt: { type: 'string' }, controller: { type: 'string' }, seconds: { type: 'string' }, 'data-dir': { type: 'string' },
    'drain-seconds': { type: 'string' }, 'start-seconds': { type: 'string' }, 'spool-max-bytes': { type: 'string' }, 'spool-sync': { type: 'string' }, probe: { type: 'string' },
    'deploy-wave': { type: 'string' },
  },
  positionals: [0, 0],
  async run(ctx) {
    if (!existsSync(SIM_BIN)) throw new CliError(`the simulator is not in this checkout (${SIM_BIN} missing)`);
    const devices = Math.floor(int(ctx, 'devices', 10));
    if (devices < 1) throw new CliError('--devices must be at least 1', 2);
    const probe = str(ctx.values, 'probe') ?? 'tcpstates';
    const given = str(ctx.values, 'data-dir');
    const dataDir = given !== undefined ? path.resolve(given) : mkdtempSync(path.join(os.tmpdir(), 'bpfleet-sim-'));
    mkdirSync(dataDir, { recursive: true });
    try {
      const { tag, tokensFile } = await prepareDevices(ctx, dataDir, devices);
      const pass = (k: string): string[] => (str(ctx.values, k) !== undefined ? [`--${k}`, str(ctx.values, k)!] : []);
      const argv = [SIM_BIN, '--devices', String(devices), '--data-dir', dataDir, '--tokens-file', tokensFile, '--name-prefix', `${tag}-`,
        '--recording', path.join(repoRoot, 'test', 'fixtures', 'recorded', `${probe}.machine`), '--json',
        ...['rate', 'processes', 'transport', 'mqtt', 'controller', 'seconds', 'drain-seconds', 'start-seconds', 'spool-max-bytes', 'spool-sync'].flatMap(pass)];
      const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
      const forward = (sig: NodeJS.Signals): void => void child.kill(sig);
      process.on('SIGINT', forward);
      process.on('SIGTERM', forward);
      const exited = new Promise<number>((resolve) => child.on('exit', (c, s) => resolve(c ?? (s ? 1 : 0))));
      let result: unknown;
      let deploying: Promise<void> = Promise.resolve();
      for await (const line of createInterface({ input: child.stdout! })) {
        let m: { type?: string; connected?: number };
        try { m = JSON.parse(line) as typeof m; } catch { ctx.err(`${line}\n`); continue; }
        if (m.type === 'connected') {
          if (!m.connected) { ctx.err('bpfleet sim: no device connected; not deploying\n'); continue; }
          const names = Array.from({ length: devices }, (_, i) => `${tag}-${String(i).padStart(4, '0')}`);
          deploying = deploy(ctx, probe, names, Math.floor(int(ctx, 'deploy-wave', 0)), []).catch((err: unknown) => ctx.err(`bpfleet sim: deploy failed: ${(err as Error).message}\n`));
        } else if (m.type === 'result') result = m;
      }
      const code = await exited;
      await deploying;
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      if (ctx.values['json'] && result !== undefined) ctx.json(result);
      return code;
    } finally {
      if (given === undefined) rmSync(dataDir, { recursive: true, force: true });
    }
  },
};
