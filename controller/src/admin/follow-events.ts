// `events --follow`: records as they are stored, each once, across every matching stream.
//
// Driven by the store's commit-order cursor (Store.eventsAfter), not by time or per-stream
// counters: device clocks cannot be trusted (boards without an RTC boot in 1970), a late gap
// fill is new however old its records, and a poll must cost what was stored since the last one,
// not one look per stream (1,000 devices at 5 batches/s wake a follower all the time).
//
// With `sinceUnixNs`, stored records from that time are read first by time; the cursor is taken
// before that read, so a batch stored during it is read again through the cursor. Until the
// cursor has caught up with the end of that read, records it already sent are skipped.
import { iterateEvents } from '../export/event-pages.js';
import type { Store, StoredEvent } from '../store/store.js';
import { SeqSet } from './seq-set.js';

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

/** Records per store read, and per yield of the initial read by time. */
const PAGE = 5000;

const byTime = (a: StoredEvent, b: StoredEvent) =>
  a.timeUnixNs < b.timeUnixNs ? -1 : a.timeUnixNs > b.timeUnixNs ? 1
    : a.streamId < b.streamId ? -1 : a.streamId > b.streamId ? 1 : a.seq - b.seq;

type FollowStore = Pick<Store, 'events' | 'eventsHead' | 'eventsAfter'>;

/** Yields the new records of each poll, in time order; ends when the signal aborts. */
export async function* followEvents(store: FollowStore, opts: FollowOptions = {}): AsyncGenerator<StoredEvent[]> {
  const pollMs = opts.pollMs ?? 500;
  const filter = { ...(opts.deviceId === undefined ? {} : { deviceId: opts.deviceId }),
    ...(opts.probe === undefined ? {} : { probe: opts.probe }) };
  let woken = false;
  let wakeUp: (() => void) | undefined;
  const unsubscribe = opts.wake?.(() => { woken = true; wakeUp?.(); });
  try {
    let cursor = await store.eventsHead();
    // Per stream, the seqs the read by time sent; dropped after the first full cursor read.
    let sentByTime: Map<string, SeqSet> | undefined;
    if (opts.sinceUnixNs !== undefined) {
      sentByTime = new Map();
      let page: StoredEvent[] = [];
      for await (const ev of iterateEvents(store, { ...filter, sinceUnixNs: opts.sinceUnixNs },
        opts.signal ? { signal: opts.signal } : {})) {
        let sent = sentByTime.get(ev.streamId);
        if (!sent) sentByTime.set(ev.streamId, sent = new SeqSet());
        sent.add(ev.seq);
        page.push(ev);
        if (page.length >= PAGE) { yield page; page = []; }
      }
      if (page.length) yield page;
    }

    while (!opts.signal?.aborted) {
      let batch: StoredEvent[] = [];
      for (let more = true; more && !opts.signal?.aborted;) {
        const r = await store.eventsAfter(cursor, { ...filter, limit: PAGE });
        ({ cursor, more } = r);
        for (const ev of r.events) if (!sentByTime?.get(ev.streamId)?.has(ev.seq)) batch.push(ev);
        if (more && batch.length >= PAGE) { yield batch.sort(byTime); batch = []; }
      }
      // That read began after the read by time ended and went to the end: the cursor now covers
      // everything the read by time could have seen.
      sentByTime = undefined;
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
