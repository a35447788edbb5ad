// `events --follow`: records as they are stored, each once, across every matching stream.
//
// Device clocks cannot be trusted to agree with ours (boards without an RTC boot in 1970), so
// "new" is decided per stream by sequence number, not by time: each stream remembers which seqs
// it sent. A stream whose stored count grew is read from the last time it showed; if that finds
// fewer new records than the count grew by (a late gap fill, a clock stepped back), the stream is
// read again from the start of the follow window. (A stream that existed before the follow began
// and has no window is read whole once, the first time it grows, to learn its last time.)
import { iterateEvents } from '../export/event-pages.js';
import type { Store, StoredEvent, StreamRow } from '../store/store.js';
import { SeqSet } from './seq-set.js';

interface StreamState {
  sent: SeqSet;
  storedRecords: number;
  lastTime?: bigint;
}

export interface FollowOptions {
  deviceId?: string;
  probe?: string;
  /** Send stored records from this time on first; without it, only records stored after the start. */
  sinceUnixNs?: bigint;
  pollMs?: number;
  signal?: AbortSignal;
  /** Subscribes to a "look now" hint; returns the unsubscribe function. */
  wake?: (cb: () => void) => () => void;
}

const byTime = (a: StoredEvent, b: StoredEvent) =>
  a.timeUnixNs < b.timeUnixNs ? -1 : a.timeUnixNs > b.timeUnixNs ? 1
    : a.streamId < b.streamId ? -1 : a.streamId > b.streamId ? 1 : a.seq - b.seq;

type FollowStore = Pick<Store, 'events' | 'streams' | 'gaps'>;

/** Yields the new records of each poll, in time order; ends when the signal aborts. */
export async function* followEvents(store: FollowStore, opts: FollowOptions = {}): AsyncGenerator<StoredEvent[]> {
  const pollMs = opts.pollMs ?? 500;
  const states = new Map<string, StreamState>();
  const matching = async (): Promise<StreamRow[]> =>
    (await store.streams(opts.deviceId === undefined ? {} : { deviceId: opts.deviceId }))
      .filter((s) => opts.probe === undefined || s.probe === opts.probe);

  if (opts.sinceUnixNs === undefined) {
    // What is stored now counts as sent: [0, next_seq) minus the gaps (a late fill is news).
    for (const s of await matching()) {
      const sent = new SeqSet();
      let at = 0;
      for (const g of await store.gaps(s.streamId)) { sent.addRange(at, g.fromSeq); at = g.toSeq; }
      sent.addRange(at, Number(s.nextSeq));
      states.set(s.streamId, { sent, storedRecords: s.storedRecords });
    }
  }

  let woken = false;
  let wakeUp: (() => void) | undefined;
  const unsubscribe = opts.wake?.(() => { woken = true; wakeUp?.(); });
  try {
    while (!opts.signal?.aborted) {
      const batch: StoredEvent[] = [];
      for (const s of await matching()) {
        let st = states.get(s.streamId);
        if (!st) { st = { sent: new SeqSet(), storedRecords: 0 }; states.set(s.streamId, st); }
        if (s.storedRecords === st.storedRecords) continue;
        const grew = s.storedRecords - st.storedRecords;
        const from = st.lastTime ?? opts.sinceUnixNs;
        const found = await readNew(store, s.streamId, st, from, batch);
        if (found < grew && from !== opts.sinceUnixNs) await readNew(store, s.streamId, st, opts.sinceUnixNs, batch);
        st.storedRecords = s.storedRecords;
      }
      if (batch.length) yield batch.sort(byTime);
      if (opts.signal?.aborted) break;
      if (!woken) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, pollMs);
          function done() { clearTimeout(timer); opts.signal?.removeEventListener('abort', done); wakeUp = undefined; resolve(); }
          wakeUp = done;
          opts.signal?.addEventListener('abort', done, { once: true });
        });
      }
      woken = false;
    }
  } finally {
    unsubscribe?.();
  }
}

/** Appends the stream's records from `since` not sent yet; returns how many. */
async function readNew(store: FollowStore, streamId: string, st: StreamState, since: bigint | undefined,
  out: StoredEvent[]): Promise<number> {
  let n = 0;
  for await (const ev of iterateEvents(store, { streamId, ...(since === undefined ? {} : { sinceUnixNs: since }) })) {
    if (st.lastTime === undefined || ev.timeUnixNs > st.lastTime) st.lastTime = ev.timeUnixNs;
    if (st.sent.has(ev.seq)) continue;
    st.sent.add(ev.seq);
    out.push(ev);
    n++;
  }
  return n;
}
