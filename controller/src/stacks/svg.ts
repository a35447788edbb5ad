// Flame graph SVG, laid out here from a FlameNode tree: the root at the bottom, callees above
// their callers, each frame as wide as its inclusive value, siblings in name order. Frames
// narrower than `minWidthPx` are merged per parent into one "(N narrow frames)" frame, drawn
// when the merge is wide enough and otherwise only counted in the footer, so every drawn width
// still sums to its parent's value. The SVG is static and valid XML; an embedded script adds
// zoom and search in a browser (svg-script.ts).
import { frameKind, type FrameKind } from './folded.js';
import { diffColor, frameColor } from './palette.js';
import { FLAME_SCRIPT } from './svg-script.js';
import type { DiffSummary, FlameNode } from './tree.js';
import { treeDepth } from './tree.js';
import { formatValue, pct } from './units.js';

export interface FlameGraphOptions {
  title?: string;
  /** A second line: device, window, probe. */
  subtitle?: string;
  /** The unit of the values (the manifest's `value` unit: "samples", "ns", "bytes"). */
  unit: string;
  /** Frames one level above the root are processes (comm), coloured as such. */
  perProcess?: boolean;
  /** Present for a differential graph: `tree` carries baseline values (buildDiffTree). */
  diff?: DiffSummary;
  width?: number;
  frameHeight?: number;
  fontSize?: number;
  minWidthPx?: number;
}

// XML 1.0 allows tab, LF, CR and U+0020 upwards except lone surrogates and U+FFFE/U+FFFF.
// eslint-disable-next-line no-control-regex -- removing control characters is the point
const NOT_XML = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

const XML_ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

