// The long-running parts: `bpfleet controller` runs in this process; `bpfleet agent` execs the
// agent's own entry point (the controller never imports agent code).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runController } from '../main/index.js';
import { CliError } from './admin-client.js';
import { str, type Command } from './command.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

function splitHostPort(v: string, flag: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(v);
  if (!m) throw new CliError(`--${flag} takes HOST:PORT, not '${v}'`, 2);
  return { host: m[1] || '127.0.0.1', port: Number(m[2]) };
}

export const controllerCommand: Command = {
  name: 'controller',
  summary: 'run the controller (gRPC for agents, admin API, store)',
  help: `Usage: bpfleet controller [--data-dir DIR] [--store FILE] [--grpc HOST:PORT] [--admin HOST:PORT]
                          [--bpf-out DIR] [--tls-cert F --tls-key F [--tls-ca F [--mtls]]]

  --data-dir DIR     database and bundle signing key (default ~/.local/share/bpfleet/controller)
  --store FILE       SQLite database (default <data-dir>/bpfleet.db)
  --grpc HOST:PORT   where agents connect (default 127.0.0.1:7474)
  --admin HOST:PORT  admin API for the CLI (default 127.0.0.1:7475)
  --bpf-out DIR      built probes to deploy (default bpf/out of this checkout)
  --tls-cert/--tls-key/--tls-ca  TLS for agents; --mtls requires client certificates
Writes the CLI's connection file (~/.config/bpfleet/controller.json) on start. Stops on SIGINT/SIGTERM.`,
  options: {
    'data-dir': { type: 'string' }, store: { type: 'string' }, grpc: { type: 'string' }, admin: { type: 'string' },
    'bpf-out': { type: 'string' }, 'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' },
    'tls-ca': { type: 'string' }, mtls: { type: 'boolean' },
  },
  positionals: [0, 0],
  async run(ctx) {
    const v = ctx.values;
    const admin = splitHostPort(str(v, 'admin') ?? '127.0.0.1:7475', 'admin');
    const cert = str(v, 'tls-cert'), key = str(v, 'tls-key'), ca = str(v, 'tls-ca');
    if (Boolean(cert) !== Boolean(key)) throw new CliError('--tls-cert and --tls-key go together', 2);
    const running = await runController({
      ...(str(v, 'data-dir') ? { dataDir: str(v, 'data-dir')! } : {}),
      ...(str(v, 'store') ? { store: str(v, 'store')! } : {}),
      grpcAddress: str(v, 'grpc') ?? '127.0.0.1:7474',
      adminHost: admin.host, adminPort: admin.port,
      bpfOutDir: str(v, 'bpf-out') ?? path.join(repoRoot, 'bpf', 'out'),
      ...(cert && key ? { tls: { cert, key, ...(ca ? { ca } : {}), requireClientCert: Boolean(v['mtls']) } } : {}),
    });
    await new Promise<void>((resolve) => {
      const stop = () => { process.off('SIGINT', stop); process.off('SIGTERM', stop); resolve(); };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    ctx.err('bpfleet controller: stopping\n');
    await running.close();
    return 0;
  },
};

export const agentCommand: Command = {
  name: 'agent',
  summary: 'run the agent on a board (same options as bpfleet-agent)',
  help: 'Usage: bpfleet agent --controller HOST:PORT --data-dir DIR [--enroll-token T] ...\n\nRuns agent/bin/bpfleet-agent.js with the same arguments; `bpfleet agent -- --help` lists them.',
  options: {},
  positionals: [0, Infinity],
  async run(ctx) {
    const bin = path.join(repoRoot, 'agent', 'bin', 'bpfleet-agent.js');
    if (!existsSync(bin)) throw new CliError(`the agent is not in this checkout (${bin} missing)`);
    const child = spawn(process.execPath, [bin, ...ctx.positionals], { stdio: 'inherit' });
    const forward = (sig: NodeJS.Signals) => child.kill(sig);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    const code = await new Promise<number>((resolve) => child.on('exit', (c, s) => resolve(c ?? (s ? 1 : 0))));
    process.off('SIGINT', forward);
    process.off('SIGTERM', forward);
    return code;
  },
};
