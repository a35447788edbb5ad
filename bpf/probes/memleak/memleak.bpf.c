// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * memleak: outstanding allocations of one process (--pid, required) by stack. Uprobes on the
 * C library's malloc, calloc, realloc and free (the loader attaches them to that process and
 * the libc it maps): the entry notes the size asked for by thread, the return records the
 * address with size, time and the caller's user stack; free (and realloc of a block) forgets
 * it. The loader reports, every interval, what is still allocated and older than
 * --min-age-ms, summed by stack. Stacks live in one map for all intervals
 * (BPFLEET_STACK_SINGLE): an allocation may stay outstanding for a long time.
 *
 * Allocations made before the probe attached are not seen, and neither are their frees.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "memleak.h"
#define BPFLEET_STACK_KEY struct memleak_key
#define BPFLEET_STACK_SINGLE
#include "bpfleet/stacks.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Keeps struct memleak_event in the object's BTF, for the manifest check. */
const volatile struct memleak_event memleak_event_layout = {};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);	/* thread id */
	__type(value, __u64);	/* size asked for */
} sizes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);	/* address */
	__type(value, struct memleak_alloc);
} allocs SEC(".maps");

static __always_inline int enter(__u64 size)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	if (!bpfleet_task_match(bpf_get_current_pid_tgid() >> 32, NULL))
		return 0;
	bpfleet_map_update(&sizes, &tid, &size, BPF_ANY);
	return 0;
}

static __always_inline int leave(void *ctx, __u64 addr)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct memleak_alloc a = {};
	__u64 *size = bpf_map_lookup_elem(&sizes, &tid);

	if (!size)
		return 0;
	a.size = *size;
	bpf_map_delete_elem(&sizes, &tid);
	if (!addr)
		return 0;
	a.ts = bpf_ktime_get_ns();
	a.pid = id >> 32;
	/* After the return: the stack of malloc's caller. */
	a.ustack = bpfleet_stackid(ctx, 0, true);
	bpf_get_current_comm(a.comm, sizeof(a.comm));
	bpfleet_map_update(&allocs, &addr, &a, BPF_ANY);
	return 0;
}

static __always_inline int forget(__u64 addr)
{
	if (addr)
		bpf_map_delete_elem(&allocs, &addr);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(memleak_malloc, __u64 size)
{
	return enter(size);
}

SEC("uretprobe")
int BPF_KRETPROBE(memleak_malloc_ret, void *ret)
{
	return leave(ctx, (__u64)ret);
}

SEC("uprobe")
int BPF_KPROBE(memleak_calloc, __u64 n, __u64 size)
{
	return enter(n * size);
}

SEC("uretprobe")
int BPF_KRETPROBE(memleak_calloc_ret, void *ret)
{
	return leave(ctx, (__u64)ret);
}

SEC("uprobe")
int BPF_KPROBE(memleak_realloc, void *ptr, __u64 size)
{
	forget((__u64)ptr);
	return enter(size);
}

SEC("uretprobe")
int BPF_KRETPROBE(memleak_realloc_ret, void *ret)
{
	return leave(ctx, (__u64)ret);
}

SEC("uprobe")
int BPF_KPROBE(memleak_free, void *ptr)
{
	return forget((__u64)ptr);
}
