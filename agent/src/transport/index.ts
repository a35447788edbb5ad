// Links to the controller: the Transport interface the session uses, and its gRPC and MQTT implementations.
export * from './transport.js';
export { GrpcTransport, grpcEnroll, type GrpcTransportOptions, type GrpcTlsOptions } from './grpc-transport.js';
export { MqttTransport, parseMqttUrl, type MqttTransportOptions, type MqttTlsOptions, type MqttTransportCounters } from './mqtt-transport.js';
export { deviceTopics, TOPIC_ROOT, type DeviceTopics } from './mqtt-topics.js';
