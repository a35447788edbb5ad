import { describe, expect, it } from 'vitest';
import { resolveConnection } from './admin-client.js';
import { splitShellWords } from './shell-words.js';
import { formatAgo, formatBytes, formatCount, renderTable } from './table.js';

describe('shell words', () => {
  it('splits like a shell, without expansion', () => {
    expect(splitShellWords(`--rport 443 --comm 'my app' --x "a \\"b\\"" c\\ d`)).toEqual(['--rport', '443', '--comm', 'my app', '--x', 'a "b"', 'c d']);
    expect(splitShellWords('  ')).toEqual([]);
    expect(splitShellWords("''")).toEqual(['']);
    expect(() => splitShellWords("'open")).toThrow(/unterminated/);
  });
});

describe('table and units', () => {
  it('aligns columns, numbers to the right', () => {
    expect(renderTable([{ n: 'a', v: 1234 }, { n: 'longer', v: 5 }], [
      { header: 'NAME', value: (r) => r.n }, { header: 'COUNT', value: (r) => r.v }, { header: 'NOTE', value: () => undefined },
    ])).toBe('NAME    COUNT  NOTE\na       1,234  -\nlonger      5  -\n');
  });

  it('formats counts, sizes and ages', () => {
    expect(formatCount(1234567n)).toBe('1,234,567');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(3 * 1024 * 1024)).toBe('3.0 MiB');
    expect(formatAgo(1000, 1000 + 90_000)).toBe('1m30s ago');
    expect(formatAgo(null, 0)).toBe('never');
  });
});

describe('connection', () => {
  it('takes flags over the environment over the config file', () => {
    const env = { HOME: '/nonexistent', BPFLEET_ADMIN_URL: 'http://env:1/', BPFLEET_ADMIN_TOKEN: 'env-token' };
    expect(resolveConnection({}, env)).toEqual({ url: 'http://env:1', token: 'env-token', source: 'BPFLEET_ADMIN_TOKEN' });
    expect(resolveConnection({ url: 'http://flag:2', token: 'flag-token' }, env)).toEqual({ url: 'http://flag:2', token: 'flag-token', source: '--token' });
    expect(() => resolveConnection({}, { HOME: '/nonexistent' })).toThrow(/no admin token: \/nonexistent\/.config\/bpfleet\/controller.json does not exist/);
    expect(() => resolveConnection({ url: 'ftp://x', token: 't' }, {})).toThrow(/not an http:\/\/ URL/);
  });
});
