// `bpfleet controller`: the store, the bundle signing key, the fleet core, the gRPC endpoint for
// agents and the admin API for the CLI, in one process, stopped cleanly by SIGINT/SIGTERM.
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startAdminApi } from '../admin/index.js';
import { loadOrCreateSigningKey } from '../bundles/index.js';
import { Fleet, stderrLog } from '../fleet/index.js';
import { startGrpcServer, type GrpcTlsOptions } from '../server/index.js';
import { openStore } from '../store/index.js';

export interface ControllerOptions {
  /** Database, signing key; default ~/.local/share/bpfleet/controller. */
  dataDir?: string;
  /** SQLite file (default <dataDir>/bpfleet.db) or, later, postgres://. */
  store?: string;
  /** host:port for agents (default 127.0.0.1:7474). */
  grpcAddress?: string;
  /** host and port of the admin API (default 127.0.0.1:7475). */
  adminHost?: string;
  adminPort?: number;
  /** bpf/out with the loaders and manifests deploy bundles. */
  bpfOutDir: string;
  tls?: GrpcTlsOptions;
  /** Where the CLI's client config is written (default ~/.config/bpfleet/controller.json). */
  configPath?: string;
  log?: (line: string) => void;
}

export interface RunningController {
  grpcAddress: string;
  adminUrl: string;
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
  const store = openStore(opts.store ?? path.join(dataDir, 'bpfleet.db'));
  const signingKey = await loadOrCreateSigningKey(dataDir);
  const fleet = new Fleet({ store, signingKey, bpfOutDir: opts.bpfOutDir, log: opts.log ? { info: log, warn: log, error: log } : stderrLog });
  await fleet.registerBuiltManifests();
  const grpc = await startGrpcServer({
    fleet, store, address: opts.grpcAddress ?? '127.0.0.1:7474', ...(opts.tls ? { tls: opts.tls } : {}),
  });
  const admin = await startAdminApi({
    store, fleet, grpcAddress: grpc.address, bpfOutDir: opts.bpfOutDir,
    host: opts.adminHost ?? '127.0.0.1', port: opts.adminPort ?? 7475,
    ...(opts.configPath ? { configPath: opts.configPath } : {}),
  });
  log(`bpfleet controller: agents on ${grpc.tls ? 'grpcs' : 'grpc'}://${grpc.address}, admin API on ${admin.server.url}, ` +
    `data in ${dataDir}; CLI config ${admin.configPath}${admin.tokenCreated ? ' (new admin token)' : ''}; ` +
    `bundle key fingerprint ${signingKey.fingerprint}`);
  let closing: Promise<void> | undefined;
  return {
    grpcAddress: grpc.address, adminUrl: admin.server.url, configPath: admin.configPath, fleet,
    close: () => (closing ??= (async () => {
      await admin.server.close();
      await grpc.close();
      await fleet.close();
      await store.close();
    })()),
  };
}
