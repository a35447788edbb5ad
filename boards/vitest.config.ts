import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    name: 'boards',
    environment: 'node',
    include: ['src/**/*.spec.ts'],
    testTimeout: 30_000,
    reporters: ['default', 'junit'],
    outputFile: { junit: '../test/reports/junit-boards.xml' },
  },
});
