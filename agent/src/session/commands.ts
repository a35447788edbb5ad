// The controller's commands, each answered with one CommandResult whose error a user can act on.
import type { CommandResult, DeployBundle, RunSmokeTest, StartProbe, StopProbe } from '@bpfleet/proto';
import { ProbeStatus_State } from '@bpfleet/proto';
import type { BundleInstaller } from '../bundles/index.js';
import { ProbeNotInstalledError, type ProbeRegistry, type ProbeRunner } from '../probes/index.js';
import type { SmokeTester } from '../smoke/index.js';

export interface CommandDeps {
  installer: BundleInstaller;
  registry: ProbeRegistry;
  runner: ProbeRunner;
  log: (line: string) => void;
}

function ok(commandId: string, detail: unknown): CommandResult {
  return { commandId, ok: true, error: '', detailJson: JSON.stringify(detail) };
}

function failed(commandId: string, error: string): CommandResult {
  return { commandId, ok: false, error, detailJson: '' };
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export async function deployBundle(d: CommandDeps, cmd: DeployBundle): Promise<CommandResult> {
  const { commandId, ...bundle } = cmd;
  try {
    const out = await d.installer.install(bundle);
    d.log(`session: installed ${out.probe} ${out.version}${out.changed ? '' : ' (already current)'}`);
    return ok(commandId, { probe: out.probe, version: out.version, changed: out.changed, previous: out.previous });
  } catch (err) {
    d.log(`session: deploy of ${cmd.probe} ${cmd.version} refused: ${message(err)}`);
    return failed(commandId, message(err));
  }
}

export async function startProbe(d: CommandDeps, cmd: StartProbe): Promise<CommandResult> {
  try {
    // An unknown probe is a wrong command, not a run that fails later.
    const found = await d.registry.resolve(cmd.probe);
    const run = d.runner.start({ runId: cmd.runId, probe: cmd.probe, args: cmd.args });
    d.log(`session: started ${cmd.probe} as run ${cmd.runId} (${found.source} loader ${found.path})`);
    return ok(cmd.commandId, { runId: run.runId, streamId: run.streamId, loader: found.path, source: found.source });
  } catch (err) {
    const why = err instanceof ProbeNotInstalledError ? message(err) : `cannot start ${cmd.probe} run ${cmd.runId}: ${message(err)}`;
    d.log(`session: ${why}`);
    return failed(cmd.commandId, why);
  }
}

export async function stopProbe(d: CommandDeps, cmd: StopProbe): Promise<CommandResult> {
  const final = await d.runner.stop(cmd.runId);
  if (final === undefined) return failed(cmd.commandId, `no active run ${cmd.runId} on this device`);
  d.log(`session: run ${cmd.runId} ended: ${ProbeStatus_State[final.state]}${final.reason ? ` (${final.reason})` : ''}`);
  return ok(cmd.commandId, { runId: cmd.runId, state: ProbeStatus_State[final.state], exitCode: final.exitCode });
}

/**
 * Runs the smoke test (agent/src/smoke). The command itself succeeds whenever the test ran: the
 * per-probe outcomes (pass, fail, unsupported) are in detail_json as a SmokeReport.
 */
export async function runSmokeTest(smoke: SmokeTester, d: Pick<CommandDeps, 'log'>, cmd: RunSmokeTest): Promise<CommandResult> {
  try {
    const report = await smoke.run({ commandId: cmd.commandId, probes: cmd.probes, probeTimeoutMs: cmd.probeTimeoutMs });
    const n = (o: string) => report.probes.filter((p) => p.outcome === o).length;
    d.log(`session: smoke test ${cmd.commandId}: ${n('pass')} pass, ${n('fail')} fail, ${n('unsupported')} unsupported in ${report.durationMs} ms`);
    return ok(cmd.commandId, report);
  } catch (err) {
    d.log(`session: smoke test ${cmd.commandId} could not run: ${message(err)}`);
    return failed(cmd.commandId, `the smoke test could not run: ${message(err)}`);
  }
}
