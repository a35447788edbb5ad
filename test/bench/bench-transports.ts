// How the benchmarks start each transport between agents and the controller: the controller's
// and the agents' (or `bpfleet sim`'s) arguments, and the transport's own processes (a broker),
// whose CPU and memory the benchmarks report beside the controller's.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Mosquitto } from '../lib/index.js';

export interface TransportSetup {
  controllerArgs: string[];
  /** Arguments of `bpfleet-agent` and of `bpfleet sim` (the same flags). */
  agentArgs: string[];
  /** Processes of the transport itself (a broker) whose CPU and RSS count for the pipeline. */
  pids: { name: string; pid: number }[];
  stop(): Promise<void>;
}

/**
 * One entry per --transport. `ports` is a block of free ports for the transport's own use (a
 * broker's listener); the controller's gRPC and admin ports are the fleet's.
 */
export const TRANSPORTS: Record<string, (ports: number[]) => Promise<TransportSetup>> = {
  grpc: () => Promise.resolve({ controllerArgs: [], agentArgs: ['--transport', 'grpc'], pids: [], stop: () => Promise.resolve() }),
  // MQTT through the controller's embedded broker (aedes, in the controller process).
  mqtt: ([port]) => Promise.resolve({
    controllerArgs: ['--mqtt-listen', `127.0.0.1:${port}`], agentArgs: ['--transport', 'mqtt', '--mqtt', `mqtt://127.0.0.1:${port}`],
    pids: [], stop: () => Promise.resolve(),
  }),
  // MQTT through a real Mosquitto (anonymous here: the benchmark measures throughput, not its ACLs).
  mosquitto: async ([port]) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bpfleet-bench-mosquitto-'));
    const pw = path.join(dir, 'controller-password');
    writeFileSync(pw, 'bench\n');
    const broker = new Mosquitto({ dir, port: port! });
    await broker.start();
    return {
      controllerArgs: ['--mqtt', broker.url, '--mqtt-password-file', pw], agentArgs: ['--transport', 'mqtt', '--mqtt', broker.url],
      pids: [{ name: 'mosquitto', pid: broker.pid! }],
      stop: async () => { await broker.stop(); rmSync(dir, { recursive: true, force: true }); },
    };
  },
};

/** The names in a --transport list, each checked against TRANSPORTS. */
export function parseTransports(list: string): string[] {
  const names = list.split(',').map((s) => s.trim()).filter(Boolean);
  for (const t of names) if (!TRANSPORTS[t]) throw new Error(`--transport ${t}: known are ${Object.keys(TRANSPORTS).join(', ')}`);
  if (names.length === 0) throw new Error(`--transport: name at least one of ${Object.keys(TRANSPORTS).join(', ')}`);
  return names;
}
