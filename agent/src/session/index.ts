// The agent's session with the controller: Hello/Welcome, replay, live events, commands.
export { AgentSession, type AgentSessionOptions, type SessionPhase } from './agent-session.js';
export { EventSender, type EventSenderCounters } from './event-sender.js';
export { PipelineStatsBook } from './pipeline-stats.js';
