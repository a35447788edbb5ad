// The fleet core: agent sessions, group-commit ingest with acks, commands, events.
export { Fleet, stderrLog, type FleetIngestCounters, type FleetLog, type FleetOptions, type SessionInfo } from './fleet.js';
export { FleetCommander, schemaIdOf, type CommandOutcome, type DeployOptions, type PendingCommand, type SmokeOptions, type StartOutcome } from './fleet-commander.js';
export { DEFAULT_DEPLOY_CONCURRENCY, DeployLimiter } from './deploy-limiter.js';
export { FleetError, type FleetErrorCode } from './fleet-error.js';
export type { FleetEvent, FleetEventMap, FleetEventOf, FleetEventType } from './fleet-events.js';
export { GroupCommit, type CommitEntry, type CommitSink, type GroupCommitCounters, type GroupCommitOptions } from './group-commit.js';
export { CommandError, PendingCommands, type CommandFailure } from './pending-commands.js';
export { whyNotRunnable } from './runnable.js';
export { formatSelector, matchesSelector, parseSelector, toSelector, type DeviceSelector } from './selector.js';
export { AgentSession, type SendOptions, type SessionCounters, type SessionHost, type SessionLink } from './session.js';
