import { describe, expect, it } from 'vitest';
import type { ManifestSmoke } from './manifest.js';
import { describeSmokeExpect, fillSmokePlaceholders, smokeArgs, smokeMismatches } from './smoke.js';

const smoke: ManifestSmoke = {
  trigger: 'tcp_loopback',
  args: ['--lport', '{port}', '--interval', '200'],
  expect: [{ field: 'lport', op: 'eq', value: '{port}' }, { field: 'newstate', op: 'eq', value: 'ESTABLISHED' },
    { field: 'rx_bytes', op: 'ge', value: '{bytes}' }],
  description: 'd',
};
const vars = { port: 41234, pid: 7, bytes: 4096 };

describe('smoke expectations', () => {
  it('fills placeholders in args and names a missing one', () => {
    expect(smokeArgs(smoke, vars)).toEqual(['--lport', '41234', '--interval', '200']);
    expect(() => fillSmokePlaceholders('{port}/{cpu}', vars)).toThrow(/placeholder \{cpu\} is not provided by the trigger \(it provides \{port\}, \{pid\}, \{bytes\}\)/);
    expect(describeSmokeExpect(smoke, vars)).toBe('lport = 41234, newstate = ESTABLISHED, rx_bytes >= 4096');
  });

  it('a record passes when every condition holds; the failed ones are returned', () => {
    const rec = { lport: 41234, newstate: 'ESTABLISHED', rx_bytes: 4096 };
    expect(smokeMismatches(smoke, rec, vars)).toEqual([]);
    expect(smokeMismatches(smoke, { ...rec, rx_bytes: 4095, newstate: 'SYN_RECV' }, vars).map((c) => c.field)).toEqual(['newstate', 'rx_bytes']);
    expect(smokeMismatches(smoke, { ...rec, lport: 41235 }, vars).map((c) => c.field)).toEqual(['lport']);
    // Strings never satisfy ge; numbers compare as numbers.
    expect(smokeMismatches(smoke, { ...rec, rx_bytes: '9999' }, vars).map((c) => c.field)).toEqual(['rx_bytes']);
  });

  it('a smoke entry naming a field the record lacks, or an unknown op, is a broken manifest', () => {
    expect(() => smokeMismatches(smoke, { lport: 1, newstate: 'x' }, vars)).toThrow(/names field "rx_bytes"/);
    const bad = { ...smoke, expect: [{ field: 'lport', op: 'gt' as never, value: '1' }] };
    expect(() => smokeMismatches(bad, { lport: 2 }, vars)).toThrow(/unknown op "gt"/);
  });
});
