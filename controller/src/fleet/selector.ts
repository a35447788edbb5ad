// Which devices a command goes to: `all`, `name=bench-1` (or a bare name or id), labels and facts
// such as `board=dayu200,arch=arm64`. Terms are separated by commas and all must hold.
// The object form is the admin API's DeviceSelector (admin/selector.ts), so either can be passed.
import type { DeviceRow } from '../store/store.js';
import { FleetError } from './fleet-error.js';

export interface DeviceSelector {
  /** Device names or ids; any of them. */
  devices?: string[];
  /** key=value terms: a label of that key, else the device fact of that name (arch, board, libc, ...). */
  labels?: Record<string, string>;
  /** Every device. */
  all?: boolean;
}

const SYNTAX = 'use all, a device name, name=<device>, or labels and facts like board=dayu200,arch=arm64';

export function parseSelector(text: string): DeviceSelector {
  const terms = text.split(',').map((t) => t.trim());
  if (text.trim() === '' || terms.includes('')) throw new FleetError('invalid_argument', `selector "${text}" has an empty term: ${SYNTAX}`);
  const sel: DeviceSelector = {};
  for (const t of terms) {
    if (t === 'all' || t === '*') { sel.all = true; continue; }
    const eq = t.indexOf('=');
    if (eq < 0) { (sel.devices ??= []).push(t); continue; }
    const key = t.slice(0, eq).trim(), value = t.slice(eq + 1).trim();
    if (!key || !value) throw new FleetError('invalid_argument', `selector term "${t}" needs a key and a value: ${SYNTAX}`);
    if (key === 'name' || key === 'id') (sel.devices ??= []).push(value);
    else (sel.labels ??= {})[key] = value;
  }
  if (sel.all && (sel.devices || sel.labels)) throw new FleetError('invalid_argument', `selector "${text}": all cannot be combined with other terms`);
  return sel;
}

/** snake_case fact names as users type them (kernel_release) to the stored camelCase (kernelRelease). */
const camel = (k: string) => k.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());

function attribute(d: Pick<DeviceRow, 'labels' | 'facts'>, key: string): string | undefined {
  if (Object.hasOwn(d.labels, key)) return d.labels[key];
  const fact = d.facts[key] ?? d.facts[camel(key)];
  return typeof fact === 'string' || typeof fact === 'number' ? String(fact) : undefined;
}

export function matchesSelector(sel: DeviceSelector, d: Pick<DeviceRow, 'id' | 'name' | 'labels' | 'facts'>): boolean {
  if (sel.all) return true;
  const devices = sel.devices ?? [];
  const labels = Object.entries(sel.labels ?? {});
  if (devices.length === 0 && labels.length === 0) return false; // an empty selector selects nothing
  if (devices.length > 0 && !devices.includes(d.name) && !devices.includes(d.id)) return false;
  return labels.every(([k, v]) => attribute(d, k) === v);
}

export function toSelector(selector: string | DeviceSelector): DeviceSelector {
  return typeof selector === 'string' ? parseSelector(selector) : selector;
}

export function formatSelector(sel: DeviceSelector): string {
  if (sel.all) return 'all';
  return [...(sel.devices ?? []), ...Object.entries(sel.labels ?? {}).map(([k, v]) => `${k}=${v}`)].join(',');
}
