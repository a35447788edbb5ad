// The fleet simulator (bpfleet-sim): many real agents per process, loaders replayed.
export * from './replay-source.js';
export * from './sim-config.js';
export * from './sim-device.js';
export { runWorker, workerMain, type WorkerReport, type WorkerStart, type WorkerDrain, type WorkerMessage } from './sim-worker.js';
export { runSim, simMain, sumReports, resultTable, type SimResult } from './sim-main.js';
