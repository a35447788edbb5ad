// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tcpstates: TCP state transitions with the time spent in the old state.
 * Hooks, in preference order: the sock:inet_sock_set_state tracepoint (Linux 4.16+, no BTF
 * needed in the kernel), else a kprobe on tcp_set_state() for older kernels.
 */
#include "vmlinux.h"
#include "bpfleet/common.bpf.h"
#include "tcpstates.h"

#define TCP_CLOSE 7

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Keeps struct tcpstates_event in the object's BTF, for the manifest check. */
const volatile struct tcpstates_event tcpstates_event_layout = {};

/* When each socket entered its current state. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} entered SEC(".maps");

static __always_inline int on_tcp_state(struct sock *sk, int oldstate, int newstate, __u16 family,
					__u16 lport, __u16 rport, const __u8 *saddr, const __u8 *daddr)
{
	__u64 skaddr = (__u64)(unsigned long)sk;
	struct tcpstates_event *e;
	__u64 now = bpf_ktime_get_ns(), *start, delta_us = 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (family != AF_INET && family != AF_INET6)
		return 0;
	if (!bpfleet_ports_match(lport, rport) || !bpfleet_task_match(tgid, NULL))
		return 0;

	start = bpf_map_lookup_elem(&entered, &skaddr);
	if (start)
		delta_us = (now - *start) / 1000;

	e = bpfleet_reserve(sizeof(*e));
	if (e) {
		e->ts_ns = now;
		e->skaddr = skaddr;
		e->delta_us = delta_us;
		e->pid = tgid;
		e->family = family;
		e->lport = lport;
		e->rport = rport;
		e->oldstate = (__u16)oldstate;
		e->newstate = (__u16)newstate;
		e->__pad = 0;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		__builtin_memset(e->saddr, 0, sizeof(e->saddr));
		__builtin_memset(e->daddr, 0, sizeof(e->daddr));
		BPFLEET_COPY_ADDRS(e, saddr, daddr, family);
		bpf_ringbuf_submit(e, 0);
	}

	if (newstate == TCP_CLOSE)
		bpf_map_delete_elem(&entered, &skaddr);
	else
		bpfleet_map_update(&entered, &skaddr, &now, BPF_ANY);
	return 0;
}

#include "bpfleet/tcp_state.bpf.h"
