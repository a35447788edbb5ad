// Can a device run a probe? Each hook group of the manifest (bpf/README.md, "The manifest") must
// have at least one hook kind the device's kernel offers; the loader picks among them at load
// time. Checked before a bundle is sent, so a refusal names the missing capability.
import type { KernelCaps, Manifest } from '@bpfleet/proto';

type Cap = Exclude<keyof KernelCaps, 'jit' | 'bpfSyscall'>;

const HOOK_NEEDS: Record<string, Cap> = {
  tracepoint: 'tracepoints',
  raw_tp: 'tracepoints',
  tp_btf: 'btf',
  kprobe: 'kprobes',
  kretprobe: 'kprobes',
};

/**
 * Hook kinds that need nothing beyond the bpf() syscall (profile's and loadmon's cpu-clock perf
 * event, xdp), or whose availability only the loader can judge: a uprobe needs the target
 * library on the device (memleak's user mode finds the process's libc at attach time and says
 * which function it could not attach; its --kernel mode does not use the uprobe group at all).
 */
const NEEDS_NOTHING_MORE = new Set(['perf_event', 'xdp', 'uprobe', 'uretprobe']);

const CAP_WORDS: Record<Cap, string> = { tracepoints: 'tracepoints', btf: 'BTF', kprobes: 'kprobes' };

/** Why `manifest` cannot run with `caps`, or undefined if it can. */
export function whyNotRunnable(manifest: Pick<Manifest, 'probe' | 'hooks'>, caps: KernelCaps | undefined): string | undefined {
  if (!caps) return 'the device reported no kernel capabilities (Hello.facts.caps); update the agent or deploy with force';
  if (!caps.bpfSyscall) return 'the agent cannot use the bpf() syscall on this device (not root, or unprivileged BPF disabled)';
  const groups = new Map<string, string[]>();
  for (const h of manifest.hooks) groups.set(h.group, [...(groups.get(h.group) ?? []), h.kind]);
  const missing: string[] = [];
  for (const [group, kinds] of groups) {
    if (kinds.some((k) => NEEDS_NOTHING_MORE.has(k) || (HOOK_NEEDS[k] !== undefined && caps[HOOK_NEEDS[k]]))) continue;
    const options = [...new Set(kinds)].map((k) => {
      const need = HOOK_NEEDS[k];
      return need ? `${k} (needs ${CAP_WORDS[need]})` : `${k} (unknown hook kind)`;
    });
    missing.push(`hook group "${group}" can only attach by ${options.join(' or ')}`);
  }
  if (missing.length === 0) return undefined;
  const lacks = (Object.keys(CAP_WORDS) as Cap[]).filter((c) => !caps[c]).map((c) => CAP_WORDS[c]);
  return `${manifest.probe} cannot run on this kernel (no ${lacks.join(', no ')}): ${missing.join('; ')}`;
}
