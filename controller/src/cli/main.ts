// `bpfleet`: the command line of the fleet. Subcommands talk to the controller's admin API;
// `controller` and `agent` start the long-running parts.
import { parseArgs } from 'node:util';
import { CliError } from './admin-client.js';
import { GLOBAL_HELP, GLOBAL_OPTIONS, makeContext, type CliIo, type Command, type Options } from './command.js';
import { eventsCommand, exportCommand } from './commands-events.js';
import { deployCommand, stopCommand, tokenCreateCommand } from './commands-fleet.js';
import { agentCommand, controllerCommand } from './commands-run.js';
import { anomaliesCommand, flamegraphCommand } from './commands-stacks.js';
import { devicesCommand, probesCommand, runsCommand, statsCommand } from './commands-list.js';
import { smokeCommand, smokeResultsCommand } from './commands-smoke.js';
import { BOARD_COMMANDS } from './commands-board.js';
import { mqttFilesCommand } from '../mqtt/mqtt-files-command.js';
import { simCommand } from './commands-sim.js';

export const COMMANDS: Command[] = [
  tokenCreateCommand, devicesCommand, probesCommand, deployCommand, runsCommand, stopCommand, eventsCommand,
  exportCommand, statsCommand, smokeCommand, smokeResultsCommand,
  flamegraphCommand, anomaliesCommand,
  controllerCommand, agentCommand, mqttFilesCommand, simCommand,
  ...BOARD_COMMANDS,
];

function topHelp(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length));
  return `bpfleet: a remote eBPF probe fleet

Usage: bpfleet <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`).join('\n')}

${GLOBAL_HELP}

\`bpfleet <command> --help\` describes each command.
`;
}

const commandHelp = (c: Command) => `bpfleet ${c.name}: ${c.summary}\n\n${c.help}\n\n${GLOBAL_HELP}\n`;

/**
 * `--args "--rport 443"` -> `--args=--rport 443`: a string option always takes the next word, even
 * one starting with '-' (parseArgs would call it ambiguous; loader arguments always look so).
 */
function joinStringValues(args: string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') { out.push(...args.slice(i)); break; }
    const name = a.startsWith('--') ? a.slice(2) : undefined;
    if (name && options[name]?.type === 'string' && i + 1 < args.length) { out.push(`${a}=${args[++i]}`); continue; }
    out.push(a);
  }
  return out;
}

/** Runs the CLI with `argv` (without node and the script); returns the exit code. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const words = argv.filter((a) => !a.startsWith('-'));
  if (argv.length === 0 || (argv[0] === 'help' && argv.length === 1) || argv[0] === '--help' || argv[0] === '-h') {
    io.stdout.write(topHelp());
    return argv.length === 0 ? 2 : 0;
  }
  const helpFor = argv[0] === 'help';
  const rest = helpFor ? argv.slice(1) : argv;
  // Two-word commands ("token create") first.
  const cmd = COMMANDS.find((c) => c.name === `${rest[0]} ${rest[1]}`) ?? COMMANDS.find((c) => c.name === rest[0]);
  if (!cmd) {
    const group = COMMANDS.filter((c) => c.name.startsWith(`${rest[0]} `));
    if (group.length) {
      const wantsHelp = rest.includes('--help') || rest.includes('-h') || helpFor;
      io[wantsHelp ? 'stdout' : 'stderr'].write(`Usage:\n${group.map((c) => `  bpfleet ${c.name}  ${c.summary}`).join('\n')}\n`);
      return wantsHelp ? 0 : 2;
    }
    io.stderr.write(`bpfleet: unknown command "${words[0] ?? argv[0]}"\n\n${topHelp()}`);
    return 2;
  }
  if (helpFor) { io.stdout.write(commandHelp(cmd)); return 0; }
  const args = rest.slice(cmd.name.split(' ').length);

  const options = { ...GLOBAL_OPTIONS, ...cmd.options };
  let parsed;
  try {
    parsed = parseArgs({ args: joinStringValues(args, options), options, allowPositionals: true, strict: true });
  } catch (err) {
    io.stderr.write(`bpfleet ${cmd.name}: ${(err as Error).message.split('. ')[0]}\n\n${cmd.help}\n`);
    return 2;
  }
  if (parsed.values['help']) { io.stdout.write(commandHelp(cmd)); return 0; }
  const [min, max] = cmd.positionals ?? [0, 0];
  if (parsed.positionals.length < min || parsed.positionals.length > max) {
    io.stderr.write(`bpfleet ${cmd.name}: ${parsed.positionals.length < min ? 'missing argument' : `unexpected argument "${parsed.positionals[max]}"`}\n\n${cmd.help}\n`);
    return 2;
  }
  try {
    return await cmd.run(makeContext(parsed.values, parsed.positionals, io));
  } catch (err) {
    if (err instanceof CliError) {
      io.stderr.write(`bpfleet: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  }
}

/** The process entry: real stdio, exit code, a closed pipe (| head) ending quietly. */
export async function main(): Promise<void> {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => { if (err.code === 'EPIPE') process.exit(0); throw err; });
  try {
    process.exitCode = await runCli(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env, now: Date.now });
  } catch (err) {
    process.stderr.write(`bpfleet: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 70;
  }
}
