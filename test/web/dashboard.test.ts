/// <reference lib="dom" />
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { Fleet, portBase, requireRoot, tcpgen, waitFor } from '../lib/index.js';
import { buildFixture, startFixture } from '../probes/stacks-support.js';
import { launchChromium, requireBrowserAndPage, screenshotPath, type Browser } from './browser.js';

// The dashboard in a real browser (Debian's headless Chromium driven by playwright-core) against
// the real controller (`bpfleet controller --http`) and a real agent running real probes: log in,
// the fleet page lists the device with its capability badges, a deploy from the page starts
// tcpstates, loopback connections show up in the probe table while the page stays loaded (SSE),
// and profile's flame graph is drawn and searchable. Screenshots of every page go to
// test/reports/screenshots/.

let fleet: Fleet | undefined;
let browser: Browser | undefined;
let page: Page;
let web = '';
let adminToken = '';
let device = { id: '', name: '' };
let failed = false;
const base = portBase(8);
const tcpPort = base + 3;

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: screenshotPath(`dashboard-${name}`), fullPage: true });
}

async function go(hash: string): Promise<void> {
  await page.evaluate((h) => { location.hash = h; }, hash);
}

describe('web dashboard in headless Chromium, real controller and agent', () => {
  beforeAll(async () => {
    requireRoot();
    requireBrowserAndPage();
    const f = (fleet = new Fleet({ name: 'web', grpcPort: base, adminPort: base + 1 }));
    await f.startController(['--http', `127.0.0.1:${base + 2}`]);
    web = `http://127.0.0.1:${base + 2}`;
    await waitFor('dashboard line', () => f.controller!.log().includes(`dashboard on ${web}/`), 10_000, () => f.logs());
    adminToken = (JSON.parse(readFileSync(`${f.dir}/cfg/bpfleet/controller.json`, 'utf8')) as { adminToken: string }).adminToken;
    const token = await f.token(['lab=web']);
    await f.startAgent('board1', { token, extra: ['--name', 'web-board-1'] });
    const r = await f.cli(['devices', '--json']);
    const devs = JSON.parse(r.stdout) as { id: string; name: string }[];
    device = devs.find((d) => d.name === 'web-board-1')!;
    expect(device, r.stdout).toBeTruthy();
    browser = await launchChromium();
    page = await browser.context.newPage();
    page.on('pageerror', (e) => { console.error(`page error: ${e.message}`); failed = true; });
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await fleet?.stop(failed);
  });

  const step = (name: string, fn: () => Promise<void>, ms = 60_000) => it(name, async () => {
    try { await fn(); } catch (e) { failed = true; await shot(`failed-${name.replace(/\W+/g, '-')}`).catch(() => undefined); throw e; }
  }, ms);

  step('refuses the API without a session and a wrong token at the login form', async () => {
    const res = await fetch(`${web}/api/v1/devices`);
    expect(res.status).toBe(401);
    await page.goto(web);
    await page.waitForSelector('#login');
    await page.fill('#token', 'x'.repeat(43));
    await page.click('#login button[type=submit]');
    await page.waitForFunction(() => /wrong token/.test(document.querySelector('#login-error')?.textContent ?? ''));
    await shot('login');
  });

  step('logs in with the admin token: an HttpOnly session cookie, then the fleet page', async () => {
    await page.fill('#token', adminToken);
    await page.click('#login button[type=submit]');
    await page.waitForSelector('#page-fleet[data-loaded="1"]');
    const cookies = await browser!.context.cookies(web);
    const c = cookies.find((x) => x.name === 'bpfleet_session');
    expect(c).toMatchObject({ httpOnly: true, sameSite: 'Strict' });
    expect(await page.evaluate(() => document.cookie)).toBe(''); // scripts cannot read it
  });

  step('the fleet page lists the device: board, arch, kernel, online, capability badges, agent version', async () => {
    const row = page.locator(`#fleet-table tr[data-device="${device.name}"]`);
    await row.waitFor();
    const cells = await row.locator('td').allTextContents();
    // Device, Board, Arch, Kernel, Transport, State, Last seen, Capabilities, Agent, Spool, Stored, Lost, Labels
    expect(cells[0]).toBe(device.name);
    expect(cells[1]).toBe('host');
    expect(cells[2]).toBe('x86_64');
    expect(cells[3]).toBe((await import('node:os')).release());
    expect(cells[4]).toBe('grpc');
    expect(cells[5]).toBe('online');
    expect(cells[8]).toMatch(/^\d+\.\d+\.\d+/);
    expect(cells[12]).toBe('lab=web');
    // Each badge says what the agent found on this kernel (green: has it, red: lacks it), as the controller stored it.
    const r = await fleet!.cli(['devices', '--json']);
    const caps = (JSON.parse(r.stdout) as { name: string; facts: { caps: Record<string, boolean> } }[]).find((d) => d.name === device.name)!.facts.caps;
    for (const [b, k] of [['BTF', 'btf'], ['kprobes', 'kprobes'], ['JIT', 'jit']] as const) {
      expect(typeof caps[k]).toBe('boolean');
      const cls = await row.locator('.badge', { hasText: new RegExp(`^${b}$`) }).getAttribute('class');
      expect(cls, b).toBe(`badge ${caps[k] ? 'on' : 'off'}`);
    }
    expect(await page.textContent('#devices-online')).toBe('1');
    await shot('fleet');
  });

  step('deploys tcpstates to lab=web from the page, with per-device progress, and the probe runs', async () => {
    await go('#/deploy');
    await page.waitForSelector('#deploy-probe option[value="tcpstates"]', { state: 'attached' });
    await page.selectOption('#deploy-probe', 'tcpstates');
    await page.fill('#deploy-selector', 'lab=web');
    await page.fill('#deploy-args', `--rport ${tcpPort}`);
    await page.click('#deploy-go');
    await page.waitForSelector('#deploy-done[data-ok]', { timeout: 60_000 });
    expect(await page.getAttribute('#deploy-done', 'data-ok'), await page.textContent('#deploy-progress') ?? '').toBe('true');
    const cells = await page.locator(`#deploy-table tr[data-device="${device.name}"] td`).allTextContents();
    expect(cells[1]).toBe('installed');
    expect(cells[2]).toMatch(/^running \S+/);
    // The controller's own view (CLI): a run of tcpstates on the device, running.
    await waitFor('tcpstates running', async () => {
      const r = await fleet!.cli(['runs', '--json']);
      return r.code === 0 && (JSON.parse(r.stdout) as { probe: string; state: string }[]).some((x) => x.probe === 'tcpstates' && x.state === 'running');
    }, 30_000, () => fleet!.logs());
    await shot('deploy');
  }, 90_000);

  step('tcpstates events appear live in the probe table, without a reload', async () => {
    await go(`#/probe/tcpstates?device=${device.id}`);
    await page.waitForSelector('#probe-table thead th');
    const headers = await page.locator('#probe-table thead th').allTextContents();
    expect(headers).toEqual(expect.arrayContaining(['time', 'device', 'comm', 'saddr', 'rport', 'oldstate', 'newstate']));
    expect(await page.locator('#probe-table tbody tr').count()).toBe(0);
    await page.evaluate(() => { (window as unknown as { marker: number }).marker = 42; });
    const made = await tcpgen({ port: tcpPort, send: 1000, recv: 1000, count: 3 });
    expect(made.conns.length).toBe(3);
    // 3 connections x 5 client-side transitions (the server side is on the listening port: --rport filters it out).
    await page.waitForFunction(() => document.querySelectorAll('#probe-table tbody tr').length >= 15, undefined, { timeout: 30_000 });
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42); // same document: pushed, not reloaded
    const rport = headers.indexOf('rport');
    const ports = await page.locator(`#probe-table tbody tr td:nth-child(${rport + 1})`).allTextContents();
    expect(new Set(ports)).toEqual(new Set([String(tcpPort)]));
    const newstates = await page.locator(`#probe-table tbody tr td:nth-child(${headers.indexOf('newstate') + 1})`).allTextContents();
    expect(newstates).toEqual(expect.arrayContaining(['SYN_SENT', 'ESTABLISHED', 'FIN_WAIT1', 'CLOSE']));
    // The filter narrows the table to matching rows.
    await page.fill('#probe-filter', 'newstate=ESTABLISHED');
    await page.waitForFunction(() => document.querySelectorAll('#probe-table tbody tr').length === 3);
    await page.fill('#probe-filter', '');
    await page.waitForFunction(() => Number(document.querySelector('.charts')?.getAttribute('data-points') ?? 0) > 0);
    await shot('probe-tcpstates');
  });

  step('the device page shows its running probe and heartbeat charts', async () => {
    await go(`#/device/${device.id}`);
    await page.waitForSelector('#device-runs tr[data-probe="tcpstates"]');
    expect(await page.locator('#device-charts .chart canvas').count()).toBe(4);
    // Heartbeats every 5 s: at least two points in the CPU chart soon (history plus live).
    await page.waitForFunction(() => document.querySelectorAll('#device-charts .chart').length === 4, undefined, { timeout: 5000 });
    await waitFor('heartbeats stored', () => fleet!.query((d) => (d.prepare('SELECT COUNT(*) AS n FROM heartbeats').get() as { n: number }).n >= 2), 20_000);
    await page.reload();
    await page.waitForSelector('#device-runs tr[data-probe="tcpstates"]');
    await page.waitForTimeout(500);
    await shot('device');
  });

  step('profile deployed from the page: the flame graph is drawn, search highlights the busy loop', async () => {
    const busyloop = await buildFixture('busyloop');
    await go('#/deploy');
    await page.waitForSelector('#deploy-probe option[value="profile"]', { state: 'attached' });
    await page.selectOption('#deploy-probe', 'profile');
    await page.fill('#deploy-selector', device.name);
    await page.fill('#deploy-args', '--freq 99 --interval 1000');
    await page.click('#deploy-go');
    await page.waitForSelector('#deploy-done[data-ok]', { timeout: 60_000 });
    expect(await page.getAttribute('#deploy-done', 'data-ok'), await page.textContent('#deploy-progress') ?? '').toBe('true');
    const fx = startFixture(busyloop, ['10']);
    try {
      await waitFor('profile samples of busyloop stored', async () => {
        const r = await fleet!.cli(['events', '--probe', 'profile', '--limit', '100000', '--json']);
        return r.code === 0 && r.stdout.includes('bpfleet_busyloop_spin');
      }, 45_000, () => fleet!.logs());
    } finally {
      fx.child.kill('SIGKILL');
    }
    await go('#/stacks?probe=profile');
    await page.waitForFunction(() => Number(document.querySelector('canvas.flame')?.getAttribute('data-drawn') ?? 0) > 3, undefined, { timeout: 30_000 });
    expect(Number(await page.getAttribute('canvas.flame', 'data-matched'))).toBe(0);
    await page.fill('#stacks-search', 'bpfleet_busyloop_spin');
    await page.waitForFunction(() => Number(document.querySelector('canvas.flame')?.getAttribute('data-matched') ?? 0) >= 1);
    expect(await page.textContent('#stacks-match')).toMatch(/^\d+ frames? match, \d+\.\d% of the total$/);
    await shot('stacks');
    // Zoom: a click on the matching frame's column redraws with fewer frames.
    const before = Number(await page.getAttribute('canvas.flame', 'data-drawn'));
    const box = (await page.locator('canvas.flame').boundingBox())!;
    await page.locator('canvas.flame').click({ position: { x: 5, y: box.height - 18 - 9 } }); // the first frame above the root
    await page.waitForFunction((n) => Number(document.querySelector('canvas.flame')?.getAttribute('data-drawn')) < n, before);
    expect(await page.getAttribute('canvas.flame', 'data-zoom')).not.toBe('');
    await shot('stacks-zoomed');
    await page.click('#stacks-reset');
    await page.waitForFunction((n) => Number(document.querySelector('canvas.flame')?.getAttribute('data-drawn')) === n, before);
    // Differential: the last 5 minutes against the 5 before (no samples then: every frame is new, drawn red).
    await page.fill('#stacks-search', '');
    await page.check('#stacks-diff');
    await page.waitForFunction(() => /against the 5m before: 0 samples/.test(document.querySelector('#stacks-status')?.textContent ?? ''));
    await page.waitForFunction(() => Number(document.querySelector('canvas.flame')?.getAttribute('data-drawn') ?? 0) > 3);
    const px = await page.evaluate(() => {
      const c = document.querySelector('canvas.flame') as HTMLCanvasElement;
      const d = c.getContext('2d')!.getImageData(Math.floor(c.width / 2), c.height - 8, 1, 1).data; // the root frame
      return [d[0], d[1], d[2]];
    });
    expect(px, 'the root frame of a diff against an empty baseline is pure red').toEqual([255, 0, 0]);
    await shot('stacks-diff');
  }, 150_000);

  step('the smoke matrix section answers (results, none yet, or not available), and logout ends the session', async () => {
    await go('#/deploy');
    await page.waitForFunction(() => (document.querySelector('#smoke-matrix')?.textContent ?? '') !== '');
    await shot('deploy-smoke');
    await page.click('#logout');
    await page.waitForSelector('#login');
    const status = await page.evaluate(async () => (await fetch('/api/v1/devices')).status);
    expect(status).toBe(401);
  });
});
