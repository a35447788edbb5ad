import { describe, expect, it } from 'vitest';
import type { Folded } from './folded.js';
import { diffColor, frameColor } from './palette.js';
import { escapeXml, fitLabel, renderFlameGraph } from './svg.js';
import { buildDiffTree, buildTree } from './tree.js';
import { findAll, parseXml, type XmlElement } from './xml-check.js';

const W = 1200, PAD = 10, FH = 16;
const AWKWARD = 'operator<<&"x"';

/** A synthetic profile: a hot leaf, a kernel path, an awkward C++ name, tiny frames. */
function profile(): Folded {
  const f: Folded = new Map([
    ['main;run;compute_hash', 600],
    ['main;run;parse_json;memcpy', 200],
    ['main;run;parse_json;alloc', 50],
    ['main;io_wait;read;__x64_sys_read_[k];vfs_read_[k]', 100],
    [`main;${AWKWARD}`, 30],
    ['main;0x7fab12;…', 20],
    ['main;a_function_with_a_rather_long_name_that_cannot_fit', 40],
    ['main;speck', 1],
  ]);
  for (let i = 0; i < 40; i++) f.set(`main;tiny;fn_${i}`, 1);
  return f;
}

interface Frame { name: string; info: string; value: number; x: number; w: number; y: number; fill: string; label: string }

function frames(svg: XmlElement): Frame[] {
  return findAll(svg, (e) => e.name === 'g' && e.attrs['class'] === 'f').map((g) => {
    const rects = g.children.filter((c) => c.name === 'rect'), titles = g.children.filter((c) => c.name === 'title');
    const texts = g.children.filter((c) => c.name === 'text');
    expect([rects.length, titles.length, texts.length]).toEqual([1, 1, 1]);
    const r = rects[0]!.attrs;
    return { name: titles[0]!.text.split('\n')[0]!, info: titles[0]!.text, value: Number(g.attrs['data-v']), x: Number(r['x']), w: Number(r['width']),
      y: Number(r['y']), fill: r['fill']!, label: texts[0]!.text };
  });
}

