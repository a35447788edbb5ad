// Reading every matching event without holding them all: Store.events() answers one page in
// time order, and the next page starts at the last time seen. Records sharing that exact time
// are remembered by (stream, seq) and skipped, so a page boundary inside a run of equal
// timestamps neither repeats nor drops a record.
import type { EventQuery, Store, StoredEvent } from '../store/store.js';

export const DEFAULT_PAGE_SIZE = 5000;
/** Store.events() refuses larger limits. */
const MAX_STORE_LIMIT = 1_000_000;

export type EventFilter = Omit<EventQuery, 'limit'>;

const keyOf = (ev: StoredEvent) => `${ev.streamId}\n${ev.seq}`;

/**
 * Yields the events matching `filter` in time order (then stream, seq), at most `max`.
 * Records stored while iterating are included if their time is later than the page being read.
 */
export async function* iterateEvents(store: Pick<Store, 'events'>, filter: EventFilter = {},
  opts: { pageSize?: number; max?: number; signal?: AbortSignal } = {}): AsyncGenerator<StoredEvent> {
  let pageSize = opts.pageSize ?? DEFAULT_PAGE_SIZE;
  let remaining = opts.max ?? Infinity;
  let since = filter.sinceUnixNs;
  let atSince = new Set<string>(); // keys already yielded whose time equals `since`
  while (remaining > 0 && !opts.signal?.aborted) {
    const limit = Math.min(pageSize + atSince.size, MAX_STORE_LIMIT);
    const page = await store.events({ ...filter, sinceUnixNs: since, limit });
    let fresh = 0;
    for (const ev of page) {
      if (ev.timeUnixNs === since && atSince.has(keyOf(ev))) continue;
      if (ev.timeUnixNs !== since) { since = ev.timeUnixNs; atSince = new Set(); }
      atSince.add(keyOf(ev));
      fresh++;
      yield ev;
      if (--remaining <= 0) return;
    }
    if (page.length < limit) return; // the store had nothing more
    if (fresh === 0) {
      // A page entirely made of records at one time we already yielded: widen it.
      if (limit >= MAX_STORE_LIMIT) {
        throw new Error(`more than ${MAX_STORE_LIMIT} records share the timestamp ${since}: cannot page past them`);
      }
      pageSize *= 2;
    }
  }
}
