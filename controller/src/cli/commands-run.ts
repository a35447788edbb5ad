// The long-running parts: `bpfleet controller` runs in this process; `bpfleet agent` execs the
// agent's own entry point (the controller never imports agent code).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
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
  help: `Usage: bpfleet controller [--data-dir DIR] [--store FILE|URL] [--grpc HOST:PORT] [--admin HOST:PORT]
                          [--bpf-out DIR] [--tls-cert F --tls-key F [--tls-ca F [--mtls]]]
                          [--mqtt embedded|URL] [--mqtt-listen HOST:PORT] [--mqtt-share GROUP] ...
                          [--http HOST:PORT] [--deploy-concurrency N] [--metrics-token-file F]

  --data-dir DIR     database and bundle signing key (default ~/.local/share/bpfleet/controller)
  --store FILE|URL   SQLite database (default <data-dir>/bpfleet.db), or postgres://USER@HOST:PORT/DB
                     shared by several controllers (docs/SCALE-OUT.md)
  --grpc HOST:PORT   where agents connect (default 127.0.0.1:7474)
  --admin HOST:PORT  admin API for the CLI (default 127.0.0.1:7475); also serves GET /metrics
                     (Prometheus, docs/METRICS.md), open to anyone who reaches the port unless:
  --metrics-token-file F  scrapes need "Authorization: Bearer <the token in F>" (also
                     BPFLEET_METRICS_TOKEN); a read-only token apart from the admin token
  --bpf-out DIR      built probes to deploy (default bpf/out of this checkout)
  --http HOST:PORT   serve the web dashboard there (log in with the admin token; build it first:
                     npx nx run controller:build-web)
  --tls-cert/--tls-key/--tls-ca  TLS for agents; --mtls requires client certificates
  --deploy-concurrency N  bundles in flight (sent, not yet answered) at once over all deploys
                     (default 32); further devices wait their turn, each timing out from its send
  --mqtt embedded    MQTT for agents through the broker in this process (docs/MQTT.md)
  --mqtt-listen HOST:PORT  where the embedded broker listens (default 127.0.0.1:1883; implies --mqtt embedded)
  --mqtt URL         or an external broker, mqtt://HOST:PORT or mqtts://HOST:PORT (Mosquitto), with:
    --mqtt-user NAME         the controller's login there (default bpfleet-controller)
    --mqtt-password-file F   its password (or BPFLEET_MQTT_PASSWORD)
    --mqtt-ca FILE           CA of an mqtts:// broker
    --mqtt-share GROUP       split devices' events with other controllers (MQTT 5 shared subscription;
                             they must share this --store: a postgres:// URL, or one SQLite file on one machine)
    --mqtt-client-id ID      unique per controller (default bpfleet-controller-<host>-<admin port>)
Writes the CLI's connection file (~/.config/bpfleet/controller.json) on start. Stops on SIGINT/SIGTERM.`,
  options: {
    'data-dir': { type: 'string' }, store: { type: 'string' }, grpc: { type: 'string' }, admin: { type: 'string' },
    'bpf-out': { type: 'string' }, 'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' },
    'tls-ca': { type: 'string' }, mtls: { type: 'boolean' },
    mqtt: { type: 'string' }, 'mqtt-listen': { type: 'string' }, 'mqtt-user': { type: 'string' },
    'mqtt-password-file': { type: 'string' }, 'mqtt-ca': { type: 'string' }, 'mqtt-share': { type: 'string' },
    'mqtt-client-id': { type: 'string' }, http: { type: 'string' }, 'deploy-concurrency': { type: 'string' },
    'metrics-token-file': { type: 'string' },
  },
  positionals: [0, 0],
  async run(ctx) {
    const v = ctx.values;
    const admin = splitHostPort(str(v, 'admin') ?? '127.0.0.1:7475', 'admin');
    const cert = str(v, 'tls-cert'), key = str(v, 'tls-key'), ca = str(v, 'tls-ca');
    if (Boolean(cert) !== Boolean(key)) throw new CliError('--tls-cert and --tls-key go together', 2);
    const mqtt = mqttOptions(v, ctx.io.env, admin.port);
    const http = str(v, 'http') !== undefined ? splitHostPort(str(v, 'http')!, 'http') : undefined;
    const dc = str(v, 'deploy-concurrency');
    if (dc !== undefined && !/^[1-9]\d{0,5}$/.test(dc)) {
      throw new CliError(`--deploy-concurrency takes a whole number of devices >= 1 (e.g. 32), not '${dc}'`, 2);
    }
    const mtFile = str(v, 'metrics-token-file');
    const metricsToken = mtFile !== undefined ? readText(mtFile, 'metrics-token-file').trim() : ctx.io.env['BPFLEET_METRICS_TOKEN'];
    if (metricsToken !== undefined && metricsToken.length < 16) {
      throw new CliError(`${mtFile !== undefined ? `--metrics-token-file ${mtFile}` : 'BPFLEET_METRICS_TOKEN'}: the metrics token is ` +
        `${metricsToken.length} characters; use at least 16 (e.g. openssl rand -hex 16 > ${mtFile ?? 'metrics.token'})`, 2);
    }
    const running = await runController({
      ...(metricsToken !== undefined ? { metricsToken } : {}),
      ...(mqtt ? { mqtt } : {}),
      ...(http ? { http } : {}),
      ...(dc !== undefined ? { deployConcurrency: Number(dc) } : {}),
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

function readText(file: string, flag: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(`--${flag} ${file}: ${(err as Error).message}`, 2);
  }
}

/** The MQTT part of `bpfleet controller`'s options, checked. */
function mqttOptions(v: Record<string, unknown>, env: NodeJS.ProcessEnv, adminPort: number): Parameters<typeof runController>[0]['mqtt'] {
  const s = (k: string) => v[k] as string | undefined;
  const mode = s('mqtt') ?? (s('mqtt-listen') !== undefined ? 'embedded' : undefined);
  if (mode === undefined) {
    const stray = ['mqtt-user', 'mqtt-password-file', 'mqtt-ca', 'mqtt-share', 'mqtt-client-id'].find((k) => s(k) !== undefined);
    if (stray) throw new CliError(`--${stray} needs --mqtt URL`, 2);
    return undefined;
  }
  if (mode === 'embedded') {
    for (const k of ['mqtt-share', 'mqtt-ca', 'mqtt-password-file']) {
      if (s(k) !== undefined) throw new CliError(`--${k} is for an external broker (--mqtt URL), not the embedded one`, 2);
    }
    const l = splitHostPort(s('mqtt-listen') ?? '127.0.0.1:1883', 'mqtt-listen');
    return { embedded: { host: l.host, port: l.port } };
  }
  if (!/^mqtts?:\/\/[^\s/]+:\d+\/?$/.test(mode)) throw new CliError(`--mqtt takes "embedded" or mqtt://HOST:PORT / mqtts://HOST:PORT, not '${mode}'`, 2);
  if (s('mqtt-listen') !== undefined) throw new CliError('--mqtt-listen is for the embedded broker, not --mqtt URL', 2);
  const pwFile = s('mqtt-password-file');
  const password = pwFile !== undefined ? readText(pwFile, 'mqtt-password-file').trim() : env['BPFLEET_MQTT_PASSWORD'];
  if (!password) throw new CliError(`--mqtt ${mode}: give the controller's broker password with --mqtt-password-file FILE or BPFLEET_MQTT_PASSWORD`, 2);
  if (mode.startsWith('mqtts:') && s('mqtt-ca') === undefined) throw new CliError('--mqtt mqtts://... needs --mqtt-ca FILE', 2);
  const ca = s('mqtt-ca');
  return {
    external: {
      url: mode, username: s('mqtt-user') ?? 'bpfleet-controller', password,
      clientId: s('mqtt-client-id') ?? `bpfleet-controller-${os.hostname()}-${adminPort}`,
      ...(ca !== undefined ? { ca: Buffer.from(readText(ca, 'mqtt-ca')) } : {}),
      ...(s('mqtt-share') !== undefined ? { share: s('mqtt-share')! } : {}),
    },
  };
}

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
