// The web dashboard: `bpfleet controller --http HOST:PORT`.
export { WebServer, checkWebDist, DEFAULT_WEB_DIST, BUILD_WEB_COMMAND, type WebServerOptions, type WebFleet } from './web-server.js';
export { LiveHub, type LiveUpdate } from './live-hub.js';
export { WebSessions, sameOrigin, SESSION_COOKIE } from './auth.js';
export { formatSse, SseClient } from './sse.js';
