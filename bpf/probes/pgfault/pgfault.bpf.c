// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * pgfault: page faults by stack and process. Each fault adds one to the count of (process,
 * thread name, kernel stack, user stack) in the current slot's maps (stacks.bpf.h); the
 * loader symbolizes and emits the counts every --interval.
 *
 * Hooks: the x86 tracepoints exceptions/page_fault_user and exceptions/page_fault_kernel
 * (both together); elsewhere (arm64, armv7 have no such tracepoints) a kprobe on
 * handle_mm_fault(), which also sees faults taken on behalf of get_user_pages().
 * --pid / --comm: the faulting task.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "pgfault.h"
#define BPFLEET_STACK_KEY struct pgfault_key
#include "bpfleet/stacks.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Keeps struct pgfault_event in the object's BTF, for the manifest check. */
const volatile struct pgfault_event pgfault_event_layout = {};

static __always_inline int on_fault(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct pgfault_key key = {};
	__u32 slot;

	if (!bpfleet_task_match(id >> 32, key.comm))
		return 0;
	key.pid = id >> 32;
	slot = bpfleet_stack_slot();
	key.kstack = bpfleet_stackid(ctx, slot, false);
	key.ustack = bpfleet_stackid(ctx, slot, true);
	bpfleet_stack_add(slot, &key, 1);
	return 0;
}

SEC("tracepoint/exceptions/page_fault_user")
int pgfault_user_tp(void *ctx)
{
	return on_fault(ctx);
}

SEC("tracepoint/exceptions/page_fault_kernel")
int pgfault_kernel_tp(void *ctx)
{
	return on_fault(ctx);
}

SEC("kprobe/handle_mm_fault")
int BPF_KPROBE(pgfault_kprobe)
{
	return on_fault(ctx);
}
