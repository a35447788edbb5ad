// Headless Chromium from Debian driven by playwright-core, for the dashboard tests and bench.
// The flags keep it off the network (this machine's network is closed) and quiet.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { repoRoot, testRoot } from '../lib/paths.js';

export const CHROMIUM = '/usr/bin/chromium';
export const SCREENSHOTS = path.join(testRoot, 'reports', 'screenshots');
export const WEB_DIST = path.join(repoRoot, 'controller', 'web', 'dist');

export function requireBrowserAndPage(): void {
  if (!existsSync(CHROMIUM)) throw new Error(`needs Debian's chromium at ${CHROMIUM} (apt-get install chromium; toolchains/setup.sh does)`);
  if (!existsSync(path.join(WEB_DIST, 'index.html'))) {
    throw new Error(`the dashboard is not built (${WEB_DIST}/index.html missing): npx nx run controller:build-web`);
  }
}

export interface Browser {
  context: BrowserContext;
  /** Its user data dir: the main process's command line names it (see browserPids). */
  userDir: string;
  close(): Promise<void>;
}

/** A persistent context in a fresh user data dir, removed on close. */
export async function launchChromium(opts: { width?: number; height?: number } = {}): Promise<Browser> {
  const userDir = mkdtempSync(path.join(os.tmpdir(), 'bpfleet-chromium-'));
  const context = await chromium.launchPersistentContext(userDir, {
    executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--enable-precise-memory-info'],
    viewport: { width: opts.width ?? 1400, height: opts.height ?? 900 },
  });
  return {
    context, userDir,
    close: async () => {
      await context.close().catch(() => undefined);
      rmSync(userDir, { recursive: true, force: true });
    },
  };
}

export function screenshotPath(name: string): string {
  mkdirSync(SCREENSHOTS, { recursive: true });
  return path.join(SCREENSHOTS, `${name}.png`);
}

/** The browser's processes: the one started with our user data dir and all its descendants. */
export function browserPids(userDir: string): number[] {
  const procs = new Map<number, { ppid: number; cmd: string }>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      procs.set(Number(e), { ppid, cmd: readFileSync(`/proc/${e}/cmdline`, 'utf8') });
    } catch { /* gone */ }
  }
  const out = new Set<number>();
  for (const [pid, p] of procs) if (p.cmd.includes(`--user-data-dir=${userDir}`) && !out.has(p.ppid)) out.add(pid);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, p] of procs) if (!out.has(pid) && out.has(p.ppid)) { out.add(pid); grew = true; }
  }
  return [...out];
}

/** CPU time (user+system, clock ticks = 10 ms) and resident memory (bytes) summed over pids. */
export function procUsage(pids: number[]): { cpuMs: number; rssBytes: number } {
  let ticks = 0, rss = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);
      rss += Number(f[21]) * 4096;
    } catch { /* gone */ }
  }
  return { cpuMs: ticks * 10, rssBytes: rss };
}
