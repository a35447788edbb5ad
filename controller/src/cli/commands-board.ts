// `bpfleet board ...`: board profiles, emulated boards under QEMU (image, up, list, down) and
// installing the agent on real boards over ssh or OpenHarmony's hdc. The work is in @bpfleet/boards.
import cliProgress from 'cli-progress';
import {
  HdcShell, SshShell, buildImage, chooseTransport, ensureRuntime, guestMqttUrl, installAgent, listBoards, listProfiles, loadProfile, startBoard, stopBoard, waitEnrolled,
  type BoardProfile, type BoardRecord, type BoardStatus, type Progress, type RemoteShell, type TransportChoice,
} from '@bpfleet/boards';
import { CliError } from './admin-client.js';
import { str, type Command, type RunContext } from './command.js';
import { formatBytes, formatDuration, renderTable } from './table.js';

function profileOrUsage(name: string): BoardProfile {
  try {
    return loadProfile(name);
  } catch (err) {
    throw new CliError((err as Error).message, 2);
  }
}

/** A progress bar on a terminal, one line per step otherwise (CI logs). */
function progressFor(ctx: RunContext, what: string): { progress: Progress; stop(): void } {
  if (ctx.io.stderr.isTTY && !ctx.values['json']) {
    const bar = new cliProgress.SingleBar({ stream: ctx.io.stderr as NodeJS.WriteStream, format: `${what} [{bar}] {percentage}% {step}`, hideCursor: true, clearOnComplete: true },
      cliProgress.Presets.shades_classic);
    bar.start(100, 0, { step: '' });
    return { progress: (step, f) => bar.update(Math.round((f ?? 0) * 100), { step }), stop: () => bar.stop() };
  }
  let last = '';
  return {
    progress: (step) => { if (step !== last) { last = step; ctx.err(`${what}: ${step}\n`); } },
    stop: () => undefined,
  };
}

export const boardProfilesCommand: Command = {
  name: 'board profiles',
  summary: 'list the board profiles (boards/profiles/*.json)',
  help: 'Usage: bpfleet board profiles [--json]',
  options: {},
  async run(ctx) {
    const all = listProfiles();
    if (ctx.values['json']) { ctx.json(all); return 0; }
    ctx.out(renderTable(all, [
      { header: 'PROFILE', value: (p) => p.name },
      { header: 'ARCH', value: (p) => p.arch },
      { header: 'CPU', value: (p) => p.cpu },
      { header: 'MEMORY', value: (p) => formatBytes(p.memoryMiB * 1048576), right: true },
      { header: 'KERNEL', value: (p) => p.kernel.release },
      { header: 'BTF', value: (p) => p.kernel.btf },
      { header: 'KPROBES', value: (p) => (p.kernel.kprobes ? 'yes' : 'no') },
      { header: 'USERLAND', value: (p) => `${p.userland.os}/${p.userland.libc}` },
      { header: 'ACCESS', value: (p) => (p.access.kind === 'qemu' ? `qemu ${p.access.kernel}` : p.access.kind) },
    ]));
    return 0;
  },
};

