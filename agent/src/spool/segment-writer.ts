// One open segment file being appended to. Writes are positional (pwritev) and synchronous:
// they land in the page cache in a few microseconds, and an error (ENOSPC, EDQUOT, EIO) is
// known before append() returns, so a failed record is cut off again before anything else
// is written. Only fsync may be slow; it runs synchronously for sync:'always' and on the
// libuv pool otherwise.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

const SEGMENT_NAME = /^seg-(\d{20})\.log$/;

export function segmentFileName(index: number): string {
  return `seg-${String(index).padStart(20, '0')}.log`;
}

/** Segment numbers found in `dir`, oldest first. */
export function listSegmentIndexes(dir: string): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync(dir)) {
    const m = SEGMENT_NAME.exec(name);
    if (m) out.push(Number(m[1]));
  }
  return out.sort((a, b) => a - b);
}

/** fsync of a directory, so a created, renamed or removed entry survives a power cut. */
export function fsyncDirSync(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** fsyncDirSync on the libuv pool. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export class SegmentWriter {
  /** Bytes written so far (= the file size). */
  size = 0;
  /** Written since the last completed fdatasync. */
  dirty = false;
  private syncing: Promise<void> | null = null;
  private closed = false;

  private constructor(
    readonly file: string,
    private readonly fd: number,
  ) {}

  /** Creates a new, empty segment file; fails if it exists. */
  static create(dir: string, index: number): SegmentWriter {
    const file = path.join(dir, segmentFileName(index));
    return new SegmentWriter(file, fs.openSync(file, 'wx', 0o600));
  }

  /**
   * Appends `length` bytes made of `parts` in one pwritev (looping only on a short write).
   * On any error the file is truncated back to its previous size and the error rethrown.
   */
  append(parts: Uint8Array[], length: number): void {
    const start = this.size;
    let done = 0;
    try {
      while (done < length) {
        const n = fs.writevSync(this.fd, done === 0 ? parts : remaining(parts, done), start + done);
        if (n <= 0) throw Object.assign(new Error('write returned 0 bytes'), { code: 'EIO' });
        done += n;
      }
    } catch (err) {
      this.truncateBack(start);
      throw err;
    }
    this.size = start + length;
    this.dirty = true;
  }

  /** fdatasync now; on failure the bytes written since `rollbackTo` are cut off again. */
  syncSync(rollbackTo: number): void {
    try {
      fs.fdatasyncSync(this.fd);
      this.dirty = false;
    } catch (err) {
      this.truncateBack(rollbackTo);
      throw err;
    }
  }

  /** fdatasync on the libuv pool; concurrent callers share the one in flight. */
  syncAsync(): Promise<void> {
    if (this.closed || !this.dirty) return Promise.resolve();
    if (this.syncing) return this.syncing;
    this.dirty = false;
    this.syncing = new Promise<void>((resolve, reject) => {
      fs.fdatasync(this.fd, (err) => {
        this.syncing = null;
        if (err) {
          this.dirty = true;
          reject(err);
        } else resolve();
      });
    });
    return this.syncing;
  }

  /** Closes the file after any sync in flight (and a last one when `sync`), on the libuv pool. */
  async close(sync: boolean): Promise<void> {
    if (this.closed) return;
    try {
      if (this.syncing) await this.syncing.catch(() => undefined);
      if (sync) await this.syncAsync();
    } finally {
      if (!this.closed) {
        this.closed = true;
        await new Promise<void>((resolve, reject) => fs.close(this.fd, (err) => (err ? reject(err) : resolve())));
      }
    }
  }

  private truncateBack(size: number): void {
    this.size = size;
    try {
      fs.ftruncateSync(this.fd, size);
    } catch {
      // Shrinking needs no space, so this should not fail; if it does, the next write goes to
      // the same position and overwrites the half record, and an open finds any rest as a
      // torn tail. The caller reports the original error.
    }
  }
}

function remaining(parts: Uint8Array[], skip: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const p of parts) {
    if (skip >= p.length) {
      skip -= p.length;
      continue;
    }
    out.push(skip > 0 ? p.subarray(skip) : p);
    skip = 0;
  }
  return out;
}
