// @bpfleet/agent
export * from './probes/index.js';
export * from './system/index.js';
export * from './bundles/index.js';
export * from './spool/index.js';
export * from './transport/index.js';
export * from './session/index.js';
export * from './config.js';
export { main } from './main.js';
export * from './sim/index.js';