/** Text and attribute values: the five XML specials as entities, characters XML cannot hold replaced. */
export function escapeXml(s: string): string {
  return s.replace(NOT_XML, '\uFFFD').replace(/[&<>"']/g, (c) => XML_ENTITIES[c] ?? c);
}

const CHAR_WIDTH_EM = 0.59; // Verdana's average advance, close enough to decide what fits

/** The label that fits `widthPx`: the whole name, a prefix ending "..", or nothing. */
export function fitLabel(name: string, widthPx: number, fontSize: number): string {
  const n = Math.floor((widthPx - 6) / (fontSize * CHAR_WIDTH_EM));
  return n >= name.length ? name : n >= 3 ? name.slice(0, n - 2) + '..' : '';
}

interface Placed { node: FlameNode; depth: number; x: number; w: number; kind: FrameKind; narrow?: number }

const num = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(2));

export function renderFlameGraph(root: FlameNode, opts: FlameGraphOptions): string {
  const W = opts.width ?? 1200, fh = opts.frameHeight ?? 16, fs = opts.fontSize ?? 12;
  const minPx = opts.minWidthPx ?? 0.5, pad = 10, top = opts.subtitle ? 64 : 48, bottom = 34;
  const total = root.value;
  const scale = total > 0 ? (W - 2 * pad) / total : 0;
  const diff = opts.diff;
  const share = (v: number, t: number) => (t > 0 ? v / t : 0);
  const deltaOf = (n: FlameNode) => share(n.value, diff?.shownTotal ?? 0) - share(n.baseline ?? 0, diff?.baselineTotal ?? 0);

  // Lay out: every frame gets x and width; narrow siblings merge.
  const placed: Placed[] = [];
  let elidedFrames = 0, elidedValue = 0, maxDepth = 0;
  const visit = (n: FlameNode, depth: number, x: number) => {
    const w = n.value * scale;
    placed.push({ node: n, depth, x, w, kind: frameKind(n.name, depth, opts.perProcess) });
    maxDepth = Math.max(maxDepth, depth);
    let cx = x;
    const narrow: FlameNode[] = [];
    for (const c of n.children) {
      if (c.value * scale < minPx) { narrow.push(c); continue; }
      visit(c, depth + 1, cx);
      cx += c.value * scale;
    }
    if (narrow.length) {
      const v = narrow.reduce((s, c) => s + c.value, 0);
      const base = narrow.reduce((s, c) => s + (c.baseline ?? 0), 0);
      if (v * scale >= minPx) {
        const merged: FlameNode = { name: `(${narrow.length} narrow frames)`, value: v, self: 0, children: [], ...(diff ? { baseline: base } : {}) };
        placed.push({ node: merged, depth: depth + 1, x: cx, w: v * scale, kind: 'other', narrow: narrow.length });
        maxDepth = Math.max(maxDepth, depth + 1);
      } else {
        elidedFrames += narrow.length;
        elidedValue += v;
      }
    }
  };
  if (total > 0) visit(root, 0, pad);
  else maxDepth = Math.max(0, treeDepth(root));
  const H = top + (maxDepth + 1) * fh + bottom;
  const yOf = (depth: number) => H - bottom - (depth + 1) * fh;
  const maxAbsDelta = diff ? Math.max(0, ...placed.filter((p) => p.depth > 0).map((p) => Math.abs(deltaOf(p.node)))) : 0;

  const tip = (p: Placed) => {
    const n = p.node;
    const lines = [n.name];
    if (diff) {
      const now = share(n.value, diff.shownTotal), before = share(n.baseline ?? 0, diff.baselineTotal);
      const d = now - before;
      lines.push(`now: ${formatValue(n.value, opts.unit)} (${pct(now)})`,
        `baseline: ${formatValue(n.baseline ?? 0, opts.unit)} (${pct(before)})`,
        `change: ${d >= 0 ? '+' : ''}${(d * 100).toFixed(2)} percentage points${(n.baseline ?? 0) === 0 ? ' (new)' : ''}`);
    } else {
      lines.push(`${formatValue(n.value, opts.unit)}, ${pct(share(n.value, total))}` +
        (n.self > 0 && n.children.length ? ` (self ${formatValue(n.self, opts.unit)})` : ''));
    }
    if (p.narrow) lines.push(`each narrower than ${minPx} px: zooming does not split them`);
    return lines.join('\n');
  };

  const out: string[] = [];
  out.push('<?xml version="1.0" encoding="UTF-8" standalone="no"?>');
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ` +
    `data-pad="${pad}" data-width="${W}" data-charw="${(fs * CHAR_WIDTH_EM).toFixed(3)}" data-total="${num(total)}">`);
  out.push(`<style>
text { font-family: Verdana, "DejaVu Sans", sans-serif; font-size: ${fs}px; fill: #000; }
.f { cursor: pointer; }
.f:hover rect { stroke: #000; stroke-width: 0.6; }
.parent { opacity: 0.55; }
.hide { display: none; }
.btn { cursor: pointer; fill: #0645ad; }
.title { font-size: ${fs + 5}px; }
.sub, .foot { fill: #555; }
.foot { font-size: ${fs - 2}px; }
</style>`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="${diff ? '#ffffff' : '#fdf6ec'}"/>`);
  out.push(`<text class="title" x="${W / 2}" y="24" text-anchor="middle">${escapeXml(opts.title ?? (diff ? 'Differential flame graph' : 'Flame graph'))}</text>`);
  if (opts.subtitle) out.push(`<text class="sub" x="${W / 2}" y="44" text-anchor="middle">${escapeXml(opts.subtitle)}</text>`);
  out.push(`<text id="unzoom" class="btn hide" x="${pad}" y="24">Reset zoom</text>`);
  out.push(`<text id="search" class="btn" x="${W - pad}" y="24" text-anchor="end">Search</text>`);
  out.push(`<text id="details" x="${pad}" y="${H - 14}"> </text>`);
  out.push(`<text id="matched" x="${W - pad}" y="${H - 14}" text-anchor="end"></text>`);

  if (total <= 0) {
    out.push(`<text x="${W / 2}" y="${top + fh}" text-anchor="middle">no samples in this window</text>`);
  }
  for (const p of placed) {
    const fill = diff ? (p.depth === 0 ? 'rgb(238,238,238)' : diffColor(deltaOf(p.node), maxAbsDelta)) : frameColor(p.node.name, p.kind);
    const y = yOf(p.depth);
    const label = fitLabel(p.node.name, p.w, fs);
    out.push(`<g class="f" data-v="${num(p.node.value)}"><title>${escapeXml(tip(p))}</title>` +
      `<rect x="${p.x.toFixed(2)}" y="${y}" width="${p.w.toFixed(2)}" height="${fh - 1}" fill="${fill}" rx="2" ry="2"/>` +
      `<text x="${(p.x + 3).toFixed(2)}" y="${y + fh - 4.5}">${escapeXml(label)}</text></g>`);
  }
  const foot: string[] = [];
  if (elidedFrames) foot.push(`${elidedFrames} frame${elidedFrames === 1 ? '' : 's'} narrower than ${minPx} px not drawn, nor their callees (${pct(share(elidedValue, total))} of the total, counted in their callers)`);
  if (diff) {
    foot.push(`widths: this window; red grew, blue shrank (share of each window's total); totals ${formatValue(diff.shownTotal, opts.unit)} now, ` +
      `${formatValue(diff.baselineTotal, opts.unit)} baseline`);
    if (diff.vanishedStacks) foot.push(`${diff.vanishedStacks} baseline stack${diff.vanishedStacks === 1 ? ' is' : 's are'} gone (${pct(share(diff.vanishedValue, diff.baselineTotal))} of the baseline)`);
  }
  if (foot.length) out.push(`<text class="foot" x="${W / 2}" y="${H - 2}" text-anchor="middle">${escapeXml(foot.join('; '))}</text>`);
  out.push(`<script type="text/ecmascript"><![CDATA[${FLAME_SCRIPT}]]></script>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
