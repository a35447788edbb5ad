// Reads a server stream's messages one at a time with backpressure: the stream is paused while
// a few messages wait. Not the stream's async iterator, which destroys the stream when the call
// ends with an error status and so would swallow that status.
import type { Readable } from 'node:stream';

const HIGH = 16;
const LOW = 4;

export class InboundReader<T> {
  private readonly buffered: T[] = [];
  /** The agent half-closed: what is buffered is still read. */
  private ended = false;
  /** Reading stopped for good (cancelled, closed, stop()): nothing more is read. */
  private stopped: string | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly stream: Readable) {
    stream.on('data', (m: T) => {
      this.buffered.push(m);
      if (this.buffered.length >= HIGH) stream.pause();
      this.notify();
    });
    stream.on('end', () => { this.ended = true; this.notify(); });
    stream.on('cancelled', () => this.stop('the connection was lost or cancelled'));
    stream.on('close', () => this.stop('the stream closed'));
    stream.on('error', () => this.stop('the stream failed'));
  }

  /** Why reading stopped, once it has. */
  get endedBecause(): string | undefined {
    return this.stopped ?? (this.ended ? 'the agent closed the session' : undefined);
  }

  /** The next message; undefined once the stream ended or stop() was called. */
  async next(): Promise<T | undefined> {
    while (this.buffered.length === 0 && !this.ended && this.stopped === undefined) {
      await new Promise<void>((r) => { this.wake = r; });
    }
    if (this.stopped !== undefined) return undefined;
    const m = this.buffered.shift();
    if (this.buffered.length <= LOW && this.stream.isPaused()) this.stream.resume();
    return m;
  }

  /** Stops reading: a pending next() resolves undefined. */
  stop(why: string): void {
    this.stopped ??= why;
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}
