// Sequence-range arithmetic of exactly-once ingest, free of any database so every backend
// shares it. Ranges are half-open [from, to).

export interface SeqRange {
  from: number;
  to: number;
}

export interface Gap extends SeqRange {
  /** open: may still arrive (then it is stored); lost: the agent said it no longer holds it. */
  state: 'open' | 'lost';
  detectedAtMs: number;
}

export interface IngestPlan {
  /** Ranges of the batch to store, ascending, adjacent ones merged. */
  pieces: SeqRange[];
  /** Gap rows to delete and to insert (the parts of filled gaps that stay missing). */
  removed: Gap[];
  added: Gap[];
  /** The missing range this batch reveals: [old next_seq, first_seq). */
  newGap: SeqRange | null;
  nextSeq: number;
  stored: number;
  duplicate: number;
  filledOpen: number;
  filledLost: number;
}

/**
 * What to store of batch [lo, hi) given the stream's next_seq and the gaps overlapping
 * [lo, min(hi, nextSeq)), sorted by `from`. Everything else of the batch is a duplicate.
 */
export function planIngest(nextSeq: number, gaps: readonly Gap[], lo: number, hi: number): IngestPlan {
  const pieces: SeqRange[] = [];
  const removed: Gap[] = [];
  const added: Gap[] = [];
  let filledOpen = 0, filledLost = 0;
  const push = (from: number, to: number): void => {
    const last = pieces[pieces.length - 1];
    if (last && last.to === from) last.to = to;
    else pieces.push({ from, to });
  };
  for (const g of gaps) {
    const from = Math.max(g.from, lo), to = Math.min(g.to, hi);
    if (from >= to) continue;
    push(from, to);
    removed.push(g);
    if (g.from < from) added.push({ ...g, to: from });
    if (to < g.to) added.push({ ...g, from: to });
    if (g.state === 'open') filledOpen += to - from;
    else filledLost += to - from;
  }
  let newGap: SeqRange | null = null;
  if (hi > nextSeq) {
    if (lo > nextSeq) newGap = { from: nextSeq, to: lo };
    push(Math.max(lo, nextSeq), hi);
    nextSeq = hi;
  }
  const stored = pieces.reduce((n, p) => n + p.to - p.from, 0);
  return { pieces, removed, added, newGap, nextSeq, stored, duplicate: hi - lo - stored, filledOpen, filledLost };
}

export interface LossPlan {
  removed: Gap[];
  added: Gap[];
  /** [next_seq, firstHeld) when the agent has moved past everything the store has seen. */
  newLost: SeqRange | null;
  nextSeq: number;
  /** Records that went from open to lost, plus newLost. */
  lost: number;
}

/** The agent holds nothing before `firstHeld`: open gaps below it become lost. */
export function planLoss(nextSeq: number, openGaps: readonly Gap[], firstHeld: number, nowMs: number): LossPlan {
  const removed: Gap[] = [];
  const added: Gap[] = [];
  let lost = 0;
  for (const g of openGaps) {
    if (g.state !== 'open' || g.from >= firstHeld) continue;
    const cut = Math.min(g.to, firstHeld);
    removed.push(g);
    added.push({ ...g, to: cut, state: 'lost' });
    if (cut < g.to) added.push({ ...g, from: cut });
    lost += cut - g.from;
  }
  let newLost: SeqRange | null = null;
  if (firstHeld > nextSeq) {
    newLost = { from: nextSeq, to: firstHeld };
    added.push({ ...newLost, state: 'lost', detectedAtMs: nowMs });
    lost += firstHeld - nextSeq;
    nextSeq = firstHeld;
  }
  return { removed, added, newLost, nextSeq, lost };
}

/** Last seq before the first open gap (or before next_seq): 0 while seq 1 is not stored (streams start at 1). */
export function ackedThrough(nextSeq: number, firstOpenGapFrom: number | undefined): number {
  return (firstOpenGapFrom ?? nextSeq) - 1;
}
