/// <reference lib="dom" />
// Cost of the web dashboard with many devices (issue 7): a real controller with --http, a
// simulated fleet of N real agent sessions (`bpfleet sim`: AgentSession + spool + gRPC transport
// per device, replaying recorded tcpstates output, heartbeats every 5 s), and Debian's headless
// Chromium (playwright-core) on the dashboard. Per N it measures:
//   first render  navigation start -> the fleet table holds all N rows (performance mark set by
//                 the page once it has rendered; and wall time seen from here)
//   memory        JS heap used and DOM nodes (CDP Performance.getMetrics), RSS of every browser process
//   live updates  over a window on the fleet page: SSE messages and bytes the server pushed, fleet
//                 events they folded, records stored, and the CPU the browser processes used;
//                 then the same on the tcpstates probe page (event rows pushed to the table, rows
//                 the server left out as more than a message holds, records stored meanwhile);
//                 in both windows the controller's CPU too (the probe page's rows are read from
//                 the store: the difference to the fleet window is what following costs), and
//                 the 1-minute load average at the end of the window (2 shared cores skew all of it)
// Printed as a table, with ratios to the first (baseline) size.
//
//   npx tsx test/bench/dashboard.bench.ts [--devices 10,500] [--rate 2] [--window 20] [--json]
//
// Needs root (the controller's data dir and ports only; the sim replays, it loads no eBPF),
// /usr/bin/chromium and the built page (npx nx run controller:build-web).
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Page } from 'playwright-core';
import { CLI, Fleet, portBase, waitFor } from '../lib/index.js';
import { browserPids, launchChromium, procUsage, requireBrowserAndPage } from '../web/browser.js';

const { values: opt } = parseArgs({
  options: {
    devices: { type: 'string', default: '10,500' },
    rate: { type: 'string', default: '2' },
    window: { type: 'string', default: '20' },
    json: { type: 'boolean', default: false },
  },
});
const SIZES = opt.devices.split(',').map(Number);
const RATE = Number(opt.rate);
const WINDOW_S = Number(opt.window);

interface Row {
  devices: number;
  running: number;
  connectS: number;
  firstRenderMs: number;
  firstRenderWallMs: number;
  heapMiB: number;
  domNodes: number;
  browserRssMiB: number;
  fleetMsgsPerS: number;
  fleetKiBPerS: number;
  fleetEventsPerS: number;
  recordsPerS: number;
  fleetBrowserCpuPct: number;
  fleetControllerCpuPct: number;
  fleetLoad1: number;
  probeRowsPerS: number;
  probeSkippedPerS: number;
  probeStoredPerS: number;
  probeKiBPerS: number;
  probeBrowserCpuPct: number;
  probeControllerCpuPct: number;
  probeLoad1: number;
  probeHeapMiB: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function metrics(page: Page): Promise<Record<string, number>> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  const { metrics: m } = await cdp.send('Performance.getMetrics');
  await cdp.detach();
  return Object.fromEntries(m.map((x) => [x.name, x.value]));
}

async function webStats(page: Page): Promise<{ sent: number; bytes: number; hubEvents: number }> {
  return page.evaluate(async () => (await (await fetch('/web/stats')).json()) as { sent: number; bytes: number; hubEvents: number });
}

