// Commands that act on boards: token create, deploy, stop.
import cliProgress from 'cli-progress';
import { parseSelector } from '../admin/selector.js';
import { parseDuration } from '../admin/time-spec.js';
import { CliError } from './admin-client.js';
import { str, type Command } from './command.js';
import { splitShellWords } from './shell-words.js';
import { formatDuration, renderTable } from './table.js';

export const tokenCreateCommand: Command = {
  name: 'token create',
  summary: 'create a one-time enrollment token for a board',
  help: `Usage: bpfleet token create [--label k=v]... [--ttl 1h] [--name DEVICE] [--json]

  --label k=v   a label the enrolled device gets (repeatable), e.g. --label board=dayu200
  --ttl D       how long the token stays valid (default 1h, at most 30d)
  --name N      let the token re-enroll the existing device N (a reflashed board)`,
  options: { label: { type: 'string', multiple: true }, ttl: { type: 'string' }, name: { type: 'string' } },
  async run(ctx) {
    const labels: Record<string, string> = {};
    for (const l of (ctx.values['label'] as string[] | undefined) ?? []) {
      const eq = l.indexOf('=');
      if (eq <= 0) throw new CliError(`--label must be k=v, got "${l}"`, 2);
      labels[l.slice(0, eq)] = l.slice(eq + 1);
    }
    const ttl = str(ctx.values, 'ttl');
    if (ttl !== undefined) {
      try { parseDuration(ttl); } catch (err) { throw new CliError(`--ttl: ${(err as Error).message}`, 2); }
    }
    const name = str(ctx.values, 'name');
    const t = await ctx.client().post<{ token: string; expiresAtMs: number; expiresAt: string; labels: Record<string, string> }>(
      '/api/v1/tokens', { labels, ...(ttl ? { ttl } : {}), ...(name ? { name } : {}) });
    if (ctx.values['json']) { ctx.json(t); return 0; }
    ctx.out(`${t.token}\n`);
    ctx.err(`one-time enrollment token, valid for ${formatDuration(t.expiresAtMs - ctx.io.now())} (until ${t.expiresAt})` +
      `${Object.keys(labels).length ? `; labels ${Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',')}` : ''}` +
      `${name ? `; may re-enroll ${name}` : ''}\n`);
    return 0;
  },
};

interface DeviceRef { id: string; name: string }
type DeployLine =
  | { type: 'targets'; phase: string; devices: DeviceRef[] }
  | { type: 'result'; phase: string; device: DeviceRef; ok: boolean; error?: string; runId?: string }
  | { type: 'done'; ok: boolean; devices: (DeviceRef & { deployed: boolean; started?: boolean; runId?: string; error?: string })[] };

export const deployCommand: Command = {
  name: 'deploy',
  summary: 'install a probe on the selected devices and start it',
  help: `Usage: bpfleet deploy <probe> --to <selector> [--args "..."] [--no-start] [--json]

  --to S        which devices: labels (board=dayu200,lab=3), device names (dev-7), or all
  --args "..."  loader arguments, split like a shell would (e.g. "--rport 443 --comm curl")
  --no-start    install only
Waits for every device's answer, then prints one line per device; exits 1 if any failed. The
controller sends at most its --deploy-concurrency bundles at once; the others wait their turn.`,
  options: { to: { type: 'string' }, args: { type: 'string' }, 'no-start': { type: 'boolean' } },
  positionals: [1, 1],
  async run(ctx) {
    const probe = ctx.positionals[0]!;
    const to = str(ctx.values, 'to');
    if (!to) throw new CliError('--to is required: which devices (board=dayu200, a device name, or all)', 2);
    try { parseSelector(to); } catch (err) { throw new CliError(`--to: ${(err as Error).message}`, 2); }
    let args: string[];
    try { args = splitShellWords(str(ctx.values, 'args') ?? ''); } catch (err) { throw new CliError(`--args: ${(err as Error).message}`, 2); }
    const start = ctx.values['no-start'] !== true;

    const bar = ctx.io.stderr.isTTY && !ctx.values['json']
      ? new cliProgress.SingleBar({ stream: ctx.io.stderr as NodeJS.WriteStream, format: '{phase} [{bar}] {value}/{total} devices {last}',
        hideCursor: true, clearOnComplete: true }, cliProgress.Presets.shades_classic)
      : undefined;
    let done: Extract<DeployLine, { type: 'done' }> | undefined;
    try {
      for await (const line of ctx.client().lines<DeployLine>('POST', '/api/v1/deploy', {}, { probe, selector: to, args, start })) {
        if (line.type === 'targets') {
          bar?.stop();
          bar?.start(line.devices.length, 0, { phase: line.phase.padEnd(6), last: '' });
        } else if (line.type === 'result') {
          bar?.increment({ last: `${line.device.name} ${line.ok ? 'ok' : 'failed'}` });
        } else if (line.type === 'done') {
          done = line;
        }
      }
    } finally {
      bar?.stop();
    }
    if (!done) throw new CliError('the controller ended the deploy without a result');
    if (ctx.values['json']) { ctx.json(done); return done.ok ? 0 : 1; }
    ctx.out(renderTable(done.devices, [
      { header: 'DEVICE', value: (d) => d.name },
      { header: 'DEPLOY', value: (d) => (d.deployed ? 'ok' : 'FAILED') },
      ...(start ? [{ header: 'START', value: (d: (typeof done.devices)[number]) => (!d.deployed ? '-' : d.started ? 'ok' : 'FAILED') },
        { header: 'RUN', value: (d: (typeof done.devices)[number]) => d.runId ?? '-' }] : []),
      { header: 'ERROR', value: (d) => d.error ?? '' },
    ]));
    const failed = done.devices.filter((d) => !d.deployed || (start && !d.started)).length;
    if (failed) ctx.err(`${failed} of ${done.devices.length} devices failed\n`);
    return done.ok ? 0 : 1;
  },
};

export const stopCommand: Command = {
  name: 'stop',
  summary: 'stop a probe run',
  help: 'Usage: bpfleet stop <runId> [--json]\n\nRun ids are listed by `bpfleet runs`.',
  options: {},
  positionals: [1, 1],
  async run(ctx) {
    const runId = ctx.positionals[0]!;
    const r = await ctx.client().post<{ runId: string; deviceId: string; probe: string; ok: boolean; error?: string }>('/api/v1/stop', { runId });
    if (ctx.values['json']) { ctx.json(r); return r.ok ? 0 : 1; }
    if (r.ok) ctx.out(`stopped ${r.probe} run ${r.runId} on ${r.deviceId}\n`);
    else ctx.err(`bpfleet: stop ${r.runId} on ${r.deviceId} failed: ${r.error ?? 'no reason given'}\n`);
    return r.ok ? 0 : 1;
  },
};
