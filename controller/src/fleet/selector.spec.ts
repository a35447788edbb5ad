import { describe, expect, it } from 'vitest';
import { matchesSelector, parseSelector } from './selector.js';

const dayu = { id: 'd-0000000000000001', name: 'dayu-1', labels: { board: 'dayu200', lab: '3' },
  facts: { arch: 'arm64', board: 'dayu200', kernelRelease: '5.10.0' } };
const ws = { id: 'd-0000000000000002', name: 'ws', labels: {}, facts: { arch: 'x86_64', board: 'workstation' } };

describe('selectors', () => {
  it.each([
    ['all', [true, true]],
    ['*', [true, true]],
    ['board=dayu200,arch=arm64', [true, false]],
    ['arch=x86_64', [false, true]],
    ['kernel_release=5.10.0', [true, false]],
    ['name=ws', [false, true]],
    ['ws', [false, true]],
    ['d-0000000000000001', [true, false]],
    ['dayu-1,ws', [true, true]],
    ['lab=3,arch=x86_64', [false, false]],
  ])('%s', (text, expected) => {
    const sel = parseSelector(text);
    expect([dayu, ws].map((d) => matchesSelector(sel, d))).toEqual(expected);
  });

  it('prefers a label over the fact of the same name', () => {
    const d = { ...ws, labels: { arch: 'special' } };
    expect(matchesSelector(parseSelector('arch=special'), d)).toBe(true);
    expect(matchesSelector(parseSelector('arch=x86_64'), d)).toBe(false);
  });

  it('selects nothing with an empty object and refuses bad syntax', () => {
    expect(matchesSelector({}, dayu)).toBe(false);
    expect(() => parseSelector('')).toThrow(/empty term/);
    expect(() => parseSelector('board=,x')).toThrow(/"board=" needs a key and a value/);
    expect(() => parseSelector('all,board=x')).toThrow(/all cannot be combined/);
  });
});
