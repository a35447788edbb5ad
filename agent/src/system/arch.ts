// Architecture names as the probes use them (bpf/out/<arch>): x86_64, arm64, arm.

export type ProbeArch = 'x86_64' | 'arm64' | 'arm';

/** From Node's process.arch / os.arch(). */
export function probeArchFromNode(nodeArch: string): ProbeArch | undefined {
  switch (nodeArch) {
    case 'x64':
      return 'x86_64';
    case 'arm64':
      return 'arm64';
    case 'arm':
      return 'arm';
    default:
      return undefined;
  }
}

/** From `uname -m` / os.machine() (x86_64, aarch64, armv7l, armv8l for 32-bit on arm64, ...). */
export function probeArchFromMachine(machine: string): ProbeArch | undefined {
  if (machine === 'x86_64' || machine === 'amd64') return 'x86_64';
  if (machine === 'aarch64' || machine === 'arm64') return 'arm64';
  if (/^arm(v[5-8]\w*)?$/.test(machine)) return 'arm';
  return undefined;
}

/**
 * The agent's own userland decides which loader build runs (a 32-bit agent on an arm64 kernel
 * runs arm loaders), so Node's arch wins over the kernel's machine.
 */
export function detectArch(nodeArch: string, machine: string): string {
  return probeArchFromNode(nodeArch) ?? probeArchFromMachine(machine) ?? machine;
}
