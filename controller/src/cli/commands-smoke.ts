// `bpfleet smoke`: the on-device smoke test of installed probes on the selected devices, with a
// progress bar per device, then the device x probe matrix (or --json). Exit 1 when anything
// failed; unsupported is shown with its reason but is not a failure.
import cliProgress from 'cli-progress';
import { parseSelector } from '../admin/selector.js';
import { parseDuration } from '../admin/time-spec.js';
import type { SmokeResultRow } from '../store/store.js';
import { CliError } from './admin-client.js';
import { str, type Command } from './command.js';
import { formatAgo, renderTable } from './table.js';

interface DeviceRef { id: string; name: string }
type SmokeLine =
  | { type: 'targets'; devices: (DeviceRef & { probes: number | null })[] }
  | { type: 'progress'; device: DeviceRef; probe: string; state: string; done: number; total: number | null }
  | { type: 'result'; device: DeviceRef; ok: boolean; error?: string; results: SmokeResultRow[] }
  | { type: 'done'; ok: boolean; devices: (DeviceRef & { ok: boolean; commandId?: string; error?: string })[]; results: SmokeResultRow[] };

const PROBE = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;

/** "10", "10s", "1m" -> ms. */
function parseTimeout(v: string): number {
  let ms: number;
  try {
    ms = /^\d+(\.\d+)?$/.test(v) ? Math.round(Number(v) * 1000) : parseDuration(v);
  } catch (err) {
    throw new CliError(`--timeout: ${(err as Error).message} (seconds, or a duration like 30s)`, 2);
  }
  if (ms < 100 || ms > 600_000) throw new CliError(`--timeout must be between 0.1 s and 10 min, got ${v}`, 2);
  return ms;
}

const ms = (v: number | null | undefined) => (v === null || v === undefined ? '-' : `${v} ms`);

