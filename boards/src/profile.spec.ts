import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ProfileError, listProfiles, loadProfile, parseProfile, readProfileFile } from './profile.js';

const good = () => ({
  name: 'qemu-x', description: 'd', arch: 'arm64', cpu: 'cortex-a53', memoryMiB: 2048,
  kernel: { release: '5.10.0-32-arm64', btf: 'present', kprobes: true },
  userland: { os: 'busybox', libc: 'none' },
  access: { kind: 'qemu', machine: 'virt', kernel: 'bullseye-arm64', smp: 1 },
  installDir: '/opt/bpfleet', transport: 'grpc',
});

describe('board profiles', () => {
  it('ships the five profiles the issue names, all valid', () => {
    const all = listProfiles();
    expect(all.map((p) => p.name)).toEqual(['dayu200', 'hi3516dv300', 'qemu-arm64-6.1', 'qemu-dayu200', 'qemu-hi3516']);
    expect(loadProfile('qemu-dayu200')).toMatchObject({ arch: 'arm64', cpu: 'cortex-a53', memoryMiB: 2048, access: { kind: 'qemu', kernel: 'bullseye-arm64' } });
    expect(loadProfile('qemu-hi3516')).toMatchObject({ arch: 'arm', cpu: 'cortex-a7', memoryMiB: 1024, kernel: { btf: 'shipped' }, access: { kernel: 'bullseye-armmp' } });
    expect(loadProfile('qemu-arm64-6.1').access).toMatchObject({ kernel: 'bookworm-arm64' });
    expect(loadProfile('dayu200')).toMatchObject({ arch: 'arm64', userland: { os: 'openharmony', libc: 'musl' }, access: { kind: 'hdc' } });
  });

  it('says what the Hi3516DV300 kernel must enable', () => {
    const cfg = loadProfile('hi3516dv300').kernel.requiredConfig;
    for (const c of ['CONFIG_BPF_SYSCALL=y', 'CONFIG_BPF_JIT=y', 'CONFIG_KPROBES=y', 'CONFIG_BPF_EVENTS=y', 'CONFIG_PERF_EVENTS=y']) expect(cfg).toContain(c);
  });

  it.each([
    ['arch', (p: Record<string, unknown>) => { p['arch'] = 'mips'; }, /field "arch" must be one of arm64, arm, x86_64, got "mips"/],
    ['memory', (p: Record<string, unknown>) => { p['memoryMiB'] = '2G'; }, /field "memoryMiB" must be an integer in 64..65536, got "2G"/],
    ['btf', (p: Record<string, unknown>) => { (p['kernel'] as Record<string, unknown>)['btf'] = 'yes'; }, /field "kernel.btf" must be one of present, shipped, none/],
    ['unknown key', (p: Record<string, unknown>) => { p['memory'] = 1; }, /unknown field "memory"/],
    ['access kind', (p: Record<string, unknown>) => { p['access'] = { kind: 'telnet' }; }, /field "access.kind" must be one of qemu, ssh, hdc/],
    ['qemu kernel', (p: Record<string, unknown>) => { (p['access'] as Record<string, unknown>)['kernel'] = ''; }, /field "access.kernel" must be a non-empty string/],
    ['install dir', (p: Record<string, unknown>) => { p['installDir'] = 'opt/x'; }, /field "installDir" must match/],
    ['config', (p: Record<string, unknown>) => { (p['kernel'] as Record<string, unknown>)['requiredConfig'] = ['BPF_SYSCALL']; }, /kernel.requiredConfig" must be a list of "CONFIG_X=y"/],
  ])('rejects a bad %s with the file and field', (_what, spoil, msg) => {
    const p = good() as unknown as Record<string, unknown>;
    spoil(p);
    expect(() => parseProfile(p, 'x.json')).toThrow(ProfileError);
    expect(() => parseProfile(p, 'x.json')).toThrow(msg);
  });

  const dir = mkdtempSync(path.join(os.tmpdir(), 'bpfleet-profiles-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('names the file in JSON errors and wants name = file name', () => {
    writeFileSync(path.join(dir, 'broken.json'), '{ "name": ');
    expect(() => readProfileFile(path.join(dir, 'broken.json'))).toThrow(/broken\.json: .*JSON/);
    writeFileSync(path.join(dir, 'other.json'), JSON.stringify(good()));
    expect(() => readProfileFile(path.join(dir, 'other.json'))).toThrow(/must equal the file name "other", got "qemu-x"/);
  });

  it('lists the known profiles when one is unknown', () => {
    expect(() => loadProfile('dayu300')).toThrow(/unknown board profile "dayu300"; known: dayu200, hi3516dv300/);
  });
});
