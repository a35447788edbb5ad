// Where things live on the host, and small process/file helpers shared by the board code.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');

/** ${BPFLEET_CACHE:-~/.cache/bpfleet}, the same cache toolchains/*.sh use. */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env['BPFLEET_CACHE'] || path.join(os.homedir(), '.cache', 'bpfleet');
}

/** Debian's name for an architecture. */
export const debArch = (arch: string): string => ({ arm64: 'arm64', arm: 'armhf', x86_64: 'amd64' })[arch] ?? arch;

export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

export const sha256 = (...parts: (string | Buffer)[]): string => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex');
};

export class CommandError extends Error {
  override name = 'CommandError';
}

/** Runs a command to completion; rejects with its stderr tail when it fails. */
export function run(cmd: string, args: string[], opts: { cwd?: string; input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) => reject(new CommandError(`cannot run ${cmd}: ${err.message}`)));
    child.on('close', (code, sig) => {
      if (code === 0) resolve({ stdout, stderr });
      else reject(new CommandError(`${cmd} ${args.join(' ').slice(0, 200)} failed (${code ?? sig}):\n${stderr.slice(-2000)}`));
    });
    if (child.stdin) {
      child.stdin.on('error', () => undefined); // a child that exits without reading its input
      child.stdin.end(opts.input);
    }
  });
}

/** Reports progress of a long step: which step, and how far (0..1) when known. */
export type Progress = (step: string, fraction?: number) => void;
export const noProgress: Progress = () => undefined;

/**
 * Runs fn holding a lock directory (mkdir is atomic): two `bpfleet board` commands or tests that
 * build the same runtime or image at once take turns instead of tearing each other's work apart.
 * A lock whose owner is gone (pid file names a dead process) is taken over.
 */
export async function withLock<T>(lockDir: string, fn: () => Promise<T>, waitMs = 30 * 60_000): Promise<T> {
  mkdirSync(path.dirname(lockDir), { recursive: true });
  const end = Date.now() + waitMs;
  for (;;) {
    try {
      mkdirSync(lockDir);
      writeFileSync(path.join(lockDir, 'pid'), String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let owner = NaN;
      try { owner = Number(readFileSync(path.join(lockDir, 'pid'), 'utf8')); } catch { /* being written */ }
      let alive = true;
      if (Number.isInteger(owner) && owner > 0) {
        try { process.kill(owner, 0); } catch { alive = false; }
      }
      if (!alive) { rmSync(lockDir, { recursive: true, force: true }); continue; }
      if (Date.now() > end) throw new Error(`${lockDir} is held by pid ${owner} for over ${Math.round(waitMs / 60_000)} min; remove it if that process is gone`, { cause: err });
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}
