// @bpfleet/controller
export * from './store/index.js';
export * from './bundles/index.js';
export * from './fleet/index.js';
export * from './server/index.js';
export * from './export/index.js';
export * from './metrics/index.js';
// The admin API's selector and command types mirror fleet/'s (exported above under the same names).
export {
  AdminServer, startAdminApi, clientConfigPath, readClientConfig, writeClientConfig, loadOrCreateAdminToken, newAdminToken,
  DEFAULT_ADMIN_PORT, DEFAULT_ADMIN_URL, listBuiltProbes, followEvents, parseDuration, parseSince, validateSelector,
  type AdminServerOptions, type StartAdminOptions, type ClientConfig, type FleetCommands, type BuiltProbe, type FollowOptions,
} from './admin/index.js';
export { runCli, AdminClient, CliError, resolveConnection } from './cli/index.js';
export {
  aggregateStacks, foldRecords, buildTree, buildDiffTree, renderFlameGraph, formatFolded, parseFolded, StackAnomalyDetector, detectAnomalies,
  findAnomalies, StackError, DEFAULT_ANOMALY_PARAMS, type Folded, type FlameNode, type AnomalyParams, type StackAnomaly, type AnomalyRow,
} from './stacks/index.js';
