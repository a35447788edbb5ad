// Serial, awaited delivery to the sink for one run. Batches waiting here are the only records
// Node holds; past `maxPendingBatches` the run pauses the loader's stdout (onPressure(true)).

export class DeliveryQueue {
  private queue: { deliver: () => void | Promise<void>; isBatch: boolean }[] = [];
  private pendingBatches = 0;
  private running = false;
  private pressured = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly maxPendingBatches: number,
    private readonly onPressure: (pressured: boolean) => void,
    private readonly onError: (err: unknown) => void,
  ) {}

  push(deliver: () => void | Promise<void>, isBatch = false): void {
    this.queue.push({ deliver, isBatch });
    if (isBatch) this.pendingBatches++;
    this.updatePressure();
    if (!this.running) void this.drain();
  }

  /** True while the consumer is too far behind: do not read more. */
  get isPressured(): boolean {
    return this.pressured;
  }

  /** Resolves when everything queued so far has been delivered. */
  idle(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async drain(): Promise<void> {
    this.running = true;
    for (let item = this.queue.shift(); item !== undefined; item = this.queue.shift()) {
      try {
        await item.deliver();
      } catch (err) {
        this.onError(err);
      }
      if (item.isBatch) this.pendingBatches--;
      this.updatePressure();
    }
    this.running = false;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  private updatePressure(): void {
    const now = this.pendingBatches >= this.maxPendingBatches;
    if (now === this.pressured) return;
    this.pressured = now;
    this.onPressure(now);
  }
}
