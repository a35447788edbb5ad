// PostgreSQL failures turned into messages that say what went wrong and what to check:
// the --store URL itself, reaching the server, logging in, and the server going away
// mid-transaction. Anything else (constraint violations: bugs) passes through unchanged.
import { StoreIoError } from '../errors.js';

export interface PgTarget {
  /** The URL without its password: safe to log and show. */
  location: string;
  host: string;
  port: string;
  user: string;
  database: string;
}

/** Parses a postgres:// URL; throws an Error saying what is wrong with it. */
export function parsePgUrl(url: string): PgTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`--store ${redact(url)} is not a valid URL: write postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE ` +
      '(a Unix socket directory goes in ?host=/path)');
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new Error(`--store ${redact(url)}: expected a postgres:// or postgresql:// URL`);
  }
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (!database) {
    throw new Error(`--store ${redact(url)} names no database: add it as the path, postgres://USER@HOST/DATABASE`);
  }
  const socketHost = u.searchParams.get('host');
  const host = socketHost ?? (u.hostname || 'localhost');
  const port = u.port || u.searchParams.get('port') || '5432';
  const user = decodeURIComponent(u.username) || process.env['PGUSER'] || process.env['USER'] || 'postgres';
  return { location: redact(url), host, port, user, database };
}

/** The URL with its password replaced by "***". */
export function redact(url: string): string {
  return url.replace(/^(postgres(?:ql)?:\/\/[^:@/]*):[^@/]*@/, '$1:***@').replace(/([?&]password=)[^&]*/, '$1***');
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH',
  'ENETUNREACH', 'ENOENT', 'EPIPE']);

/** A StoreIoError naming the server and what to check, or `err` itself when it is not about reaching the server. */
export function translatePgError(err: unknown, t: PgTarget, connectTimeoutMs: number): unknown {
  if (err instanceof StoreIoError || !(err instanceof Error)) return err;
  const code = (err as { code?: string }).code ?? '';
  const where = t.host.startsWith('/') ? `the Unix socket in ${t.host} (port ${t.port})` : `${t.host}:${t.port}`;
  const io = (why: string): StoreIoError => new StoreIoError(`${why} (${code || err.name}: ${err.message})`, t.location, code || 'PG', { cause: err });
  if (CONNECTION_CODES.has(code)) {
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
      return io(`PostgreSQL host ${t.host} of --store ${t.location} does not resolve: check the host name in the URL and DNS`);
    }
    return io(`cannot reach PostgreSQL at ${where} (--store ${t.location}): is the server running, listening on that ` +
      'address (listen_addresses, port) and reachable through the firewall? Nothing of this call was stored');
  }
  if (/timeout expired|Connection terminated due to connection timeout/i.test(err.message)) {
    return io(`no answer from PostgreSQL at ${where} within ${connectTimeoutMs} ms (--store ${t.location}): check that the ` +
      'host and port are right and that no firewall drops the packets; or the server is overloaded');
  }
  if (/Connection terminated unexpectedly|terminating connection/i.test(err.message) || code === '57P01' || code === '57P02' || code === '57P03') {
    return io(`the connection to PostgreSQL at ${where} was lost (--store ${t.location}): the server restarted or is ` +
      'shutting down; nothing of this call was committed, retry once it is back');
  }
  switch (code) {
    case '28P01':
    case '28000':
      return io(`PostgreSQL at ${where} refused user "${t.user}" (--store ${t.location}): check the user and password in ` +
        'the URL (or PGPASSWORD, ~/.pgpass) and the server\'s pg_hba.conf');
    case '3D000':
      return io(`database "${t.database}" does not exist on PostgreSQL at ${where}: create it (createdb -O ${t.user} ` +
        `${t.database}) or fix the --store URL`);
    case '42501':
      return io(`user "${t.user}" lacks a privilege on database "${t.database}" at ${where}: the controller creates its ` +
        `tables on first start, so make it the database owner (ALTER DATABASE ${t.database} OWNER TO ${t.user})`);
    case '53100':
      return io(`PostgreSQL at ${where}: disk full; free space on the server. Nothing of this call was stored and nothing ` +
        'was acked, so agents keep their spooled data');
    case '53300':
      return io(`PostgreSQL at ${where} has no connection slot left (max_connections): lower --store pool sizes of the ` +
        'controllers sharing it or raise max_connections');
    default:
      return err;
  }
}
