// The embedded MQTT broker (aedes, MQTT 3.1.1) that `bpfleet controller --mqtt` runs in its own
// process, so a fleet over MQTT needs nothing else. Devices log in with username = device id and
// password = their credential from enrollment (checked against the store). The controller's own
// bridge is not a client: it sits on the broker's message bus (inprocess-port.ts), so no login
// can claim to be the controller. ACLs: a device may publish only on its own
// up/result/status topics and subscribe only to its own cmd topic (topics.ts). A refused
// publish closes the device's connection (MQTT 3.1.1 has no way to refuse one publish); a refused
// subscription gets the failure return code 0x80. Both are logged and counted.
import { createServer, type Server, type Socket } from 'node:net';
import { Aedes, type AedesOptions, type AuthenticateError, type Client } from 'aedes';
import type { Fleet } from '../fleet/fleet.js';
import { deviceAclDenial } from './topics.js';

export interface EmbeddedBrokerOptions {
  fleet: Pick<Fleet, 'authenticate'> & { log: Fleet['log'] };
  /** Where devices connect (default 127.0.0.1:1883). */
  host?: string;
  port?: number;
}

export interface BrokerCounters {
  /** Logins refused: unknown credential, or a username that is not the credential's device. */
  authFailures: number;
  /** Publishes refused by the ACL (the connection was closed). */
  publishDenied: number;
  /** Subscriptions refused by the ACL (SUBACK 0x80). */
  subscribeDenied: number;
  /** Devices connected now. */
  connected: number;
}

export interface EmbeddedBroker {
  /** mqtt://host:port (or mqtts://) as devices reach it. */
  url: string;
  counters: BrokerCounters;
  /** The aedes instance itself (diagnostics and tests). */
  aedes: Aedes;
  close(): Promise<void>;
}

function authError(message: string, returnCode: 4 | 5): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

export async function startEmbeddedBroker(opts: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const { fleet } = opts;
  const log = fleet.log;
  const counters: BrokerCounters = { authFailures: 0, publishDenied: 0, subscribeDenied: 0, connected: 0 };
  /** client id -> the identity it logged in as. */
  const who = new WeakMap<Client, { deviceId: string }>();

  const options: AedesOptions = {
    // No cap on messages in flight inside the broker's bus (aedes' default is 100). Past the cap
    // mqemitter 7.1 queues, and drains the queue by recursion when deliveries complete at once:
    // 1,000 devices publishing together queued thousands and overflowed the stack, killing the
    // controller. Uncapped, each client still has only what one read of its socket held in flight
    // (aedes reads on once those are handled), so what the bus holds stays bounded by the clients.
    concurrency: 0,
    authenticate: (client, username, password, done) => {
      const user = username ?? '';
      const pass = password?.toString('utf8') ?? '';
      const peer = (client.conn as Socket | undefined)?.remoteAddress ?? 'unknown';
      fleet.authenticate(pass).then((device) => {
        if (device.id !== user || client.id !== device.id) {
          counters.authFailures++;
          log.warn(`mqtt: refused client "${client.id}" from ${peer}: username "${user}" and client id must both be the device id ` +
            `of the credential (${device.id})`);
          return done(authError('username and client id must be the device id', 5), false);
        }
        who.set(client, { deviceId: device.id });
        done(null, true);
      }, (err: unknown) => {
        counters.authFailures++;
        log.warn(`mqtt: refused client "${client.id}" (username "${user}") from ${peer}: ${(err as Error).message}`);
        done(authError('bad username or password', 4), false);
      });
    },
    authorizePublish: (client, packet, done) => {
      if (client === null) return done(null); // the broker's own publishes
      const id = who.get(client);
      const denial = deviceAclDenial(id?.deviceId ?? '?', 'publish', packet.topic);
      if (denial === undefined) return done(null);
      counters.publishDenied++;
      log.warn(`mqtt: ACL refused a publish by client "${client.id}": ${denial}; closing its connection`);
      done(new Error(denial));
    },
    authorizeSubscribe: (client, sub, done) => {
      const id = who.get(client);
      const denial = deviceAclDenial(id?.deviceId ?? '?', 'subscribe', sub.topic);
      if (denial === undefined) return done(null, sub);
      counters.subscribeDenied++;
      log.warn(`mqtt: ACL refused a subscription by client "${client.id}": ${denial}`);
      done(null, null);
    },
  };
  const aedes = await Aedes.createBroker(options);
  aedes.on('clientReady', (c) => { if (who.has(c)) counters.connected++; });
  aedes.on('clientDisconnect', (c) => { if (who.has(c)) counters.connected--; });

  // No Nagle: a PUBACK or a small ack held back 40 ms (delayed ACK on the peer) stalls a QoS 1 flow.
  const handle = (socket: Socket) => { socket.setNoDelay(true); aedes.handle(socket); };
  const server: Server = createServer(handle);
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`cannot listen for MQTT on ${host}:${opts.port ?? 1883}: ${err.message}`, { cause: err })));
    server.listen(opts.port ?? 1883, host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port ?? 1883;
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => { sockets.add(s); s.once('close', () => sockets.delete(s)); });
  return {
    url: `mqtt://${host.includes(':') ? `[${host}]` : host}:${port}`,
    counters,
    aedes,
    close: async () => {
      await new Promise<void>((r) => server.close(() => r()) ?? r());
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => aedes.close(() => r()));
    },
  };
}
