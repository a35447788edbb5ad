// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tcpbytes: TCP payload sent and received per process (tgid), summed in the kernel and read
 * by the loader every interval. Hooks: see bpfleet/tcp_io.bpf.h.
 *
 * Per-CPU maps: no atomics (armv7's JIT has none) and no contention between CPUs. Two of
 * them, a and b: the loader points slot 0 of bytes_cur at one while it drains the other, so
 * no byte counted between a read and a delete is lost.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "bpfleet/common.bpf.h"
#include "bpfleet/tcp_io.bpf.h"
#include "tcpbytes.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Keeps struct tcpbytes_event in the object's BTF, for the manifest check. */
const volatile struct tcpbytes_event tcpbytes_event_layout = {};

struct bytes_map {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, TCPBYTES_MAX_PROCS);
	__type(key, __u32);
	__type(value, struct tcpbytes_val);
} bytes_a SEC(".maps"), bytes_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct bytes_map);
} bytes_cur SEC(".maps") = {
	.values = { [0] = &bytes_a },
};

static __always_inline void tcp_io_account(const struct tcp_io_conn *c, bool send, __u64 bytes)
{
	struct tcpbytes_val *v, init = {};
	__u32 tgid = c->tgid;
	void *m = tcp_io_current(&bytes_cur);
	int err;

	if (!m)
		return;
	v = bpf_map_lookup_elem(m, &tgid);
	if (!v) {
		/* First transfer of this process in the interval: create it with the counts. */
		if (send) {
			init.sent = bytes;
			init.send_calls = 1;
		} else {
			init.recv = bytes;
			init.recv_calls = 1;
		}
		bpf_get_current_comm(init.comm, sizeof(init.comm));
		err = bpfleet_map_update(m, &tgid, &init, BPF_NOEXIST);
		if (err != -17 /* -EEXIST: created meanwhile, add below */)
			return;
		v = bpf_map_lookup_elem(m, &tgid);
		if (!v)
			return;
	}
	if (send) {
		v->sent += bytes;
		v->send_calls++;
	} else {
		v->recv += bytes;
		v->recv_calls++;
	}
}
