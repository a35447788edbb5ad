// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tcptop: TCP payload per connection and process, summed in the kernel; the loader ranks and
 * clears it every interval. Hooks: see bpfleet/tcp_io.bpf.h.
 *
 * Per-CPU maps (no atomics: armv7's JIT has none), two of them: the loader points slot 0 of
 * conns_cur at one while it drains and clears the other, so nothing counted is lost.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "bpfleet/common.bpf.h"
#include "bpfleet/tcp_io.bpf.h"
#include "tcptop.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Keeps struct tcptop_event in the object's BTF, for the manifest check. */
const volatile struct tcptop_event tcptop_event_layout = {};

struct conns_map {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, TCPTOP_MAX_CONNS);
	__type(key, struct tcptop_key);
	__type(value, struct tcptop_val);
} conns_a SEC(".maps"), conns_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct conns_map);
} conns_cur SEC(".maps") = {
	.values = { [0] = &conns_a },
};

static __always_inline void tcp_io_account(const struct tcp_io_conn *c, bool send, __u64 bytes)
{
	struct tcptop_val *v, init = {};
	struct tcptop_key key;
	struct sock *sk = c->sk;
	void *m = tcp_io_current(&conns_cur);
	int err;

	if (!m)
		return;
	__builtin_memset(&key, 0, sizeof(key));
	key.pid = c->tgid;
	key.family = c->family;
	key.lport = c->lport;
	key.rport = c->rport;
	if (c->family == AF_INET) {
		err = bpf_core_read(key.saddr, 4, &sk->__sk_common.skc_rcv_saddr);
		err |= bpf_core_read(key.daddr, 4, &sk->__sk_common.skc_daddr);
	} else {
		err = bpf_core_read(key.saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		err |= bpf_core_read(key.daddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
	if (err)
		bpfleet_count(BPFLEET_STAT_READ_FAILED);

	v = bpf_map_lookup_elem(m, &key);
	if (!v) {
		/* First transfer of this connection in the interval: create it with the count. */
		if (send)
			init.sent = bytes;
		else
			init.recv = bytes;
		bpf_get_current_comm(init.comm, sizeof(init.comm));
		err = bpfleet_map_update(m, &key, &init, BPF_NOEXIST);
		if (err != -17 /* -EEXIST: created meanwhile, add below */)
			return;
		v = bpf_map_lookup_elem(m, &key);
		if (!v)
			return;
	}
	if (send)
		v->sent += bytes;
	else
		v->recv += bytes;
}
