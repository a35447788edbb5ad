// @bpfleet/boards: board profiles, emulated boards under QEMU, the agent runtime per
// architecture, and provisioning of real boards (ssh, OpenHarmony hdc).
export * from './profile.js';
export * from './runtime.js';
export * from './image.js';
export * from './qemu-board.js';
export * from './remote.js';
export { cacheRoot, type Progress } from './host.js';
