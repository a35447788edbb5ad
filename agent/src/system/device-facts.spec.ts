// This host's detection against the loaders' own view of the kernel (--describe): the agent
// must not promise the controller a capability the loaders then find missing.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { detectArch } from './arch.js';
import { detectDeviceFacts, hostArch, readKernelCaps, reportedArch } from './device-facts.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

describe('device facts of this host', () => {
  it('names the arch as the probes do and reports the kernel it runs', async () => {
    const f = await detectDeviceFacts({ board: 'workstation' });
    expect(f.board).toBe('workstation');
    expect(['x86_64', 'arm64', 'arm']).toContain(f.arch);
    expect(f.kernelRelease).toBe(os.release());
    expect(['glibc', 'musl', 'bionic', 'unknown']).toContain(f.libc);
    expect(f.cpus).toBeGreaterThan(0);
    expect(f.memoryBytes).toBe(BigInt(os.totalmem()));
    expect(f.hostname).toBe(os.hostname());
  });

  it('kernel caps agree with what a loader finds (--describe)', async () => {
    const facts = await detectDeviceFacts();
    const loader = path.join(repoRoot, 'bpf', 'out', facts.arch, 'skbclone');
    if (!existsSync(loader)) throw new Error(`${loader} is missing: build the probes first (make -C bpf)`);
    const k = (JSON.parse(execFileSync(loader, ['--describe'], { encoding: 'utf8' })) as { kernel: Record<string, unknown> }).kernel;
    const caps = await readKernelCaps();
    expect({ btf: caps.btf, kprobes: caps.kprobes, tracepoints: caps.tracepoints, jit: caps.jit }).toEqual({
      btf: k['btf'],
      kprobes: k['kprobes'],
      tracepoints: k['tracefs'],
      jit: Number(k['jit']) > 0,
    });
  });
});

describe('BPFLEET_FAKE_ARCH (test only)', () => {
  it('changes the reported arch only; hostArch() stays what loaders must be built for', () => {
    expect(reportedArch({ BPFLEET_FAKE_ARCH: 'arm64' })).toBe('arm64');
    expect(reportedArch({ BPFLEET_FAKE_ARCH: '' })).toBe(hostArch());
    expect(reportedArch({})).toBe(hostArch());
    expect(hostArch()).toBe(detectArch(process.arch, os.machine()));
  });
});