export const boardImageCommand: Command = {
  name: 'board image',
  summary: 'build (or find cached) the bootable image of an emulated board',
  help: `Usage: bpfleet board image <profile> [--json]

Builds an initramfs for a qemu-* profile: Debian kernel and virtio modules, busybox-static, the
agent runtime for the arch (Node.js + bundled agent + glibc loader) and the probe loaders of
bpf/out/<arch>. Cached in ~/.cache/bpfleet/images (BPFLEET_CACHE), keyed by the inputs' hashes.`,
  options: {},
  positionals: [1, 1],
  async run(ctx) {
    const profile = profileOrUsage(ctx.positionals[0]!);
    if (profile.access.kind !== 'qemu') throw new CliError(`profile ${profile.name} is a real board (access: ${profile.access.kind}); images are for the qemu-* profiles`, 2);
    const t0 = ctx.io.now();
    const p = progressFor(ctx, `image ${profile.name}`);
    let img;
    try { img = await buildImage(profile, { progress: p.progress }); } catch (err) { throw new CliError(`image ${profile.name}: ${(err as Error).message}`); } finally { p.stop(); }
    const info = {
      profile: img.profile, arch: img.arch, key: img.key, cached: img.cached, initrd: img.initrd, initrdBytes: img.initrdBytes,
      kernel: img.kernel.vmlinuz, release: img.kernel.release, runtime: { dir: img.runtime.dir, tarball: img.runtime.tarball, node: img.runtime.nodeVersion,
        unpackedBytes: img.runtime.unpackedBytes, compressedBytes: img.runtime.compressedBytes }, ms: ctx.io.now() - t0,
    };
    if (ctx.values['json']) { ctx.json(info); return 0; }
    ctx.out(`${img.cached ? 'cached' : 'built'} ${img.initrd} (${formatBytes(img.initrdBytes)}) in ${formatDuration(info.ms)}\n` +
      `kernel ${img.kernel.release}; agent runtime node ${img.runtime.nodeVersion}: ${formatBytes(img.runtime.unpackedBytes)} unpacked, ` +
      `${formatBytes(img.runtime.compressedBytes)} as ${img.runtime.tarball}\n`);
    return 0;
  },
};

export const boardRuntimeCommand: Command = {
  name: 'board runtime',
  summary: 'build (or find cached) the agent runtime for an arch (arm64, arm) or a profile',
  help: `Usage: bpfleet board runtime <arch|profile> [--json]

The agent as one self-contained directory: Node.js for the arch (npm registry), the agent bundled
by esbuild, and glibc's loader and libraries (Debian), so it runs on musl or busybox userlands too.
Cached in ~/.cache/bpfleet/runtime/<arch>/ plus <arch>.tar.gz (what --ssh / --hdc copy).`,
  options: {},
  positionals: [1, 1],
  async run(ctx) {
    const what = ctx.positionals[0]!;
    const arch = what === 'arm64' || what === 'arm' ? what : profileOrUsage(what).arch;
    const p = progressFor(ctx, `runtime ${arch}`);
    let rt;
    try { rt = await ensureRuntime(arch, { progress: p.progress }); } catch (err) { throw new CliError((err as Error).message); } finally { p.stop(); }
    if (ctx.values['json']) { ctx.json(rt); return 0; }
    ctx.out(`${rt.dir}: node ${rt.nodeVersion}, ${formatBytes(rt.unpackedBytes)} unpacked; ${rt.tarball}: ${formatBytes(rt.compressedBytes)}\n`);
    return 0;
  },
};

async function createToken(ctx: RunContext, profile: BoardProfile): Promise<string> {
  const t = await ctx.client().post<{ token: string }>('/api/v1/tokens', { labels: { board: profile.name, arch: profile.arch } });
  return t.token;
}

