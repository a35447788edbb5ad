// @bpfleet/agent
export * from './probes/index.js';
export * from './system/index.js';
export * from './bundles/index.js';
export * from './spool/index.js';
