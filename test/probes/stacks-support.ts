// Helpers of the stack probes' tests (profile, offcputime, wakeuptime, loadmon): their C
// fixtures, and reading folded stacks and the loader's final stats line.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { buildCProgram, fixturesBinDir, fixturesDir } from '../lib/index.js';

/** Compiles test/fixtures/<name>.c (unstripped: the probes symbolize it) unless up to date. */
export function buildFixture(name: string): Promise<string> {
  return buildCProgram(path.join(fixturesDir, `${name}.c`), path.join(fixturesBinDir, name));
}

export interface Fixture {
  child: ChildProcess;
  pid: number;
  /** Resolves with the exit code and stdout when the fixture exits. */
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** The first line the fixture prints on stdout, parsed as JSON. */
  firstLine(): Promise<Record<string, number>>;
  /** Sends SIGUSR1: a fixture started with DELAY_MS "usr1" (leaker, pipeholder) acts now. */
  go(): void;
  kill(): void;
}

/** Starts a fixture; it is killed when the test process exits. */
export function startFixture(bin: string, args: readonly string[]): Fixture {
  const child = spawn(bin, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error(`could not start ${bin}`);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', kill);
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
  const firstLine = async (): Promise<Record<string, number>> => {
    for (let i = 0; i < 200 && !stdout.includes('\n'); i++) {
      if (child.exitCode !== null) break;
      await sleep(50);
    }
    if (!stdout.includes('\n')) throw new Error(`${bin} printed no line within 10 s; stderr: ${stderr}`);
    return JSON.parse(stdout.slice(0, stdout.indexOf('\n'))) as Record<string, number>;
  };
  const go = (): void => {
    if (!child.kill('SIGUSR1')) throw new Error(`${bin} exited before it was told to go: ${stderr}`);
  };
  return { child, pid: child.pid, done, firstLine, go, kill };
}

/** The JSON of the loader's final `<probe>: stats {...}` line on stderr. */
export function finalStats(probe: string, stderr: string): {
  records: number;
  intervals: number;
  kernel: Record<string, number>;
  loader: { lost: number; truncated: number };
} {
  const line = stderr.split('\n').reverse().find((l) => l.startsWith(`${probe}: stats `));
  if (!line) throw new Error(`no "${probe}: stats" line on stderr:\n${stderr}`);
  return JSON.parse(line.slice(`${probe}: stats `.length));
}

/** Frames of a folded stack, root first. */
export function frames(stack: unknown): string[] {
  return String(stack).split(';');
}

/** True when `inner` follows `outer` directly somewhere in the folded stack (a caller/callee pair). */
export function calls(stack: unknown, outer: string, inner: string): boolean {
  const f = frames(stack);
  return f.some((x, i) => x === outer && f[i + 1] === inner);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
