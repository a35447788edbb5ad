/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What every bpfleet BPF program shares: the event ring buffer, the loss counters and the
 * filters the loader sets in .rodata before load (pid, comm, ports). Include after vmlinux.h.
 */
#ifndef BPFLEET_COMMON_BPF_H
#define BPFLEET_COMMON_BPF_H

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "bpfleet/stats.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

/* Resized by the loader (--ringbuf-kb) before load. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BPFLEET_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} bpfleet_stats SEC(".maps");

const volatile __u32 filter_tgid = 0;
const volatile bool filter_comm_on = false;
const volatile char filter_comm[BPFLEET_TASK_COMM_LEN] = {};
const volatile __u32 filter_nlports = 0;
const volatile __u16 filter_lports[BPFLEET_MAX_PORTS] = {};
const volatile __u32 filter_nrports = 0;
const volatile __u16 filter_rports[BPFLEET_MAX_PORTS] = {};

static __always_inline void bpfleet_count(__u32 stat)
{
	__u64 *v = bpf_map_lookup_elem(&bpfleet_stats, &stat);

	if (v)
		*v += 1;
}

/* Reserve a record in the ring buffer; a full buffer is counted, never silent. */
static __always_inline void *bpfleet_reserve(__u64 size)
{
	void *e = bpf_ringbuf_reserve(&events, size, 0);

	if (!e)
		bpfleet_count(BPFLEET_STAT_RINGBUF_FULL);
	return e;
}

/* Insert into a bounded hash map, counting a full map. */
static __always_inline int bpfleet_map_update(void *map, const void *key, const void *val, __u64 flags)
{
	int err = bpf_map_update_elem(map, key, val, flags);

	if (err == -7 /* -E2BIG */)
		bpfleet_count(BPFLEET_STAT_MAP_FULL);
	return err;
}

static __always_inline bool bpfleet_port_in(const volatile __u16 *ports, __u32 n, __u16 port)
{
	for (int i = 0; i < BPFLEET_MAX_PORTS; i++) {
		if (i >= n)
			break;
		if (ports[i] == port)
			return true;
	}
	return false;
}

/* Host-order local and remote ports against --lport/--rport. */
static __always_inline bool bpfleet_ports_match(__u16 lport, __u16 rport)
{
	if (filter_nlports && !bpfleet_port_in(filter_lports, filter_nlports, lport))
		return false;
	if (filter_nrports && !bpfleet_port_in(filter_rports, filter_nrports, rport))
		return false;
	return true;
}

static __always_inline bool bpfleet_comm_match(const char *comm)
{
	if (!filter_comm_on)
		return true;
	for (int i = 0; i < BPFLEET_TASK_COMM_LEN; i++) {
		if (comm[i] != filter_comm[i])
			return false;
		if (!comm[i])
			break;
	}
	return true;
}

/* --pid and --comm against the current task; fills comm when asked. */
static __always_inline bool bpfleet_task_match(__u32 tgid, char *comm)
{
	if (filter_tgid && tgid != filter_tgid)
		return false;
	if (filter_comm_on || comm) {
		char buf[BPFLEET_TASK_COMM_LEN] = {};
		char *c = comm ? comm : buf;

		bpf_get_current_comm(c, BPFLEET_TASK_COMM_LEN);
		return bpfleet_comm_match(c);
	}
	return true;
}

/*
 * Copies a connection's local and remote address into record e's 16-byte saddr and daddr:
 * the first 4 bytes for AF_INET (the rest is left as it is), all 16 for AF_INET6. A macro,
 * not a function: clang then still knows the record's alignment and copies in words.
 */
#define BPFLEET_COPY_ADDRS(e, src_saddr, src_daddr, family) do {		\
	if ((family) == AF_INET) {						\
		__builtin_memcpy((e)->saddr, (src_saddr), 4);			\
		__builtin_memcpy((e)->daddr, (src_daddr), 4);			\
	} else {								\
		__builtin_memcpy((e)->saddr, (src_saddr), 16);			\
		__builtin_memcpy((e)->daddr, (src_daddr), 16);			\
	}									\
} while (0)

/*
 * Read a pointer-sized kernel field. BPF pointers are 64-bit but armv7 kernel pointers are 32-bit:
 * BPF_CORE_READ would read 8 bytes there, so read the field's real size into a zeroed u64.
 */
#define BPFLEET_READ_PTR(src, field) ({						\
	__u64 __p = 0;								\
	bpf_core_read(&__p, bpf_core_field_size((src)->field), &(src)->field);	\
	(void *)(unsigned long)__p;						\
})

#endif
