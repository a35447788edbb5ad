// The flame graph in a real browser (Debian's chromium through playwright-core): the SVG loads
// as a document without a parser error, a click zooms, "Reset zoom" restores, and Search
// highlights matches and reports their share, each frame counted once.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderFlameGraph } from './svg.js';
import { buildTree } from './tree.js';

const CHROMIUM = '/usr/bin/chromium';
const W = 1200, PAD = 10;
let dir: string;
let browser: Browser;
let page: Page;

const folded = new Map<string, number>([
  ['main;run;compute_hash', 600], ['main;run;parse_json;memcpy', 200], ['main;run;parse_json;alloc', 50],
  ['main;io;read;vfs_read_[k]', 100], ['main;operator<<&"x"', 131],
]);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bpfleet-flame-'));
  writeFileSync(join(dir, 'cpu.svg'), renderFlameGraph(buildTree(folded), { unit: 'samples', title: 'browser check' }));
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
  page = await browser.newPage({ viewport: { width: W, height: 400 } });
  await page.goto(`file://${join(dir, 'cpu.svg')}`);
}, 60_000);
afterAll(async () => {
  await browser?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// The page's code is passed as text: this project compiles without the DOM library.
interface FrameState { width: number; cls: string | null; label: string | null }

/** Width, class and label of the frame named `name`. */
const frame = (name: string) => page.evaluate(`(() => {
  const g = Array.from(document.querySelectorAll('g.f')).find((x) => x.querySelector('title').textContent.split('\\n')[0] === ${JSON.stringify(name)});
  return { width: Number(g.querySelector('rect').getAttribute('width')), cls: g.getAttribute('class'), label: g.querySelector('text').textContent };
})()`) as Promise<FrameState>;

describe('flame graph SVG in chromium', () => {
  it('loads as an SVG document without parser errors', async () => {
    const ok = await page.evaluate(`document.documentElement.localName === 'svg' && !document.querySelector('parsererror')`);
    expect(ok).toBe(true);
    expect((await frame('operator<<&"x"')).label).toMatch(/^operator<</);
  });

  it('zooms on click and resets', async () => {
    const before = await frame('parse_json');
    expect(before.width).toBeCloseTo(((W - 2 * PAD) * 250) / 1081, 1);
    await page.locator('g.f', { hasText: 'parse_json' }).first().click();
    expect((await frame('parse_json')).width).toBeCloseTo(W - 2 * PAD, 0);
    expect((await frame('memcpy')).width).toBeCloseTo(((W - 2 * PAD) * 200) / 250, 0);
    expect((await frame('compute_hash')).cls).toContain('hide');
    expect((await frame('run')).cls).toContain('parent');
    await page.locator('#unzoom').click();
    expect(await frame('parse_json')).toEqual(before);
    expect((await frame('compute_hash')).cls).toBe('f');
  });

  it('searches, highlights and reports the matched share once per frame', async () => {
    page.once('dialog', (d) => void d.accept('memcpy|parse'));
    await page.locator('#search').click();
    await expect.poll(() => page.locator('#matched').textContent()).toBe('Matched: 23.13% (2 frames)'); // 250 of 1081: memcpy is inside parse_json
    const fills = await page.evaluate(`Array.from(document.querySelectorAll('g.f rect')).filter((r) => r.getAttribute('fill') === 'rgb(230,0,230)').length`);
    expect(fills).toBe(2);
    await page.screenshot({ path: join(dir, 'search.png') });
    page.once('dialog', (d) => void d.accept(''));
    await page.locator('#search').click();
    await expect.poll(() => page.locator('#matched').textContent()).toBe('');
  });
});
