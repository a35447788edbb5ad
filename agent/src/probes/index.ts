// Probe processes: registry of installed loaders, runs with restart supervision, batching.
export * from './types.js';
export * from './loader-args.js';
export * from './loader-exit.js';
export * from './manifest-cache.js';
export * from './probe-registry.js';
export * from './probe-run.js';
export * from './probe-runner.js';
export { RestartBackoff, DEFAULT_BACKOFF, type BackoffOptions } from './restart-backoff.js';
export type { LoaderCounters } from './loader-stats.js';
export type { LoaderHandle, LoaderFactory, LoaderProcessHandlers, LoaderEnd } from './loader-process.js';
