// A real TCP proxy for fault tests: it sits between an agent and the controller on loopback and
// can cut the link in the two ways networks fail.
//
//   cut('reset')      every connection is reset (RST to both ends) and new ones are accepted and
//                     reset at once, as a peer that rebooted or a firewall sending RSTs would.
//   cut('blackhole')  nothing is closed and nothing more moves: bytes in flight stay where they
//                     are (in the proxy and the kernel buffers, as a partition with TCP
//                     retransmission would keep them), new connections are accepted and held
//                     without a byte forwarded. Only the endpoints' own timers (keepalive) can
//                     notice. restore() lets everything held move again, in order.
//
// It counts connections and bytes in each direction so a test can show the cut was real.
//
// Given several targets it is a TCP load balancer: each new connection goes to the next target
// (round-robin) or to the one with the fewest open connections (least-connections, ties in
// round-robin order). No health checks; a connection a target refuses is redispatched to the
// next one not tried yet (as HAProxy's `option redispatch`), counted in upstreamFailed.
import net from 'node:net';

export type CutMode = 'reset' | 'blackhole';

export interface TcpProxyCounters {
  /** Connections accepted from clients. */
  accepted: number;
  /** Of those, reset at once because the link was cut ('reset' mode). */
  refused: number;
  /** Connections reset by cut('reset') while open. */
  reset: number;
  /** Client connections whose upstream connection failed (target down). */
  upstreamFailed: number;
  /** Bytes forwarded client -> target and target -> client. */
  bytesUp: number;
  bytesDown: number;
  /** Upstream connections opened, per target (index in the targets given to start()). */
  perTarget: number[];
}

interface Pair {
  client: net.Socket;
  upstream: net.Socket | undefined;
  /** Upstream connected and the forwarding listeners attached. */
  connected: boolean;
  /** Chunks read while blackholed, per direction, forwarded on restore. */
  heldUp: Buffer[];
  heldDown: Buffer[];
  /** Index of the target its upstream goes to. */
  target?: number;
}

export type Balance = 'round-robin' | 'least-connections';

