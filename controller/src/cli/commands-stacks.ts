// Stack probes: `flamegraph` (SVG, folded text or a JSON tree; differential against another
// window or device) and `anomalies` (stacks whose share jumped against their own history).
import { createWriteStream, readFileSync, renameSync, rmSync } from 'node:fs';
import { parseDuration, parseSince } from '../admin/time-spec.js';
import { foldRecords } from '../stacks/aggregate.js';
import { formatFolded } from '../stacks/folded.js';
import { renderFlameGraph } from '../stacks/svg.js';
import { buildTree, type FlameNode } from '../stacks/tree.js';
import { CliError } from './admin-client.js';
import { str, type Command, type RunContext } from './command.js';
import { renderTable } from './table.js';

function checkTime(ctx: RunContext, option: string): string | undefined {
  const v = str(ctx.values, option);
  if (v !== undefined) {
    try { parseSince(v, ctx.io.now()); } catch (err) { throw new CliError(`--${option}: ${(err as Error).message}`, 2); }
  }
  return v;
}

async function writeOut(ctx: RunContext, file: string | undefined, text: string): Promise<void> {
  if (!file || file === '-') { ctx.out(text); return; }
  const partial = `${file}.partial`;
  try {
    await new Promise<void>((resolve, reject) => {
      const w = createWriteStream(partial);
      w.on('error', reject);
      w.end(text, () => resolve());
    });
    renameSync(partial, file);
  } catch (err) {
    rmSync(partial, { force: true });
    throw new CliError(`cannot write ${file}: ${(err as Error).message}`);
  }
}

export const flamegraphCommand: Command = {
  name: 'flamegraph',
  summary: 'draw a flame graph (or a differential one) of a stack probe',
  help: `Usage: bpfleet flamegraph --probe P [--device D] [--since T] [--until T] [--per-process]
                         [--diff-since T] [--diff-until T] [--diff-device D]
                         [--folded | --json] [--title TEXT] [--width PX] [--min-width PX] [-o FILE]
       bpfleet flamegraph --input FILE [--unit samples|ns|bytes] [--per-process] [--folded | --json] ...

Sums the stored records of a stack probe (profile, offcputime, wakeuptime, loadmon, ...) per
stack and draws them: an SVG that zooms on click and searches in a browser (> cpu.svg).
  --device D       a device name or id, or a selector (board=dayu200,lab=3); default all devices
  --since/--until  the window: a duration back from now (5m), RFC 3339 or Unix ns; default all
  --per-process    root each stack at its process (comm)
  --diff-since/--diff-until
                   a differential graph: widths from the window above, colour by how each
                   frame's share changed from this baseline window (red grew, blue shrank);
                   --diff-until defaults to --since (compare with the window just before)
  --diff-device D  compare with another device (same window unless --diff-since is given)
  --folded         folded text ("stack value" per line; a diff gives "stack baseline shown")
  --json           the frame tree as JSON (what the dashboard draws)
  --min-width PX   frames narrower than this are merged (default 0.5)
  -o FILE          write to FILE (as FILE.partial, renamed when complete) instead of stdout
  --input FILE     draw a loader's --json output (one record per line: stack, value, comm)
                   here, without a controller; --unit says what value counts (default samples)`,
  options: {
    device: { type: 'string' }, probe: { type: 'string' }, since: { type: 'string' }, until: { type: 'string' },
    'diff-since': { type: 'string' }, 'diff-until': { type: 'string' }, 'diff-device': { type: 'string' },
    'per-process': { type: 'boolean' }, folded: { type: 'boolean' }, title: { type: 'string' }, width: { type: 'string' },
    'min-width': { type: 'string' }, output: { type: 'string', short: 'o' }, input: { type: 'string' }, unit: { type: 'string' },
  },
  async run(ctx) {
    if (str(ctx.values, 'input') !== undefined) return drawFile(ctx);
    if (str(ctx.values, 'unit') !== undefined) throw new CliError('--unit goes with --input (the controller knows the unit from the manifest)', 2);
    const probe = str(ctx.values, 'probe');
    if (!probe) throw new CliError('--probe is required: a stack probe such as profile or offcputime', 2);
    const folded = ctx.values['folded'] === true, json = ctx.values['json'] === true;
    if (folded && json) throw new CliError('--folded and --json exclude each other', 2);
    for (const o of ['width', 'min-width']) {
      const v = str(ctx.values, o);
      if (v !== undefined && !/^\d+(\.\d+)?$/.test(v)) throw new CliError(`--${o} must be a number of pixels, got "${v}"`, 2);
    }
    const format = folded ? 'folded' : json ? 'json' : 'svg';
    const file = str(ctx.values, 'output');
    if (format === 'svg' && (!file || file === '-') && ctx.io.stdout.isTTY) {
      throw new CliError('an SVG is no use on a terminal: redirect it (> cpu.svg), use -o FILE, or --folded for text', 2);
    }
    const query = {
      probe, device: str(ctx.values, 'device'), since: checkTime(ctx, 'since'), until: checkTime(ctx, 'until'),
      diffSince: checkTime(ctx, 'diff-since'), diffUntil: checkTime(ctx, 'diff-until'), diffDevice: str(ctx.values, 'diff-device'),
      perProcess: ctx.values['per-process'] ? '1' : undefined, format, title: str(ctx.values, 'title'),
      width: str(ctx.values, 'width'), minWidth: str(ctx.values, 'min-width'),
    };
    if (format === 'json') {
      const body = await ctx.client().get<{ records: number }>('/api/v1/flamegraph', query);
      await writeOut(ctx, file, JSON.stringify(body, null, 2) + '\n');
      if (body.records === 0) ctx.err(`bpfleet: no ${probe} records in this window: the tree is empty\n`);
      return 0;
    }
    const text = await new Response(await ctx.client().stream('GET', '/api/v1/flamegraph', query)).text();
    await writeOut(ctx, file, text);
    const empty = format === 'folded' ? text.trim() === '' : text.includes('>no samples in this window<');
    if (empty) ctx.err(`bpfleet: no ${probe} records in this window: the graph is empty (widen --since, or check \`bpfleet runs --probe ${probe}\`)\n`);
    return 0;
  },
};

