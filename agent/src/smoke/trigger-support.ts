// What triggers share: saying that a device cannot make the activity at all (unsupported, not a
// failure of the probe), finding the programs a trigger runs, and waiting for a child process.
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';

/**
 * Thrown by a trigger's prepare() when this device cannot make the activity (no /dev/kvm, no
 * ping): the smoke result is "unsupported" with this message, like a loader's exit 3.
 */
export class SmokeUnsupportedError extends Error {
  override name = 'SmokeUnsupportedError';
}

/** The first executable `name` in PATH, or undefined. */
export function findExecutable(name: string, envPath = process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin'): string | undefined {
  for (const dir of envPath.split(':').filter(Boolean)) {
    const p = path.join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Resolves with the exit code (null: killed by a signal) of a started child. */
export function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** Waits for the child to start; rejects with what spawn said (ENOENT, EACCES). */
export function spawned(child: ChildProcess, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    child.once('spawn', () => (child.pid === undefined ? reject(new Error(`${what} has no pid`)) : resolve(child.pid)));
    child.once('error', (err) => reject(new Error(`cannot start ${what}: ${err.message}`)));
  });
}

/** SIGKILLs the child if it still runs and waits until it is gone. */
export async function killChild(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const gone = exitOf(child);
  child.kill('SIGKILL');
  await gone;
}
