// Small HTTP plumbing for the admin API (node:http, no framework): JSON answers and errors,
// bounded request bodies, and streamed writes that wait for 'drain'.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { stringifyJson } from '../export/event-json.js';

/** An error with the status to answer it with; the message goes to the client as {error}. */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(readonly status: number, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

/** The client went away while we were writing. */
export class ClientGoneError extends Error {
  override name = 'ClientGoneError';
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = stringifyJson(body) + '\n';
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store', ...headers });
  res.end(text);
}

export function sendError(res: ServerResponse, err: HttpError): void {
  sendJson(res, err.status, { error: err.message }, err.headers);
}

const MAX_BODY = 1024 * 1024;

/** The request body parsed as a JSON object; 400/413/415 otherwise. */
export async function readJsonObject(req: IncomingMessage): Promise<Record<string, unknown>> {
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\b/i.test(type)) throw new HttpError(415, `send the body as application/json (got "${type || 'no content-type'}")`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new HttpError(413, `request body larger than ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  let v: unknown;
  try {
    v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `request body is not JSON: ${(err as Error).message}`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new HttpError(400, 'request body must be a JSON object');
  return v as Record<string, unknown>;
}

/** Writes a chunk, waiting for 'drain' when the socket buffer is full; rejects if the client left. */
export function writeChunk(res: ServerResponse, chunk: string): Promise<void> {
  if (res.destroyed || res.writableEnded) return Promise.reject(new ClientGoneError('client disconnected'));
  if (res.write(chunk)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => { res.off('drain', onDrain); res.off('close', onClose); if (err) reject(err); else resolve(); };
    const onDrain = () => done();
    const onClose = () => done(new ClientGoneError('client disconnected'));
    res.on('drain', onDrain);
    res.on('close', onClose);
  });
}

/** Starts a streamed answer of JSON lines (chunked: no content-length). */
export function startJsonLines(res: ServerResponse, status = 200): void {
  res.writeHead(status, { 'content-type': 'application/x-ndjson; charset=utf-8', 'cache-control': 'no-store',
    'x-content-type-options': 'nosniff' });
  res.flushHeaders();
}

export const jsonLine = (v: unknown) => stringifyJson(v) + '\n';
