import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { FrameDecoder, type Frame } from './frames.js';
import { bpfOutDir } from './paths.js';

export type Arch = 'x86_64' | 'arm64' | 'arm';
export const ARCHES: readonly Arch[] = ['x86_64', 'arm64', 'arm'];

/** Absolute path of a built probe loader, `bpf/out/<arch>/<probe>`; throws if it is missing. */
export function probeBinary(probe: string, arch: Arch = 'x86_64'): string {
  if (!/^[A-Za-z0-9_.-]+$/.test(probe) || probe.startsWith('.')) {
    throw new Error(`invalid probe name ${JSON.stringify(probe)}`);
  }
  if (!ARCHES.includes(arch)) throw new Error(`unknown arch ${JSON.stringify(arch)} (one of ${ARCHES.join(', ')})`);
  const bin = path.join(bpfOutDir, arch, probe);
  if (!existsSync(bin)) {
    throw new Error(
      `probe binary ${bin} not found: run \`make -C bpf ARCH=${arch}\` first (or \`npx nx run bpf:build\`)`,
    );
  }
  try {
    accessSync(bin, constants.X_OK);
  } catch {
    throw new Error(`probe binary ${bin} is not executable: rebuild it with \`make -C bpf ARCH=${arch}\``);
  }
  return bin;
}

export type JsonEvent = Record<string, unknown>;

export interface RunProbeOptions {
  /** Arch of the loader to run (default x86_64). */
  arch?: Arch;
  /** Run this executable instead of probeBinary(probe, arch) (fakes, other loaders). */
  bin?: string;
  /**
   * How to read stdout:
   * - 'json' (default): one JSON object per line (`--json` mode) into `events`;
   *   any other line makes the run fail.
   * - 'frames': machine-mode frames into `frames`.
   * - 'none': keep raw stdout only.
   */
  stdout?: 'json' | 'frames' | 'none';
  /** Arm the `ready` timeout: expect a stderr line containing the word `ready`. */
  waitReady?: boolean;
  /** Time allowed for `ready` (default 20 s). */
  readyTimeoutMs?: number;
  /** Whole-run limit: SIGKILL and fail after this (default 50 s, below vitest's 60 s). 0 = none. */
  timeoutMs?: number;
  /** Time stop() waits after SIGINT before SIGKILL (default 10 s). */
  stopTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface ProbeResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Parsed JSON lines (stdout: 'json'). */
  events: JsonEvent[];
  /** Decoded frames (stdout: 'frames'). */
  frames: Frame[];
  stdout: Buffer;
  stderr: string;
}

export interface ProbeRun extends Promise<ProbeResult> {
  readonly pid: number | undefined;
  readonly probe: string;
  /** Resolves when stderr prints a line containing `ready`; rejects if the loader exits first or on timeout. */
  readonly ready: Promise<void>;
  /** Live view of the events / frames collected so far. */
  readonly events: readonly JsonEvent[];
  readonly frames: readonly Frame[];
  /** Stderr collected so far. */
  stderr(): string;
  /** True once the process has exited. */
  readonly exited: boolean;
  /** Waits for the first collected event (past or future) that matches. */
  waitForEvent(match: (e: JsonEvent) => boolean, timeoutMs?: number): Promise<JsonEvent>;
  /** Sends SIGINT (if still running) and waits for exit; SIGKILL and reject after stopTimeoutMs. */
  stop(): Promise<ProbeResult>;
  /** SIGKILL, no questions asked; resolves when the process is gone. */
  kill(): Promise<void>;
}

const live = new Set<ProbeRun>();

/** Stops (SIGINT, then SIGKILL) every probe still running; for afterAll hooks. */
export async function stopAllProbes(): Promise<void> {
  const runs = [...live];
  await Promise.allSettled(runs.map((r) => r.stop()));
}

