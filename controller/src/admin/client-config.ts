// The client config the controller writes on first start and the CLI reads:
// ~/.config/bpfleet/controller.json (or $XDG_CONFIG_HOME/bpfleet/...), mode 0600, holding the
// admin URL, the admin token and the gRPC address agents use.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

export interface ClientConfig {
  /** http://127.0.0.1:7475 */
  adminUrl: string;
  adminToken: string;
  /** Where agents connect (host:port). */
  grpcAddress?: string;
}

export const DEFAULT_ADMIN_PORT = 7475;
export const DEFAULT_ADMIN_URL = `http://127.0.0.1:${DEFAULT_ADMIN_PORT}`;

export function clientConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env['XDG_CONFIG_HOME'] || join(env['HOME'] || homedir(), '.config');
  return join(base, 'bpfleet', 'controller.json');
}

/** 256 random bits, URL-safe. */
export function newAdminToken(): string {
  return randomBytes(32).toString('base64url');
}

/** The config at `path`, undefined if there is none; throws naming the file if it is unreadable or malformed. */
export function readClientConfig(path: string): ClientConfig | undefined {
  if (!existsSync(path)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  const c = parsed as Partial<ClientConfig> | null;
  if (!c || typeof c.adminUrl !== 'string' || typeof c.adminToken !== 'string' || c.adminToken === '') {
    throw new Error(`${path} is not a bpfleet client config (needs adminUrl and adminToken); delete it and restart the controller`);
  }
  return { adminUrl: c.adminUrl, adminToken: c.adminToken, ...(typeof c.grpcAddress === 'string' ? { grpcAddress: c.grpcAddress } : {}) };
}

/** Writes atomically (temp file + rename), mode 0600 in a 0700 directory: the token is a credential. */
export function writeClientConfig(path: string, cfg: ClientConfig): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(cfg, null, 2) + '\n', { mode: 0o600 });
  chmodSync(tmp, 0o600); // the umask cannot widen it, but an existing tmp file kept its mode
  renameSync(tmp, path);
}

/**
 * The admin token: the one already in the config file (so clients keep working across restarts),
 * or a new random one on first start.
 */
export function loadOrCreateAdminToken(path: string): { token: string; created: boolean } {
  let existing: ClientConfig | undefined;
  try { existing = readClientConfig(path); } catch { existing = undefined; } // a broken file is replaced
  return existing ? { token: existing.adminToken, created: false } : { token: newAdminToken(), created: true };
}
