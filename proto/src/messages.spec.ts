import { describe, expect, it } from 'vitest';
import { AgentMessage, ControllerMessage, ProbeStatus_State } from './index.js';

// The same bytes must serve gRPC and MQTT: plain encode/decode of the envelopes.
describe('bpfleet.v1 envelopes', () => {
  it('round-trips an event batch with 64-bit sequence numbers beyond 2^53', () => {
    const records = Buffer.alloc(88 * 3, 0xab);
    const msg: AgentMessage = {
      payload: {
        $case: 'eventBatch',
        value: {
          streamId: 'dev-1/tcpstates/r1',
          firstSeq: 2n ** 60n + 5n,
          count: 3,
          records,
          recordSize: 88,
          schemaId: 'tcpstates@1.0.0:0123456789abcdef',
          clockOffsetNs: -12345678901234n,
          intervalIndex: [],
        },
      },
    };
    const bytes = AgentMessage.encode(msg).finish();
    const back = AgentMessage.decode(bytes);
    expect(back.payload?.$case).toBe('eventBatch');
    if (back.payload?.$case !== 'eventBatch') throw new Error('wrong case');
    expect(back.payload.value.firstSeq).toBe(2n ** 60n + 5n);
    expect(back.payload.value.clockOffsetNs).toBe(-12345678901234n);
    expect(Buffer.from(back.payload.value.records).equals(records)).toBe(true);
    expect(back.payload.value.count).toBe(3);
  });

  it('round-trips controller commands and keeps enum values', () => {
    const ack: ControllerMessage = { payload: { $case: 'ack', value: { streamId: 's', ackedThrough: 41n, gapRecords: 0n } } };
    expect(ControllerMessage.decode(ControllerMessage.encode(ack).finish())).toEqual(ack);
    const st: AgentMessage = {
      payload: {
        $case: 'probeStatus',
        value: {
          runId: 'r', probe: 'skbclone', state: ProbeStatus_State.STATE_FAILED,
          reason: 'unsupported on this kernel: needs kprobes', exitCode: 3, restarts: 0,
          loaderHelloJson: '', streamId: '',
        },
      },
    };
    const back = AgentMessage.decode(AgentMessage.encode(st).finish());
    expect(back).toEqual(st);
  });

  it('rejects a malformed message instead of inventing one', () => {
    // A length-delimited field (tag 4, event_batch) claiming 100 bytes with 3 present.
    const bad = Uint8Array.from([0x22, 100, 1, 2, 3]);
    expect(() => AgentMessage.decode(bad)).toThrow();
  });
});
