// The `bpfleet` command line.
export { runCli, main, COMMANDS } from './main.js';
export { AdminClient, CliError, resolveConnection, type Connection } from './admin-client.js';
export type { CliIo, Command } from './command.js';
