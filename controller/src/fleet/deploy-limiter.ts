// How many deploy commands may be in flight (sent, not yet answered) at once, controller-wide.
// A bundle is about a megabyte and is encoded per device: sending one to a thousand devices at
// once put a gigabyte in the transports' buffers and dropped every link. Beyond the limit a
// deploy waits its turn, first come first served, across every deploy request.

export const DEFAULT_DEPLOY_CONCURRENCY = 32;

export class DeployLimiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  /** The most commands that were in flight at once (for tests and metrics). */
  peak = 0;

  constructor(readonly limit = DEFAULT_DEPLOY_CONCURRENCY) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`deploy concurrency must be a whole number >= 1, got ${limit}`);
  }

  /** Deploys in flight now. */
  get inFlight(): number {
    return this.active;
  }

  /** Deploys waiting for a slot. */
  get queued(): number {
    return this.waiting.length;
  }

  /**
   * Runs `send` once a slot is free. The slot is held until the promise `send` returns settles,
   * so `send` should return the device's answer (which must settle: answered, timed out or
   * disconnected). Resolves with that promise wrapped, so awaiting this waits for the turn only.
   */
  async run<T>(send: () => Promise<T>): Promise<{ answer: Promise<T> }> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    this.peak = Math.max(this.peak, this.active);
    let answer: Promise<T>;
    try {
      answer = send();
    } catch (err) {
      answer = Promise.reject(err);
    }
    answer.then(() => this.release(), () => this.release());
    return { answer };
  }

  private release(): void {
    const next = this.waiting.shift();
    // The slot passes straight to the next waiter: active stays the same.
    if (next) next();
    else this.active--;
  }
}
