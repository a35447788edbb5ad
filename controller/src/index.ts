// @bpfleet/controller
export * from './store/index.js';
export * from './bundles/index.js';
