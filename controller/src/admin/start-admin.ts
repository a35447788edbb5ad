// The controller's admin API at start: reuse or create the admin token, listen, and write the
// client config the CLI reads.
import { AdminServer, type AdminServerOptions } from './admin-server.js';
import { clientConfigPath, loadOrCreateAdminToken, writeClientConfig } from './client-config.js';

export interface StartAdminOptions extends Omit<AdminServerOptions, 'token'> {
  /** Where agents connect, recorded for the CLI (e.g. "0.0.0.0:7474"). */
  grpcAddress?: string;
  /** Default: clientConfigPath(). */
  configPath?: string;
}

export async function startAdminApi(opts: StartAdminOptions): Promise<{ server: AdminServer; configPath: string; tokenCreated: boolean }> {
  const configPath = opts.configPath ?? clientConfigPath();
  const { token, created } = loadOrCreateAdminToken(configPath);
  const server = await AdminServer.start({ ...opts, token });
  writeClientConfig(configPath, { adminUrl: server.url, adminToken: token, ...(opts.grpcAddress ? { grpcAddress: opts.grpcAddress } : {}) });
  return { server, configPath, tokenCreated: created };
}
