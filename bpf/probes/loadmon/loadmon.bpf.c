// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * loadmon: kernel stacks sampled only while the system is loaded. Like profile, a software
 * cpu-clock perf event per CPU fires --freq times a second; the program counts a sample only
 * while the loader has set `armed` (it compares the 1-minute load average with --threshold
 * every interval), and only when the CPU was in the kernel (a sample in user mode has no
 * kernel stack and is not counted).
 *
 * --pid / --comm: the task on the CPU. The idle task is left out.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "loadmon.h"
#define BPFLEET_STACK_KEY struct loadmon_key
#include "bpfleet/stacks.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Keeps struct loadmon_event in the object's BTF, for the manifest check. */
const volatile struct loadmon_event loadmon_event_layout = {};

/* Written by the loader through the mmap'ed .bss. */
volatile __u32 armed = 0;

SEC("perf_event")
int loadmon_sample(struct bpf_perf_event_data *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct loadmon_key key = {};
	__u32 slot;

	if (!armed || (__u32)id == 0)
		return 0;
	if (!bpfleet_task_match(id >> 32, key.comm))
		return 0;
	slot = bpfleet_stack_slot();
	key.kstack = bpfleet_stackid(ctx, slot, false);
	if (key.kstack == BPFLEET_STACK_NONE)
		return 0;	/* in user mode: no kernel stack */
	key.pid = id >> 32;
	key.ustack = BPFLEET_STACK_NONE;
	bpfleet_stack_add(slot, &key, 1);
	return 0;
}
