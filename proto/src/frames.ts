/**
 * Machine-mode framing used by the probe loaders:
 *
 *   u32 length (LE, bytes of payload) | u16 kind (LE) | u16 flags (LE) | payload
 */

export const FRAME_HEADER_BYTES = 8;

export const FrameKind = {
  /** Event record (binary, probe-specific). */
  Event: 1,
  /** Stats: payload is UTF-8 JSON text. */
  Stats: 2,
  /** Hello: payload is UTF-8 JSON text. */
  Hello: 3,
  /** Interval: payload is UTF-8 JSON text; closes one interval of records. */
  Interval: 4,
} as const;
export type FrameKindValue = (typeof FrameKind)[keyof typeof FrameKind];

export interface Frame {
  kind: number;
  flags: number;
  /** A view into the input buffer (not a copy). */
  payload: Buffer;
}

export class TruncatedFrameError extends Error {
  override name = 'TruncatedFrameError';
  constructor(
    message: string,
    /** Byte offset of the incomplete frame's header. */
    readonly offset: number,
  ) {
    super(message);
  }
}

function toBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Decodes a complete stream of frames. Throws TruncatedFrameError if the buffer
 * ends inside a header or a payload.
 */
export function readFrames(data: Uint8Array): Frame[] {
  const buf = toBuffer(data);
  const frames: Frame[] = [];
  let off = 0;
  while (off < buf.length) {
    const left = buf.length - off;
    if (left < FRAME_HEADER_BYTES) {
      throw new TruncatedFrameError(
        `truncated frame header at offset ${off}: ${left} byte(s) left, a header is ${FRAME_HEADER_BYTES}`,
        off,
      );
    }
    const length = buf.readUInt32LE(off);
    const kind = buf.readUInt16LE(off + 4);
    const flags = buf.readUInt16LE(off + 6);
    const start = off + FRAME_HEADER_BYTES;
    if (length > buf.length - start) {
      throw new TruncatedFrameError(
        `truncated frame at offset ${off} (kind ${kind}): payload length ${length}, only ${buf.length - start} byte(s) left`,
        off,
      );
    }
    frames.push({ kind, flags, payload: buf.subarray(start, start + length) });
    off = start + length;
  }
  return frames;
}

/**
 * Incremental decoder for a live stream (e.g. a loader's stdout): push chunks,
 * get whole frames back; end() throws if the stream stopped mid-frame.
 */
export class FrameDecoder {
  private pending: Buffer = Buffer.alloc(0);
  private consumed = 0;

  push(chunk: Uint8Array): Frame[] {
    this.pending = this.pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.pending, chunk]);
    const frames: Frame[] = [];
    let off = 0;
    while (this.pending.length - off >= FRAME_HEADER_BYTES) {
      const length = this.pending.readUInt32LE(off);
      const end = off + FRAME_HEADER_BYTES + length;
      if (end > this.pending.length) break;
      frames.push({
        kind: this.pending.readUInt16LE(off + 4),
        flags: this.pending.readUInt16LE(off + 6),
        // A view, not a copy: `pending` is this decoder's own copy of the input (Buffer.from or
        // concat above) and is never written to, so payloads stay valid after later pushes.
        payload: this.pending.subarray(off + FRAME_HEADER_BYTES, end),
      });
      off = end;
    }
    this.pending = this.pending.subarray(off);
    this.consumed += off;
    return frames;
  }

  /** Bytes received but not yet part of a whole frame. */
  get buffered(): number {
    return this.pending.length;
  }

  /** Throws TruncatedFrameError if the stream stopped inside a frame. */
  end(): void {
    if (this.pending.length === 0) return;
    const at = this.consumed;
    if (this.pending.length < FRAME_HEADER_BYTES) {
      throw new TruncatedFrameError(
        `stream ended inside a frame header at offset ${at}: ${this.pending.length} byte(s) of ${FRAME_HEADER_BYTES}`,
        at,
      );
    }
    const length = this.pending.readUInt32LE(0);
    throw new TruncatedFrameError(
      `stream ended inside a frame at offset ${at} (kind ${this.pending.readUInt16LE(4)}): ` +
        `payload length ${length}, only ${this.pending.length - FRAME_HEADER_BYTES} byte(s) received`,
      at,
    );
  }
}

/** Encodes one frame (for tests and fakes). */
export function encodeFrame(kind: number, flags: number, payload: Uint8Array | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : toBuffer(payload);
  const header = Buffer.alloc(FRAME_HEADER_BYTES);
  header.writeUInt32LE(body.length, 0);
  header.writeUInt16LE(kind, 4);
  header.writeUInt16LE(flags, 6);
  return Buffer.concat([header, body]);
}

/** Parses the JSON payload of a stats, hello or interval frame. */
export function frameJson<T = unknown>(frame: Frame): T {
  if (frame.kind !== FrameKind.Stats && frame.kind !== FrameKind.Hello && frame.kind !== FrameKind.Interval) {
    throw new Error(`frame kind ${frame.kind} does not carry JSON (only stats=2, hello=3 and interval=4 do)`);
  }
  const text = frame.payload.toString('utf8');
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new Error(`frame kind ${frame.kind}: payload is not JSON (${(err as Error).message}): ${text.slice(0, 200)}`, {
      cause: err,
    });
  }
}