const treeJson = (n: FlameNode): unknown => ({ name: n.name, value: n.value, self: n.self, children: n.children.map(treeJson) });

/** `--input FILE`: fold and draw a loader's JSON lines here. */
async function drawFile(ctx: RunContext): Promise<number> {
  const input = str(ctx.values, 'input') ?? '';
  for (const o of ['device', 'since', 'until', 'diff-since', 'diff-until', 'diff-device']) {
    if (str(ctx.values, o) !== undefined) throw new CliError(`--${o} reads the controller's store; --input draws only the file`, 2);
  }
  if (ctx.values['folded'] === true && ctx.values['json'] === true) throw new CliError('--folded and --json exclude each other', 2);
  for (const o of ['width', 'min-width']) {
    const v = str(ctx.values, o);
    if (v !== undefined && !/^\d+(\.\d+)?$/.test(v)) throw new CliError(`--${o} must be a number of pixels, got "${v}"`, 2);
  }
  let text: string;
  try { text = readFileSync(input, 'utf8'); } catch (err) { throw new CliError(`cannot read ${input}: ${(err as Error).message}`); }
  const records = text.split('\n').map((l, i) => {
    if (!l.trim()) return undefined;
    let r: unknown;
    try { r = JSON.parse(l); } catch { throw new CliError(`${input}:${i + 1}: not a JSON object (a loader's --json output has one record per line)`); }
    if (!r || typeof r !== 'object' || typeof (r as { stack?: unknown }).stack !== 'string') {
      throw new CliError(`${input}:${i + 1}: no "stack" text field: is this the --json output of a stack probe (profile, offcputime, ...)?`);
    }
    return r as { stack: string; value?: unknown; comm?: unknown };
  }).filter((r) => r !== undefined);
  const perProcess = ctx.values['per-process'] === true;
  const { folded, total, records: n } = foldRecords(records, perProcess);
  const unit = str(ctx.values, 'unit') ?? 'samples';
  const file = str(ctx.values, 'output');
  if (ctx.values['folded'] === true) await writeOut(ctx, file, formatFolded(folded));
  else if (ctx.values['json'] === true) await writeOut(ctx, file, JSON.stringify({ unit, perProcess, total, records: n, tree: treeJson(buildTree(folded)) }, null, 2) + '\n');
  else {
    if ((!file || file === '-') && ctx.io.stdout.isTTY) throw new CliError('an SVG is no use on a terminal: redirect it (> cpu.svg), use -o FILE, or --folded for text', 2);
    const width = str(ctx.values, 'width'), minWidth = str(ctx.values, 'min-width');
    await writeOut(ctx, file, renderFlameGraph(buildTree(folded), {
      unit, perProcess, title: str(ctx.values, 'title') ?? input.split('/').pop() ?? input,
      subtitle: `${n} records${perProcess ? ', per process' : ''}`,
      ...(width ? { width: Number(width) } : {}), ...(minWidth ? { minWidthPx: Number(minWidth) } : {}),
    }));
  }
  if (n === 0) ctx.err(`bpfleet: ${input} holds no records with samples: the graph is empty\n`);
  return 0;
}

