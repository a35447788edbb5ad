export * from './paths.js';
export * from './require.js';
export * from './frames.js';
export * from './probe.js';
export * from './tcpgen.js';
export * from './fleet.js';
