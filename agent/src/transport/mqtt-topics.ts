// The MQTT topic scheme of bpfleet.v1, agent side (docs/MQTT.md). Every topic of a device lives
// under bpfleet/v1/<device>/, which is what the broker's ACLs grant the device. The controller
// keeps its own copy (controller/src/mqtt/topics.ts): agent and controller share no code but
// @bpfleet/proto.
import type { AgentMessage } from '@bpfleet/proto';

export const TOPIC_ROOT = 'bpfleet/v1';

export interface DeviceTopics {
  /** Agent → controller: Hello, EventBatch, Heartbeat, ProbeStatus, PipelineStats (one AgentMessage per publish). */
  up: string;
  /** Agent → controller: CommandResult (every controller reads it; the one that sent the command settles it). */
  result: string;
  /** Controller → agent: Welcome, Ack, commands, AgentConfig (one ControllerMessage per publish). */
  cmd: string;
  /** Retained JSON {"state":"online"|"offline","conn":ID}; the last will says offline. */
  status: string;
}

export function deviceTopics(deviceId: string, root = TOPIC_ROOT): DeviceTopics {
  if (deviceId === '' || /[/+#\0]/.test(deviceId)) throw new Error(`device id "${deviceId}" cannot be an MQTT topic level`);
  const base = `${root}/${deviceId}`;
  return { up: `${base}/up`, result: `${base}/result`, cmd: `${base}/cmd`, status: `${base}/status` };
}

/** Where one agent message goes: command results to `result`, everything else to `up`. */
export function topicFor(t: DeviceTopics, msg: AgentMessage): string {
  return msg.payload?.$case === 'commandResult' ? t.result : t.up;
}

export interface StatusPayload {
  state: 'online' | 'offline';
  /** Random per connection: an old connection's last will must not mark a newer one offline. */
  conn: string;
}

export const statusPayload = (s: StatusPayload): Buffer => Buffer.from(JSON.stringify(s));
