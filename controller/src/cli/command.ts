// What every subcommand is: a name, its help, its options (node:util parseArgs), and a run
// function returning the exit code.
import type { ParseArgsConfig } from 'node:util';
import { AdminClient, resolveConnection } from './admin-client.js';

export interface CliIo {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  now: () => number;
}

export type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

export interface RunContext {
  values: Values;
  positionals: string[];
  io: CliIo;
  /** Connects lazily: a usage error is reported before any config is read. */
  client(): AdminClient;
  out(text: string): void;
  err(text: string): void;
  json(value: unknown): void;
}

export interface Command {
  /** "devices", "token create", ... */
  name: string;
  summary: string;
  /** Usage lines and details after the summary. */
  help: string;
  options: Options;
  /** Positional arguments allowed: [min, max]. */
  positionals?: [number, number];
  run(ctx: RunContext): Promise<number>;
}

/** Options every command takes. */
export const GLOBAL_OPTIONS: Options = {
  url: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

export const GLOBAL_HELP = `Connection (flags > environment > ~/.config/bpfleet/controller.json):
  --url URL        admin API of the controller (BPFLEET_ADMIN_URL), default http://127.0.0.1:7475
  --token TOKEN    admin token (BPFLEET_ADMIN_TOKEN)
  --json           machine-readable output
  -h, --help       this help`;

export function makeContext(values: Values, positionals: string[], io: CliIo): RunContext {
  let client: AdminClient | undefined;
  return {
    values, positionals, io,
    client: () => (client ??= new AdminClient(resolveConnection(
      { url: values['url'] as string | undefined, token: values['token'] as string | undefined }, io.env))),
    out: (t) => { io.stdout.write(t); },
    err: (t) => { io.stderr.write(t); },
    json: (v) => { io.stdout.write(JSON.stringify(v, null, 2) + '\n'); },
  };
}

export const str = (v: Values, k: string) => v[k] as string | undefined;
