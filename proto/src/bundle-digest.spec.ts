import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { bundleCanonicalText, bundleDigest, checkBundlePath, signingKeyFingerprint } from './index.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const base = {
  probe: 'tcpstates',
  version: '1.0.0',
  arch: 'x86_64',
  files: [
    { path: 'tcpstates', sha256: sha('loader'), mode: 0o755 },
    { path: 'btf/5.10.0-32-armmp.btf', sha256: sha('btf'), mode: 0o644 },
  ],
};

describe('bundleDigest', () => {
  it('is sha256 over exactly the text fleet.proto documents', () => {
    const text =
      'bpfleet-bundle-v1\ntcpstates\n1.0.0\nx86_64\n' +
      `tcpstates\n${sha('loader')}\n755\n` +
      `btf/5.10.0-32-armmp.btf\n${sha('btf')}\n644\n`;
    expect(bundleCanonicalText(base)).toBe(text);
    expect(bundleDigest(base).toString('hex')).toBe(sha(text));
  });

  it('changes when any signed field changes, including file order', () => {
    const d0 = bundleDigest(base).toString('hex');
    const f0 = base.files[0]!, f1 = base.files[1]!;
    const variants = [
      { ...base, probe: 'tcpwin' },
      { ...base, version: '1.0.1' },
      { ...base, arch: 'arm' },
      { ...base, files: [{ ...f0, path: 'tcpstate' }, f1] },
      { ...base, files: [{ ...f0, sha256: sha('other') }, f1] },
      { ...base, files: [{ ...f0, mode: 0o555 }, f1] },
      { ...base, files: [f1, f0] },
      { ...base, files: [f0] },
    ];
    const digests = new Set(variants.map((v) => bundleDigest(v).toString('hex')));
    expect(digests.size).toBe(variants.length);
    expect(digests.has(d0)).toBe(false);
  });

  it('refuses fields that would make the newline-separated text ambiguous', () => {
    expect(() => bundleDigest({ ...base, version: '1.0.0\nx86_64' })).toThrow(/version .* not a plain name/);
    expect(() => bundleDigest({ ...base, probe: '..' })).toThrow(/probe/);
    expect(() => bundleDigest({ ...base, version: 'current' })).toThrow(/reserved/);
    expect(() => bundleDigest({ ...base, files: [{ path: 'x', sha256: 'ABC', mode: 0o644 }] })).toThrow(/sha256/);
    expect(() => bundleDigest({ ...base, files: [{ path: 'x', sha256: sha('x'), mode: 0o4755 }] })).toThrow(/mode 4755/);
    expect(() => bundleDigest({ ...base, files: [{ path: 'x', sha256: sha('x'), mode: 0o777 }] })).toThrow(/mode 777/);
  });
});

describe('checkBundlePath', () => {
  it.each([
    ['', /empty/],
    ['/abs', /absolute/],
    ['../../etc/passwd', /".." component/],
    ['a/../../b', /".." component/],
    ['a/./b', /"\." component/],
    ['a//b', /empty component/],
    ['a/', /empty component/],
    ['a\0b', /NUL/],
    ['..\\..\\b', /backslash/],
    ['a\nb', /only letters/],
    ['.hidden', /only letters/],
    ['-rf', /only letters/],
    ['x'.repeat(256), /component longer/],
  ])('refuses %j', (p, why) => {
    expect(() => checkBundlePath(p)).toThrow(why);
  });

  it.each(['tcpstates', 'tcpstates.manifest.json', 'btf/5.10.0-32-armmp.btf', '_a/b+c'])('accepts %j', (p) => {
    expect(() => checkBundlePath(p)).not.toThrow();
  });
});

describe('signingKeyFingerprint', () => {
  it('is the first 16 hex digits of sha256 of the raw key', () => {
    const raw = Buffer.alloc(32, 7);
    expect(signingKeyFingerprint(raw)).toBe(createHash('sha256').update(raw).digest('hex').slice(0, 16));
  });
});
