// Why a connection to the controller failed, in words a user can act on. gRPC reports most TLS
// failures as "UNAVAILABLE: No connection established. Last error: Failed to connect", whatever
// went wrong; this makes one plain TLS (or TCP) connection with the agent's own settings and
// says which side refused what. Only called after a failure, so it costs nothing on a good link.
import net from 'node:net';
import tls from 'node:tls';

export interface DiagnosisTls {
  ca: Buffer;
  cert?: Buffer;
  key?: Buffer;
  serverName?: string;
}

function splitAddress(address: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(address) ?? /^([^:]+):(\d+)$/.exec(address);
  return m?.[1] !== undefined ? { host: m[1], port: Number(m[2]) } : { host: address, port: 0 };
}

const CERT_VERIFY = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_SIGNATURE_FAILURE', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERR_TLS_CERT_ALTNAME_INVALID',
]);

type Outcome = { kind: 'tcp-error'; code: string } | { kind: 'tls-error'; code: string; message: string } | { kind: 'closed' } | { kind: 'ok' } | { kind: 'silent' };

/** Checks the controller's certificate against `name` instead of the host connected to (GrpcTlsOptions.serverName). */
const checkAs = (name: string) => (_host: string, cert: tls.PeerCertificate): Error | undefined => tls.checkServerIdentity(name, cert);

/** One connection with these settings: what happened within `ms`. */
function tryConnect(host: string, port: number, t: DiagnosisTls | 'plain' | 'any-tls', ms: number): Promise<Outcome> {
  return new Promise((resolve) => {
    let settled = false;
    let secure = false;
    const done = (o: Outcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(o);
    };
    const sock: net.Socket =
      t === 'plain'
        ? net.connect({ host, port })
        : tls.connect({
            host, port, ALPNProtocols: ['h2'],
            ...(net.isIP(host) === 0 ? { servername: t === 'any-tls' ? host : (t.serverName ?? host) } : {}),
            ...(t === 'any-tls'
              ? { rejectUnauthorized: false }
              : { ca: t.ca, ...(t.cert ? { cert: t.cert } : {}), ...(t.key ? { key: t.key } : {}),
                  ...(t.serverName !== undefined ? { checkServerIdentity: checkAs(t.serverName) } : {}) }),
          });
    const timer = setTimeout(() => done(secure ? { kind: 'silent' } : { kind: 'tcp-error', code: 'ETIMEDOUT' }), ms);
    sock.once(t === 'plain' ? 'connect' : 'secureConnect', () => {
      secure = true;
      if (t === 'plain' || t === 'any-tls') done({ kind: 'ok' });
    });
    // The controller speaks first (HTTP/2 SETTINGS) once it accepted us.
    sock.once('data', () => done({ kind: 'ok' }));
    sock.once('error', (e: NodeJS.ErrnoException) => {
      const code = e.code ?? 'ERROR';
      if (!secure && ['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT'].includes(code)) done({ kind: 'tcp-error', code });
      else done({ kind: 'tls-error', code, message: e.message });
    });
    sock.once('close', () => done({ kind: 'closed' }));
  });
}

/**
 * A sentence saying why the agent cannot talk to the controller at `address` with `tlsOpts`
 * (undefined: plaintext), or '' when a plain connection works (the failure is elsewhere).
 */
export async function diagnoseLink(address: string, tlsOpts: DiagnosisTls | undefined, ms = 3000): Promise<string> {
  const { host, port } = splitAddress(address);
  if (port === 0) return '';
  if (tlsOpts === undefined) {
    const plain = await tryConnect(host, port, 'plain', ms);
    if (plain.kind === 'tcp-error') return `nothing accepts connections at ${address} (${plain.code}): is the controller running there?`;
    const secured = await tryConnect(host, port, 'any-tls', ms);
    if (secured.kind === 'ok') {
      return `the controller at ${address} serves TLS and this agent speaks plaintext: give --tls-ca (the CA of the controller's ` +
        'certificate), and --tls-cert/--tls-key if it requires mutual TLS';
    }
    return '';
  }
  const o = await tryConnect(host, port, tlsOpts, ms);
  switch (o.kind) {
    case 'ok':
      return '';
    case 'tcp-error':
      return `nothing accepts connections at ${address} (${o.code}): is the controller running there?`;
    case 'tls-error':
      if (CERT_VERIFY.has(o.code)) {
        return `the controller's certificate does not verify against --tls-ca (${o.code}): give the CA that signed the ` +
          `controller's certificate${o.code === 'ERR_TLS_CERT_ALTNAME_INVALID' ? ', or a certificate whose subjectAltName names this address' : ''}`;
      }
      if (/CERTIFICATE_REQUIRED|HANDSHAKE_FAILURE/.test(o.code) && tlsOpts.cert === undefined) {
        return 'the controller requires a client certificate (mutual TLS): give --tls-cert and --tls-key issued by the CA the controller trusts for agents';
      }
      if (/ALERT_(UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_UNKNOWN|DECRYPT_ERROR|ACCESS_DENIED|CERTIFICATE_EXPIRED)/.test(o.code)) {
        return `the controller refused this agent's client certificate (${o.code}): use a --tls-cert issued by the CA the controller trusts ` +
          'for agents (its --tls-ca)';
      }
      if (/WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|HTTP_REQUEST/.test(o.code)) {
        return `the controller at ${address} does not speak TLS (${o.code}): drop --tls-ca or start the controller with --tls-cert/--tls-key`;
      }
      return `TLS with the controller failed: ${o.code}: ${o.message.split('\n', 1)[0]}`;
    case 'closed':
      return tlsOpts.cert !== undefined
        ? 'the controller closed the connection right after the TLS handshake: it does not accept this client certificate ' +
          '(--tls-cert): use one issued by the CA the controller trusts for agents (its --tls-ca)'
        : 'the controller closed the connection right after the TLS handshake: it probably requires a client certificate (mutual TLS): ' +
          'give --tls-cert and --tls-key';
    case 'silent':
      return '';
  }
}
