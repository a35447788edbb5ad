// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kvmexit: KVM exits per VM (the VMM's tgid), vCPU and reason, with the time from each exit to
 * the same vCPU thread's next entry (handling in the kernel and, for exits KVM hands to the
 * VMM such as port I/O and MMIO, the trip through user space).
 *
 * kvm:kvm_exit differs per architecture: x86 has exit_reason, isa (VMX or SVM) and vcpu_id;
 * arm64 has ret (the kvm exit code: IRQ, trap, ...) and esr_ec (the exception class of a
 * trap) and no vCPU id (the thread id stands in). The loader reads the field offsets from the
 * tracepoint's format file and sets them here before load (-1: no such field); being
 * read-only data, the verifier sees them as constants and drops the other architecture's
 * branch.
 *
 * Exits KVM hands to the VMM (port I/O and MMIO it does not emulate itself, HLT without an
 * in-kernel irqchip, shutdown, ...) are counted too, as isa 4 with the KVM_EXIT_* reason from
 * kvm:kvm_userspace_exit (the same on every architecture), their time being the VMM's: from
 * that exit to the thread's next ioctl(KVM_RUN) (syscalls:sys_enter_ioctl). Hosts whose KVM
 * never fires kvm_exit (a software-virtualized vCPU, e.g. PVM, where guest code is emulated)
 * still show these.
 *
 * An exit is counted when it happens; its time is added when the vCPU re-enters, so an exit
 * still in progress at the end of an interval adds its time to the interval it ends in, and
 * the last exit of a vCPU that never re-enters (VM shut down) adds none. --pid filters on the VMM's tgid, --comm on the
 * vCPU thread's name.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "bpfleet/common.bpf.h"
#include "kvmexit.h"

#define ARM_EXCEPTION_TRAP 2

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile struct kvmexit_event kvmexit_event_layout = {};

/* kvm_exit field offsets (bytes into the tracepoint record; -1: absent). */
const volatile int off_exit_reason = -1;	/* x86 */
const volatile int off_isa = -1;		/* x86 */
const volatile int off_vcpu_id = -1;		/* x86 since 5.x */
const volatile int off_ret = -1;		/* arm64 */
const volatile int off_esr_ec = -1;		/* arm64 */
const volatile int off_user_reason = 8;		/* kvm_userspace_exit's reason */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct kvmexit_key);
	__type(value, struct kvmexit_val);
} exits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct kvmexit_pending);
} pending SEC(".maps");

/* Threads between an exit to the VMM and their next KVM_RUN. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct kvmexit_pending);
} upending SEC(".maps");

#define KVM_RUN 0xae80	/* _IO(KVMIO, 0x80) */

/* syscalls:sys_enter_ioctl on 64-bit kernels (KVM hosts): the arguments are 8-byte slots. */
struct ioctl_enter {
	__u64 common;
	__s32 nr;
	__u32 __pad;
	__u64 fd;
	__u64 cmd;
	__u64 arg;
};

/* The verifier allows only fixed offsets in the load instruction itself, so the record is
 * read through the helper (a failure is counted and reads as 0). */
static __always_inline __u32 field(void *ctx, int off)
{
	__u32 v = 0;

	if (bpf_probe_read_kernel(&v, sizeof(v), (char *)ctx + off))
		bpfleet_count(BPFLEET_STAT_READ_FAILED);
	return v;
}

/* The running totals of key, created on first use; NULL if the map is full (counted). */
static __always_inline struct kvmexit_val *totals(struct kvmexit_key *key, __u32 tid)
{
	struct kvmexit_val *v = bpf_map_lookup_elem(&exits, key), init = {};

	if (v)
		return v;
	init.tid = tid;
	bpf_get_current_comm(init.comm, sizeof(init.comm));
	/* NOEXIST: a racing first exit of the same key elsewhere must not be overwritten
	 * (-EEXIST then, and the lookup finds that entry; a full map is counted). */
	bpfleet_map_update(&exits, key, &init, BPF_NOEXIST);
	v = bpf_map_lookup_elem(&exits, key);
	if (v && !v->comm[0]) {	/* this CPU's slot of an entry another CPU created */
		v->tid = tid;
		bpf_get_current_comm(v->comm, sizeof(v->comm));
	}
	return v;
}

/* An exit: counted now; its time is added when the vCPU goes back in (account()). */
static __always_inline void count_exit(void *map, struct kvmexit_pending *p, __u32 tid)
{
	struct kvmexit_val *v = totals(&p->key, tid);

	if (v)
		v->count++;
	p->ts = bpf_ktime_get_ns();
	bpfleet_map_update(map, &tid, p, BPF_ANY);
}

/* The vCPU goes back in: the time since its last exit is added to that exit's reason. */
static __always_inline void account(struct kvmexit_pending *p, __u32 tid)
{
	struct kvmexit_val *v = bpf_map_lookup_elem(&exits, &p->key);

	if (v)
		v->time_ns += bpf_ktime_get_ns() - p->ts;
	p->ts = 0;
}

SEC("tracepoint/kvm/kvm_exit")
int kvmexit_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, tgid = id >> 32;
	struct kvmexit_pending p = { .key.tgid = tgid, .key.vcpu = tid };

	if (!bpfleet_task_match(tgid, NULL))
		return 0;
	if (off_exit_reason >= 0) {
		p.key.reason = field(ctx, off_exit_reason);
		p.key.isa = off_isa >= 0 ? field(ctx, off_isa) : KVMEXIT_ISA_VMX;
		if (p.key.isa == KVMEXIT_ISA_VMX)
			p.key.reason &= 0xffff;	/* basic exit reason; the high bits are flags */
		if (off_vcpu_id >= 0)
			p.key.vcpu = field(ctx, off_vcpu_id);
	} else if (off_esr_ec >= 0 && off_ret >= 0) {
		__u32 ret = field(ctx, off_ret);

		p.key.isa = KVMEXIT_ISA_ARM64;
		p.key.reason = ret == ARM_EXCEPTION_TRAP ? field(ctx, off_esr_ec) : 0x100 + ret;
	} else {
		return 0;
	}
	count_exit(&pending, &p, tid);
	return 0;
}

SEC("tracepoint/kvm/kvm_entry")
int kvmexit_entry(void *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct kvmexit_pending *p = bpf_map_lookup_elem(&pending, &tid);

	if (p && p->ts)	/* else: the first entry, or filtered out at the exit */
		account(p, tid);
	return 0;
}

SEC("tracepoint/kvm/kvm_userspace_exit")
int kvmexit_user(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, tgid = id >> 32;
	struct kvmexit_pending *hw = bpf_map_lookup_elem(&pending, &tid);
	struct kvmexit_pending p = { .key.tgid = tgid, .key.isa = KVMEXIT_ISA_USER };

	if (!bpfleet_task_match(tgid, NULL))
		return 0;
	/* The vCPU id a kvm_exit of this thread gave (x86), else the thread id. */
	p.key.vcpu = hw ? hw->key.vcpu : tid;
	p.key.reason = field(ctx, off_user_reason);
	count_exit(&upending, &p, tid);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_ioctl")
int kvmexit_run(struct ioctl_enter *ctx)
{
	__u32 tid;
	struct kvmexit_pending *p;

	if (ctx->cmd != KVM_RUN)
		return 0;
	tid = (__u32)bpf_get_current_pid_tgid();
	p = bpf_map_lookup_elem(&upending, &tid);
	if (p && p->ts)
		account(p, tid);
	return 0;
}
