import { describe, expect, it } from 'vitest';
import { detectArch, probeArchFromMachine, probeArchFromNode } from './arch.js';
import { classifyLibc } from './libc.js';

describe('arch names as the probes use them', () => {
  it.each([
    ['x64', 'x86_64'],
    ['arm64', 'arm64'],
    ['arm', 'arm'],
    ['ia32', undefined],
  ])('node %s -> %s', (node, probe) => expect(probeArchFromNode(node)).toBe(probe));

  it.each([
    ['x86_64', 'x86_64'],
    ['aarch64', 'arm64'],
    ['armv7l', 'arm'],
    ['armv8l', 'arm'],
    ['mips', undefined],
  ])('uname -m %s -> %s', (m, probe) => expect(probeArchFromMachine(m)).toBe(probe));

  it('a 32-bit agent on an arm64 kernel runs arm loaders', () => {
    expect(detectArch('arm', 'aarch64')).toBe('arm');
    expect(detectArch('riscv64', 'riscv64')).toBe('riscv64');
  });
});

describe('libc detection', () => {
  it('glibc: Node reports the runtime glibc version', () => {
    expect(classifyLibc({ glibcVersionRuntime: '2.36', libEntries: ['ld-linux-x86-64.so.2'] })).toBe('glibc');
  });

  it('musl (OpenHarmony armv7): no glibc version, the musl loader is mapped', () => {
    expect(
      classifyLibc({ sharedObjects: ['/lib/ld-musl-arm.so.1', '/system/lib/libc++.so'], libEntries: ['ld-musl-arm.so.1'] }),
    ).toBe('musl');
  });

  it('musl from /lib alone when the process report lists no objects', () => {
    expect(classifyLibc({ sharedObjects: [], libEntries: ['libc++.so', 'ld-musl-aarch64.so.1'] })).toBe('musl');
  });

  it('bionic on Android, unknown when nothing says', () => {
    expect(classifyLibc({ androidLinker: true })).toBe('bionic');
    expect(classifyLibc({})).toBe('unknown');
  });
});
