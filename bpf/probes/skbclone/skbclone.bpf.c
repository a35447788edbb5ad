// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * skbclone: skb_clone() calls per process. There is no tracepoint for skb_clone(), so the
 * only hook is a kprobe. Counts live in a per-CPU hash keyed by tgid (no atomics, no
 * cache-line bouncing on the hot path); the loader turns them into per-interval deltas.
 * --pid / --comm are checked before any map access, so filtered-out tasks cost a comparison
 * (plus bpf_get_current_comm() when --comm is given).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "bpfleet/common.bpf.h"
#include "skbclone.h"

#define EEXIST 17

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Keeps struct skbclone_event in the object's BTF, for the manifest check. */
const volatile struct skbclone_event skbclone_event_layout = {};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct skbclone_val);
} counts SEC(".maps");

SEC("kprobe/skb_clone")
int BPF_KPROBE(skbclone_kprobe)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct skbclone_val *v, init = { .count = 1 };

	if (!bpfleet_task_match(tgid, NULL))
		return 0;

	v = bpf_map_lookup_elem(&counts, &tgid);
	if (v) {
		v->count++;
		/* Another CPU created the entry: this CPU's slot starts zeroed. */
		if (!v->comm[0])
			bpf_get_current_comm(v->comm, sizeof(v->comm));
		return 0;
	}
	bpf_get_current_comm(init.comm, sizeof(init.comm));
	/* NOEXIST: a racing first call of the same tgid elsewhere must not be overwritten. */
	if (bpfleet_map_update(&counts, &tgid, &init, BPF_NOEXIST) == -EEXIST) {
		v = bpf_map_lookup_elem(&counts, &tgid);
		if (v) {
			v->count++;
			if (!v->comm[0])
				__builtin_memcpy(v->comm, init.comm, sizeof(v->comm));
		}
	}
	return 0;
}
