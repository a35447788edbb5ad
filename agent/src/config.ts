// Command line of bpfleet-agent and the device identity it keeps in <data-dir>/identity.json.
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { DeviceFacts, EnrollRequest, EnrollResponse } from '@bpfleet/proto';

export const USAGE = `usage: bpfleet-agent --controller HOST:PORT --data-dir DIR [options]
       bpfleet-agent --transport mqtt --mqtt mqtt://HOST:PORT --data-dir DIR [--controller HOST:PORT] [options]

  --controller HOST:PORT   the controller's gRPC address (enrollment always uses it)
  --transport grpc|mqtt    how the session travels (default grpc)
  --mqtt URL               the MQTT broker with --transport mqtt: mqtt://HOST:PORT or mqtts://HOST:PORT
  --mqtt-ca FILE           CA certificate of an mqtts:// broker
  --data-dir DIR           identity.json, spool/ and probes/ live here
  --enroll-token T         one-time token (bpfleet token create); needed on the first start only
  --board NAME             board profile (dayu200, hi3516dv300, ...), sent with the device facts
  --name NAME              device name asked for at enrollment (default: the hostname)
  --tls-ca FILE            CA certificate to pin; without it the link is plaintext
  --tls-cert FILE          client certificate for mutual TLS (with --tls-key)
  --tls-key FILE           its private key
  --dev-probes DIR         also run loaders from a build directory (bpf/out/<arch>)
  --spool-max-bytes N      spool size bound until the controller sets one (default 64 MiB)
  -h, --help               this text
`;

export class UsageError extends Error {
  override name = 'UsageError';
}

export interface AgentArgs {
  controller: string;
  dataDir: string;
  enrollToken?: string;
  board?: string;
  deviceName: string;
  tls?: { ca: string; cert?: string; key?: string };
  devProbes?: string;
  spoolMaxBytes: number;
  help: boolean;
  /** Session transport; enrollment is always gRPC's Enroll at --controller. */
  transport: 'grpc' | 'mqtt';
  /** With transport mqtt: the broker URL and the CA file for mqtts://. */
  mqtt?: { url: string; ca?: string };
}

/**
 * `--enroll-token -abc` -> `--enroll-token=-abc`: every option but --help takes a value, and the
 * next word is it even when it starts with '-' (a base64url token may; parseArgs would call it
 * ambiguous and refuse).
 */
function joinValues(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('--') && !a.includes('=') && a !== '--help' && i + 1 < argv.length) out.push(`${a}=${argv[++i]}`);
    else out.push(a);
  }
  return out;
}

