#!/usr/bin/env node
// The `bpfleet` command. Runs the TypeScript sources through tsx until the controller is built.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
await main();
