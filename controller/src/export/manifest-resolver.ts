// Which manifest decodes a stream: streams name their schema id, the store keeps the manifests.
import type { Manifest } from '@bpfleet/proto';
import type { Store, StreamRow } from '../store/store.js';

export class ManifestResolver {
  private readonly byStream = new Map<string, Manifest>();
  private readonly bySchema = new Map<string, Manifest>();

  constructor(private readonly store: Pick<Store, 'streams' | 'manifest'>) {}

  /** Streams matching the filter, their manifests loaded. */
  async streams(filter: { deviceId?: string; probe?: string; streamId?: string } = {}): Promise<StreamRow[]> {
    const rows = (await this.store.streams(filter.deviceId === undefined ? {} : { deviceId: filter.deviceId }))
      .filter((s) => (filter.probe === undefined || s.probe === filter.probe) &&
        (filter.streamId === undefined || s.streamId === filter.streamId));
    for (const s of rows) await this.remember(s);
    return rows;
  }

  /** The manifest of a stream; a stream first seen after the last lookup is loaded then. */
  async forStream(streamId: string): Promise<Manifest | undefined> {
    const known = this.byStream.get(streamId);
    if (known) return known;
    for (const s of await this.store.streams()) if (s.streamId === streamId) await this.remember(s);
    return this.byStream.get(streamId);
  }

  private async remember(s: StreamRow): Promise<void> {
    if (s.schemaId === null || this.byStream.has(s.streamId)) return;
    let m = this.bySchema.get(s.schemaId);
    if (!m) {
      m = await this.store.manifest(s.schemaId);
      if (!m) return;
      this.bySchema.set(s.schemaId, m);
    }
    this.byStream.set(s.streamId, m);
  }
}
