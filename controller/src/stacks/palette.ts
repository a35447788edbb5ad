// Colours of frames. Plain graphs: a warm colour chosen by a hash of the frame name, so a
// function has the same colour in every graph and neighbours still differ; kernel frames get
// their own (yellow) band of hues, addresses that could not be symbolized are grey.
// Differential graphs: red where a frame's share grew, blue where it shrank, near white when equal.
import type { FrameKind } from './folded.js';

/** FNV-1a, 32 bit: a stable hash of the name (the same in every process and run). */
export function hashName(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

const hsl = (h: number, s: number, l: number) => `hsl(${h.toFixed(0)},${s.toFixed(0)}%,${l.toFixed(0)}%)`;

/** The colour of a frame in a plain flame graph. */
export function frameColor(name: string, kind: FrameKind): string {
  // Two independent numbers in [0, 1) from the one hash.
  const h = hashName(name);
  const a = (h & 0xffff) / 0x10000, b = (h >>> 16) / 0x10000;
  switch (kind) {
    case 'user': return hsl(2 + 30 * a, 78 + 12 * b, 56 + 8 * b);       // red .. orange
    case 'kernel': return hsl(46 + 12 * a, 80 + 10 * b, 52 + 8 * b);    // amber .. yellow
    case 'address': return hsl(30, 8, 68 + 10 * a);                    // unsymbolized: grey
    case 'truncated': return hsl(0, 0, 86);
    case 'process': return hsl(20, 30 + 15 * a, 70 + 6 * b);            // process roots: muted tan
    case 'root': return hsl(0, 0, 80);
    case 'other': return hsl(0, 0, 74);
  }
}

/**
 * The colour of a frame whose share changed by `delta` (a fraction of the total, shown minus
 * baseline), scaled by the largest change in the graph so the strongest change is saturated.
 */
export function diffColor(delta: number, maxAbsDelta: number): string {
  const i = maxAbsDelta > 0 ? Math.min(1, Math.abs(delta) / maxAbsDelta) : 0;
  const fade = Math.round(238 - 178 * i); // 238 (near white) .. 60
  if (i < 0.005) return 'rgb(238,238,238)';
  return delta > 0 ? `rgb(250,${fade},${fade})` : `rgb(${fade},${fade},250)`;
}
