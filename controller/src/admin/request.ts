// What a route handler gets: the store, the fleet, and a checked view of the request.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Store } from '../store/store.js';
import type { FleetCommands } from './fleet-commands.js';
import { HttpError } from './http-io.js';
import { parseSince } from './time-spec.js';

export interface AdminContext {
  store: Store;
  /** Absent until the lead wires the Fleet in: commands answer 503 then. */
  fleet?: FleetCommands;
  bpfOutDir: string;
  now: () => number;
  followPollMs: number;
  /** How long deploy/start/stop wait for a device's answer. */
  commandTimeoutMs: number;
  /** Idle interval of the keep-alive line on followed streams. */
  keepAliveMs: number;
}

export class Query {
  constructor(private readonly params: URLSearchParams, private readonly nowMs: number) {}

  /** 400 for a parameter the endpoint does not know (a typo would otherwise widen the query silently). */
  allow(names: string[]): this {
    for (const k of new Set(this.params.keys())) {
      if (!names.includes(k)) throw new HttpError(400, `unknown parameter "${k}"${names.length ? ` (this endpoint takes ${names.join(', ')})` : ''}`);
    }
    return this;
  }

  str(name: string): string | undefined {
    const all = this.params.getAll(name);
    if (all.length > 1) throw new HttpError(400, `parameter "${name}" given ${all.length} times`);
    if (all[0] === '') throw new HttpError(400, `parameter "${name}" is empty`);
    return all[0];
  }

  int(name: string, min: number, max: number): number | undefined {
    const s = this.str(name);
    if (s === undefined) return undefined;
    if (!/^\d+$/.test(s) || Number(s) < min || Number(s) > max) throw new HttpError(400, `${name} must be an integer from ${min} to ${max}, got "${s}"`);
    return Number(s);
  }

  bool(name: string): boolean {
    const s = this.params.get(name);
    if (s === null) return false;
    if (['1', 'true', 'yes'].includes(s)) return true;
    if (['0', 'false', 'no'].includes(s)) return false;
    throw new HttpError(400, `${name} must be 1 or 0, got "${s}"`);
  }

  since(): bigint | undefined {
    const s = this.str('since');
    if (s === undefined) return undefined;
    try {
      return parseSince(s, this.nowMs);
    } catch (err) {
      throw new HttpError(400, (err as Error).message);
    }
  }
}

export interface RouteRequest {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  query: Query;
  /** Aborts when the client disconnects. */
  signal: AbortSignal;
}

export type Handler = (ctx: AdminContext, r: RouteRequest) => Promise<void>;

/** A device named by id or by name; 404 if neither. */
export async function resolveDevice(store: Store, idOrName: string): Promise<string> {
  const devices = await store.devices();
  const d = devices.find((x) => x.id === idOrName) ?? devices.find((x) => x.name === idOrName);
  if (!d) throw new HttpError(404, `no device "${idOrName}" (enrolled: ${devices.map((x) => x.name).join(', ') || 'none'})`);
  return d.id;
}

export function requireFleet(ctx: AdminContext): FleetCommands {
  if (!ctx.fleet) throw new HttpError(503, 'this controller runs without its fleet (no agent sessions): commands are unavailable');
  return ctx.fleet;
}