let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Never leave a loader attached to the kernel behind the test process.
  process.on('exit', () => {
    for (const r of live) {
      if (r.pid !== undefined) {
        try {
          process.kill(r.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    }
  });
}

function tail(text: string, max = 4000): string {
  return text.length <= max ? text : `…${text.slice(-max)}`;
}

/**
 * Spawns a probe loader. The returned object is a promise of the exit result
 * (`{code, events, stderr, ...}`), plus `ready`, `stop()` and live accessors.
 *
 *   const run = runProbe('tcplife', ['--json'], { waitReady: true });
 *   await run.ready;
 *   ...generate load...
 *   const { code, events } = await run.stop();
 */
export function runProbe(probe: string, args: readonly string[] = [], opts: RunProbeOptions = {}): ProbeRun {
  const bin = opts.bin ?? probeBinary(probe, opts.arch ?? 'x86_64');
  const mode = opts.stdout ?? 'json';
  const readyTimeoutMs = opts.readyTimeoutMs ?? 20_000;
  const timeoutMs = opts.timeoutMs ?? 50_000;
  const stopTimeoutMs = opts.stopTimeoutMs ?? 10_000;
  const label = `${probe} (${bin}${args.length ? ' ' + args.join(' ') : ''})`;

  installExitHook();
  const child = spawn(bin, [...args], {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });

  const events: JsonEvent[] = [];
  const frames: Frame[] = [];
  const stdoutChunks: Buffer[] = [];
  const badLines: string[] = [];
  let stderr = '';
  let stderrLine = '';
  let stdoutLine = '';
  let exited = false;
  let killedForTimeout = false;
  let frameError: Error | undefined;
  const outDecoder = new StringDecoder('utf8');
  const errDecoder = new StringDecoder('utf8');
  const frameDecoder = new FrameDecoder();
  const eventWaiters = new Set<{ match: (e: JsonEvent) => boolean; resolve: (e: JsonEvent) => void }>();

  const withStderr = (msg: string): Error =>
    new Error(`${msg}\n--- ${probe} stderr ---\n${tail(stderr) || '(empty)'}`);

  // ready
  let readySettled = false;
  let resolveReady!: () => void;
  let rejectReady!: (e: Error) => void;
  const ready = new Promise<void>((res, rej) => {
    resolveReady = res;
    rejectReady = rej;
  });
  ready.catch(() => undefined); // only an error for callers that await it
  const settleReady = (err?: Error): void => {
    if (readySettled) return;
    readySettled = true;
    if (readyTimer) clearTimeout(readyTimer);
    if (err) rejectReady(err);
    else resolveReady();
  };
  const readyTimer = opts.waitReady
    ? setTimeout(
        () => settleReady(withStderr(`${label}: no "ready" on stderr within ${readyTimeoutMs} ms`)),
        readyTimeoutMs,
      )
    : undefined;

  const onStderrLine = (line: string): void => {
    if (/\bready\b/i.test(line)) settleReady();
  };

  const onStdoutLine = (line: string): void => {
    if (line.trim() === '') return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      badLines.push(line);
      return;
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      badLines.push(line);
      return;
    }
    const ev = parsed as JsonEvent;
    events.push(ev);
    for (const w of eventWaiters) {
      if (w.match(ev)) {
        eventWaiters.delete(w);
        w.resolve(ev);
      }
    }
  };

  child.stdout.on('data', (chunk: Buffer) => {
    stdoutChunks.push(chunk);
    if (mode === 'json') {
      stdoutLine += outDecoder.write(chunk);
      let nl: number;
      while ((nl = stdoutLine.indexOf('\n')) >= 0) {
        onStdoutLine(stdoutLine.slice(0, nl));
        stdoutLine = stdoutLine.slice(nl + 1);
      }
    } else if (mode === 'frames' && !frameError) {
      try {
        frames.push(...frameDecoder.push(chunk));
      } catch (err) {
        frameError = err as Error;
      }
    }
  });
  child.stderr.on('data', (chunk: Buffer) => {
    const text = errDecoder.write(chunk);
    stderr += text;
    stderrLine += text;
    let nl: number;
    while ((nl = stderrLine.indexOf('\n')) >= 0) {
      onStderrLine(stderrLine.slice(0, nl));
      stderrLine = stderrLine.slice(nl + 1);
    }
  });

  const runTimer =
    timeoutMs > 0
      ? setTimeout(() => {
          killedForTimeout = true;
          child.kill('SIGKILL');
        }, timeoutMs)
      : undefined;

  const done = new Promise<ProbeResult>((resolve, reject) => {
    child.on('error', (err) => {
      exited = true;
      if (runTimer) clearTimeout(runTimer);
      live.delete(run);
      const e = withStderr(`${label}: failed to start: ${err.message}`);
      settleReady(e);
      reject(e);
    });
    child.on('close', (code, signal) => {
      exited = true;
      if (runTimer) clearTimeout(runTimer);
      live.delete(run);
      // flush partial lines
      const restErr = errDecoder.end();
      stderr += restErr;
      stderrLine += restErr;
      if (stderrLine) onStderrLine(stderrLine);
      if (mode === 'json') {
        stdoutLine += outDecoder.end();
        if (stdoutLine) onStdoutLine(stdoutLine);
      }
      settleReady(withStderr(`${label}: exited (code ${code}, signal ${signal}) before printing "ready"`));

      if (killedForTimeout) {
        reject(withStderr(`${label}: still running after ${timeoutMs} ms, killed`));
        return;
      }
      if (mode === 'json' && badLines.length > 0) {
        reject(
          withStderr(
            `${label}: ${badLines.length} stdout line(s) are not JSON objects (--json mode prints one per line):\n` +
              badLines.slice(0, 5).map((l) => `  ${tail(l, 300)}`).join('\n'),
          ),
        );
        return;
      }
      if (mode === 'frames') {
        try {
          if (frameError) throw frameError;
          frameDecoder.end();
        } catch (err) {
          reject(withStderr(`${label}: bad machine-mode stream: ${(err as Error).message}`));
          return;
        }
      }
      resolve({ code, signal, events, frames, stdout: Buffer.concat(stdoutChunks), stderr });
    });
  });

  const waitExit = (ms: number): Promise<boolean> =>
    new Promise((resolve) => {
      if (exited) return resolve(true);
      const t = setTimeout(() => resolve(false), ms);
      done.then(
        () => (clearTimeout(t), resolve(true)),
        () => (clearTimeout(t), resolve(true)),
      );
    });

  const stop = async (): Promise<ProbeResult> => {
    if (!exited) {
      child.kill('SIGINT');
      if (!(await waitExit(stopTimeoutMs))) {
        child.kill('SIGKILL');
        await waitExit(5_000);
        // `done` resolved with signal SIGKILL; report it as a failure to stop
        throw withStderr(`${label}: did not exit within ${stopTimeoutMs} ms of SIGINT, killed`);
      }
    }
    return done;
  };

  const kill = async (): Promise<void> => {
    if (!exited) child.kill('SIGKILL');
    await waitExit(5_000);
  };

  const waitForEvent = (match: (e: JsonEvent) => boolean, ms = 15_000): Promise<JsonEvent> => {
    const seen = events.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise<JsonEvent>((resolve, reject) => {
      const waiter = {
        match,
        resolve: (e: JsonEvent) => {
          clearTimeout(t);
          resolve(e);
        },
      };
      const t = setTimeout(() => {
        eventWaiters.delete(waiter);
        reject(withStderr(`${label}: no matching event within ${ms} ms (${events.length} event(s) seen)`));
      }, ms);
      eventWaiters.add(waiter);
      done.then(
        () => {
          if (eventWaiters.delete(waiter)) {
            clearTimeout(t);
            reject(withStderr(`${label}: exited before a matching event (${events.length} event(s) seen)`));
          }
        },
        (err: Error) => {
          if (eventWaiters.delete(waiter)) {
            clearTimeout(t);
            reject(err);
          }
        },
      );
    });
  };

  done.catch(() => undefined); // failures reach whoever awaits the run or stop(); never "unhandled"
  const run = Object.defineProperties(done, {
    pid: { value: child.pid, enumerable: true },
    probe: { value: probe, enumerable: true },
    ready: { value: ready },
    events: { value: events },
    frames: { value: frames },
    stderr: { value: () => stderr },
    exited: { get: () => exited },
    waitForEvent: { value: waitForEvent },
    stop: { value: stop },
    kill: { value: kill },
  }) as ProbeRun;
  live.add(run);
  return run;
}
