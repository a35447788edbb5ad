// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tcplife: TCP connection lifetimes per process, with bytes each way.
 * Built on the state-change hook (tcp_state.bpf.h): the opening transition stores who and when,
 * the transition to CLOSE reads the byte counters from tcp_sock and emits one record.
 *
 * Which pid: the task running at the opening transition. For connect() that is the caller;
 * for an accepted connection it is whoever ran the softirq that completed the handshake (on
 * loopback, the connecting process), as in BCC's tcplife.
 */
#include "vmlinux.h"
#include "bpfleet/common.bpf.h"
#include "tcplife.h"

#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_CLOSE 7
#define TCP_LISTEN 10

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile struct tcplife_event tcplife_event_layout = {};

struct birth {
	__u64 ts_ns;
	__u32 pid;
	__u8 passive;
	__u8 __pad[3];
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct birth);
} births SEC(".maps");

static __always_inline int on_tcp_state(struct sock *sk, int oldstate, int newstate, __u16 family,
					__u16 lport, __u16 rport, const __u8 *saddr, const __u8 *daddr)
{
	__u64 skaddr = (__u64)(unsigned long)sk, now = bpf_ktime_get_ns();
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	struct tcplife_event *e;
	struct birth *b;

	/* Listening sockets open and close no connection. */
	if (oldstate == TCP_LISTEN || newstate == TCP_LISTEN) {
		if (!(oldstate == TCP_LISTEN && newstate == TCP_SYN_RECV))
			return 0;
	}
	if (family != AF_INET && family != AF_INET6)
		return 0;
	/* Births are kept unfiltered: at CLOSE -> SYN_SENT the local port is not bound yet. */
	if (newstate != TCP_CLOSE) {
		struct birth nb = {};

		if (bpf_map_lookup_elem(&births, &skaddr))
			return 0;
		nb.ts_ns = now;
		nb.pid = bpf_get_current_pid_tgid() >> 32;
		nb.passive = newstate == TCP_SYN_RECV;
		bpf_get_current_comm(nb.comm, sizeof(nb.comm));
		bpfleet_map_update(&births, &skaddr, &nb, BPF_NOEXIST);
		return 0;
	}

	b = bpf_map_lookup_elem(&births, &skaddr);
	if (!bpfleet_ports_match(lport, rport))
		goto out;
	/* --pid/--comm apply to the task that opened the connection. */
	if (b) {
		if ((filter_tgid && b->pid != filter_tgid) || !bpfleet_comm_match(b->comm))
			goto out;
	} else if (!bpfleet_task_match(bpf_get_current_pid_tgid() >> 32, NULL)) {
		return 0;
	}

	e = bpfleet_reserve(sizeof(*e));
	if (!e)
		goto out;
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = now;
	e->skaddr = skaddr;
	e->rx_bytes = BPF_CORE_READ(tp, bytes_received);
	e->tx_bytes = BPF_CORE_READ(tp, bytes_acked);
	e->family = family;
	e->lport = lport;
	e->rport = rport;
	if (b) {
		e->span_us = (now - b->ts_ns) / 1000;
		e->pid = b->pid;
		e->passive = b->passive;
		e->open_seen = 1;
		__builtin_memcpy(e->comm, b->comm, sizeof(e->comm));
	} else {
		e->pid = bpf_get_current_pid_tgid() >> 32;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
	}
	BPFLEET_COPY_ADDRS(e, saddr, daddr, family);
	bpf_ringbuf_submit(e, 0);
out:
	bpf_map_delete_elem(&births, &skaddr);
	return 0;
}

#include "bpfleet/tcp_state.bpf.h"
