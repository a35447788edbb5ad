// The dashboard page: vanilla TypeScript + uPlot, built into controller/web/dist, which
// `bpfleet controller --http` serves (npx nx run controller:build-web).
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', sourcemap: false, chunkSizeWarningLimit: 200 },
  logLevel: 'warn',
});
