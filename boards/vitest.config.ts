import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    name: 'boards',
    environment: 'node',
    include: ['src/**/*.spec.ts'],
    testTimeout: 30_000,
    // expect.poll waits this long by default (vitest's 1 s is short on a loaded 2-core CI machine).
    expect: { poll: { timeout: 10_000 } },
    reporters: ['default', 'junit'],
    outputFile: { junit: '../test/reports/junit-boards.xml' },
  },
});
