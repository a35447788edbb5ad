import { afterEach, describe, expect, it, vi } from 'vitest';
import { EnvironmentError, kernelVersion, requireKernelFeature, requireRoot } from './require.js';

describe('requireKernelFeature', () => {
  it('passes silently when the check holds', () => {
    expect(() => requireKernelFeature('always', () => true)).not.toThrow();
    expect(() => requireKernelFeature('flag', true)).not.toThrow();
  });

  it('throws (never skips) with the feature name and the reason', () => {
    expect(() => requireKernelFeature('ringbuf', () => 'kernel 4.19 is older than 5.8')).toThrow(EnvironmentError);
    expect(() => requireKernelFeature('ringbuf', () => 'kernel 4.19 is older than 5.8')).toThrow(
      /needs kernel feature "ringbuf": kernel 4\.19 is older than 5\.8 \(kernel /,
    );
    expect(() => requireKernelFeature('btf', false)).toThrow(/needs kernel feature "btf" \(kernel/);
    expect(() =>
      requireKernelFeature('x', () => {
        throw new Error('boom');
      }),
    ).toThrow(/"x": check failed: boom/);
  });
});

describe('requireRoot', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('throws a clear error for a non-root user', () => {
    vi.spyOn(process, 'geteuid').mockReturnValue(1000);
    expect(() => requireRoot()).toThrow(
      /^needs root \(run as root: eBPF programs are loaded for real\); effective uid is 1000$/,
    );
  });
});

describe('kernelVersion', () => {
  it('parses distro and custom release strings', () => {
    expect(kernelVersion('6.1.0-28-amd64')).toEqual([6, 1, 0]);
    expect(kernelVersion('5.15.167.4-microsoft-standard-WSL2')).toEqual([5, 15, 167]);
    expect(kernelVersion('6.18-rc1')).toEqual([6, 18, 0]);
    expect(() => kernelVersion('garbage')).toThrow(/cannot parse/);
  });
});
