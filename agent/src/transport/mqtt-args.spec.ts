// The agent's MQTT command line (config.ts): --transport mqtt, --mqtt URL, --mqtt-ca, and when
// the controller's gRPC address is still needed (enrollment only).
import { describe, expect, it } from 'vitest';
import { UsageError, parseAgentArgs } from '../config.js';

const base = ['--data-dir', '/tmp/x'];

describe('bpfleet-agent --transport mqtt', () => {
  it('takes the broker URL; the gRPC address is needed only to enroll', () => {
    const a = parseAgentArgs([...base, '--transport', 'mqtt', '--mqtt', 'mqtt://10.0.0.1:1883']);
    expect(a).toMatchObject({ transport: 'mqtt', mqtt: { url: 'mqtt://10.0.0.1:1883' }, controller: '' });
    expect(() => parseAgentArgs([...base, '--transport', 'mqtt', '--mqtt', 'mqtt://h:1883', '--enroll-token', 't']))
      .toThrow(/--enroll-token needs --controller/);
    expect(parseAgentArgs([...base, '--transport', 'mqtt', '--mqtt', 'mqtt://h:1883', '--enroll-token', 't', '--controller', 'h:7474']))
      .toMatchObject({ controller: 'h:7474', enrollToken: 't' });
    expect(parseAgentArgs([...base, '--controller', 'h:7474'])).toMatchObject({ transport: 'grpc' });
    expect(parseAgentArgs([...base, '--controller', 'h:7474']).mqtt).toBeUndefined();
  });

  it('refuses what cannot work, saying what it expected', () => {
    const bad: [string[], RegExp][] = [
      [['--transport', 'mqtt'], /needs --mqtt mqtt:\/\/HOST:PORT/],
      [['--transport', 'mqtt', '--mqtt', 'tcp://h:1'], /expected mqtt:\/\/HOST:PORT/],
      [['--transport', 'mqtt', '--mqtt', 'mqtt://h'], /expected mqtt:\/\/HOST:PORT/],
      [['--transport', 'mqtts', '--mqtt', 'mqtt://h:1'], /expected grpc or mqtt/],
      [['--transport', 'mqtt', '--mqtt', 'mqtts://h:8883'], /needs --mqtt-ca/],
      [['--controller', 'h:7474', '--mqtt', 'mqtt://h:1'], /--mqtt is for --transport mqtt/],
      [[], /--controller HOST:PORT is required/],
    ];
    for (const [args, msg] of bad) expect(() => parseAgentArgs([...base, ...args]), args.join(' ')).toThrow(msg);
    expect(() => parseAgentArgs([...base, '--transport', 'mqtt'])).toThrow(UsageError);
    expect(parseAgentArgs([...base, '--transport', 'mqtt', '--mqtt', 'mqtts://h:8883', '--mqtt-ca', '/ca.pem']).mqtt)
      .toEqual({ url: 'mqtts://h:8883', ca: '/ca.pem' });
  });

  it('takes a value that starts with a dash (a base64url enrollment token may)', () => {
    expect(parseAgentArgs([...base, '--controller', 'h:7474', '--enroll-token', '-Ab_c']).enrollToken).toBe('-Ab_c');
    expect(parseAgentArgs([...base, '--controller', 'h:7474', '--enroll-token=-x', '--help']).help).toBe(true);
  });
});
