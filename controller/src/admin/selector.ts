// Which devices a command goes to: `--to board=dayu200,lab=3`, `--to dev-7`, `--to all`.
// Terms are separated by commas and all must hold: `k=v` matches a label (or, failing that, a
// device fact such as arch or board), a bare word or name=/id= a device name or id (several:
// any of them), `all` or `*` every device. The Fleet parses the same syntax (fleet/selector.ts).
import type { DeviceRow } from '../store/store.js';

export interface DeviceSelector {
  /** Device names or ids; empty or absent: not restricted by name. */
  devices?: string[];
  /** Labels every selected device must carry. */
  labels?: Record<string, string>;
  /** True for `all`: no restriction (an empty selector is refused, so `all` must be said). */
  all?: boolean;
}

const WORD = /^[A-Za-z0-9_.:/-]+$/;

/** Parses the selector syntax; throws an Error saying what is wrong. */
export function parseSelector(text: string): DeviceSelector {
  const terms = text.split(',').map((t) => t.trim());
  if (text.trim() === '' || terms.some((t) => t === '')) {
    throw new Error(`selector "${text}" has an empty term: use k=v labels, device names, or all`);
  }
  const sel: DeviceSelector = {};
  for (const t of terms) {
    if (t === 'all' || t === '*') { sel.all = true; continue; }
    const eq = t.indexOf('=');
    if (eq >= 0) {
      const k = t.slice(0, eq).trim(), v = t.slice(eq + 1).trim();
      if (!WORD.test(k) || !WORD.test(v)) throw new Error(`selector term "${t}": label key and value must be non-empty words ([A-Za-z0-9_.:/-])`);
      if (k === 'name' || k === 'id') (sel.devices ??= []).push(v);
      else (sel.labels ??= {})[k] = v;
    } else {
      if (!WORD.test(t)) throw new Error(`selector term "${t}" is not a device name, a k=v label, or all`);
      (sel.devices ??= []).push(t);
    }
  }
  if (sel.all && (sel.devices || sel.labels)) throw new Error(`selector "${text}": "all" cannot be combined with other terms`);
  return sel;
}

export function formatSelector(sel: DeviceSelector): string {
  if (sel.all) return 'all';
  return [...(sel.devices ?? []), ...Object.entries(sel.labels ?? {}).map(([k, v]) => `${k}=${v}`)].join(',');
}

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

const camel = (k: string) => k.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());

/** A label of that key, else the device fact of that name (kernel_release finds kernelRelease). */
function attribute(d: Pick<DeviceRow, 'labels' | 'facts'>, key: string): string | undefined {
  if (Object.hasOwn(d.labels, key)) return d.labels[key];
  const fact = d.facts[key] ?? d.facts[camel(key)];
  return typeof fact === 'string' || typeof fact === 'number' ? String(fact) : undefined;
}

export function matchesSelector(sel: DeviceSelector, d: Pick<DeviceRow, 'id' | 'name' | 'labels' | 'facts'>): boolean {
  if (sel.all) return true;
  const labels = Object.entries(sel.labels ?? {});
  if (!sel.devices?.length && !labels.length) return false; // an empty selector selects nothing
  if (sel.devices?.length && !sel.devices.includes(d.name) && !sel.devices.includes(d.id)) return false;
  return labels.every(([k, v]) => attribute(d, k) === v);
}
