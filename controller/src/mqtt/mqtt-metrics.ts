// Prometheus families of the MQTT transport: the embedded broker's refusals (logins, ACL) and
// the bridge's traffic and sessions.
import { Exposition } from '../metrics/exposition.js';
import type { BrokerCounters } from './embedded-broker.js';
import type { MqttBridgeCounters } from './mqtt-bridge.js';

export function renderMqttMetrics(c: { bridge: MqttBridgeCounters; broker?: BrokerCounters }): string {
  const x = new Exposition();
  if (c.broker) {
    x.family('bpfleet_mqtt_auth_failures_total', 'counter', 'MQTT logins the embedded broker refused (unknown credential, username or client id not the device id).')({}, c.broker.authFailures);
    const acl = x.family('bpfleet_mqtt_acl_denied_total', 'counter', 'Publishes and subscriptions the embedded broker refused: a device outside its own topics.');
    acl({ action: 'publish' }, c.broker.publishDenied);
    acl({ action: 'subscribe' }, c.broker.subscribeDenied);
    x.family('bpfleet_mqtt_clients_connected', 'gauge', 'Devices connected to the embedded broker.')({}, c.broker.connected);
  }
  const b = c.bridge;
  x.family('bpfleet_mqtt_received_total', 'counter', 'Messages the controller received over MQTT.')({}, b.received);
  x.family('bpfleet_mqtt_malformed_total', 'counter', 'MQTT messages dropped because they did not decode or broke the protocol.')({}, b.malformed);
  x.family('bpfleet_mqtt_published_total', 'counter', 'Messages the controller published to devices.')({}, b.published);
  x.family('bpfleet_mqtt_dropped_total', 'counter', 'Droppable messages to devices dropped because too many publishes were pending.')({}, b.dropped);
  const s = x.family('bpfleet_mqtt_sessions_total', 'counter', 'Device sessions over MQTT, by how they began or ended.');
  s({ event: 'opened' }, b.sessionsOpened);
  s({ event: 'adopted' }, b.sessionsAdopted);
  s({ event: 'ended' }, b.sessionsEnded);
  x.family('bpfleet_mqtt_foreign_results_total', 'counter', 'Command results for commands another controller sent (ignored here).')({}, b.foreignResults);
  x.family('bpfleet_mqtt_reconnects_total', 'counter', 'Times the controller lost its external MQTT broker and got it back.')({}, b.reconnects);
  x.family('bpfleet_mqtt_in_flight', 'gauge', 'MQTT messages from devices being handled by the controller now.')({}, b.inFlight);
  x.family('bpfleet_mqtt_in_flight_bytes', 'gauge', 'Bytes of those messages.')({}, b.inFlightBytes);
  return x.toString();
}
