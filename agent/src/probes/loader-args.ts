// Arguments from StartProbe go to the loader verbatim, except anything that would change its
// output mode: the agent only understands --machine framing.

/** Options that change what the loader writes to stdout, or make it exit before running. */
const OUTPUT_MODE_OPTIONS = ['json', 'machine', 'describe', 'manifest', 'help'];

export class ProbeArgsError extends Error {
  override name = 'ProbeArgsError';
}

/**
 * Throws ProbeArgsError for output-mode options. getopt_long accepts any unambiguous prefix
 * (`--mach`), so prefixes count too; `-h` is the short form of --help.
 */
export function checkProbeArgs(args: readonly string[]): void {
  for (const arg of args) {
    if (arg === '-h' || /^-[^-]*h/.test(arg)) {
      throw new ProbeArgsError(`argument "${arg}" asks for help output; the agent runs loaders in --machine mode only`);
    }
    if (!arg.startsWith('--') || arg === '--') continue;
    const name = arg.slice(2).split('=', 1)[0] ?? '';
    const hit = OUTPUT_MODE_OPTIONS.find((o) => name.length > 0 && o.startsWith(name));
    if (hit !== undefined) {
      throw new ProbeArgsError(
        `argument "${arg}" would change the loader's output mode (--${hit}); ` +
          `the agent adds --machine itself and refuses --json, --machine, --describe, --manifest and --help`,
      );
    }
  }
}

/** The full loader command line for one run: machine mode, stats cadence, then the run's args. */
export function loaderArgv(args: readonly string[], statsIntervalMs?: number): string[] {
  checkProbeArgs(args);
  const own = args.some((a) => a === '--stats-interval' || a.startsWith('--stats-interval='));
  return ['--machine', ...(statsIntervalMs !== undefined && !own ? ['--stats-interval', String(statsIntervalMs)] : []), ...args];
}