export class TcpProxy {
  readonly counters: TcpProxyCounters;
  private readonly pairs = new Set<Pair>();
  private mode: CutMode | undefined;
  private nextTarget = 0;
  /** Open upstream connections per target. */
  private readonly open: number[];

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    private readonly targets: { host: string; port: number }[],
    private readonly balance: Balance,
  ) {
    this.open = targets.map(() => 0);
    this.counters = { accepted: 0, refused: 0, reset: 0, upstreamFailed: 0, bytesUp: 0, bytesDown: 0, perTarget: targets.map(() => 0) };
  }

  /**
   * Listens on 127.0.0.1:`port` (0: any free port) and forwards to `target`; several targets:
   * round robin, one per new connection.
   */
  static async start(opts: { port?: number; target: { host?: string; port: number } | { host?: string; port: number }[];
    balance?: Balance }): Promise<TcpProxy> {
    const server = net.createServer({ pauseOnConnect: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const port = (server.address() as net.AddressInfo).port;
    const targets = (Array.isArray(opts.target) ? opts.target : [opts.target]).map((t) => ({ host: t.host ?? '127.0.0.1', port: t.port }));
    if (targets.length === 0) throw new Error('TcpProxy.start: no target');
    const proxy = new TcpProxy(server, port, targets, opts.balance ?? 'round-robin');
    server.on('connection', (s) => proxy.accept(s));
    return proxy;
  }

  /** "127.0.0.1:<port>", what clients are given instead of the target's address. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** The current cut, if any. */
  get cutMode(): CutMode | undefined {
    return this.mode;
  }

  /** Open client connections (held ones included). */
  get connections(): number {
    return this.pairs.size;
  }

  cut(mode: CutMode): void {
    if (this.mode !== undefined) throw new Error(`the link is already cut (${this.mode}); restore() it first`);
    this.mode = mode;
    for (const p of [...this.pairs]) {
      if (mode === 'reset') {
        this.counters.reset++;
        this.drop(p);
      } else {
        p.client.pause();
        p.upstream?.pause();
      }
    }
  }

  restore(): void {
    if (this.mode === undefined) return;
    const was = this.mode;
    this.mode = undefined;
    if (was !== 'blackhole') return;
    for (const p of [...this.pairs]) {
      if (p.upstream === undefined) {
        this.connectUpstream(p);
        continue;
      }
      if (!p.connected) continue; // its 'connect' resumes it
      for (const d of p.heldUp.splice(0)) this.forward(d, p.upstream, p.client, 'up');
      for (const d of p.heldDown.splice(0)) this.forward(d, p.client, p.upstream, 'down');
      p.client.resume();
      p.upstream.resume();
    }
  }

  /** Stops listening and resets every connection. */
  async close(): Promise<void> {
    this.mode = undefined;
    for (const p of [...this.pairs]) this.drop(p);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    this.counters.accepted++;
    if (this.mode === 'reset') {
      this.counters.refused++;
      client.resetAndDestroy();
      return;
    }
    const p: Pair = { client, upstream: undefined, connected: false, heldUp: [], heldDown: [] };
    this.pairs.add(p);
    client.on('error', () => this.drop(p));
    client.on('close', () => this.drop(p, 'end'));
    // A blackholed link holds the new connection, silent, until restore().
    if (this.mode === undefined) this.connectUpstream(p);
  }

  private pickTarget(tried: readonly number[]): number {
    const n = this.targets.length;
    const order = Array.from({ length: n }, (_, k) => (this.nextTarget + k) % n).filter((i) => !tried.includes(i));
    let pick = order[0]!;
    if (this.balance === 'least-connections') for (const i of order) if (this.open[i]! < this.open[pick]!) pick = i;
    this.nextTarget = (pick + 1) % n;
    return pick;
  }

  private connectUpstream(p: Pair, tried: number[] = []): void {
    const i = this.pickTarget(tried);
    p.target = i;
    this.open[i]!++;
    this.counters.perTarget[i]!++;
    const up = net.connect(this.targets[i]!);
    p.upstream = up;
    up.on('error', () => {
      if (!p.connected) {
        this.counters.upstreamFailed++;
        if (tried.length + 1 < this.targets.length && this.pairs.has(p) && this.mode === undefined) {
          up.removeAllListeners('close');
          up.destroy();
          this.open[i]!--;
          this.connectUpstream(p, [...tried, i]);
          return;
        }
      }
      this.drop(p);
    });
    up.on('close', () => this.drop(p, 'end'));
    up.on('connect', () => {
      p.connected = true;
      p.client.on('data', (d: Buffer) => this.onData(p, d, 'up'));
      up.on('data', (d: Buffer) => this.onData(p, d, 'down'));
      p.client.on('end', () => up.end());
      up.on('end', () => p.client.end());
      p.client.on('drain', () => { if (this.mode === undefined) up.resume(); });
      up.on('drain', () => { if (this.mode === undefined) p.client.resume(); });
      if (this.mode === undefined) p.client.resume();
      else up.pause();
    });
  }

  private onData(p: Pair, d: Buffer, dir: 'up' | 'down'): void {
    const up = p.upstream;
    if (up === undefined) return; // data is only listened for once upstream is connected
    const [from, to] = dir === 'up' ? [p.client, up] : [up, p.client];
    if (this.mode === 'blackhole') {
      // A chunk already read when the cut came: keep it for restore(), read nothing more.
      (dir === 'up' ? p.heldUp : p.heldDown).push(d);
      from.pause();
      return;
    }
    this.forward(d, to, from, dir);
  }

  private forward(d: Buffer, to: net.Socket, from: net.Socket, dir: 'up' | 'down'): void {
    if (dir === 'up') this.counters.bytesUp += d.length;
    else this.counters.bytesDown += d.length;
    if (!to.write(d)) from.pause(); // resumed on 'drain'
  }

  /**
   * Forgets a connection. 'reset' (a cut, an error) aborts both ends with RST so the peers see
   * an abort, not an orderly close; 'end' (one side closed) lets the other flush and finish.
   */
  private drop(p: Pair, how: 'reset' | 'end' = 'reset'): void {
    if (!this.pairs.delete(p)) return;
    if (p.target !== undefined) this.open[p.target]!--;
    for (const s of [p.client, p.upstream]) {
      if (s === undefined || s.destroyed) continue;
      if (how === 'reset') s.resetAndDestroy();
      else s.end();
    }
  }
}
