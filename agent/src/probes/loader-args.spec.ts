import { describe, expect, it } from 'vitest';
import { ProbeArgsError, checkProbeArgs, loaderArgv } from './loader-args.js';
import { classifyExit } from './loader-exit.js';

describe('loader arguments', () => {
  it('adds --machine and the stats cadence in front of the run args', () => {
    expect(loaderArgv(['--rport', '443'], 200)).toEqual(['--machine', '--stats-interval', '200', '--rport', '443']);
    expect(loaderArgv(['--stats-interval=50'], 200)).toEqual(['--machine', '--stats-interval=50']);
    expect(loaderArgv([])).toEqual(['--machine']);
  });

  it.each(['--json', '--machine', '--describe', '--manifest', '--help', '-h', '-vh', '--mach', '--js', '--json=1', '--desc'])(
    'refuses %s, which changes the output mode',
    (arg) => {
      expect(() => checkProbeArgs(['--rport', '80', arg])).toThrow(ProbeArgsError);
    },
  );

  it('says why in words', () => {
    expect(() => checkProbeArgs(['--json'])).toThrow(/would change the loader's output mode \(--json\).*adds --machine itself/);
  });

  it('lets filters and tuning through', () => {
    expect(() =>
      checkProbeArgs(['--pid', '1', '--comm', 'nginx', '--lport', '80,443', '--duration', '5', '--ringbuf-kb', '64', '-v', '--prefer', 'kprobe']),
    ).not.toThrow();
  });
});

describe('loader exit codes (bpf/README.md)', () => {
  it.each([
    [{ code: 2, signal: null }, 'failed'],
    [{ code: 3, signal: null }, 'failed'],
    [{ code: 4, signal: null }, 'failed'],
    [{ code: 6, signal: null }, 'failed'],
    [{ code: 1, signal: null }, 'crashed'],
    [{ code: 5, signal: null }, 'crashed'],
    [{ code: null, signal: 'SIGSEGV' }, 'crashed'],
    [{ code: 0, signal: null }, 'stopped'],
  ] as const)('%o -> %s', (exit, verdict) => {
    expect(classifyExit(exit, false)).toBe(verdict);
  });

  it('anything after a stop request is a stop (SIGKILL after the grace period included)', () => {
    expect(classifyExit({ code: null, signal: 'SIGKILL' }, true)).toBe('stopped');
  });
});
