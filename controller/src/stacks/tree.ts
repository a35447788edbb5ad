// Folded stacks as a tree of frames: what the SVG renderer lays out and what the dashboard gets
// as JSON. Children are sorted by name, so the same stacks always give the same picture.
import { splitStack, type Folded } from './folded.js';

export interface FlameNode {
  name: string;
  /** Inclusive: this frame and everything called from it. */
  value: number;
  /** Samples whose leaf is this frame. */
  self: number;
  children: FlameNode[];
  /** Differential graphs: this frame's inclusive value in the baseline (0 if absent there). */
  baseline?: number;
}

interface Building { name: string; value: number; self: number; kids: Map<string, Building> | undefined }

function finish(b: Building): FlameNode {
  const kids = b.kids ? [...b.kids.values()].sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0)) : [];
  return { name: b.name, value: b.value, self: b.self, children: kids.map(finish) };
}

/** The tree of `folded` under a root frame named `rootName`; values of 0 or less are left out. */
export function buildTree(folded: Folded, rootName = 'all'): FlameNode {
  const root: Building = { name: rootName, value: 0, self: 0, kids: undefined };
  for (const [stack, value] of folded) {
    if (!(value > 0)) continue;
    root.value += value;
    let at = root;
    for (const frame of splitStack(stack)) {
      const kids = (at.kids ??= new Map());
      let next = kids.get(frame);
      if (!next) { next = { name: frame, value: 0, self: 0, kids: undefined }; kids.set(frame, next); }
      next.value += value;
      at = next;
    }
    at.self += value;
  }
  return finish(root);
}

export interface DiffSummary {
  /** Totals of both windows (the shares compare value/total, so windows of any length compare). */
  shownTotal: number;
  baselineTotal: number;
  /** Baseline value of stacks that do not occur in the shown window (no width to draw them with). */
  vanishedValue: number;
  vanishedStacks: number;
}

/**
 * The shown window's tree, each frame annotated with its inclusive value in the baseline: widths
 * come from `shown`, colours from the change of share against `baseline`.
 */
export function buildDiffTree(baseline: Folded, shown: Folded, rootName = 'all'): { tree: FlameNode; summary: DiffSummary } {
  const tree = buildTree(shown, rootName);
  const base = buildTree(baseline, rootName);
  const annotate = (n: FlameNode, b: FlameNode | undefined) => {
    n.baseline = b?.value ?? 0;
    const byName = new Map((b?.children ?? []).map((c) => [c.name, c]));
    for (const c of n.children) annotate(c, byName.get(c.name));
  };
  annotate(tree, base);
  let vanishedValue = 0, vanishedStacks = 0;
  for (const [stack, v] of baseline) {
    if (v > 0 && !((shown.get(stack) ?? 0) > 0)) { vanishedValue += v; vanishedStacks++; }
  }
  return { tree, summary: { shownTotal: tree.value, baselineTotal: base.value, vanishedValue, vanishedStacks } };
}

/** Depth of the deepest frame (the root is depth 0). */
export function treeDepth(n: FlameNode): number {
  let d = 0;
  for (const c of n.children) d = Math.max(d, 1 + treeDepth(c));
  return d;
}