export const boardUpCommand: Command = {
  name: 'board up',
  summary: 'boot emulated boards (or install the agent on a real one) that enroll with the controller',
  help: `Usage: bpfleet board up <profile> [--count N] [--controller HOST:PORT] [--token T]
                             [--transport grpc|mqtt] [--mqtt mqtt://HOST:PORT] [--json]
       bpfleet board up <profile> --ssh USER@HOST [--port 22] --controller HOST:PORT [--name N]
       bpfleet board up <profile> --hdc [SERIAL] --controller HOST:PORT [--name N]

  --count N            boot N boards, named <profile>-1..N (qemu profiles; default 1)
  --controller H:P     the controller's gRPC address (default 127.0.0.1:7474; loopback is
                       reached from a QEMU guest as 10.0.2.2)
  --transport T        the agent's session transport, grpc or mqtt (default: the profile's
                       "transport"); enrollment always goes to --controller over gRPC
  --mqtt URL           the broker with --transport mqtt (implies it): mqtt://HOST:PORT, default
                       mqtt://<controller host>:1883 (the embedded broker of
                       \`bpfleet controller --mqtt embedded\`); loopback is 10.0.2.2 in a guest
  --token T            one-time enrollment token (one board only); otherwise one is created per
                       board through the admin API, with labels board=<profile>,arch=<arch>
  --traffic SECS       emulated boards make a loopback TCP connection (port 7777) every SECS
  --timeout SECS       how long to wait for each agent to enroll (default 900: TCG is slow)
  --node-options "..."  Node.js flags for the agent on emulated boards (e.g. "--jitless"), in
                       place of the runtime's defaults; "none" for no flags
  --no-wait            return once QEMU started
  --ssh USER@HOST      a real board over ssh: copy the agent runtime, start the agent
  --hdc [SERIAL]       a real OpenHarmony board over hdc (not testable without a device)
Boards keep running after this command; \`bpfleet board down\` stops them.`,
  options: {
    count: { type: 'string' }, controller: { type: 'string' }, traffic: { type: 'string' }, timeout: { type: 'string' },
    'no-wait': { type: 'boolean' }, 'node-options': { type: 'string' }, transport: { type: 'string' }, mqtt: { type: 'string' }, ssh: { type: 'string' }, port: { type: 'string' }, hdc: { type: 'boolean' }, name: { type: 'string' },
  },
  positionals: [1, 2],
  async run(ctx) {
    const profile = profileOrUsage(ctx.positionals[0]!);
    const num = (k: string, dflt: number, min: number, max: number): number => {
      const s = str(ctx.values, k);
      if (s === undefined) return dflt;
      const n = Number(s);
      if (!Number.isInteger(n) || n < min || n > max) throw new CliError(`--${k} ${s}: expected a whole number from ${min} to ${max}`, 2);
      return n;
    };
    const controller = str(ctx.values, 'controller') ?? '127.0.0.1:7474';
    if (!/^[^\s:]+:\d{1,5}$/.test(controller)) throw new CliError(`--controller ${controller}: expected HOST:PORT`, 2);
    let transport: TransportChoice;
    try {
      transport = chooseTransport(profile, { transport: str(ctx.values, 'transport'), mqtt: str(ctx.values, 'mqtt'), controller });
      if (profile.access.kind === 'qemu' && transport.mqtt) guestMqttUrl(transport.mqtt); // checked before building anything
    } catch (err) {
      throw new CliError((err as Error).message, 2);
    }
    const ssh = str(ctx.values, 'ssh');
    const hdc = ctx.values['hdc'] === true;
    if (ssh !== undefined || hdc) return remoteUp(ctx, profile, controller, transport, ssh, hdc ? (ctx.positionals[1] ?? '') : undefined);
    if (ctx.positionals.length > 1) throw new CliError(`unexpected argument "${ctx.positionals[1]}"`, 2);
    if (profile.access.kind !== 'qemu') {
      throw new CliError(`profile ${profile.name} is a real board: give --ssh USER@HOST or --hdc [SERIAL] (or boot its emulated stand-in, e.g. qemu-${profile.name.replace(/dv300$/, '')})`, 2);
    }
    const count = num('count', 1, 1, 64);
    const token = str(ctx.values, 'token');
    if (token !== undefined && count > 1) throw new CliError('--token is a one-time token for one board; leave it out with --count > 1 (a token per board is created)', 2);
    const traffic = num('traffic', 0, 0, 3600);
    const timeoutMs = num('timeout', 900, 10, 7200) * 1000;

    const p = progressFor(ctx, `image ${profile.name}`);
    let image;
    try { image = await buildImage(profile, { progress: p.progress }); } catch (err) { throw new CliError(`image ${profile.name}: ${(err as Error).message}`); } finally { p.stop(); }
    const names = Array.from({ length: count }, (_, i) => `${profile.name}-${i + 1}`);
    const records: BoardRecord[] = [];
    for (const name of names) {
      const tok = token ?? await createToken(ctx, profile);
      try {
        const nodeOptions = (str(ctx.values, 'node-options') ?? '').split(/[\s,]+/).filter(Boolean);
        records.push(startBoard(profile, image, { name, controller, token: tok, traffic, nodeOptions, ...transport, env: ctx.io.env }));
      } catch (err) {
        throw new CliError((err as Error).message);
      }
    }
    const guest = records[0];
    const via = transport.transport === 'mqtt' ? `MQTT ${guest?.mqtt} (enrolling at ${guest?.controller})` : `gRPC ${guest?.controller}`;
    if (!ctx.values['json']) ctx.err(`booting ${count} x ${profile.name} (${image.kernel.release}, ${formatBytes(image.initrdBytes)} initramfs), agents over ${via}; QEMU pids ${records.map((r) => r.pid).join(' ')}\n`);
    const results: { name: string; pid: number; transport: string; mqtt?: string; enrolledAfterMs?: number; error?: string }[] = [];
    const row = (r: BoardRecord) => ({ name: r.name, pid: r.pid, transport: transport.transport, ...(r.mqtt ? { mqtt: r.mqtt } : {}) });
    if (ctx.values['no-wait']) {
      results.push(...records.map(row));
    } else {
      const bar = ctx.io.stderr.isTTY && !ctx.values['json']
        ? new cliProgress.SingleBar({ stream: ctx.io.stderr as NodeJS.WriteStream, format: 'boot [{bar}] {value}/{total} enrolled {last}', hideCursor: true, clearOnComplete: true },
          cliProgress.Presets.shades_classic)
        : undefined;
      bar?.start(count, 0, { last: '' });
      let done = 0;
      await Promise.all(records.map(async (r) => {
        try {
          const ms = await waitEnrolled(r, timeoutMs);
          results.push({ ...row(r), enrolledAfterMs: ms });
          bar?.update(++done, { last: `${r.name} ${formatDuration(ms)}` });
          if (!bar && !ctx.values['json']) ctx.err(`${r.name}: enrolled ${(ms / 1000).toFixed(1)} s after boot\n`);
        } catch (err) {
          results.push({ ...row(r), error: (err as Error).message });
        }
      }));
      bar?.stop();
    }
    results.sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
    if (ctx.values['json']) {
      ctx.json(results);
    } else {
      ctx.out(renderTable(results, [
        { header: 'BOARD', value: (r) => r.name },
        { header: 'QEMU PID', value: (r) => String(r.pid), right: true },
        { header: 'TRANSPORT', value: (r) => r.transport },
        { header: 'BOOT-TO-ENROLLED', value: (r) => (r.enrolledAfterMs !== undefined ? `${(r.enrolledAfterMs / 1000).toFixed(1)}s` : ctx.values['no-wait'] ? 'not waited' : 'FAILED'), right: true },
      ]));
      for (const r of results) if (r.error) ctx.err(`${r.error}\n`);
    }
    return results.some((r) => r.error) ? 1 : 0;
  },
};

