// The CLI's side of the admin API: where the controller is (flags > environment > the config
// file the controller wrote), JSON requests, streamed JSON lines, and errors a user can act on.
import { clientConfigPath, DEFAULT_ADMIN_URL, readClientConfig } from '../admin/client-config.js';

/** An error to print as "bpfleet: <message>" and exit with `exitCode`. */
export class CliError extends Error {
  override name = 'CliError';
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}

export interface Connection {
  url: string;
  token: string;
  /** Where url and token came from, for error messages. */
  source: string;
}

export function resolveConnection(flags: { url?: string | undefined; token?: string | undefined }, env: NodeJS.ProcessEnv): Connection {
  const path = clientConfigPath(env);
  let file: ReturnType<typeof readClientConfig>;
  try {
    file = readClientConfig(path);
  } catch (err) {
    if (!(flags.token ?? env['BPFLEET_ADMIN_TOKEN'])) throw new CliError((err as Error).message);
  }
  const url = flags.url ?? env['BPFLEET_ADMIN_URL'] ?? file?.adminUrl ?? DEFAULT_ADMIN_URL;
  const token = flags.token ?? env['BPFLEET_ADMIN_TOKEN'] ?? file?.adminToken;
  const source = flags.token ? '--token' : env['BPFLEET_ADMIN_TOKEN'] ? 'BPFLEET_ADMIN_TOKEN' : path;
  if (!token) {
    throw new CliError(`no admin token: ${path} does not exist (\`bpfleet controller\` writes it on its first start); ` +
      'or pass --token / set BPFLEET_ADMIN_TOKEN');
  }
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
  } catch {
    throw new CliError(`admin URL "${url}" is not an http:// URL (from --url, BPFLEET_ADMIN_URL or ${path})`);
  }
  return { url: url.replace(/\/+$/, ''), token, source };
}

const REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused', ENOTFOUND: 'host not found', EAI_AGAIN: 'host not found (DNS)',
  ETIMEDOUT: 'connection timed out', ECONNRESET: 'connection reset', EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable', UND_ERR_SOCKET: 'connection closed', UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
};

function networkError(url: string, err: unknown): CliError {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const reason = (cause?.code && REASONS[cause.code]) ?? cause?.message ?? (err as Error).message;
  return new CliError(`cannot reach the controller at ${url}: ${reason}; is \`bpfleet controller\` running?`);
}

export class AdminClient {
  constructor(readonly conn: Connection) {}

  private async request(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(this.conn.url + path, {
        method,
        headers: { authorization: `Bearer ${this.conn.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      throw networkError(this.conn.url, err);
    }
    if (!res.ok) {
      let message = `${res.status} ${res.statusText}`;
      try {
        const j = (await res.json()) as { error?: string };
        if (j.error) message = j.error;
      } catch { /* not JSON: keep the status line */ }
      if (res.status === 401) {
        throw new CliError(`the controller at ${this.conn.url} refused the admin token (${message}); the token came from ${this.conn.source}`);
      }
      throw new CliError(message);
    }
    return res;
  }

  async get<T>(path: string, query: Record<string, string | undefined> = {}): Promise<T> {
    return (await (await this.request('GET', withQuery(path, query))).json()) as T;
  }

  async post<T>(path: string, body: unknown): Promise<T> {
    return (await (await this.request('POST', path, body)).json()) as T;
  }

  /** The raw body, for exports. */
  async stream(method: string, path: string, query: Record<string, string | undefined> = {}, body?: unknown,
    signal?: AbortSignal): Promise<ReadableStream<Uint8Array>> {
    const res = await this.request(method, withQuery(path, query), body, signal);
    if (!res.body) throw new CliError(`empty answer from ${path}`);
    return res.body;
  }

  /** JSON lines of a streamed answer, one parsed value per line (blank keep-alive lines skipped). */
  async *lines<T>(method: string, path: string, query: Record<string, string | undefined> = {}, body?: unknown,
    signal?: AbortSignal): AsyncGenerator<T> {
    const stream = await this.stream(method, path, query, body, signal);
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line) yield JSON.parse(line) as T;
        }
      }
    } catch (err) {
      if (signal?.aborted) return;
      throw new CliError(`the controller at ${this.conn.url} cut the answer short: ${(err as Error).message}`);
    }
    if (buf.trim()) yield JSON.parse(buf) as T;
  }
}

function withQuery(path: string, query: Record<string, string | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) q.set(k, v);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}
