// Owns every probe run of the agent: StartProbe / StopProbe / agent shutdown. Decoding and
// fan-out of what the runs produce belong to the sink, not here.
import type { ProbeStatus, StartProbe } from '@bpfleet/proto';
import { ManifestCache } from './manifest-cache.js';
import type { ProbeRegistry } from './probe-registry.js';
import type { LoaderFactory } from './loader-process.js';
import { ProbeRun } from './probe-run.js';
import { DEFAULT_BACKOFF, type BackoffOptions } from './restart-backoff.js';
import { DEFAULT_BATCH_LIMITS, type BatchLimits, type ProbeSink } from './types.js';

export interface ProbeRunnerOptions {
  registry: ProbeRegistry;
  sink: ProbeSink;
  /** Stream ids are "<deviceId>/<probe>/<runId>". */
  deviceId: string;
  batch?: Partial<BatchLimits>;
  backoff?: Partial<BackoffOptions>;
  /** --stats-interval for every loader (default: the loader's 1000 ms). */
  statsIntervalMs?: number;
  /** Time between SIGINT and SIGKILL on stop (default 5 s). */
  stopGraceMs?: number;
  /** Batches waiting for the sink before a run stops reading its loader (default 2). */
  maxPendingBatches?: number;
  manifests?: ManifestCache;
  /** Starts loaders (default: spawn the binary); the fleet simulator replays recorded output. */
  loaderFactory?: LoaderFactory;
  /** Loader stderr and runner messages. */
  log?: (runId: string, line: string) => void;
}

export type StartRequest = Pick<StartProbe, 'runId' | 'probe' | 'args'>;

export class ProbeRunner {
  private readonly runs = new Map<string, ProbeRun>();
  readonly manifests: ManifestCache;

  constructor(private readonly opts: ProbeRunnerOptions) {
    this.manifests = opts.manifests ?? new ManifestCache();
  }

  /**
   * Starts a run. Throws (ProbeArgsError, or a duplicate run id) for requests that are wrong as
   * commands; everything that goes wrong with the loader arrives as a ProbeStatus.
   */
  start(req: StartRequest): ProbeRun {
    if (req.runId === '') throw new Error('run id is empty');
    if (this.runs.has(req.runId)) throw new Error(`run ${req.runId} is already active`);
    const log = this.opts.log ?? ((): void => undefined);
    const run = new ProbeRun({
      runId: req.runId,
      probe: req.probe,
      streamId: `${this.opts.deviceId}/${req.probe}/${req.runId}`,
      args: req.args,
      resolveBin: async () => (await this.opts.registry.resolve(req.probe)).path,
      sink: this.opts.sink,
      manifests: this.manifests,
      batch: { ...DEFAULT_BATCH_LIMITS, ...this.opts.batch },
      backoff: { ...DEFAULT_BACKOFF, ...this.opts.backoff },
      ...(this.opts.statsIntervalMs !== undefined ? { statsIntervalMs: this.opts.statsIntervalMs } : {}),
      stopGraceMs: this.opts.stopGraceMs ?? 5000,
      maxPendingBatches: this.opts.maxPendingBatches ?? 2,
      ...(this.opts.loaderFactory !== undefined ? { loaderFactory: this.opts.loaderFactory } : {}),
      log: (line) => log(req.runId, line),
    });
    this.runs.set(req.runId, run);
    void run.finished.then(() => {
      if (this.runs.get(req.runId) === run) this.runs.delete(req.runId);
    });
    run.start();
    return run;
  }

  get(runId: string): ProbeRun | undefined {
    return this.runs.get(runId);
  }

  /** Active runs (not yet STOPPED or FAILED). */
  list(): ProbeRun[] {
    return [...this.runs.values()];
  }

  /** Undefined when no such run is active. */
  async stop(runId: string): Promise<ProbeStatus | undefined> {
    return this.runs.get(runId)?.stop();
  }

  /** Agent shutdown: stop every run in parallel. */
  async stopAll(): Promise<ProbeStatus[]> {
    return Promise.all([...this.runs.values()].map((r) => r.stop()));
  }
}