async function remoteUp(ctx: RunContext, profile: BoardProfile, controller: string, transport: TransportChoice, ssh: string | undefined,
  hdcSerial: string | undefined): Promise<number> {
  if (profile.access.kind === 'qemu') throw new CliError(`profile ${profile.name} is an emulated board; --ssh / --hdc are for real boards (dayu200, hi3516dv300)`, 2);
  if (str(ctx.values, 'controller') === undefined) throw new CliError('--controller HOST:PORT is required for a real board: an address of the controller the board can reach', 2);
  let shell: RemoteShell;
  try {
    shell = ssh !== undefined ? new SshShell(ssh, Number(str(ctx.values, 'port') ?? 22)) : new HdcShell(hdcSerial);
  } catch (err) {
    throw new CliError((err as Error).message, 2);
  }
  const p = progressFor(ctx, `runtime ${profile.arch}`);
  let runtime;
  try { runtime = await ensureRuntime(profile.arch, { progress: p.progress }); } catch (err) { throw new CliError((err as Error).message); } finally { p.stop(); }
  const name = str(ctx.values, 'name') ?? `${profile.name}-${(ssh ?? hdcSerial ?? 'board').replace(/^.*@/, '').replace(/[^A-Za-z0-9.-]/g, '-') || 'board'}`;
  const token = str(ctx.values, 'token') ?? await createToken(ctx, profile);
  if (!ctx.values['json']) ctx.err(`installing the agent runtime (${formatBytes(runtime.compressedBytes)}) through ${shell.describe}\n`);
  try {
    const r = await installAgent(shell, profile, runtime, { controller, token, name, ...transport });
    if (ctx.values['json']) ctx.json({ name, ...transport, ...r });
    else ctx.out(`${name}: agent started on ${shell.describe} (${r.machine}, pid ${r.pid}) from ${r.installDir}, over ${transport.mqtt ?? 'gRPC'}; log ${r.log}\n`);
    return 0;
  } catch (err) {
    throw new CliError((err as Error).message);
  }
}

