// The agent's durable spool: see spool.ts (API and durability) and record-format.ts (on-disk format).
export { Spool } from './spool.js';
export { SpoolFullError } from './spool-types.js';
export type { SpoolOptions, SpoolStats, SpoolStreamStats, SyncPolicy } from './spool-types.js';
export { SpoolInputError } from './record-format.js';
export type { SpoolBatchInput } from './record-format.js';
