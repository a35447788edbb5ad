// Loaded by vitest before every test file (setupFiles): a loader a test forgot
// to stop must not stay attached to the shared kernel for the next file.
import { afterAll } from 'vitest';
import { stopAllProbes } from './probe.js';

afterAll(async () => {
  await stopAllProbes();
});
