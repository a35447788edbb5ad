#!/usr/bin/env node
// bpfleet-sim: the fleet simulator (agent/src/sim), run from its TypeScript sources through tsx
// like bpfleet-agent. `--worker` is how it starts its own worker processes.
import { register } from 'tsx/esm/api';

register();
if (process.argv[2] === '--worker') {
  const { workerMain } = await import('../src/sim/sim-worker.ts');
  process.exitCode = await workerMain();
} else {
  const { simMain } = await import('../src/sim/sim-main.ts');
  process.exit(await simMain(process.argv.slice(2)));
}
