import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Fleet, kernelFeatures, portBase, requireKernelFeature, requireRoot, testRoot, waitFor } from '../lib/index.js';
import { buildFixture, sleep, startFixture, type Fixture } from '../probes/stacks-support.js';

// The picture test: a busy loop sampled by `profile` through the whole fleet (deployed
// bundle, agent, controller store), drawn by `bpfleet flamegraph`, and the SVG opened and checked
// to hold the loop's own function as the widest frame under main. Chromium renders it to a PNG
// kept with the test reports, so a person can look at it.

let fleet: Fleet | undefined;
let fixture: Fixture | undefined;

/** Every frame of the SVG: the first line of its `<title>` and the width of its `<rect>`. */
function frames(svg: string): { name: string; width: number }[] {
  const out: { name: string; width: number }[] = [];
  for (const m of svg.matchAll(/<g class="f"[^>]*><title>([^<]*)<\/title><rect\b[^>]*\bwidth="([\d.]+)"/g)) {
    out.push({ name: m[1]!.split('\n')[0]!.trim(), width: Number(m[2]) });
  }
  return out;
}

describe('flame graph of a busy loop, through the fleet', () => {
  beforeAll(() => {
    requireRoot();
    requireKernelFeature('tracefs', kernelFeatures.tracefs);
  });
  afterEach(async (ctx) => {
    fixture?.kill();
    fixture = undefined;
    await fleet?.stop(ctx.task.result?.state === 'fail');
    fleet = undefined;
  });

  it('bpfleet flamegraph draws the stored profile with bpfleet_busyloop_spin as the widest frame under main', async () => {
    const busyloop = await buildFixture('busyloop');
    const base = portBase(4);
    const f = (fleet = new Fleet({ name: 'flame', grpcPort: base, adminPort: base + 1 }));
    await f.startController();
    const token = await f.token(['lab=flame']);
    const agent = await f.startAgent('host', { token });

    fixture = startFixture(busyloop, ['300']); // outlives a slow deploy; killed after the test
    const dep = await f.cli(['deploy', 'profile', '--to', 'lab=flame', '--args', `--pid ${fixture.pid} --freq 99 --interval 500`, '--json']);
    expect(dep.code, dep.stderr + dep.stdout).toBe(0);
    await waitFor('profile running', () => agent.log().includes('profile: ready'), 60_000, () => f.logs());
    await sleep(4000);
    await waitFor('profile records stored', () => f.storedEvents() >= 3, 30_000, () => f.logs());

    const out = mkdtempSync(path.join(os.tmpdir(), 'bpfleet-flame-'));
    try {
      const svgPath = path.join(out, 'cpu.svg');
      const r = await f.cli(['flamegraph', '--probe', 'profile', '--device', 'lab=flame', '--title', 'busyloop, 99 Hz', '-o', svgPath]);
      expect(r.code, r.stderr).toBe(0);
      const svg = readFileSync(svgPath, 'utf8');
      expect(svg.startsWith('<?xml') || svg.startsWith('<svg')).toBe(true);
      expect(svg).toContain('</svg>');
      const all = frames(svg);
      const spin = all.filter((x) => x.name === 'bpfleet_busyloop_spin');
      expect(spin.length, `frames: ${[...new Set(all.map((x) => x.name))].slice(0, 40).join(', ')}`).toBeGreaterThan(0);
      const main = all.filter((x) => x.name === 'main');
      expect(main.length).toBeGreaterThan(0);
      // The loop is where the process spends its time: its frame is at least 80% of main's width.
      const widest = (xs: { width: number }[]) => Math.max(...xs.map((x) => x.width));
      expect(widest(spin) / widest(main)).toBeGreaterThan(0.8);
      // The SVG is interactive: the zoom/search script is embedded.
      expect(svg).toMatch(/<script[\s\S]*<\/script>/);

      // A picture for people, kept with the reports.
      const shots = path.join(testRoot, 'reports', 'screenshots');
      mkdirSync(shots, { recursive: true });
      const png = path.join(shots, 'flamegraph-busyloop.png');
      const profileDir = mkdtempSync(path.join(os.tmpdir(), 'bpfleet-chromium-'));
      try {
        execFileSync('/usr/bin/chromium', ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
          '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${profileDir}`,
          `--screenshot=${png}`, '--window-size=1200,700', `file://${svgPath}`], { stdio: 'ignore', timeout: 60_000 });
      } finally {
        rmSync(profileDir, { recursive: true, force: true });
      }
      expect(statSync(png).size).toBeGreaterThan(5000);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 240_000);
});
