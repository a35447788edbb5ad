// Device facts, kernel capabilities and system metrics of the board the agent runs on.
export * from './arch.js';
export * from './libc.js';
export * from './proc-parsers.js';
export * from './kernel-caps.js';
export * from './device-facts.js';
export * from './system-metrics.js';
export { HostFiles } from './fs-probe.js';
