// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * offcputime: time spent off the CPU, by stack. When a thread leaves the CPU (sched_switch,
 * prev) its kernel and user stacks are taken and the time noted by thread id; when it is
 * switched in again (sched_switch, next) the time in between is added to the count of
 * (process, thread name, stacks). Stretches shorter than --min-block-us or longer than
 * --max-block-us are left out. Stacks live in one stack map for all intervals
 * (BPFLEET_STACK_SINGLE): a thread may sleep across many.
 *
 * Hooks: tp_btf/sched_switch (kernel BTF), else raw_tp/sched_switch (tracepoint arguments
 * read through CO-RE). --pid / --comm: the thread that leaves the CPU. The idle task is never
 * counted. A thread that was already off the CPU when the probe started is counted from its
 * next switch out.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "offcputime.h"
#define BPFLEET_STACK_KEY struct offcputime_key
#define BPFLEET_STACK_SINGLE
#include "bpfleet/stacks.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Keeps struct offcputime_event in the object's BTF, for the manifest check. */
const volatile struct offcputime_event offcputime_event_layout = {};

const volatile __u64 min_ns = 1;
const volatile __u64 max_ns = ~0ull;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct offcputime_start);
} start SEC(".maps");

static __always_inline int on_switch(void *ctx, struct task_struct *prev, struct task_struct *next)
{
	__u32 prev_tid = BPF_CORE_READ(prev, pid), next_tid = BPF_CORE_READ(next, pid);
	struct offcputime_start *s, st = {};
	__u64 now = bpf_ktime_get_ns(), delta;

	/* prev is current here: its stacks are the ones it leaves the CPU with. */
	if (prev_tid && bpfleet_task_match(BPF_CORE_READ(prev, tgid), st.key.comm)) {
		st.ts = now;
		st.key.pid = BPF_CORE_READ(prev, tgid);
		st.key.kstack = bpfleet_stackid(ctx, 0, false);
		st.key.ustack = BPFLEET_READ_PTR(prev, mm) ? bpfleet_stackid(ctx, 0, true) : BPFLEET_STACK_NONE;
		bpfleet_map_update(&start, &prev_tid, &st, BPF_ANY);
	}

	s = bpf_map_lookup_elem(&start, &next_tid);
	if (!s)
		return 0;
	delta = now - s->ts;
	if (delta >= min_ns && delta <= max_ns)
		bpfleet_stack_add(bpfleet_stack_slot(), &s->key, delta);
	bpf_map_delete_elem(&start, &next_tid);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(offcputime_btf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return on_switch(ctx, prev, next);
}

SEC("raw_tp/sched_switch")
int BPF_PROG(offcputime_raw, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return on_switch(ctx, prev, next);
}
