// `bpfleet-sim` arguments and how devices are spread over worker processes.
import { parseArgs } from 'node:util';
import path from 'node:path';

export const SIM_USAGE = `usage: bpfleet-sim --controller HOST:PORT --data-dir DIR --devices N [options]

Runs N real agents (AgentSession, Spool, Transport; each its own identity, spool and connection)
in a few worker processes; their loaders are replaced by a replay of recorded probe output.
Probes start when the controller deploys them (bpfleet sim does that for you).

  --devices N           simulated devices (default 10)
  --rate R              events/s per device (default 100)
  --processes P         worker processes (default: 2, at most N)
  --seconds S           how long each device's probe run emits (default 60)
  --transport T         grpc (default) or mqtt
  --mqtt URL            broker for --transport mqtt (default mqtt://127.0.0.1:1883)
  --controller H:P      controller gRPC, also for enrollment (default 127.0.0.1:7474)
  --data-dir DIR        one sub-directory per device (dev-0000, ...): identity, spool, probes
  --tokens-file F       one enrollment token per line, line i for device i (devices that already
                        have an identity in DIR need none)
  --name-prefix P       device names P0000, P0001, ... (default sim-)
  --recording F         --machine capture to replay (default test/fixtures/recorded/tcpstates.machine)
  --manifest F          its manifest (default bpf/out/x86_64/<probe>.manifest.json)
  --spool-max-bytes B   per device (default 16 MiB)
  --spool-sync P        the spool's fsync policy: interval (the agent's default), always or none
  --drain-seconds S     after the runs end, wait this long at most for every ack (default 60)
  --start-seconds S     wait this long at most for every device to connect, and for every run to start (default 180)
  --json                JSON lines on stdout ({"type":"connected"}, {"type":"result"}); the table goes to stderr
`;

export interface SimArgs {
  devices: number;
  rate: number;
  processes: number;
  seconds: number;
  transport: 'grpc' | 'mqtt';
  mqttUrl?: string;
  controller: string;
  dataDir: string;
  tokensFile?: string;
  namePrefix: string;
  recording: string;
  manifest?: string;
  spoolMaxBytes: number;
  spoolSync: 'always' | 'interval' | 'none';
  drainSeconds: number;
  startSeconds: number;
  json: boolean;
  help: boolean;
}

export class SimUsageError extends Error {
  override name = 'SimUsageError';
}

function num(v: string | undefined, flag: string, dflt: number, min: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new SimUsageError(`--${flag} takes a number >= ${min}, not '${v}'`);
  return n;
}

export function parseSimArgs(argv: string[], repoRoot: string): SimArgs {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        devices: { type: 'string' }, rate: { type: 'string' }, processes: { type: 'string' }, seconds: { type: 'string' },
        transport: { type: 'string' }, mqtt: { type: 'string' }, controller: { type: 'string' }, 'data-dir': { type: 'string' },
        'tokens-file': { type: 'string' }, 'name-prefix': { type: 'string' }, recording: { type: 'string' }, manifest: { type: 'string' },
        'spool-max-bytes': { type: 'string' }, 'spool-sync': { type: 'string' }, 'drain-seconds': { type: 'string' }, 'start-seconds': { type: 'string' },
        json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new SimUsageError((err as Error).message);
  }
  const help = values.help === true;
  const devices = Math.floor(num(values.devices, 'devices', 10, 1));
  const transport = values.transport ?? 'grpc';
  if (transport !== 'grpc' && transport !== 'mqtt') throw new SimUsageError(`--transport is grpc or mqtt, not '${transport}'`);
  const spoolSync = values['spool-sync'] ?? 'interval';
  if (spoolSync !== 'always' && spoolSync !== 'interval' && spoolSync !== 'none') throw new SimUsageError(`--spool-sync is always, interval or none, not '${spoolSync}'`);
  if (!help && values['data-dir'] === undefined) throw new SimUsageError('--data-dir is required');
  return {
    devices,
    rate: num(values.rate, 'rate', 100, 0),
    processes: Math.min(devices, Math.floor(num(values.processes, 'processes', 2, 1))),
    seconds: num(values.seconds, 'seconds', 60, 0),
    transport,
    ...(values.mqtt !== undefined ? { mqttUrl: values.mqtt } : {}),
    controller: values.controller ?? '127.0.0.1:7474',
    dataDir: path.resolve(values['data-dir'] ?? '.'),
    ...(values['tokens-file'] !== undefined ? { tokensFile: values['tokens-file'] } : {}),
    namePrefix: values['name-prefix'] ?? 'sim-',
    recording: values.recording ?? path.join(repoRoot, 'test', 'fixtures', 'recorded', 'tcpstates.machine'),
    ...(values.manifest !== undefined ? { manifest: values.manifest } : {}),
    spoolMaxBytes: Math.floor(num(values['spool-max-bytes'], 'spool-max-bytes', 16 << 20, 64 * 1024)),
    spoolSync,
    drainSeconds: num(values['drain-seconds'], 'drain-seconds', 60, 0),
    startSeconds: num(values['start-seconds'], 'start-seconds', 180, 1),
    json: values.json === true,
    help,
  };
}

/**
 * Device indexes per worker: contiguous ranges whose sizes differ by at most one, larger ones
 * first. Never an empty worker (workers = min(processes, devices)).
 */
export function splitDevices(devices: number, processes: number): number[][] {
  const workers = Math.max(1, Math.min(processes, devices));
  const out: number[][] = [];
  let next = 0;
  for (let w = 0; w < workers; w++) {
    const size = Math.floor(devices / workers) + (w < devices % workers ? 1 : 0);
    out.push(Array.from({ length: size }, (_, i) => next + i));
    next += size;
  }
  return out;
}

/** dev-0000 style directory and sim-0000 style name of device i. */
export function deviceName(prefix: string, i: number): string {
  return `${prefix}${String(i).padStart(4, '0')}`;
}
