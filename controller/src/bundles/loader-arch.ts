// Which of the probe architectures an ELF loader was built for, from its header, so a loader
// copied into the wrong bpf/out/<arch>/ is caught before it is signed for that arch.
import { open } from 'node:fs/promises';

export const PROBE_ARCHES = ['x86_64', 'arm64', 'arm'] as const;
export type ProbeArch = (typeof PROBE_ARCHES)[number];

// e_machine values (elf.h): EM_X86_64, EM_AARCH64, EM_ARM.
const MACHINES: Record<number, ProbeArch> = { 62: 'x86_64', 183: 'arm64', 40: 'arm' };

export function isProbeArch(arch: string): arch is ProbeArch {
  return (PROBE_ARCHES as readonly string[]).includes(arch);
}

/** The arch of the ELF file at `path`, or a description of what it is instead. */
export async function loaderArch(path: string): Promise<ProbeArch | string> {
  const fh = await open(path, 'r');
  const head = Buffer.alloc(20);
  try {
    await fh.read(head, 0, 20, 0);
  } finally {
    await fh.close();
  }
  if (head.readUInt32BE(0) !== 0x7f454c46) return 'not an ELF file';
  if (head[5] !== 1) return 'a big-endian ELF file';
  const machine = head.readUInt16LE(18);
  return MACHINES[machine] ?? `an ELF file for machine ${machine}`;
}
