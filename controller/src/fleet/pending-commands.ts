// Commands in flight: each has an id the agent echoes in CommandResult, a timeout, and the
// session it went out on. A command ends exactly once: answered, timed out, or its session ended.
import { randomBytes } from 'node:crypto';
import type { CommandResult } from '@bpfleet/proto';

export type CommandFailure = 'timeout' | 'disconnected' | 'offline';

/** A command that got no answer. */
export class CommandError extends Error {
  override name = 'CommandError';
  constructor(readonly kind: CommandFailure, message: string) {
    super(message);
  }
}

interface Entry {
  deviceId: string;
  session: object;
  what: string;
  timer: NodeJS.Timeout;
  resolve: (r: CommandResult) => void;
  reject: (e: CommandError) => void;
}

export class PendingCommands {
  private readonly entries = new Map<string, Entry>();

  newId(): string {
    return `c-${randomBytes(8).toString('hex')}`;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Resolves with the device's CommandResult; rejects with CommandError on timeout or when `session` ends. */
  wait(commandId: string, deviceId: string, session: object, what: string, timeoutMs: number): Promise<CommandResult> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.entries.delete(commandId);
        const within = timeoutMs < 10_000 ? `${timeoutMs} ms` : `${Math.round(timeoutMs / 1000)} s`;
        reject(new CommandError('timeout', `${what}: no answer from device ${deviceId} within ${within} ` +
          '(it may still carry it out; check the device with bpfleet devices)'));
      }, timeoutMs);
      this.entries.set(commandId, { deviceId, session, what, timer, resolve, reject });
    });
  }

  /** Whether a command of this id is waiting for its result here. */
  has(commandId: string): boolean {
    return this.entries.has(commandId);
  }

  /** Settles the command the result answers; false if it is unknown (timed out) or of another device. */
  settle(deviceId: string, result: CommandResult): boolean {
    const e = this.entries.get(result.commandId);
    if (!e || e.deviceId !== deviceId) return false;
    this.entries.delete(result.commandId);
    clearTimeout(e.timer);
    e.resolve(result);
    return true;
  }

  /** Fails every command sent on `session`: its answer can no longer arrive. */
  sessionEnded(session: object, reason: string): void {
    for (const [id, e] of this.entries) {
      if (e.session !== session) continue;
      this.entries.delete(id);
      clearTimeout(e.timer);
      e.reject(new CommandError('disconnected', `${e.what}: the session of device ${e.deviceId} ended before it answered ` +
        `(${reason}); it may or may not have been carried out`));
    }
  }
}
