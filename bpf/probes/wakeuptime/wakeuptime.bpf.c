// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * wakeuptime: time blocked, summed by target, waker and the waker's stack. When a thread
 * blocks (sched_switch with prev not runnable) the time is noted by thread id; when another
 * task wakes it (sched_waking, which runs in the waker's context, also for wakeups finished on
 * another CPU) the time blocked is added to (target, waker, waker's kernel and user stacks).
 * Sleeps shorter than --min-block-us or longer than --max-block-us are left out.
 *
 * Hooks: tp_btf (kernel BTF), else raw_tp, for both tracepoints. --pid / --comm: the target
 * (the thread that blocks). A thread already blocked when the probe started is not counted
 * for that sleep.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "wakeuptime.h"
#define BPFLEET_STACK_KEY struct wakeuptime_key
#include "bpfleet/stacks.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Keeps struct wakeuptime_event in the object's BTF, for the manifest check. */
const volatile struct wakeuptime_event wakeuptime_event_layout = {};

const volatile __u64 min_ns = 1;
const volatile __u64 max_ns = ~0ull;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct wakeuptime_start);
} start SEC(".maps");

/* task_struct's state field was renamed __state in 5.14. */
struct task_struct___new {
	unsigned int __state;
} __attribute__((preserve_access_index));

struct task_struct___old {
	long state;
} __attribute__((preserve_access_index));

static __always_inline bool task_runnable(struct task_struct *t)
{
	struct task_struct___new *n = (void *)t;
	struct task_struct___old *o = (void *)t;
	__u64 v = 0;

	/* Read the field's real size: long is 4 bytes on armv7. */
	if (bpf_core_field_exists(n->__state))
		bpf_core_read(&v, bpf_core_field_size(n->__state), &n->__state);
	else
		bpf_core_read(&v, bpf_core_field_size(o->state), &o->state);
	return v == 0;	/* TASK_RUNNING: preempted, not blocked */
}

static __always_inline int on_switch(struct task_struct *prev)
{
	struct wakeuptime_start st = {};
	__u32 tid = BPF_CORE_READ(prev, pid);

	/* prev is current here. */
	if (!tid || task_runnable(prev) || !bpfleet_task_match(BPF_CORE_READ(prev, tgid), st.comm))
		return 0;
	st.ts = bpf_ktime_get_ns();
	st.tgid = BPF_CORE_READ(prev, tgid);
	bpfleet_map_update(&start, &tid, &st, BPF_ANY);
	return 0;
}

static __always_inline int on_waking(void *ctx, struct task_struct *p)
{
	__u32 tid = BPF_CORE_READ(p, pid), slot;
	struct wakeuptime_start *s = bpf_map_lookup_elem(&start, &tid);
	struct wakeuptime_key key = {};
	__u64 delta;

	if (!s)
		return 0;
	delta = bpf_ktime_get_ns() - s->ts;
	key.pid = s->tgid;
	__builtin_memcpy(key.comm, s->comm, sizeof(key.comm));
	bpf_map_delete_elem(&start, &tid);
	if (delta < min_ns || delta > max_ns)
		return 0;
	/* current is the waker. */
	key.waker_pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(key.waker_comm, sizeof(key.waker_comm));
	slot = bpfleet_stack_slot();
	key.kstack = bpfleet_stackid(ctx, slot, false);
	key.ustack = bpfleet_stackid(ctx, slot, true);
	bpfleet_stack_add(slot, &key, delta);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(wakeuptime_switch_btf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return on_switch(prev);
}

SEC("raw_tp/sched_switch")
int BPF_PROG(wakeuptime_switch_raw, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return on_switch(prev);
}

SEC("tp_btf/sched_waking")
int BPF_PROG(wakeuptime_waking_btf, struct task_struct *p)
{
	return on_waking(ctx, p);
}

SEC("raw_tp/sched_waking")
int BPF_PROG(wakeuptime_waking_raw, struct task_struct *p)
{
	return on_waking(ctx, p);
}
