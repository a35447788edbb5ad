// The admin API (HTTP JSON, bearer token) and what it needs from the fleet.
export { AdminServer, type AdminServerOptions } from './admin-server.js';
export { startAdminApi, type StartAdminOptions } from './start-admin.js';
export {
  clientConfigPath, readClientConfig, writeClientConfig, loadOrCreateAdminToken, newAdminToken,
  DEFAULT_ADMIN_PORT, DEFAULT_ADMIN_URL, type ClientConfig,
} from './client-config.js';
export type { FleetCommands, FleetEvent, CommandOutcome, StartOutcome, PendingCommand, DeviceRef } from './fleet-commands.js';
export { parseSelector, validateSelector, matchesSelector, formatSelector, type DeviceSelector } from './selector.js';
export { parseDuration, parseSince } from './time-spec.js';
export { listBuiltProbes, type BuiltProbe } from './probe-catalog.js';
export { followEvents, type FollowOptions } from './follow-events.js';
