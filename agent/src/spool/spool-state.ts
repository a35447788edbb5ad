// The spool's state file, `spool-state.json`: per stream the first sequence still held
// (everything before was acknowledged or evicted), the next sequence to assign, and the loss
// counters, so that a restart neither replays acknowledged data nor reuses a sequence number
// nor forgets what was lost. Replaced atomically: write a temp file, fsync, rename, fsync the
// directory, all on the libuv pool (a process may hold hundreds of spools: the simulator).
// Sequence numbers are decimal strings (u64 does not fit a JSON number).
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { fsyncDir } from './segment-writer.js';

export const STATE_FILE = 'spool-state.json';
const STATE_VERSION = 1;

export interface StreamState {
  firstSeq: bigint;
  nextSeq: bigint;
  /** Gaps below this sequence number were found and counted by an earlier open. */
  checkedSeq: bigint;
  evicted: number;
  corrupt: number;
  appendErrors: number;
}

export interface SpoolState {
  streams: Map<string, StreamState>;
  /** Log records that failed their checksum, all streams, cumulative. */
  corruptBatches: number;
  /** Per segment file name, offsets of damaged regions already counted. */
  damaged: Map<string, Set<number>>;
}

interface StateJson {
  version: number;
  corruptBatches: number;
  damaged: Record<string, number[]>;
  streams: Record<
    string,
    { first: string; next: string; checked: string; evicted: number; corrupt: number; appendErrors: number }
  >;
}

export function emptyState(): SpoolState {
  return { streams: new Map(), corruptBatches: 0, damaged: new Map() };
}

/** Reads the state file; a missing file is an empty state, an unreadable one an error. */
export function loadState(dir: string): SpoolState {
  const file = path.join(dir, STATE_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
    throw err;
  }
  let json: StateJson;
  try {
    json = JSON.parse(text) as StateJson;
    if (json.version !== STATE_VERSION || typeof json.streams !== 'object') throw new Error(`version ${json.version}`);
    const state = emptyState();
    state.corruptBatches = json.corruptBatches;
    for (const [name, offsets] of Object.entries(json.damaged)) state.damaged.set(name, new Set(offsets));
    for (const [id, s] of Object.entries(json.streams)) {
      state.streams.set(id, {
        firstSeq: BigInt(s.first),
        nextSeq: BigInt(s.next),
        checkedSeq: BigInt(s.checked),
        evicted: s.evicted,
        corrupt: s.corrupt,
        appendErrors: s.appendErrors,
      });
    }
    return state;
  } catch (err) {
    throw new Error(
      `spool: state file ${file} is unreadable (${(err as Error).message}); move it aside to rebuild the ` +
        'state from the segments (acknowledged data still in them will be sent again)',
      { cause: err },
    );
  }
}

let tempCounter = 0;

/**
 * Replaces the state file atomically and durably. The state is captured when called (the
 * caller may change it while the write is in flight); resolves once the new file and its
 * directory entry are on the device.
 */
export async function saveState(dir: string, state: SpoolState): Promise<void> {
  const json: StateJson = { version: STATE_VERSION, corruptBatches: state.corruptBatches, damaged: {}, streams: {} };
  for (const [name, offsets] of state.damaged) if (offsets.size > 0) json.damaged[name] = [...offsets];
  for (const [id, s] of state.streams) {
    json.streams[id] = {
      first: s.firstSeq.toString(),
      next: s.nextSeq.toString(),
      checked: s.checkedSeq.toString(),
      evicted: s.evicted,
      corrupt: s.corrupt,
      appendErrors: s.appendErrors,
    };
  }
  const text = JSON.stringify(json);
  const file = path.join(dir, STATE_FILE);
  const temp = `${file}.${process.pid}.${++tempCounter}.tmp`;
  const fh = await fsp.open(temp, 'w', 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await fsp.rm(temp, { force: true });
    throw err;
  }
  await fh.close();
  await fsp.rename(temp, file);
  await fsyncDir(dir);
}

/** Removes temp files a crash left behind. */
export function removeStaleTemps(dir: string): void {
  for (const name of fs.readdirSync(dir)) {
    if (name.startsWith(`${STATE_FILE}.`) && name.endsWith('.tmp')) fs.rmSync(path.join(dir, name), { force: true });
  }
}

export const RESERVE_FILE = 'spool-state.reserve';
const RESERVE_MIN_BYTES = 16 * 1024;

/**
 * Keeps a file of zeros aside (16 KiB, or twice the state file) so that the state file can
 * still be replaced when the disk is full: saveState's temp file needs new blocks. Returns
 * false when there is no room for it now.
 */
export function ensureReserve(dir: string): boolean {
  const file = path.join(dir, RESERVE_FILE);
  let stateBytes = 0;
  try {
    stateBytes = fs.statSync(path.join(dir, STATE_FILE)).size;
  } catch {
    // no state file yet
  }
  const want = Math.max(RESERVE_MIN_BYTES, 2 * stateBytes);
  try {
    if (fs.statSync(file).size >= want) return true;
  } catch {
    // missing: create it
  }
  try {
    fs.writeFileSync(file, Buffer.alloc(want), { mode: 0o600 });
    return true;
  } catch {
    fs.rmSync(file, { force: true });
    return false;
  }
}

/** Frees the reserve; false if there was none. */
export function releaseReserve(dir: string): boolean {
  const file = path.join(dir, RESERVE_FILE);
  if (!fs.existsSync(file)) return false;
  fs.rmSync(file, { force: true });
  return true;
}

export function isDiskFull(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}
