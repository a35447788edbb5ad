import { describe, expect, it } from 'vitest';
import { ackedThrough, planIngest, planLoss, type Gap } from './seq-ranges.js';

const open = (from: number, to: number): Gap => ({ from, to, state: 'open', detectedAtMs: 1 });

describe('planIngest', () => {
  it('stores a batch that continues the stream', () => {
    const p = planIngest(10, [], 10, 20);
    expect(p).toMatchObject({ pieces: [{ from: 10, to: 20 }], newGap: null, nextSeq: 20, stored: 10, duplicate: 0 });
  });

  it('drops a batch entirely below next_seq with no gaps', () => {
    const p = planIngest(20, [], 5, 15);
    expect(p).toMatchObject({ pieces: [], nextSeq: 20, stored: 0, duplicate: 10 });
  });

  it('keeps only the new tail of an overlapping batch', () => {
    const p = planIngest(15, [], 10, 20);
    expect(p).toMatchObject({ pieces: [{ from: 15, to: 20 }], stored: 5, duplicate: 5, nextSeq: 20 });
  });

  it('records a gap before a batch that starts past next_seq', () => {
    const p = planIngest(10, [], 30, 40);
    expect(p.newGap).toEqual({ from: 10, to: 30 });
    expect(p).toMatchObject({ pieces: [{ from: 30, to: 40 }], stored: 10, nextSeq: 40 });
  });

  it('fills the middle of a gap and keeps both ends open', () => {
    const p = planIngest(40, [open(10, 30)], 15, 20);
    expect(p.pieces).toEqual([{ from: 15, to: 20 }]);
    expect(p.removed).toEqual([open(10, 30)]);
    expect(p.added).toEqual([open(10, 15), open(20, 30)]);
    expect(p).toMatchObject({ stored: 5, duplicate: 0, filledOpen: 5, nextSeq: 40 });
  });

  it('merges a filled gap end with the new tail into one piece', () => {
    const p = planIngest(20, [open(15, 20)], 15, 25);
    expect(p.pieces).toEqual([{ from: 15, to: 25 }]);
    expect(p).toMatchObject({ stored: 10, duplicate: 0, filledOpen: 5, added: [] });
  });

  it('stores two gap pieces around stored data and counts the rest as duplicate', () => {
    const p = planIngest(50, [open(10, 20), open(30, 40)], 15, 35);
    expect(p.pieces).toEqual([{ from: 15, to: 20 }, { from: 30, to: 35 }]);
    expect(p.added).toEqual([open(10, 15), open(35, 40)]);
    expect(p).toMatchObject({ stored: 10, duplicate: 10, filledOpen: 10 });
  });
});

describe('planLoss', () => {
  it('turns open gaps below the first held seq into lost ones, splitting one that straddles it', () => {
    const p = planLoss(50, [open(10, 20), open(30, 40)], 35, 9);
    expect(p.added).toEqual([{ ...open(10, 20), state: 'lost' }, { ...open(30, 35), state: 'lost' }, open(35, 40)]);
    expect(p).toMatchObject({ lost: 15, nextSeq: 50, newLost: null });
  });

  it('records everything between next_seq and the first held seq as lost', () => {
    const p = planLoss(10, [], 25, 9);
    expect(p.newLost).toEqual({ from: 10, to: 25 });
    expect(p).toMatchObject({ lost: 15, nextSeq: 25, added: [{ from: 10, to: 25, state: 'lost', detectedAtMs: 9 }] });
  });
});

describe('ackedThrough', () => {
  it('stops before the first open gap', () => {
    expect(ackedThrough(50, 10)).toBe(9);
    expect(ackedThrough(50, undefined)).toBe(49);
  });

  it('is 0 for a stream with nothing contiguous from seq 1', () => {
    expect(ackedThrough(1, undefined)).toBe(0); // a new stream
    expect(ackedThrough(50, 1)).toBe(0); // seq 1 still missing
  });
});