const hue = (fill: string) => Number(/^hsl\(([\d.]+),/.exec(fill)?.[1] ?? NaN);
const rgb = (fill: string) => (/^rgb\((\d+),(\d+),(\d+)\)$/.exec(fill) ?? []).slice(1).map(Number);

describe('flame graph SVG', () => {
  const tree = buildTree(profile());
  const text = renderFlameGraph(tree, { unit: 'samples', title: 'CPU <profile> & more', minWidthPx: 2 });
  const svg = parseXml(text);
  const fs = frames(svg);
  const byName = (n: string) => fs.find((f) => f.name === n)!;

  it('is well-formed XML with a frame group (rect, title, text) per drawn frame', () => {
    expect(svg.name).toBe('svg');
    expect(svg.attrs['xmlns']).toBe('http://www.w3.org/2000/svg');
    expect(fs.length).toBeGreaterThan(10);
    expect(findAll(svg, (e) => e.name === 'text' && e.attrs['class'] === 'title')[0]!.text).toBe('CPU <profile> & more');
  });

  it('draws each frame as wide as its value, callees inside their caller, the busiest widest', () => {
    const total = tree.value;
    expect(total).toBe(1081);
    for (const f of fs) expect(Math.abs(f.w - (f.value * (W - 2 * PAD)) / total)).toBeLessThan(0.01);
    const root = byName('all');
    expect(root.w).toBeCloseTo(W - 2 * PAD, 1);
    for (const f of fs.filter((x) => x !== root)) {
      const parents = fs.filter((p) => p.y === f.y + FH && p.x <= f.x + 0.01 && p.x + p.w >= f.x + f.w - 0.01);
      expect(parents, `caller of ${f.name}`).toHaveLength(1);
    }
    for (const p of fs) {
      const kids = fs.filter((c) => c.y === p.y - FH && c.x >= p.x - 0.01 && c.x + c.w <= p.x + p.w + 0.01);
      expect(kids.reduce((s, c) => s + c.w, 0)).toBeLessThanOrEqual(p.w + 0.02);
    }
    const underMain = fs.filter((f) => f.y === byName('main').y - FH);
    const widest = underMain.reduce((a, b) => (b.w > a.w ? b : a));
    expect(widest.name).toBe('run');
    expect(byName('compute_hash').w).toBeGreaterThan(byName('parse_json').w);
  });

  it('says value, unit and share in each tooltip', () => {
    expect(byName('compute_hash').info).toBe('compute_hash\n600 samples, 55.50%');
    expect(byName('run').info).toBe('run\n850 samples, 78.63%');
  });

  it('escapes frame names and titles', () => {
    expect(byName(AWKWARD).info.startsWith(`${AWKWARD}\n30 samples`)).toBe(true);
    expect(text).toContain('operator&lt;&lt;&amp;&quot;x&quot;');
    expect(text).not.toContain(AWKWARD);
    expect(escapeXml('a\u0001b\'')).toBe('a\uFFFDb&apos;');
  });

  it('merges frames narrower than the cut-off and counts what it cannot draw', () => {
    const merged = byName('(40 narrow frames)');
    expect(merged.value).toBe(40);
    expect(merged.w).toBeCloseTo(byName('tiny').w, 2);
    expect(fs.some((f) => f.name.startsWith('fn_') || f.name === 'speck')).toBe(false);
    const foot = findAll(svg, (e) => e.attrs['class'] === 'foot')[0]!;
    expect(foot.text).toBe('1 frame narrower than 2 px not drawn, nor their callees (0.09% of the total, counted in their callers)');
    // main keeps the width of everything under it, speck included
    expect(byName('main').w).toBeCloseTo(byName('all').w, 2);
  });

  it('cuts labels to fit and colours kernel, user and unsymbolized frames apart', () => {
    const long = byName('a_function_with_a_rather_long_name_that_cannot_fit');
    expect(long.label.endsWith('..')).toBe(true);
    expect(long.label.length * 12 * 0.59).toBeLessThanOrEqual(long.w);
    expect(byName('compute_hash').label).toBe('compute_hash');
    expect(fitLabel('abcdef', 10, 12)).toBe('');
    for (const k of ['__x64_sys_read_[k]', 'vfs_read_[k]']) expect(hue(byName(k).fill)).toBeGreaterThanOrEqual(46);
    for (const u of ['compute_hash', 'memcpy', 'read', 'run']) expect(hue(byName(u).fill)).toBeLessThanOrEqual(32);
    expect(byName('0x7fab12').fill).toMatch(/^hsl\(30,8%,/);
    const missing = frames(parseXml(renderFlameGraph(buildTree(new Map([['main;[missing user stack];do_idle_[k]', 5]])), { unit: 'samples' })));
    expect(missing.find((f) => f.name === '[missing user stack]')!.fill).toMatch(/^hsl\(30,8%,/);
    expect(frameColor('memcpy', 'user')).toBe(frameColor('memcpy', 'user'));
    expect(frameColor('memcpy', 'user')).not.toBe(frameColor('memmove', 'user'));
  });

  it('embeds the zoom and search script as CDATA and is the same every time', () => {
    const script = findAll(svg, (e) => e.name === 'script')[0]!;
    expect(script.text).toContain('function zoom(');
    expect(script.text).toContain('function search(');
    expect(text).toContain('<![CDATA[');
    expect(findAll(svg, (e) => e.attrs['id'] === 'search')).toHaveLength(1);
    expect(renderFlameGraph(buildTree(profile()), { unit: 'samples', title: 'CPU <profile> & more', minWidthPx: 2 })).toBe(text);
  });

  it('renders an empty window as a valid SVG saying so', () => {
    const empty = parseXml(renderFlameGraph(buildTree(new Map()), { unit: 'ns' }));
    expect(findAll(empty, (e) => e.name === 'text').some((t) => t.text === 'no samples in this window')).toBe(true);
    expect(frames(empty)).toHaveLength(0);
  });

  it('formats ns and bytes values', () => {
    const t = renderFlameGraph(buildTree(new Map([['sleep;schedule_[k]', 2_500_000]])), { unit: 'ns' });
    expect(frames(parseXml(t)).find((f) => f.name === 'schedule_[k]')!.info).toBe('schedule_[k]\n2.50 ms, 100.00%');
    const b = renderFlameGraph(buildTree(new Map([['main;malloc', 3 * 1024 * 1024]])), { unit: 'bytes' });
    expect(frames(parseXml(b)).find((f) => f.name === 'malloc')!.info).toBe('malloc\n3.0 MiB, 100.00%');
  });
});

describe('differential flame graph', () => {
  const baseline: Folded = new Map([['main;a', 50], ['main;b', 40], ['main;gone', 10]]);
  const shown: Folded = new Map([['main;a', 80], ['main;b', 10], ['main;c', 10]]);
  const render = (s: Folded) => {
    const { tree, summary } = buildDiffTree(baseline, s);
    return { summary, svg: parseXml(renderFlameGraph(tree, { unit: 'samples', diff: summary })) };
  };

  it('takes widths from the shown window and colours by the change of share: red grew, blue shrank', () => {
    const { svg, summary } = render(shown);
    expect(summary).toEqual({ shownTotal: 100, baselineTotal: 100, vanishedValue: 10, vanishedStacks: 1 });
    const fs = frames(svg);
    const f = (n: string) => fs.find((x) => x.name === n)!;
    expect(f('a').w).toBeCloseTo((80 * (W - 2 * PAD)) / 100, 1);
    const [ar, ag, ab] = rgb(f('a').fill), [br, bg, bb] = rgb(f('b').fill), [cr, , cb] = rgb(f('c').fill);
    expect(ar).toBe(250); expect(ab).toBeLessThan(ar!); expect(ag).toBe(ab);
    expect(bb).toBe(250); expect(br).toBeLessThan(bb!); expect(bg).toBe(br);
    expect(cr).toBe(250); expect(cb).toBeGreaterThan(ab!); // grew less than a: paler red
    expect(f('main').fill).toBe('rgb(238,238,238)'); // 100% in both
    expect(f('a').info).toBe('a\nnow: 80 samples (80.00%)\nbaseline: 50 samples (50.00%)\nchange: +30.00 percentage points');
    expect(f('c').info).toContain('change: +10.00 percentage points (new)');
    expect(f('b').info).toContain('change: -30.00 percentage points');
    expect(findAll(svg, (e) => e.attrs['class'] === 'foot')[0]!.text).toContain('1 baseline stack is gone (10.00% of the baseline)');
  });

  it('compares shares, so a window ten times longer gives the same colours', () => {
    const long = new Map([...shown].map(([k, v]) => [k, v * 10]));
    const colours = (svg: XmlElement) => frames(svg).map((f) => [f.name, f.fill]);
    expect(colours(render(long).svg)).toEqual(colours(render(shown).svg));
  });

  it('scales colour to the largest change', () => {
    expect(diffColor(0.3, 0.3)).toBe('rgb(250,60,60)');
    expect(diffColor(-0.3, 0.3)).toBe('rgb(60,60,250)');
    expect(diffColor(0, 0.3)).toBe('rgb(238,238,238)');
  });
});
