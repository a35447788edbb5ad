// Exponential restart delay for crashing loaders; a loader that ran long enough counts as
// healthy again, so one crash a day does not wait 30 s.

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** A run this long before crashing resets the delay. */
  stableMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 30_000, stableMs: 60_000 };

export class RestartBackoff {
  private nextMs: number;

  constructor(private readonly opts: BackoffOptions = DEFAULT_BACKOFF) {
    this.nextMs = opts.initialMs;
  }

  /** Delay before the next restart, given how long the crashed process ran. */
  next(ranMs: number): number {
    if (ranMs >= this.opts.stableMs) this.nextMs = this.opts.initialMs;
    const delay = this.nextMs;
    this.nextMs = Math.min(this.nextMs * 2, this.opts.maxMs);
    return delay;
  }
}
