// The gRPC transport of the agent protocol (AgentService): enrollment and agent sessions.
export { startGrpcServer, type GrpcServerHandle, type GrpcServerOptions, type GrpcTlsOptions, type PemSource } from './grpc-server.js';
export { AgentServiceHandlers, type AgentServiceOptions } from './agent-service.js';
export { GrpcStatusError, toStatus } from './grpc-status.js';
export { OutboundQueue, type MessageSink, type OutboundCounters, type OutboundQueueOptions } from './outbound-queue.js';
