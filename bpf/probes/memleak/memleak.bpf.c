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
 *
 * Kernel mode (--kernel): the kmem tracepoints instead. kmem/kmalloc and kmem/kmem_cache_alloc
 * (plus kmalloc_node and kmem_cache_alloc_node where they are separate events, kernels before
 * 6.1) record the object's address with bytes_alloc, the time, the kernel stack and the
 * current task; kmem/kfree and kmem/kmem_cache_free forget it. The tracepoint context layout
 * differs between kernels (one trace_event_raw_kmem_alloc class up to 6.0, one struct per event
 * since), so the fields are read through CO-RE flavors, the one the running kernel has.
 * --pid / --comm filter the allocating task; --sample-rate N records about one allocation in N
 * (bpf_get_prandom_u32), the others count as sampled_out.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "memleak.h"
#define BPFLEET_STACK_KEY struct memleak_key
#define BPFLEET_STACK_SINGLE
#include "bpfleet/stacks.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* --kernel: record one allocation in sample_rate (1: all). Set by the loader. */
const volatile __u32 sample_rate = 1;

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

/* ---------------------------------------------------------------- kernel mode */

/* Tracepoint contexts, per kernel: only the fields read, relocated by CO-RE. */
struct trace_event_raw_kmalloc___bl {		/* 6.1+: kmem/kmalloc */
	const void *ptr;
	size_t bytes_alloc;
} __attribute__((preserve_access_index));

struct trace_event_raw_kmem_cache_alloc___bl {	/* 6.1+: kmem/kmem_cache_alloc */
	const void *ptr;
	size_t bytes_alloc;
} __attribute__((preserve_access_index));

struct trace_event_raw_kmem_alloc___bl {	/* up to 6.0: kmalloc, kmem_cache_alloc */
	const void *ptr;
	size_t bytes_alloc;
} __attribute__((preserve_access_index));

struct trace_event_raw_kmem_alloc_node___bl {	/* up to 6.0: the *_node events */
	const void *ptr;
	size_t bytes_alloc;
} __attribute__((preserve_access_index));

struct trace_event_raw_kfree___bl {		/* 6.1+: kmem/kfree */
	const void *ptr;
} __attribute__((preserve_access_index));

struct trace_event_raw_kmem_cache_free___bl {	/* 6.1+: kmem/kmem_cache_free */
	const void *ptr;
} __attribute__((preserve_access_index));

struct trace_event_raw_kmem_free___bl {	/* up to 6.0: kfree, kmem_cache_free */
	const void *ptr;
} __attribute__((preserve_access_index));

static __always_inline int kalloc(void *ctx, __u64 addr, __u64 size)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct memleak_alloc a = {};

	if (!addr)
		return 0;
	if (!bpfleet_task_match(id >> 32, NULL))
		return 0;
	if (sample_rate > 1 && bpf_get_prandom_u32() % sample_rate) {
		bpfleet_count(BPFLEET_STAT_SAMPLED_OUT);
		/* An earlier object at this address was freed unseen (a free with no event). */
		bpf_map_delete_elem(&allocs, &addr);
		return 0;
	}
	a.size = size;
	a.ts = bpf_ktime_get_ns();
	a.pid = id >> 32;
	a.kstack = bpfleet_stackid(ctx, 0, false);
	bpf_get_current_comm(a.comm, sizeof(a.comm));
	bpfleet_map_update(&allocs, &addr, &a, BPF_ANY);
	return 0;
}

SEC("tracepoint/kmem/kmalloc")
int memleak_kmalloc(void *ctx)
{
	if (bpf_core_type_exists(struct trace_event_raw_kmalloc___bl)) {
		struct trace_event_raw_kmalloc___bl *t = ctx;

		return kalloc(ctx, (__u64)t->ptr, t->bytes_alloc);
	} else {
		struct trace_event_raw_kmem_alloc___bl *t = ctx;

		return kalloc(ctx, (__u64)t->ptr, t->bytes_alloc);
	}
}

SEC("tracepoint/kmem/kmalloc_node")
int memleak_kmalloc_node(void *ctx)
{
	struct trace_event_raw_kmem_alloc_node___bl *t = ctx;

	return kalloc(ctx, (__u64)t->ptr, t->bytes_alloc);
}

SEC("tracepoint/kmem/kmem_cache_alloc")
int memleak_kmem_cache_alloc(void *ctx)
{
	if (bpf_core_type_exists(struct trace_event_raw_kmem_cache_alloc___bl)) {
		struct trace_event_raw_kmem_cache_alloc___bl *t = ctx;

		return kalloc(ctx, (__u64)t->ptr, t->bytes_alloc);
	} else {
		struct trace_event_raw_kmem_alloc___bl *t = ctx;

		return kalloc(ctx, (__u64)t->ptr, t->bytes_alloc);
	}
}

SEC("tracepoint/kmem/kmem_cache_alloc_node")
int memleak_kmem_cache_alloc_node(void *ctx)
{
	struct trace_event_raw_kmem_alloc_node___bl *t = ctx;

	return kalloc(ctx, (__u64)t->ptr, t->bytes_alloc);
}

SEC("tracepoint/kmem/kfree")
int memleak_kfree(void *ctx)
{
	if (bpf_core_type_exists(struct trace_event_raw_kfree___bl)) {
		struct trace_event_raw_kfree___bl *t = ctx;

		return forget((__u64)t->ptr);
	} else {
		struct trace_event_raw_kmem_free___bl *t = ctx;

		return forget((__u64)t->ptr);
	}
}

SEC("tracepoint/kmem/kmem_cache_free")
int memleak_kmem_cache_free(void *ctx)
{
	if (bpf_core_type_exists(struct trace_event_raw_kmem_cache_free___bl)) {
		struct trace_event_raw_kmem_cache_free___bl *t = ctx;

		return forget((__u64)t->ptr);
	} else {
		struct trace_event_raw_kmem_free___bl *t = ctx;

		return forget((__u64)t->ptr);
	}
}
