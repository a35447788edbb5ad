// The loader's stderr is where reasons live (unsupported hook, verifier log): keep its last
// lines per run, split at newlines across chunk boundaries.

export class StderrTail {
  private lines: string[] = [];
  private partial = '';

  constructor(private readonly maxLines = 50) {}

  /** Adds a chunk; returns the complete lines it finished. */
  push(chunk: string): string[] {
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop() ?? '';
    const done = parts.map((l) => l.replace(/\r$/, ''));
    for (const l of done) this.keep(l);
    return done;
  }

  /** Flushes an unterminated last line (the process ended). */
  end(): string[] {
    if (this.partial === '') return [];
    const l = this.partial;
    this.partial = '';
    this.keep(l);
    return [l];
  }

  /** Last n non-empty lines joined, for a status reason. */
  text(n = this.maxLines): string {
    return this.lines.filter((l) => l.trim() !== '').slice(-n).join('\n');
  }

  clear(): void {
    this.lines = [];
    this.partial = '';
  }

  private keep(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.maxLines) this.lines.shift();
  }
}
