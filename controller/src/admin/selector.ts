// Which devices a command goes to: `--to board=dayu200,lab=3`, `--to dev-7`, `--to all`. The
// syntax and matching are the fleet's (fleet/selector.ts); the admin API adds the check of a
// selector that arrives as a JSON object.
import { parseSelector, type DeviceSelector } from '../fleet/selector.js';

export { formatSelector, matchesSelector, parseSelector, type DeviceSelector } from '../fleet/selector.js';

const WORD = /^[A-Za-z0-9_.:/-]+$/;

/** Checks a selector that arrived as JSON. */
export function validateSelector(value: unknown): DeviceSelector {
  if (typeof value === 'string') return parseSelector(value);
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error('selector must be a string (board=dayu200,lab=3) or an object');
  const v = value as Record<string, unknown>;
  for (const k of Object.keys(v)) if (!['devices', 'labels', 'all'].includes(k)) throw new Error(`selector: unknown key "${k}"`);
  const sel: DeviceSelector = {};
  if (v['all'] !== undefined) { if (typeof v['all'] !== 'boolean') throw new Error('selector.all must be a boolean'); if (v['all']) sel.all = true; }
  if (v['devices'] !== undefined) {
    if (!Array.isArray(v['devices']) || v['devices'].some((d) => typeof d !== 'string' || !WORD.test(d))) throw new Error('selector.devices must be an array of device names or ids');
    if (v['devices'].length) sel.devices = v['devices'] as string[];
  }
  if (v['labels'] !== undefined) {
    const l = v['labels'];
    if (!l || typeof l !== 'object' || Array.isArray(l) || Object.values(l).some((x) => typeof x !== 'string')) throw new Error('selector.labels must be an object of strings');
    if (Object.keys(l).length) sel.labels = l as Record<string, string>;
  }
  if (!sel.all && !sel.devices && !sel.labels) throw new Error('selector selects nothing: name devices, labels, or all');
  if (sel.all && (sel.devices || sel.labels)) throw new Error('selector: all cannot be combined with devices or labels');
  return sel;
}
