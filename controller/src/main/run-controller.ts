// `bpfleet controller`: the store, the bundle signing key, the fleet core, the gRPC endpoint for
// agents and the admin API for the CLI, in one process, stopped cleanly by SIGINT/SIGTERM.
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readClientConfig, startAdminApi } from '../admin/index.js';
import { loadOrCreateSigningKey } from '../bundles/index.js';
import { Fleet, stderrLog } from '../fleet/index.js';
import { startProcessMetrics } from '../metrics/index.js';
import { startMqtt, type RunningMqtt } from '../mqtt/index.js';
import { startGrpcServer, type GrpcTlsOptions } from '../server/index.js';
import { openStore } from '../store/index.js';
import { DEFAULT_WEB_DIST, WebServer, checkWebDist } from '../web/index.js';

export interface ControllerOptions {
  /** Database, signing key; default ~/.local/share/bpfleet/controller. */
  dataDir?: string;
  /** SQLite file (default <dataDir>/bpfleet.db) or a postgres:// URL shared with other controllers (docs/SCALE-OUT.md). */
  store?: string;
  /** host:port for agents (default 127.0.0.1:7474). */
  grpcAddress?: string;
  /** host and port of the admin API (default 127.0.0.1:7475). */
  adminHost?: string;
  adminPort?: number;
  /** bpf/out with the loaders and manifests deploy bundles. */
  bpfOutDir: string;
  tls?: GrpcTlsOptions;
  /**
   * MQTT for agents (docs/MQTT.md): the embedded broker listening on host:port, or an external
   * broker this controller logs into (shared subscription group `share` to split the load with
   * other controllers on the same database).
   */
  mqtt?:
    | { embedded: { host: string; port: number } }
    | { external: { url: string; username: string; password: string; ca?: Buffer; share?: string; clientId?: string } };
  /** Where the CLI's client config is written (default ~/.config/bpfleet/controller.json). */
  configPath?: string;
  /** The web dashboard (controller/src/web): where it listens, and the built page (default controller/web/dist). */
  http?: { host: string; port: number; distDir?: string; tickMs?: number };
  /** Deploys in flight at once across all deploy requests (default 32; FleetOptions.deployConcurrency). */
  deployConcurrency?: number;
  /** Bearer token GET /metrics requires (default: none, open to whoever reaches the admin port). */
  metricsToken?: string;
  log?: (line: string) => void;
}

export interface RunningController {
  grpcAddress: string;
  /** The MQTT broker agents use, when MQTT is on. */
  mqtt?: RunningMqtt;
  adminUrl: string;
  /** The dashboard, when http was given. */
  webUrl?: string;
  configPath: string;
  fleet: Fleet;
  close(): Promise<void>;
}

export function defaultDataDir(): string {
  return path.join(process.env['XDG_DATA_HOME'] ?? path.join(os.homedir(), '.local', 'share'), 'bpfleet', 'controller');
}

export async function runController(opts: ControllerOptions): Promise<RunningController> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const dataDir = opts.dataDir ?? defaultDataDir();
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (opts.http) checkWebDist(opts.http.distDir ?? DEFAULT_WEB_DIST); // refuse before starting anything
  const store = await openStore(opts.store ?? path.join(dataDir, 'bpfleet.db'));
  const signingKey = await loadOrCreateSigningKey(dataDir);
  const fleet = new Fleet({ store, signingKey, bpfOutDir: opts.bpfOutDir, log: opts.log ? { info: log, warn: log, error: log } : stderrLog,
    ...(opts.deployConcurrency !== undefined ? { deployConcurrency: opts.deployConcurrency } : {}) });
  await fleet.registerBuiltManifests();
  const processMetrics = startProcessMetrics();
  fleet.addMetricsSource(() => processMetrics.render());
  const grpc = await startGrpcServer({
    fleet, store, address: opts.grpcAddress ?? '127.0.0.1:7474', ...(opts.tls ? { tls: opts.tls } : {}),
  });
  let mqtt: RunningMqtt | undefined;
  if (opts.mqtt) {
    try {
      mqtt = await startMqtt({ fleet, ...opts.mqtt });
    } catch (err) {
      await grpc.close();
      await fleet.close();
      await store.close();
      processMetrics.close();
      throw err;
    }
  }
  const admin = await startAdminApi({
    store, fleet, grpcAddress: grpc.address, bpfOutDir: opts.bpfOutDir,
    host: opts.adminHost ?? '127.0.0.1', port: opts.adminPort ?? 7475,
    ...(opts.configPath ? { configPath: opts.configPath } : {}),
    ...(opts.metricsToken !== undefined ? { metricsToken: opts.metricsToken } : {}),
  });
  let web: WebServer | undefined;
  if (opts.http) {
    try {
      const adminToken = readClientConfig(admin.configPath)?.adminToken;
      if (!adminToken) throw new Error(`dashboard: no admin token in ${admin.configPath}`);
      web = await WebServer.start({ store, fleet, adminUrl: admin.server.url, adminToken, host: opts.http.host, port: opts.http.port,
        ...(opts.http.distDir ? { distDir: opts.http.distDir } : {}), ...(opts.http.tickMs ? { tickMs: opts.http.tickMs } : {}), log });
    } catch (err) {
      await admin.server.close();
      await grpc.close();
      await mqtt?.close();
      await fleet.close();
      await store.close();
      processMetrics.close();
      throw err;
    }
  }
  log(`bpfleet controller: agents on ${grpc.tls ? 'grpcs' : 'grpc'}://${grpc.address}, admin API on ${admin.server.url}, ` +
    `data in ${dataDir}, store ${store.location}; CLI config ${admin.configPath}${admin.tokenCreated ? ' (new admin token)' : ''}; ` +
    `bundle key fingerprint ${signingKey.fingerprint}` +
    `${mqtt ? `; MQTT for agents on ${mqtt.url}${mqtt.embedded ? ' (embedded broker)' : ''}` : ''}` +
    `${web ? `; dashboard on ${web.url}/ (log in with the admin token)` : ''}`);
  let closing: Promise<void> | undefined;
  return {
    grpcAddress: grpc.address, adminUrl: admin.server.url, configPath: admin.configPath, fleet, ...(mqtt ? { mqtt } : {}),
    ...(web ? { webUrl: web.url } : {}),
    close: () => (closing ??= (async () => {
      await web?.close();
      await admin.server.close();
      await grpc.close();
      await mqtt?.close();
      await fleet.close();
      await store.close();
      processMetrics.close();
    })()),
  };
}
