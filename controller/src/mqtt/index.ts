// The MQTT transport of the controller: embedded broker (aedes) or an external one, and the
// bridge that maps device topics to fleet sessions. docs/MQTT.md has the topic scheme.
export * from './topics.js';
export { startEmbeddedBroker, type EmbeddedBroker, type EmbeddedBrokerOptions, type BrokerCounters } from './embedded-broker.js';
export { MqttBridge, type MqttBridgeOptions, type MqttBridgeCounters } from './mqtt-bridge.js';
export type { BridgePort, PortHandler } from './bridge-port.js';
export { ClientPort, type ClientPortOptions } from './client-port.js';
export { InProcessPort } from './inprocess-port.js';
export { startMqtt, type MqttOptions, type RunningMqtt } from './start-mqtt.js';
export { mosquittoPasswordHash, mosquittoAclText, mosquittoPasswdText } from './mosquitto-files.js';
