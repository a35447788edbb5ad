// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * profile: on-CPU stack sampling. A software cpu-clock perf event per CPU fires --freq times
 * a second; each sample adds one to the count of (process, thread name, kernel stack, user
 * stack) in the current slot's maps (stacks.bpf.h). The loader symbolizes and emits the
 * counts every --interval.
 *
 * --pid / --comm: the task running on the CPU when the sample fires. The idle task (pid 0)
 * is left out unless --include-idle.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "profile.h"
#define BPFLEET_STACK_KEY struct profile_key
#include "bpfleet/stacks.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Keeps struct profile_event in the object's BTF, for the manifest check. */
const volatile struct profile_event profile_event_layout = {};

const volatile bool include_idle = false;
const volatile bool want_kernel = true;
const volatile bool want_user = true;

SEC("perf_event")
int profile_sample(struct bpf_perf_event_data *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct profile_key key = {};
	__u32 slot;

	if (!include_idle && (__u32)id == 0)
		return 0;
	if (!bpfleet_task_match(id >> 32, key.comm))
		return 0;
	key.pid = id >> 32;
	slot = bpfleet_stack_slot();
	key.kstack = want_kernel ? bpfleet_stackid(ctx, slot, false) : BPFLEET_STACK_NONE;
	key.ustack = want_user ? bpfleet_stackid(ctx, slot, true) : BPFLEET_STACK_NONE;
	bpfleet_stack_add(slot, &key, 1);
	return 0;
}
