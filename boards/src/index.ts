// @bpfleet/boards: board profiles, emulated boards under QEMU, the agent runtime per
// architecture, and provisioning of real boards (ssh, OpenHarmony hdc).
export {};
