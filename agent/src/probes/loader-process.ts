// One loader process: spawn, frames from stdout, lines from stderr, signals, exit. Knows
// nothing about runs, restarts or batches.
import { spawn, type ChildProcess } from 'node:child_process';
import { FrameDecoder, type Frame } from '@bpfleet/proto';
import type { LoaderExit } from './loader-exit.js';

export interface LoaderProcessHandlers {
  /** Whole frames, in stream order. Throwing kills the loader (protocol error). */
  frames(frames: Frame[]): void;
  stderrChunk(text: string): void;
}

export interface LoaderEnd extends LoaderExit {
  /** The process could not be started (ENOENT, EACCES); code and signal are null. */
  spawnError?: Error;
  /** stdout ended inside a frame, or a frame broke the contract. */
  protocolError?: Error;
}

/**
 * What a probe run needs of a loader: a real process (LoaderProcess) or anything that speaks the
 * same frames, such as the fleet simulator's replay of recorded probe output (agent/src/sim).
 */
export interface LoaderHandle {
  readonly exited: Promise<LoaderExit>;
  readonly ended: Promise<LoaderEnd>;
  readonly pid: number | undefined;
  readonly hasExited: boolean;
  pause(): void;
  resume(): void;
  signal(sig: NodeJS.Signals): void;
}

/** Starts a loader; the default spawns the binary (new LoaderProcess). */
export type LoaderFactory = (bin: string, argv: string[], handlers: LoaderProcessHandlers) => LoaderHandle;

export class LoaderProcess implements LoaderHandle {
  readonly startedAt = Date.now();
  /** Resolves at process exit (stdout may still hold unread frames). */
  readonly exited: Promise<LoaderExit>;
  /** Resolves once the process exited and every frame of its stdout was handed over. */
  readonly ended: Promise<LoaderEnd>;
  private readonly child: ChildProcess;
  private readonly decoder = new FrameDecoder();
  private protocolError: Error | undefined;
  private exitInfo: LoaderExit | undefined;

  constructor(bin: string, argv: string[], handlers: LoaderProcessHandlers) {
    const child = spawn(bin, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const { stdout, stderr } = child;

    stdout.on('data', (chunk: Buffer) => {
      if (this.protocolError !== undefined) return;
      try {
        const frames = this.decoder.push(chunk);
        if (frames.length > 0) handlers.frames(frames);
      } catch (err) {
        this.protocolError = err instanceof Error ? err : new Error(String(err));
        this.child.kill('SIGKILL');
      }
    });
    stderr.setEncoding('utf8').on('data', (t: string) => handlers.stderrChunk(t));
    // A pipe error must not take the agent down; the exit path reports what happened.
    const ignore = (): void => undefined;
    stdout.on('error', ignore);
    stderr.on('error', ignore);

    let resolveExited!: (e: LoaderExit) => void;
    this.exited = new Promise((resolve) => (resolveExited = resolve));
    this.child.once('exit', (code, signal) => {
      this.exitInfo = { code, signal };
      resolveExited(this.exitInfo);
    });
    this.ended = new Promise((resolve) => {
      this.child.once('error', (err) => {
        // Only a failed spawn ends here (no 'exit' follows); kill() errors on a live child do not.
        if (this.child.pid !== undefined) return;
        this.exitInfo = { code: null, signal: null };
        resolveExited(this.exitInfo);
        resolve({ ...this.exitInfo, spawnError: err });
      });
      // 'close' waits for stdout to end, i.e. until every frame was read: a paused stream
      // delays it, which is what keeps a crashed loader's last records.
      this.child.once('close', (code, signal) => {
        if (this.protocolError === undefined) {
          try {
            this.decoder.end();
          } catch (err) {
            this.protocolError = err as Error;
          }
        }
        const exit = this.exitInfo ?? { code, signal };
        resolve({ ...exit, ...(this.protocolError ? { protocolError: this.protocolError } : {}) });
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Stop reading stdout: the pipe fills, the loader blocks, the kernel ring buffer fills. */
  pause(): void {
    this.child.stdout?.pause();
  }

  resume(): void {
    this.child.stdout?.resume();
  }

  signal(sig: NodeJS.Signals): void {
    if (this.exitInfo === undefined && this.child.pid !== undefined) this.child.kill(sig);
  }

  get hasExited(): boolean {
    return this.exitInfo !== undefined;
  }
}