export const smokeCommand: Command = {
  name: 'smoke',
  summary: 'smoke-test installed probes on devices: load, attach, trigger, check the event arrives',
  help: `Usage: bpfleet smoke [--to <selector>] [--probe P]... [--timeout S] [--json]

  --to S        which devices: labels (board=dayu200), device names, or all (default all)
  --probe P     test only this probe (repeatable); default every probe installed on each device
  --timeout S   per probe: seconds from the trigger until a matching event (default 10); the same
                again for it to reach the controller's store
On each device, for each probe: the loader starts with the filter of the probe's manifest, the
agent fires the manifest's trigger (a loopback TCP connection for the network probes; see
bpf/README.md, "Smoke tests"), and the controller checks that a matching event was stored. Prints
per device x probe: pass, fail (with the verifier or attach error, or what did not arrive), or
unsupported (with the missing kernel feature, or what the device lacks for the trigger, e.g.
/dev/kvm), the time to the first event, and the verified instruction count. Results are kept:
GET /api/v1/smoke. Exits 1 when any probe failed or a device could not run the test.`,
  options: { to: { type: 'string' }, probe: { type: 'string', multiple: true }, timeout: { type: 'string' } },
  positionals: [0, 0],
  async run(ctx) {
    const to = str(ctx.values, 'to') ?? 'all';
    try { parseSelector(to); } catch (err) { throw new CliError(`--to: ${(err as Error).message}`, 2); }
    const probes = (ctx.values['probe'] as string[] | undefined) ?? [];
    for (const p of probes) if (!PROBE.test(p)) throw new CliError(`--probe "${p}" is not a probe name`, 2);
    const timeout = str(ctx.values, 'timeout');
    const probeTimeoutMs = timeout === undefined ? undefined : parseTimeout(timeout);

    const tty = ctx.io.stderr.isTTY && !ctx.values['json'];
    const multi = tty
      ? new cliProgress.MultiBar({ stream: ctx.io.stderr as NodeJS.WriteStream, format: '{name} [{bar}] {value}/{total} probes {last}',
        hideCursor: true, clearOnComplete: true }, cliProgress.Presets.shades_classic)
      : undefined;
    const bars = new Map<string, cliProgress.SingleBar>();
    let done: Extract<SmokeLine, { type: 'done' }> | undefined;
    try {
      const body = { selector: to, probes, ...(probeTimeoutMs !== undefined ? { probeTimeoutMs } : {}) };
      for await (const line of ctx.client().lines<SmokeLine>('POST', '/api/v1/smoke', {}, body)) {
        if (line.type === 'targets') {
          const names = Math.max(0, ...line.devices.map((d) => d.name.length));
          for (const d of line.devices) bars.set(d.id, multi?.create(d.probes ?? 1, 0, { name: d.name.padEnd(names), last: '' }) as cliProgress.SingleBar);
          if (!tty) ctx.err(`smoke test on ${line.devices.length} device(s): ${line.devices.map((d) => d.name).join(', ')}\n`);
        } else if (line.type === 'progress') {
          const bar = bars.get(line.device.id);
          if (line.total === null) bar?.setTotal(Math.max(line.done + 1, bar.getTotal()));
          bar?.update(line.done, { last: `${line.probe} ${line.state}` });
        } else if (line.type === 'result') {
          const bar = bars.get(line.device.id);
          bar?.setTotal(Math.max(line.results.length, 1));
          bar?.update(line.results.length, { last: line.ok ? 'ok' : 'FAILED' });
        } else if (line.type === 'done') {
          done = line;
        }
      }
    } finally {
      multi?.stop();
    }
    if (!done) throw new CliError('the controller ended the smoke test without a result');
    if (ctx.values['json']) { ctx.json(done); return done.ok ? 0 : 1; }

    const deviceName = new Map(done.devices.map((d) => [d.id, d.name]));
    ctx.out(renderTable(done.results, [
      { header: 'DEVICE', value: (r) => deviceName.get(r.deviceId) ?? r.deviceId },
      { header: 'PROBE', value: (r) => r.probe },
      { header: 'RESULT', value: (r) => (r.outcome === 'fail' ? 'FAIL' : r.outcome) },
      { header: 'FIRST EVENT', value: (r) => ms(r.timeToFirstEventMs), right: true },
      { header: 'INSNS', value: (r) => r.verifiedInsns ?? '-', right: true },
      { header: 'ATTACH', value: (r) => ms(r.attachMs), right: true },
      { header: 'REASON', value: (r) => r.reason.split('\n', 1)[0] ?? '' },
    ]));
    const n = (o: string) => done.results.filter((r) => r.outcome === o).length;
    ctx.err(`${n('pass')} pass, ${n('fail')} fail, ${n('unsupported')} unsupported on ${done.devices.length} device(s)\n`);
    return done.ok ? 0 : 1;
  },
};

export const smokeResultsCommand: Command = {
  name: 'smoke results',
  summary: 'show the kept smoke test results: the latest per device x probe',
  help: `Usage: bpfleet smoke results [--device D] [--probe P] [--history] [--json]

  --device D   one device (name or id)
  --probe P    one probe
  --history    every result, newest first, instead of the latest per device x probe`,
  options: { device: { type: 'string' }, probe: { type: 'string' }, history: { type: 'boolean' } },
  positionals: [0, 0],
  async run(ctx) {
    const r = await ctx.client().get<{ results: (SmokeResultRow & { deviceName: string })[] }>('/api/v1/smoke', {
      device: str(ctx.values, 'device'), probe: str(ctx.values, 'probe'), ...(ctx.values['history'] ? { history: '1' } : {}),
    });
    if (ctx.values['json']) { ctx.json(r.results); return 0; }
    if (r.results.length === 0) { ctx.err('no smoke test results kept yet: run bpfleet smoke\n'); return 0; }
    ctx.out(renderTable(r.results, [
      { header: 'DEVICE', value: (x) => x.deviceName },
      { header: 'PROBE', value: (x) => x.probe },
      { header: 'RESULT', value: (x) => (x.outcome === 'fail' ? 'FAIL' : x.outcome) },
      { header: 'FIRST EVENT', value: (x) => ms(x.timeToFirstEventMs), right: true },
      { header: 'INSNS', value: (x) => x.verifiedInsns ?? '-', right: true },
      { header: 'WHEN', value: (x) => formatAgo(x.createdAtMs, ctx.io.now()) },
      { header: 'REASON', value: (x) => x.reason.split('\n', 1)[0] ?? '' },
    ]));
    return 0;
  },
};
