import { describe, expect, it } from 'vitest';
import { SeqSet } from './seq-set.js';
import { matchesSelector, parseSelector, validateSelector } from './selector.js';
import { parseDuration, parseSince } from './time-spec.js';

describe('selector', () => {
  it('parses labels, names and all', () => {
    expect(parseSelector('board=dayu200,lab=3')).toEqual({ labels: { board: 'dayu200', lab: '3' } });
    expect(parseSelector('dev-1, name=dev-2')).toEqual({ devices: ['dev-1', 'dev-2'] });
    expect(parseSelector('all')).toEqual({ all: true });
    expect(() => parseSelector('a,,b')).toThrow(/empty term/);
    expect(() => parseSelector('all,board=x')).toThrow(/cannot be combined/);
    expect(() => validateSelector({})).toThrow(/selects nothing/);
    expect(() => validateSelector({ board: 'x' })).toThrow(/unknown key "board"/);
  });

  it('matches labels, then facts', () => {
    const d = { id: 'd-1', name: 'dev-1', labels: { board: 'dayu200' }, facts: { arch: 'arm64', kernelRelease: '6.1' } };
    expect(matchesSelector(parseSelector('board=dayu200,arch=arm64'), d)).toBe(true);
    expect(matchesSelector(parseSelector('kernel_release=6.1'), d)).toBe(true);
    expect(matchesSelector(parseSelector('dev-2,board=dayu200'), d)).toBe(false);
    expect(matchesSelector({}, d)).toBe(false);
  });
});

describe('time', () => {
  it('parses durations', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('500ms')).toBe(500);
    expect(() => parseDuration('1 hour')).toThrow(/not a duration/);
    expect(() => parseDuration('')).toThrow(/not a duration/);
  });

  it('parses since as ago, RFC 3339 to the ns, or Unix ns', () => {
    const now = Date.parse('2024-05-01T12:00:00Z');
    expect(parseSince('10m', now)).toBe(BigInt(now - 600_000) * 1_000_000n);
    expect(parseSince('2024-05-01T12:00:00.123456789Z', now)).toBe(1_714_564_800_123_456_789n);
    expect(parseSince('2024-05-01T14:00:00+02:00', now)).toBe(1_714_564_800_000_000_000n);
    expect(parseSince('1714564800000000000', now)).toBe(1_714_564_800_000_000_000n);
    expect(() => parseSince('yesterday', now)).toThrow(/neither a duration/);
  });
});

describe('SeqSet', () => {
  it('keeps ranges merged', () => {
    const s = new SeqSet();
    for (const n of [1, 2, 3, 10, 11, 5]) s.add(n);
    expect(s.rangeCount).toBe(3);
    s.addRange(4, 10);
    expect(s.rangeCount).toBe(1);
    expect([0, 1, 4, 9, 11, 12].map((n) => s.has(n))).toEqual([false, true, true, true, true, false]);
  });
});
