#!/usr/bin/env node
// bpfleet-agent, run from its TypeScript sources through tsx (a root devDependency) until the
// agent has a build step; then this points at the compiled main.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/main.ts');
process.exit(await main(process.argv.slice(2)));
