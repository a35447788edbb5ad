// @bpfleet/proto: the bpfleet.v1 protocol (generated from bpfleet/v1/*.proto by ts-proto, see
// buf.gen.yaml) plus the probe-side formats both agent and controller read.
export * from './gen/bpfleet/v1/fleet.js';
export * from './frames.js';
export * from './manifest.js';
export * from './bundle-digest.js';
export * from './smoke.js';
