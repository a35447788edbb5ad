// Links to the controller: the Transport interface the session uses, and its gRPC implementation.
export * from './transport.js';
export { GrpcTransport, grpcEnroll, type GrpcTransportOptions, type GrpcTlsOptions } from './grpc-transport.js';
