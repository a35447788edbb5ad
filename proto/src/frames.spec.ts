import { describe, expect, it } from 'vitest';
import {
  FrameDecoder,
  FrameKind,
  TruncatedFrameError,
  encodeFrame,
  frameJson,
  readFrames,
} from './frames.js';

// A stream built byte by byte from the wire format, not with encodeFrame:
//   u32 length LE | u16 kind LE | u16 flags LE | payload
const hello = Buffer.from('{"probe":"tcplife","version":1}', 'utf8');
const wire = Buffer.concat([
  // frame 0: hello, flags 0, JSON payload
  Buffer.from([hello.length, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00]),
  hello,
  // frame 1: event, flags 0x1234, 5 payload bytes
  Buffer.from([0x05, 0x00, 0x00, 0x00, 0x01, 0x00, 0x34, 0x12]),
  Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00]),
  // frame 2: stats, flags 0x8001, empty payload
  Buffer.from([0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 0x80]),
]);

describe('readFrames', () => {
  it('decodes header fields little-endian and slices the payloads', () => {
    const frames = readFrames(wire);
    expect(frames.map((f) => ({ kind: f.kind, flags: f.flags, len: f.payload.length }))).toEqual([
      { kind: FrameKind.Hello, flags: 0, len: hello.length },
      { kind: FrameKind.Event, flags: 0x1234, len: 5 },
      { kind: FrameKind.Stats, flags: 0x8001, len: 0 },
    ]);
    expect([...frames[1]!.payload]).toEqual([0xde, 0xad, 0xbe, 0xef, 0x00]);
    expect(frameJson(frames[0]!)).toEqual({ probe: 'tcplife', version: 1 });
  });

  it('reads a multi-byte length as little-endian (256, not 65536)', () => {
    const payload = Buffer.alloc(256, 0xab);
    const buf = Buffer.concat([Buffer.from([0x00, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00]), payload]);
    const [f, ...rest] = readFrames(buf);
    expect(rest).toHaveLength(0);
    expect(f!.payload.length).toBe(256);
    expect(f!.payload.every((b) => b === 0xab)).toBe(true);
  });

  it('returns no frames for an empty stream', () => {
    expect(readFrames(Buffer.alloc(0))).toEqual([]);
  });

  it('throws on a stream cut inside a header', () => {
    const cut = wire.subarray(0, wire.length - 3); // last frame: 5 of 8 header bytes
    expect(() => readFrames(cut)).toThrow(TruncatedFrameError);
    expect(() => readFrames(cut)).toThrow(/truncated frame header at offset 52: 5 byte\(s\) left/);
  });

  it('throws on a stream cut inside a payload, naming the frame offset', () => {
    const secondStart = 8 + hello.length;
    const cut = wire.subarray(0, secondStart + 8 + 2); // event frame: 2 of 5 payload bytes
    let caught: unknown;
    try {
      readFrames(cut);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(TruncatedFrameError);
    expect((caught as TruncatedFrameError).offset).toBe(secondStart);
    expect((caught as Error).message).toMatch(/kind 1\): payload length 5, only 2 byte\(s\) left/);
  });

  it('accepts a plain Uint8Array view with a non-zero byteOffset', () => {
    const backing = new Uint8Array(wire.length + 7);
    backing.set(wire, 7);
    const view = new Uint8Array(backing.buffer, 7, wire.length);
    expect(readFrames(view).map((f) => f.kind)).toEqual([3, 1, 2]);
  });
});

describe('encodeFrame', () => {
  it('produces exactly the wire bytes readFrames expects', () => {
    const enc = Buffer.concat([
      encodeFrame(FrameKind.Hello, 0, hello.toString('utf8')),
      encodeFrame(FrameKind.Event, 0x1234, Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00])),
      encodeFrame(FrameKind.Stats, 0x8001, Buffer.alloc(0)),
    ]);
    expect(enc.equals(wire)).toBe(true);
  });
});

describe('FrameDecoder', () => {
  it('yields the same frames when fed one byte at a time', () => {
    const d = new FrameDecoder();
    const got = [];
    for (const b of wire) got.push(...d.push(Buffer.from([b])));
    d.end();
    expect(got.map((f) => [f.kind, f.flags, f.payload.toString('hex')])).toEqual(
      readFrames(wire).map((f) => [f.kind, f.flags, f.payload.toString('hex')]),
    );
    expect(d.buffered).toBe(0);
  });

  it('payloads stay intact when the caller reuses its chunk buffer and after later pushes', () => {
    const d = new FrameDecoder();
    const chunk = Buffer.from(wire);
    const frames = d.push(chunk);
    chunk.fill(0);
    d.push(Buffer.from(wire.subarray(0, 5)));
    expect(frames.map((f) => f.payload.toString('hex'))).toEqual(readFrames(wire).map((f) => f.payload.toString('hex')));
  });

  it('end() throws when the stream stopped mid-frame', () => {
    const d = new FrameDecoder();
    expect(d.push(wire.subarray(0, 8 + hello.length + 4))).toHaveLength(1);
    expect(d.buffered).toBe(4);
    expect(() => d.end()).toThrow(/stream ended inside a frame header at offset 39: 4 byte\(s\) of 8/);
  });
});

describe('frameJson', () => {
  it('parses the JSON payload of interval frames (kind 4)', () => {
    const [f] = readFrames(encodeFrame(FrameKind.Interval, 0, '{"records":2,"ts_ns":5}'));
    expect(f!.kind).toBe(4);
    expect(frameJson(f!)).toEqual({ records: 2, ts_ns: 5 });
  });

  it('refuses event frames and reports bad JSON', () => {
    expect(() => frameJson({ kind: FrameKind.Event, flags: 0, payload: Buffer.from('{}') })).toThrow(
      /does not carry JSON/,
    );
    expect(() => frameJson({ kind: FrameKind.Stats, flags: 0, payload: Buffer.from('{"a":') })).toThrow(
      /payload is not JSON/,
    );
  });
});