const rssText = (b: BoardStatus) => (b.agentRssKb !== undefined ? formatBytes(b.agentRssKb * 1024) : undefined);

export const boardListCommand: Command = {
  name: 'board list',
  summary: 'list the emulated boards started on this machine',
  help: 'Usage: bpfleet board list [--json]\n\nState lives in ~/.cache/bpfleet/boards (BPFLEET_BOARDS_DIR).',
  options: {},
  async run(ctx) {
    const boards = listBoards(ctx.io.env);
    if (ctx.values['json']) { ctx.json(boards); return 0; }
    if (boards.length === 0) { ctx.err('no emulated boards; start some with bpfleet board up <profile>\n'); return 0; }
    ctx.out(renderTable(boards, [
      { header: 'BOARD', value: (b) => b.name },
      { header: 'PROFILE', value: (b) => b.profile },
      { header: 'STATE', value: (b) => (b.running ? 'running' : 'stopped') },
      { header: 'QEMU PID', value: (b) => String(b.pid), right: true },
      { header: 'DEVICE', value: (b) => b.deviceId },
      { header: 'TRANSPORT', value: (b) => (b.transport === 'mqtt' ? `mqtt ${b.mqtt ?? ''}`.trim() : b.transport ?? 'grpc') },
      { header: 'ENROLLED AFTER', value: (b) => (b.enrolledAfterMs !== undefined ? `${(b.enrolledAfterMs / 1000).toFixed(1)}s` : undefined), right: true },
      { header: 'AGENT RSS', value: rssText, right: true },
      { header: 'UP', value: (b) => formatDuration(ctx.io.now() - b.startedAtMs), right: true },
      { header: 'CONSOLE', value: (b) => b.console },
    ]));
    return 0;
  },
};

export const boardDownCommand: Command = {
  name: 'board down',
  summary: 'stop emulated boards',
  help: `Usage: bpfleet board down [BOARD...] [--all] [--keep-logs] [--json]

Stops the named boards' QEMU (or all of them with --all) and removes their state.`,
  options: { all: { type: 'boolean' }, 'keep-logs': { type: 'boolean' } },
  positionals: [0, 64],
  async run(ctx) {
    const boards = listBoards(ctx.io.env);
    if (ctx.positionals.length === 0 && !ctx.values['all']) throw new CliError('name the boards to stop, or give --all', 2);
    const unknown = ctx.positionals.filter((n) => !boards.some((b) => b.name === n));
    if (unknown.length) throw new CliError(`no such board: ${unknown.join(', ')} (bpfleet board list shows them)`, 2);
    const chosen = ctx.values['all'] ? boards : boards.filter((b) => ctx.positionals.includes(b.name));
    const out = [];
    for (const b of chosen) out.push({ name: b.name, pid: b.pid, wasRunning: await stopBoard(b, { keepLogs: ctx.values['keep-logs'] === true }) });
    if (ctx.values['json']) { ctx.json(out); return 0; }
    for (const o of out) ctx.out(`${o.name}: ${o.wasRunning ? `stopped (QEMU pid ${o.pid})` : 'was not running'}\n`);
    return 0;
  },
};

export const BOARD_COMMANDS: Command[] = [boardProfilesCommand, boardRuntimeCommand, boardImageCommand, boardUpCommand, boardListCommand, boardDownCommand];
