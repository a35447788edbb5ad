// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * netstat, eBPF part: TCP state transitions per process, keyed by (tgid, state entered), in a
 * per-CPU hash the loader turns into per-interval deltas. The kernel's own SNMP/netstat
 * counters are NOT counted here: the loader reads them from /proc/net/{snmp,netstat,snmp6},
 * the kernel's authoritative copy, which no probe could reproduce exactly (many are bumped in
 * places without a tracepoint).
 *
 * Which task a transition is charged to is the task current at the hook: right for
 * connect() (SYN_SENT), close()/shutdown() (FIN_WAIT1, LAST_ACK, CLOSE) and for most
 * loopback traffic; transitions in softirq (a passive open reaching ESTABLISHED, a RST
 * closing a socket) are charged to whichever task the interrupt found. --pid/--comm filter
 * on that task.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "bpfleet/common.bpf.h"
#include "netstat.h"

#define EEXIST 17

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile struct netstat_event netstat_event_layout = {};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct netstat_key);
	__type(value, struct netstat_val);
} states SEC(".maps");

static int on_tcp_state(struct sock *sk, int oldstate, int newstate, __u16 family, __u16 lport,
			__u16 rport, const __u8 *saddr, const __u8 *daddr)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct netstat_key key = { .tgid = tgid, .state = (__u32)newstate };
	struct netstat_val *v, init = { .count = 1 };

	if (!bpfleet_task_match(tgid, NULL))
		return 0;
	v = bpf_map_lookup_elem(&states, &key);
	if (v) {
		v->count++;
		if (!v->comm[0])
			bpf_get_current_comm(v->comm, sizeof(v->comm));
		return 0;
	}
	bpf_get_current_comm(init.comm, sizeof(init.comm));
	if (bpfleet_map_update(&states, &key, &init, BPF_NOEXIST) == -EEXIST) {
		v = bpf_map_lookup_elem(&states, &key);
		if (v)
			v->count++;
	}
	return 0;
}

#include "bpfleet/tcp_state.bpf.h"
