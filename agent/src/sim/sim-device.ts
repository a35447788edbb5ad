// One simulated device: the real agent parts (identity from enrollment, Spool, BundleInstaller,
// ProbeRegistry, GrpcTransport or MqttTransport, AgentSession) in its own data directory with
// its own connection; only the loader is replaced by a replay of recorded probe output.
import { mkdirSync } from 'node:fs';
import type { DeviceFacts } from '@bpfleet/proto';
import { BundleInstaller } from '../bundles/index.js';
import { agentVersion, dataPaths, ensureIdentity } from '../config.js';
import { ContentManifestCache, ProbeRegistry, type LoaderFactory } from '../probes/index.js';
import { AgentSession } from '../session/index.js';
import { Spool } from '../spool/index.js';
import { hostArch } from '../system/index.js';
import { GrpcTransport, MqttTransport, grpcEnroll, type Transport } from '../transport/index.js';

// Every device of this process installs the same loader: one `--manifest` spawn for all of them.
const sharedManifests = new ContentManifestCache();

export interface SimDeviceSpec {
  index: number;
  name: string;
  dataDir: string;
  /** One-time enrollment token; not needed when dataDir already holds an identity. */
  token?: string;
}

export interface SimLinkOptions {
  /** HOST:PORT of the controller's gRPC (enrollment always goes there). */
  controller: string;
  transport: 'grpc' | 'mqtt';
  /** mqtt://HOST:PORT, for transport mqtt. */
  mqttUrl?: string;
  spoolMaxBytes: number;
  /** The spool's fsync policy (default: the agent's, 'interval'). */
  spoolSync?: 'always' | 'interval' | 'none';
}

/** What a device adds to its worker's totals. */
export interface DeviceCounters {
  /** Records the spool took (sequence numbers assigned). */
  spooled: number;
  /** Records acknowledged by the controller (stored, or declared lost by it). */
  acked: number;
  /** Transport 'down' events after the first 'up'. */
  transportDowns: number;
}

export class SimDevice {
  session: AgentSession | undefined;
  spool: Spool | undefined;
  deviceId = '';
  private transport: Transport | undefined;
  private everUp = false;
  private stopping = false;
  private readonly ackedThrough = new Map<string, bigint>();
  readonly counters: DeviceCounters = { spooled: 0, acked: 0, transportDowns: 0 };

  constructor(
    readonly spec: SimDeviceSpec,
    private readonly link: SimLinkOptions,
    private readonly loaderFactory: LoaderFactory,
    private readonly facts: DeviceFacts,
    private readonly log: (line: string) => void,
  ) {}

  /** Enrolls (once), opens the spool, connects. Resolves once the session is started. */
  async start(): Promise<void> {
    const { spec, link } = this;
    const log = (line: string): void => this.log(`${spec.name}: ${line}`);
    mkdirSync(spec.dataDir, { recursive: true });
    const paths = dataPaths(spec.dataDir);
    const identity = await ensureIdentity(
      { dataDir: spec.dataDir, enrollToken: spec.token, deviceName: spec.name, controller: link.controller },
      { ...this.facts, hostname: spec.name },
      (req) => grpcEnroll({ address: link.controller }, req),
      log,
    );
    this.deviceId = identity.deviceId;
    const spool = await Spool.open({ dir: paths.spool, maxBytes: link.spoolMaxBytes, ...(link.spoolSync ? { sync: link.spoolSync } : {}), log });
    this.spool = spool;
    this.countSpool(spool);
    const transport: Transport = link.transport === 'mqtt'
      ? new MqttTransport({ url: link.mqttUrl ?? 'mqtt://127.0.0.1:1883', deviceId: identity.deviceId, credential: identity.credential, log })
      // A subchannel pool per device: without it grpc-js puts every device of this process on
      // one shared HTTP/2 connection, and the controller would see one connection, not a fleet.
      : new GrpcTransport({ address: link.controller, credential: identity.credential, log, channelOptions: { 'grpc.use_local_subchannel_pool': 1 } });
    this.transport = transport;
    transport.on('up', () => (this.everUp = true));
    transport.on('down', () => {
      // Links lost while running; the close at the end is not an error.
      if (this.everUp && !this.stopping) this.counters.transportDowns++;
    });
    this.session = new AgentSession({
      deviceId: identity.deviceId,
      agentVersion: agentVersion(),
      transport,
      spool,
      installer: new BundleInstaller({ installDir: paths.probes, pinnedKey: identity.bundleSigningKey, arch: hostArch() }),
      // No dev directory: Hello lists what was deployed, as on a board.
      registry: new ProbeRegistry({ installDir: paths.probes }),
      facts: () => Promise.resolve({ ...this.facts, hostname: spec.name }),
      runner: { loaderFactory: this.loaderFactory, manifests: sharedManifests },
      log,
    });
    this.session.start();
  }

  get ready(): boolean {
    return this.session?.state === 'ready';
  }

  /** Records spooled and not yet acknowledged. */
  get backlog(): number {
    if (this.spool === undefined) return 0;
    let n = 0n;
    for (const c of this.spool.cursors()) n += c.nextSeq - c.firstSeq;
    return Number(n);
  }

  get spoolEvicted(): number {
    return this.spool?.stats().evicted ?? 0;
  }

  /** Records the spool refused (then sent unspooled or dropped by the session: agent queue loss). */
  get appendErrors(): number {
    return this.spool?.stats().appendErrors ?? 0;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.session?.stop();
  }

  /** Counts what the session spools and what the controller acknowledges, per stream. */
  private countSpool(spool: Spool): void {
    const append = spool.append.bind(spool);
    spool.append = async (streamId, batch) => {
      const r = await append(streamId, batch);
      this.counters.spooled += batch.count;
      return r;
    };
    const ack = spool.ack.bind(spool);
    spool.ack = (streamId, through) => {
      ack(streamId, through);
      const prev = this.ackedThrough.get(streamId) ?? 0n;
      if (through > prev) {
        this.ackedThrough.set(streamId, through);
        this.counters.acked += Number(through - prev);
      }
    };
  }
}