async function run(n: number, ports: number): Promise<Row> {
  const f = new Fleet({ name: `dash-bench-${n}`, grpcPort: ports, adminPort: ports + 1 });
  const web = `http://127.0.0.1:${ports + 2}`;
  let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;
  try {
    await f.startController(['--http', `127.0.0.1:${ports + 2}`]);
    const cfg = JSON.parse(readFileSync(path.join(f.dir, 'cfg', 'bpfleet', 'controller.json'), 'utf8')) as { adminUrl: string; adminToken: string };
    const admin = async <T>(p: string): Promise<T> =>
      (await (await fetch(cfg.adminUrl + p, { headers: { authorization: `Bearer ${cfg.adminToken}` } })).json()) as T;
    const started = Date.now();
    const sim = f.spawn(CLI, ['sim', '--devices', String(n), '--rate', String(RATE), '--seconds', '900', '--processes', '2',
      '--controller', f.grpc]);
    let simExit: number | string | undefined;
    void sim.exited.then((c) => { simExit = c; });
    const simAlive = () => { if (simExit !== undefined) throw new Error(`bpfleet sim exited (${simExit}):\n${sim.log().slice(-3000)}`); };
    await waitFor(`${n} simulated devices online`, async () => {
      simAlive();
      const { devices } = await admin<{ devices: { online: boolean }[] }>('/api/v1/devices');
      return devices.filter((d) => d.online).length >= n;
    }, 600_000, () => sim.log().slice(-3000));
    // Every device's run settled (running or failed: under load some simulated loaders fail to
    // start; the table says how many ran). Heartbeats come from all N either way.
    // (a deploy to some devices can fail as well: settled means no run starting and no new run for 15 s).
    let running = 0, lastCount = -1, sameSince = Date.now();
    await waitFor(`tcpstates started on the ${n} devices`, async () => {
      simAlive();
      const { runs } = await admin<{ runs: { state: string }[] }>('/api/v1/runs?probe=tcpstates');
      running = runs.filter((r) => r.state === 'running').length;
      if (runs.length !== lastCount) { lastCount = runs.length; sameSince = Date.now(); }
      return running > 0 && runs.every((r) => r.state !== 'starting') && (runs.length >= n || Date.now() - sameSince > 15_000);
    }, 600_000, () => sim.log().slice(-3000));
    const connectS = (Date.now() - started) / 1000;
    process.stderr.write(`${n} devices: connected in ${connectS.toFixed(1)} s, tcpstates running on ${running}\n`);
    await sleep(6000); // a heartbeat round from everyone

    browser = await launchChromium();
    const page = await browser.context.newPage();
    await page.goto(web);
    await page.waitForSelector('#login');
    await page.fill('#token', cfg.adminToken);
    await page.click('#login button[type=submit]');
    await page.waitForSelector('#page-fleet[data-loaded="1"]');

    // First render, from a fresh navigation (the session cookie is kept).
    const t0 = Date.now();
    await page.goto(`${web}/#/fleet`, { waitUntil: 'commit' });
    await page.reload({ waitUntil: 'commit' });
    await page.waitForFunction((k) => document.querySelectorAll('#fleet-table tbody tr').length >= k && document.querySelector('#page-fleet[data-loaded="1"]'), n, { timeout: 120_000, polling: 50 });
    const firstRenderWallMs = Date.now() - t0;
    const firstRenderMs = await page.evaluate(() => performance.getEntriesByName('fleet-rendered')[0]?.startTime ?? NaN);
    await sleep(2000);
    const m0 = await metrics(page);
    const pids = browserPids(browser.userDir);
    const rss = procUsage(pids).rssBytes;
    const controllerCpuMs = () => procUsage([f.controller!.child.pid!]).cpuMs;

    // Live updates on the fleet page.
    const storedNow = async () => (await admin<{ streams: { storedRecords: number }[] }>('/api/v1/stats')).streams.reduce((a, s) => a + s.storedRecords, 0);
    const r0 = await storedNow();
    let s0 = await webStats(page), c0 = procUsage(browserPids(browser.userDir)).cpuMs, k0 = controllerCpuMs();
    let w0 = Date.now();
    await sleep(WINDOW_S * 1000);
    let s1 = await webStats(page), c1 = procUsage(browserPids(browser.userDir)).cpuMs, k1 = controllerCpuMs();
    const r1 = await storedNow();
    let dt = (Date.now() - w0) / 1000;
    // /web/stats counts every SSE client; only this page's one is open.
    const fleetRow = {
      fleetMsgsPerS: (s1.sent - s0.sent) / dt, fleetKiBPerS: (s1.bytes - s0.bytes) / 1024 / dt,
      fleetEventsPerS: (s1.hubEvents - s0.hubEvents) / dt, recordsPerS: (r1 - r0) / dt, fleetBrowserCpuPct: (100 * (c1 - c0)) / 1000 / dt,
      fleetControllerCpuPct: (100 * (k1 - k0)) / 1000 / dt, fleetLoad1: os.loadavg()[0]!,
    };

    // Live updates on the probe page: every stored tcpstates event of the fleet pushed as a row.
    await page.evaluate(() => { location.hash = '#/probe/tcpstates'; });
    await page.waitForSelector('#probe-count');
    await sleep(3000); // the last 10 minutes first
    // Rows the page got, and rows the server left out (more than a message holds per tick).
    const counts = () => page.evaluate(() => {
      const text = document.querySelector('#probe-count')?.textContent ?? '';
      return { received: Number(/^(\d+) received/.exec(text)?.[1] ?? 0), skipped: Number(/\((\d+) more skipped/.exec(text)?.[1] ?? 0) };
    });
    s0 = await webStats(page); c0 = procUsage(browserPids(browser.userDir)).cpuMs; k0 = controllerCpuMs();
    const q0 = await counts(), p0 = await storedNow();
    w0 = Date.now();
    await sleep(WINDOW_S * 1000);
    s1 = await webStats(page); c1 = procUsage(browserPids(browser.userDir)).cpuMs; k1 = controllerCpuMs();
    const q1 = await counts(), p1 = await storedNow();
    dt = (Date.now() - w0) / 1000;
    const m1 = await metrics(page);

    return {
      devices: n, running, connectS, firstRenderMs, firstRenderWallMs,
      heapMiB: (m0['JSHeapUsedSize'] ?? 0) / 2 ** 20, domNodes: m0['Nodes'] ?? 0, browserRssMiB: rss / 2 ** 20,
      ...fleetRow,
      probeRowsPerS: (q1.received - q0.received) / dt, probeSkippedPerS: (q1.skipped - q0.skipped) / dt, probeStoredPerS: (p1 - p0) / dt, probeKiBPerS: (s1.bytes - s0.bytes) / 1024 / dt, probeBrowserCpuPct: (100 * (c1 - c0)) / 1000 / dt,
      probeControllerCpuPct: (100 * (k1 - k0)) / 1000 / dt, probeLoad1: os.loadavg()[0]!,
      probeHeapMiB: (m1['JSHeapUsedSize'] ?? 0) / 2 ** 20,
    };
  } finally {
    await browser?.close();
    await f.stop();
  }
}

function table(rows: Row[]): string {
  const base = rows[0]!;
  const cols: [string, (r: Row) => number, number][] = [
    ['devices', (r) => r.devices, 0], ['running tcpstates', (r) => r.running, 0], ['connect s', (r) => r.connectS, 1],
    ['first render ms', (r) => r.firstRenderMs, 0], ['(wall ms)', (r) => r.firstRenderWallMs, 0],
    ['JS heap MiB', (r) => r.heapMiB, 1], ['DOM nodes', (r) => r.domNodes, 0], ['browser RSS MiB', (r) => r.browserRssMiB, 0],
    ['fleet: SSE msg/s', (r) => r.fleetMsgsPerS, 2], ['KiB/s', (r) => r.fleetKiBPerS, 1], ['fleet events/s', (r) => r.fleetEventsPerS, 0],
    ['records stored/s', (r) => r.recordsPerS, 0], ['browser CPU %', (r) => r.fleetBrowserCpuPct, 1],
    ['controller CPU %', (r) => r.fleetControllerCpuPct, 1], ['load avg 1 min', (r) => r.fleetLoad1, 2],
    ['probe: rows/s', (r) => r.probeRowsPerS, 0], ['(skipped rows/s)', (r) => r.probeSkippedPerS, 0],
    ['(records stored/s)', (r) => r.probeStoredPerS, 0], ['KiB/s', (r) => r.probeKiBPerS, 1], ['browser CPU %', (r) => r.probeBrowserCpuPct, 1],
    ['controller CPU %', (r) => r.probeControllerCpuPct, 1], ['load avg 1 min', (r) => r.probeLoad1, 2],
    ['heap MiB', (r) => r.probeHeapMiB, 1],
  ];
  const lines = [`| ${['measure', ...rows.map((r) => `${r.devices} devices`), ...rows.slice(1).map(() => `x vs ${base.devices}`)].join(' | ')} |`,
    `|${' --- |'.repeat(1 + rows.length * 2 - 1)}`];
  for (const [name, get, digits] of cols.slice(1)) {
    lines.push(`| ${[name, ...rows.map((r) => get(r).toFixed(digits)), ...rows.slice(1).map((r) => (get(base) ? (get(r) / get(base)).toFixed(1) : '-'))].join(' | ')} |`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  requireBrowserAndPage();
  const base = portBase(16);
  const rows: Row[] = [];
  for (const [i, n] of SIZES.entries()) {
    rows.push(await run(n, base + i * 4));
    process.stderr.write(`${JSON.stringify(rows.at(-1))}\n`);
  }
  if (opt.json) console.log(JSON.stringify(rows, null, 2));
  console.log(`\ndashboard with N simulated devices (tcpstates replayed at ${RATE} events/s per device, heartbeats every 5 s), ${WINDOW_S} s windows\n`);
  console.log(table(rows));
}

main().catch((err: unknown) => { console.error(err); process.exit(1); });
