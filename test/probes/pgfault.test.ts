import { beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { kernelFeatures, probeBinary, requireKernelFeature, requireRoot, runProbe } from '../lib/index.js';
import { loadManifest, sumField } from './support.js';
import { buildFixture, finalStats, startFixture } from './stacks-support.js';

let pagetouch = '';
const PAGES = 3000;

/** The innermost user frame of a folded stack. */
const userLeaf = (stack: unknown): string => String(stack).split(';').filter((f) => !f.endsWith('_[k]')).at(-1) ?? '';

describe('pgfault on this kernel', () => {
  beforeAll(async () => {
    requireRoot();
    requireKernelFeature('tracefs', kernelFeatures.tracefs);
    requireKernelFeature('tracepoint exceptions/page_fault_user (x86)', kernelFeatures.tracepoint('exceptions', 'page_fault_user'));
    pagetouch = await buildFixture('pagetouch');
  });

  it('--manifest: faults per stack; the x86 tracepoints, then a kprobe on handle_mm_fault', () => {
    const m = JSON.parse(execFileSync(probeBinary('pgfault'), ['--manifest']).toString());
    expect(m).toEqual(loadManifest('pgfault'));
    const byName = Object.fromEntries(m.record.fields.map((f: { name: string }) => [f.name, f]));
    expect(byName.stack).toMatchObject({ type: 'str', size: 2048 });
    expect(byName.value).toMatchObject({ type: 'u64', unit: 'faults' });
    expect(m.hooks.map((h: { kind: string; target: string }) => `${h.kind}:${h.target}`)).toEqual([
      'tracepoint:exceptions/page_fault_user',
      'tracepoint:exceptions/page_fault_kernel',
      'kprobe:handle_mm_fault',
    ]);
  });

  it('--describe: both exception tracepoints selected together', () => {
    const d = JSON.parse(execFileSync(probeBinary('pgfault'), ['--describe']).toString());
    const sel = d.hooks.filter((h: { selected: boolean }) => h.selected).map((h: { target: string }) => h.target);
    expect(sel).toEqual(['exceptions/page_fault_user', 'exceptions/page_fault_kernel']);
  });

  it(`touching ${PAGES} fresh pages counts ${PAGES} faults in the touching function`, async () => {
    const run = runProbe('pgfault', ['--json', '--comm', 'pagetouch', '--interval', '300'], { waitReady: true });
    await run.ready;
    // The fixture stays until the probe has stopped: its frames are named from its address map,
    // which the loader reads at each interval's end and at the final one on SIGINT.
    const fx = startFixture(pagetouch, [String(PAGES), '60000']);
    const { pid } = await fx.firstLine();
    await run.waitForEvent((e) => e.pid === pid && userLeaf(e.stack) === 'bpfleet_touch_pages');
    const res = await run.stop();
    fx.kill();
    expect(res.code).toBe(0);
    const mine = res.events.filter((e) => e.pid === pid && e.comm === 'pagetouch');
    const inTouch = mine.filter((e) => userLeaf(e.stack) === 'bpfleet_touch_pages');
    // One fault per page written; the function's own text page may fault once more.
    const n = sumField(inTouch, 'value');
    expect(n).toBeGreaterThanOrEqual(PAGES);
    expect(n).toBeLessThanOrEqual(PAGES + 4);
    // The user frames lead to main; the kernel frames are the fault entry.
    for (const e of inTouch) {
      expect(String(e.stack)).toMatch(/(^|;)main;bpfleet_touch_pages;/);
      expect(String(e.stack)).toMatch(/page_fault_\[k\]/);
    }
    // Other faults of the process (loading, libc) are counted too, under their own stacks.
    expect(sumField(mine, 'value')).toBeGreaterThan(n);
    const stats = finalStats('pgfault', res.stderr);
    expect(stats.loader).toEqual({ lost: 0, truncated: 0 });
    expect(stats.kernel.map_full).toBe(0);
  });
});
