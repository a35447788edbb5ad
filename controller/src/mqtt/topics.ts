// The MQTT topic scheme of bpfleet.v1, controller side (docs/MQTT.md); the agent keeps its own
// copy (agent/src/transport/mqtt-topics.ts). Every topic of a device lives under
// bpfleet/v1/<device>/: that prefix is what a device may use, and nothing else.
export const TOPIC_ROOT = 'bpfleet/v1';

export type DeviceTopicKind = 'up' | 'result' | 'cmd' | 'status';

/** What a device may do on each of its topics. */
const DEVICE_MAY: Record<DeviceTopicKind, { publish: boolean; subscribe: boolean }> = {
  up: { publish: true, subscribe: false },
  result: { publish: true, subscribe: false },
  status: { publish: true, subscribe: false },
  cmd: { publish: false, subscribe: true },
};

export function deviceTopic(deviceId: string, kind: DeviceTopicKind, root = TOPIC_ROOT): string {
  return `${root}/${deviceId}/${kind}`;
}

/** The device and kind of a concrete topic, or undefined when it is not one of bpfleet's. */
export function parseDeviceTopic(topic: string, root = TOPIC_ROOT): { deviceId: string; kind: DeviceTopicKind } | undefined {
  if (!topic.startsWith(`${root}/`)) return undefined;
  const rest = topic.slice(root.length + 1).split('/');
  if (rest.length !== 2 || rest[0] === '' || !(rest[1]! in DEVICE_MAY)) return undefined;
  return { deviceId: rest[0]!, kind: rest[1] as DeviceTopicKind };
}

/**
 * Why device `deviceId` may not publish on `topic` (or subscribe to the filter `topic`), or
 * undefined when it may. Wildcards never match for a device: it names its own topics exactly.
 */
export function deviceAclDenial(deviceId: string, action: 'publish' | 'subscribe', topic: string, root = TOPIC_ROOT): string | undefined {
  const t = parseDeviceTopic(topic, root);
  if (t === undefined || /[+#]/.test(topic) || topic.startsWith('$')) {
    return `device ${deviceId} may ${action} only on its own topics ${root}/${deviceId}/..., not on "${topic}"`;
  }
  if (t.deviceId !== deviceId) return `device ${deviceId} may not ${action} on "${topic}": that topic belongs to device ${t.deviceId}`;
  if (!DEVICE_MAY[t.kind][action]) return `device ${deviceId} may not ${action} on its ${t.kind} topic "${topic}"`;
  return undefined;
}

/** The filters a controller subscribes to; `share` splits the up topics among controllers (MQTT 5 shared subscription). */
export function controllerFilters(share: string | undefined, root = TOPIC_ROOT): { up: string; result: string; status: string } {
  const up = `${root}/+/up`;
  return { up: share ? `$share/${share}/${up}` : up, result: `${root}/+/result`, status: `${root}/+/status` };
}
