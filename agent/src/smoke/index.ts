// On-device smoke tests (RunSmokeTest): per probe, load, attach, trigger, expect a record.
export * from './smoke-types.js';
export { SmokeTester, type SmokeCommand, type SmokeTesterOptions } from './smoke-tester.js';
export { makeTrigger, KNOWN_TRIGGERS, type SmokeTrigger } from './triggers.js';
export { TcpLoopbackTrigger } from './tcp-loopback-trigger.js';
export { ProcessActivityTrigger } from './process-trigger.js';
export { PageTouchTrigger } from './page-touch-trigger.js';
export { CpuLoadTrigger } from './cpu-load-trigger.js';
export { OpenFilesTrigger } from './open-files-trigger.js';
export { PingLoopbackTrigger } from './ping-loopback-trigger.js';
export { UdpLoopbackTrigger } from './udp-loopback-trigger.js';
export { KvmGuestTrigger } from './kvm-guest-trigger.js';
export { SmokeUnsupportedError } from './trigger-support.js';
export { describeLoaderFailure, type LoaderFailure } from './loader-failure.js';
