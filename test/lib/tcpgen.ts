import { execFile, spawn } from 'node:child_process';
import { mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { fixturesBinDir, fixturesDir } from './paths.js';

const execFileP = promisify(execFile);

export const tcpgenSource: string = path.join(fixturesDir, 'tcpgen.c');
export const tcpgenBinary: string = path.join(fixturesBinDir, 'tcpgen');

/** One line of tcpgen output: one finished connection. */
export interface TcpgenConn {
  pid: number;
  /** client's ephemeral port */
  lport: number;
  /** listener port */
  rport: number;
  /** bytes the client sent (and the server read) */
  sent: number;
  /** bytes the server sent (and the client read) */
  recv: number;
}

export interface TcpgenOptions {
  /** Listener port; 0 (default) lets the kernel choose a free one per connection. */
  port?: number;
  /** Bytes the client sends. */
  send: number;
  /** Bytes the server sends back. */
  recv: number;
  /** Connections, one after the other (default 1). */
  count?: number;
  /** Use ::1 instead of 127.0.0.1. */
  ipv6?: boolean;
  /** Kill and fail after this (default 30 s). */
  timeoutMs?: number;
}

export interface TcpgenResult {
  pid: number;
  conns: TcpgenConn[];
  stderr: string;
}

function mtimeMs(file: string): number | undefined {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}

/** When a C source last changed: the file, or a header beside it (the fixtures share fixture-go.h). */
export function sourceMtimeMs(source: string): number | undefined {
  const own = mtimeMs(source);
  if (own === undefined) return undefined;
  const dir = path.dirname(source);
  const headers = readdirSync(dir).filter((f) => f.endsWith('.h')).map((f) => mtimeMs(path.join(dir, f)) ?? 0);
  return Math.max(own, ...headers);
}

/** Compiles test/fixtures/tcpgen.c unless the binary is newer than the source; returns its path. */
export function buildTcpgen(): Promise<string> {
  return buildCProgram(tcpgenSource, tcpgenBinary);
}

/** Compiles one C file with cc -O2 unless `binary` is newer than `source`; returns the binary's path. */
export async function buildCProgram(source: string, binary: string): Promise<string> {
  const src = sourceMtimeMs(source);
  if (src === undefined) throw new Error(`source ${source} is missing`);
  const bin = mtimeMs(binary);
  if (bin !== undefined && bin >= src) return binary;

  mkdirSync(path.dirname(binary), { recursive: true });
  const tmp = `${binary}.${process.pid}.tmp`;
  try {
    await execFileP('cc', ['-O2', '-Wall', '-Wextra', '-o', tmp, source], { timeout: 60_000 });
  } catch (err) {
    rmSync(tmp, { force: true });
    const e = err as { stderr?: string; message: string };
    throw new Error(`compiling ${source} with cc failed: ${e.message}\n${e.stderr ?? ''}`, { cause: err });
  }
  renameSync(tmp, binary); // atomic: a concurrent run sees the old binary or the new one
  return binary;
}

function parseConn(line: string): TcpgenConn {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new Error(`tcpgen printed a non-JSON line: ${line}`);
  }
  const o = v as Record<string, unknown>;
  for (const k of ['pid', 'lport', 'rport', 'sent', 'recv'] as const) {
    if (typeof o[k] !== 'number' || !Number.isInteger(o[k])) {
      throw new Error(`tcpgen line lacks integer "${k}": ${line}`);
    }
  }
  return o as unknown as TcpgenConn;
}

/**
 * Runs tcpgen (building it first if needed) and returns the connections it
 * reports. Rejects, with tcpgen's stderr, on a non-zero exit, a timeout, or
 * output that does not match the request.
 */
export async function tcpgen(opts: TcpgenOptions): Promise<TcpgenResult> {
  const bin = await buildTcpgen();
  const count = opts.count ?? 1;
  const args = [
    ...(opts.ipv6 ? ['-6'] : []),
    String(opts.port ?? 0),
    String(opts.send),
    String(opts.recv),
    String(count),
  ];
  const timeoutMs = opts.timeoutMs ?? 30_000;

  return new Promise<TcpgenResult>((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`tcpgen ${args.join(' ')}: failed to start: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const fail = (msg: string): void =>
        reject(new Error(`tcpgen ${args.join(' ')}: ${msg}\n--- tcpgen stderr ---\n${err || '(empty)'}`));
      if (timedOut) return fail(`still running after ${timeoutMs} ms, killed`);
      if (code !== 0) return fail(`exited with code ${code}, signal ${signal}`);
      let conns: TcpgenConn[];
      try {
        conns = out
          .split('\n')
          .filter((l) => l.trim() !== '')
          .map(parseConn);
      } catch (e) {
        return fail((e as Error).message);
      }
      if (conns.length !== count) return fail(`expected ${count} line(s), got ${conns.length}:\n${out}`);
      resolve({ pid: child.pid ?? -1, conns, stderr: err });
    });
  });
}