export function parseAgentArgs(argv: string[]): AgentArgs {
  let values;
  try {
    ({ values } = parseArgs({
      args: joinValues(argv),
      strict: true,
      allowPositionals: false,
      options: {
        controller: { type: 'string' },
        'data-dir': { type: 'string' },
        'enroll-token': { type: 'string' },
        board: { type: 'string' },
        name: { type: 'string' },
        'tls-ca': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'dev-probes': { type: 'string' },
        'spool-max-bytes': { type: 'string' },
        transport: { type: 'string' },
        mqtt: { type: 'string' },
        'mqtt-ca': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const help = values.help ?? false;
  const controller = values.controller ?? '';
  const dataDir = values['data-dir'] ?? '';
  const transport = values.transport ?? 'grpc';
  if (transport !== 'grpc' && transport !== 'mqtt') throw new UsageError(`--transport ${transport}: expected grpc or mqtt`);
  const mqttUrl = values.mqtt;
  if (!help && transport === 'mqtt') {
    if (mqttUrl === undefined) throw new UsageError('--transport mqtt needs --mqtt mqtt://HOST:PORT (or mqtts://HOST:PORT with --mqtt-ca)');
    if (!/^mqtts?:\/\/[^\s/:]+:\d{1,5}\/?$|^mqtts?:\/\/\[[0-9a-fA-F:.]+\]:\d{1,5}\/?$/.test(mqttUrl)) {
      throw new UsageError(`--mqtt ${mqttUrl}: expected mqtt://HOST:PORT or mqtts://HOST:PORT`);
    }
    if (mqttUrl.startsWith('mqtts:') && values['mqtt-ca'] === undefined) throw new UsageError('--mqtt mqtts://... needs --mqtt-ca FILE (the broker\'s CA)');
  }
  if (!help && transport === 'grpc' && mqttUrl !== undefined) throw new UsageError('--mqtt is for --transport mqtt');
  // Over MQTT the controller's gRPC address is needed only to enroll.
  const needController = transport === 'grpc' || values['enroll-token'] !== undefined;
  if (!help) {
    if (controller === '' && needController) {
      throw new UsageError(transport === 'grpc' ? '--controller HOST:PORT is required' : '--enroll-token needs --controller HOST:PORT (enrollment is a gRPC call)');
    }
    if (controller !== '' && !/^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:.]+\]:\d{1,5}$/.test(controller)) {
      throw new UsageError(`--controller ${controller}: expected HOST:PORT`);
    }
    if (dataDir === '') throw new UsageError('--data-dir DIR is required');
  }
  const ca = values['tls-ca'];
  const cert = values['tls-cert'];
  const key = values['tls-key'];
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  if (cert !== undefined && ca === undefined) throw new UsageError('--tls-cert needs --tls-ca (the CA of the controller to pin)');
  const maxText = values['spool-max-bytes'] ?? String(64 << 20);
  const spoolMaxBytes = Number(maxText);
  if (!Number.isSafeInteger(spoolMaxBytes) || spoolMaxBytes < 1 << 20) {
    throw new UsageError(`--spool-max-bytes ${maxText}: expected a number of bytes, at least 1048576`);
  }
  return {
    controller,
    dataDir: dataDir === '' ? '' : path.resolve(dataDir),
    deviceName: values.name ?? os.hostname(),
    spoolMaxBytes,
    help,
    transport,
    ...(transport === 'mqtt' && mqttUrl !== undefined ? { mqtt: { url: mqttUrl, ...(values['mqtt-ca'] !== undefined ? { ca: values['mqtt-ca'] } : {}) } } : {}),
    ...(values['enroll-token'] !== undefined ? { enrollToken: values['enroll-token'] } : {}),
    ...(values.board !== undefined ? { board: values.board } : {}),
    ...(ca !== undefined ? { tls: { ca, ...(cert !== undefined ? { cert } : {}), ...(key !== undefined ? { key } : {}) } } : {}),
    ...(values['dev-probes'] !== undefined ? { devProbes: path.resolve(values['dev-probes']) } : {}),
  };
}

/** The TLS files, read; undefined for plaintext. */
export function readTlsFiles(tls: AgentArgs['tls']): { ca: Buffer; cert?: Buffer; key?: Buffer } | undefined {
  if (tls === undefined) return undefined;
  const read = (what: string, file: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`cannot read ${what} ${file}: ${(err as Error).message}`, { cause: err });
    }
  };
  return {
    ca: read('--tls-ca', tls.ca),
    ...(tls.cert !== undefined ? { cert: read('--tls-cert', tls.cert) } : {}),
    ...(tls.key !== undefined ? { key: read('--tls-key', tls.key) } : {}),
  };
}

export const dataPaths = (dataDir: string): { identity: string; spool: string; probes: string } => ({
  identity: path.join(dataDir, 'identity.json'),
  spool: path.join(dataDir, 'spool'),
  probes: path.join(dataDir, 'probes'),
});

/** What enrollment gave this device. */
export interface DeviceIdentity {
  deviceId: string;
  credential: string;
  /** The controller's raw 32-byte Ed25519 key every bundle must be signed with. */
  bundleSigningKey: Buffer;
  labels: Record<string, string>;
  /** Where it was enrolled, for people reading the file. */
  controller: string;
  enrolledAt: string;
}

interface IdentityJson {
  version: 1;
  deviceId: string;
  credential: string;
  bundleSigningKey: string;
  labels: Record<string, string>;
  controller: string;
  enrolledAt: string;
}

export function loadIdentity(file: string): DeviceIdentity | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read the device identity ${file}: ${(err as Error).message}`, { cause: err });
  }
  let j: IdentityJson;
  try {
    j = JSON.parse(text) as IdentityJson;
  } catch (err) {
    throw new Error(`device identity ${file} is not JSON (${(err as Error).message}): remove it and enroll again`, { cause: err });
  }
  const key = Buffer.from(j.bundleSigningKey ?? '', 'base64');
  if (typeof j.deviceId !== 'string' || j.deviceId === '' || typeof j.credential !== 'string' || j.credential === '' || key.length !== 32) {
    throw new Error(`device identity ${file} lacks deviceId, credential or a 32-byte bundleSigningKey: remove it and enroll again`);
  }
  return { deviceId: j.deviceId, credential: j.credential, bundleSigningKey: key, labels: j.labels ?? {}, controller: j.controller ?? '', enrolledAt: j.enrolledAt ?? '' };
}

/** Written whole or not at all (temp file, fsync, rename), readable by the owner only: it holds the credential. */
export function saveIdentity(file: string, id: DeviceIdentity): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const j: IdentityJson = {
    version: 1,
    deviceId: id.deviceId,
    credential: id.credential,
    bundleSigningKey: id.bundleSigningKey.toString('base64'),
    labels: id.labels,
    controller: id.controller,
    enrolledAt: id.enrolledAt,
  };
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, `${JSON.stringify(j, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  const dir = openSync(path.dirname(file), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

/**
 * The stored identity, or a new one from Enroll when there is none and a token was given.
 * Throws with a message saying what to do when neither.
 */
export async function ensureIdentity(
  args: Pick<AgentArgs, 'dataDir' | 'enrollToken' | 'deviceName' | 'controller'>,
  facts: DeviceFacts,
  enroll: (req: EnrollRequest) => Promise<EnrollResponse>,
  log: (line: string) => void,
): Promise<DeviceIdentity> {
  const file = dataPaths(args.dataDir).identity;
  const stored = loadIdentity(file);
  if (stored !== undefined) {
    if (args.enrollToken !== undefined) log(`already enrolled as ${stored.deviceId} (${file}); --enroll-token ignored`);
    return stored;
  }
  if (args.enrollToken === undefined) {
    throw new Error(
      `no device identity at ${file} and no --enroll-token: create a token on the controller ` +
        '(bpfleet token create) and start the agent once with --enroll-token TOKEN',
    );
  }
  const res = await enroll({ token: args.enrollToken, deviceName: args.deviceName, facts });
  const id: DeviceIdentity = {
    deviceId: res.deviceId,
    credential: res.credential,
    bundleSigningKey: Buffer.from(res.bundleSigningKey),
    labels: res.labels,
    controller: args.controller,
    enrolledAt: new Date().toISOString(),
  };
  if (id.deviceId === '' || id.credential === '' || id.bundleSigningKey.length !== 32) {
    throw new Error(`the controller at ${args.controller} answered Enroll without a device id, credential or 32-byte signing key`);
  }
  saveIdentity(file, id);
  log(`enrolled as ${id.deviceId}; identity stored in ${file}`);
  return id;
}

/** This agent's version (agent/package.json). */
export function agentVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string };
  return pkg.version ?? '0.0.0';
}
