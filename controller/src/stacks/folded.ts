// Folded stacks: "root;child;leaf" -> value, the form every stack probe ships (root first, frames
// separated by ';', kernel frames suffixed "_[k]", a trailing "…" frame when the probe cut a
// deep stack, "0x..." where symbolization failed). One Map per aggregation.

export type Folded = Map<string, number>;

/** Kernel frames carry this suffix (the probes' contract, as in Brendan Gregg's folded format). */
export const KERNEL_SUFFIX = '_[k]';
/** The frame a probe appends when it cut a stack at its depth limit. */
export const TRUNCATED_FRAMES = new Set(['…', '...', '[truncated]']);
/** A stack record with an empty stack string (the probe could not read one). */
export const UNKNOWN_STACK = '[unknown]';

export type FrameKind = 'user' | 'kernel' | 'address' | 'truncated' | 'process' | 'root' | 'other';

export const isKernelFrame = (name: string) => name.endsWith(KERNEL_SUFFIX);

/** What a frame is, for colouring: the palette gives each kind its own hue. */
export function frameKind(name: string, depth: number, perProcess = false): FrameKind {
  if (depth === 0) return 'root';
  if (perProcess && depth === 1) return 'process';
  if (TRUNCATED_FRAMES.has(name)) return 'truncated';
  const bare = isKernelFrame(name) ? name.slice(0, -KERNEL_SUFFIX.length) : name;
  // Unsymbolized addresses, and the probes' placeholders: "[unknown]", "[missing user stack]".
  if (/^0x[0-9a-f]+$/i.test(bare) || bare === UNKNOWN_STACK || /^\[missing .*\]$/.test(bare)) return 'address';
  return isKernelFrame(name) ? 'kernel' : 'user';
}

/** The frames of a folded stack, root first; an empty stack is one "[unknown]" frame. */
export function splitStack(stack: string): string[] {
  const frames = stack.split(';').map((f) => f.trim()).filter((f) => f !== '');
  return frames.length ? frames : [UNKNOWN_STACK];
}

export function addStack(folded: Folded, stack: string, value: number): void {
  folded.set(stack, (folded.get(stack) ?? 0) + value);
}

export function totalOf(folded: Folded): number {
  let t = 0;
  for (const v of folded.values()) t += v;
  return t;
}

/** The text form flamegraph tools read: "a;b;c 42" per line, sorted by stack. */
export function formatFolded(folded: Folded): string {
  return [...folded.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([s, v]) => `${s} ${v}\n`).join('');
}

/**
 * Two windows side by side, "a;b;c 10 42" (baseline value, then the shown window's): the
 * layout of difffolded, so other tools read it too.
 */
export function formatFoldedDiff(baseline: Folded, shown: Folded): string {
  const keys = [...new Set([...baseline.keys(), ...shown.keys()])].sort();
  return keys.map((k) => `${k} ${baseline.get(k) ?? 0} ${shown.get(k) ?? 0}\n`).join('');
}

/** Reads folded text back ("stack value" per line; the value is after the last space). */
export function parseFolded(text: string): Folded {
  const out: Folded = new Map();
  text.split('\n').forEach((line, i) => {
    const l = line.trim();
    if (!l) return;
    const sp = l.lastIndexOf(' ');
    const v = Number(l.slice(sp + 1));
    if (sp <= 0 || !Number.isFinite(v)) throw new Error(`folded line ${i + 1} is not "stack value": ${JSON.stringify(l.slice(0, 80))}`);
    addStack(out, l.slice(0, sp), v);
  });
  return out;
}
