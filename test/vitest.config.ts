import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const root = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  test: {
    root,
    name: 'integration',
    environment: 'node',
    include: ['**/*.test.ts'],
    exclude: ['**/node_modules/**', 'fixtures/.bin/**', 'reports/**'],
    setupFiles: ['./lib/setup.ts'],
    // Tests load real eBPF programs into the one shared kernel: one file at a
    // time, each in its own process.
    pool: 'forks',
    fileParallelism: false,
    maxWorkers: 1,
    testTimeout: 60_000,
    // expect.poll waits this long by default (vitest's 1 s is short on a loaded 2-core CI machine).
    expect: { poll: { timeout: 10_000 } },
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
    reporters: ['default', 'junit'],
    outputFile: { junit: fileURLToPath(new URL('./reports/junit.xml', import.meta.url)) },
  },
});
