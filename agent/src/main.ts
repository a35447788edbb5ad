// bpfleet-agent: enrolls once, then keeps a session with the controller until SIGTERM/SIGINT.
// Logs one line per event on stderr and is quiet otherwise.
import { BundleInstaller } from './bundles/index.js';
import { UsageError, type AgentArgs, USAGE, agentVersion, dataPaths, ensureIdentity, parseAgentArgs, readTlsFiles } from './config.js';
import { ProbeRegistry } from './probes/index.js';
import { AgentSession } from './session/index.js';
import { Spool } from './spool/index.js';
import { FAKE_ARCH_ENV, SystemMetricsSampler, detectDeviceFacts, hostArch } from './system/index.js';
import { readFileSync } from 'node:fs';
import { GrpcTransport, grpcEnroll } from './transport/grpc-transport.js';
import type { Transport } from './transport/transport.js';

const log = (line: string): void => {
  process.stderr.write(`bpfleet-agent: ${line}\n`);
};

/** Runs the agent; resolves with the process exit code (0 after a clean stop on a signal). */
export async function main(argv: string[]): Promise<number> {
  let args: AgentArgs;
  try {
    args = parseAgentArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`bpfleet-agent: ${err.message}\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  try {
    return await run(args);
  } catch (err) {
    log((err as Error).message);
    return 1;
  }
}

async function run(args: AgentArgs): Promise<number> {
  const paths = dataPaths(args.dataDir);
  const tls = readTlsFiles(args.tls);
  const facts = await detectDeviceFacts(args.board !== undefined ? { board: args.board } : {});
  const identity = await ensureIdentity(args, facts, (req) => grpcEnroll({ address: args.controller, ...(tls ? { tls } : {}) }, req), log);

  const spool = await Spool.open({ dir: paths.spool, maxBytes: args.spoolMaxBytes, log });
  // The real arch, even when a test makes the agent report another one (BPFLEET_FAKE_ARCH).
  const installer = new BundleInstaller({ installDir: paths.probes, pinnedKey: identity.bundleSigningKey, arch: hostArch() });
  if (facts.arch !== hostArch()) log(`TEST ONLY: ${FAKE_ARCH_ENV} is set: reporting arch ${facts.arch}, this machine is ${hostArch()}`);
  const registry = new ProbeRegistry({ installDir: paths.probes, ...(args.devProbes !== undefined ? { devDir: args.devProbes } : {}) });
  // The MQTT client (mqtt, mqtt-packet, ws: a third of the board's bundle) is loaded only when
  // used, so an agent on gRPC never evaluates it.
  const transport: Transport = args.mqtt !== undefined
    ? new (await import('./transport/mqtt-transport.js')).MqttTransport({
      url: args.mqtt.url, deviceId: identity.deviceId, credential: identity.credential, log,
      ...(args.mqtt.ca !== undefined ? { tls: { ca: readFileSync(args.mqtt.ca) } } : {}),
    })
    : new GrpcTransport({ address: args.controller, credential: identity.credential, ...(tls ? { tls } : {}), log });
  const version = agentVersion();
  const session = new AgentSession({
    deviceId: identity.deviceId,
    agentVersion: version,
    transport,
    spool,
    installer,
    registry,
    facts: () => detectDeviceFacts(args.board !== undefined ? { board: args.board } : {}),
    metrics: new SystemMetricsSampler(),
    log,
  });

  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  log(
    `${version} as ${identity.deviceId} (${facts.arch}, ${facts.kernelRelease}) to ` +
      `${args.mqtt !== undefined ? `MQTT broker ${args.mqtt.url}` : `${args.controller}${tls ? ' over TLS' : ' in plaintext'}`}; data in ${args.dataDir}` +
      `${args.devProbes !== undefined ? `; dev probes from ${args.devProbes}` : ''}`,
  );
  session.start();
  const sig = await signalled;
  // A second signal during the stop ends the process the default way.
  log(`${sig}: stopping probes, flushing the spool`);
  await session.stop();
  return 0;
}