interface AnomalyJson {
  windowStart: string; windowEnd: string; device: string; deviceId: string; probe: string; kind: string; stack: string;
  share: number; baselineShare: number; z: number | null; value: number; unit: string; samples: number;
}
interface AnomaliesAnswer {
  windowMs: number; windows: number; series: { device: string; probe: string; windowsWithData: number }[]; anomalies: AnomalyJson[];
}

/** The leaf end of a stack, which says most: "comm: …;caller;leaf". */
export function shortStack(stack: string, frames = 3): string {
  const f = stack.split(';');
  return f.length <= frames + 1 ? f.join(';') : `${f[0]}: …;${f.slice(-frames).join(';')}`;
}

const pctText = (x: number) => `${(x * 100).toFixed(1)}%`;

export const anomaliesCommand: Command = {
  name: 'anomalies',
  summary: 'stacks whose share jumped against their own history, per device',
  help: `Usage: bpfleet anomalies [--device D] [--probe P] [--since 1h] [--until T] [--window 1m]
                         [--z 4] [--min-share 0.05] [--whole-device] [--json]

Splits the span into windows, takes each stack's share of its window per device and probe, and
flags a stack whose share jumps far above its own weighted history ("jump") or that appears
large without history ("new"). The method: docs/STACK-ANOMALIES.md.
  --device D       a device name or id, or a selector; default all devices
  --probe P        a stack probe; default every stack probe with stored records
  --since/--until  the span to judge (default the last hour; earlier windows are history)
  --window W       window length (default 1m)
  --z Z            how many standard deviations above its history a share must jump (default 4)
  --min-share S    smallest share worth flagging, 0..1 (default 0.05)
  --whole-device   judge stacks across processes (default: each process's stacks apart)
--json prints the anomalies as a JSON array.`,
  options: {
    device: { type: 'string' }, probe: { type: 'string' }, since: { type: 'string' }, until: { type: 'string' },
    window: { type: 'string' }, z: { type: 'string' }, 'min-share': { type: 'string' }, 'whole-device': { type: 'boolean' },
  },
  async run(ctx) {
    const window = str(ctx.values, 'window');
    if (window !== undefined) {
      try { parseDuration(window); } catch (err) { throw new CliError(`--window: ${(err as Error).message}`, 2); }
    }
    const answer = await ctx.client().get<AnomaliesAnswer>('/api/v1/anomalies', {
      device: str(ctx.values, 'device'), probe: str(ctx.values, 'probe'), since: checkTime(ctx, 'since'), until: checkTime(ctx, 'until'),
      window, z: str(ctx.values, 'z'), minShare: str(ctx.values, 'min-share'), perProcess: ctx.values['whole-device'] ? '0' : undefined,
    });
    if (ctx.values['json']) { ctx.json(answer.anomalies); return 0; }
    const judged = `${answer.windows} windows of ${answer.windowMs / 1000}s; ` +
      (answer.series.length ? `series: ${answer.series.map((s) => `${s.device}/${s.probe} (${s.windowsWithData} with data)`).join(', ')}` : 'no stack probe records in this span');
    if (!answer.anomalies.length) { ctx.out(`no anomalies (${judged})\n`); return 0; }
    ctx.out(renderTable(answer.anomalies, [
      { header: 'WINDOW', value: (a) => a.windowStart.replace('T', ' ').replace(/\.\d+Z$/, '') },
      { header: 'DEVICE', value: (a) => a.device },
      { header: 'PROBE', value: (a) => a.probe },
      { header: 'KIND', value: (a) => a.kind },
      { header: 'SHARE', value: (a) => pctText(a.share), right: true },
      { header: 'BEFORE', value: (a) => pctText(a.baselineShare), right: true },
      { header: 'Z', value: (a) => (a.z === null ? '-' : a.z.toFixed(1)), right: true },
      { header: 'STACK', value: (a) => shortStack(a.stack) },
    ]));
    ctx.err(`(${judged})\n`);
    return 0;
  },
};
