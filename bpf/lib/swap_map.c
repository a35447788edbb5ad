// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* A double-buffered per-CPU hash map drained every interval; see swap_map.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include "probe.h"
#include "swap_map.h"

int swap_map_setup(struct swap_map *m, struct bpf_object *obj, const char *probe,
		   const char *outer, const char *a, const char *b)
{
	struct bpf_map *ma = bpf_object__find_map_by_name(obj, a);
	struct bpf_map *mb = bpf_object__find_map_by_name(obj, b);
	struct bpf_map *cur = bpf_object__find_map_by_name(obj, outer);
	size_t stride;

	m->probe = probe;
	m->ncpu = libbpf_num_possible_cpus();
	if (!ma || !mb || !cur || m->ncpu <= 0) {
		fprintf(stderr, "%s: internal: maps or cpu count missing\n", probe);
		return -1;
	}
	m->fds[0] = bpf_map__fd(ma);
	m->fds[1] = bpf_map__fd(mb);
	m->slot = 0;
	m->key_size = bpf_map__key_size(ma);
	m->max_keys = bpf_map__max_entries(ma);
	stride = (bpf_map__value_size(ma) + 7) & ~(size_t)7;
	m->keys = calloc(m->max_keys, m->key_size);
	m->vals = calloc((size_t)m->ncpu, stride);
	if (!m->keys || !m->vals) {
		fprintf(stderr, "%s: out of memory\n", probe);
		return -1;
	}
	m->outer = bpf_map__fd(cur);
	return 0;
}

int swap_map_flip(struct swap_map *m)
{
	__u32 zero = 0;
	int old = m->fds[m->slot];
	char *key = m->keys;
	uint32_t n;

	/*
	 * Point the programs at the other map. Updating an array of maps waits for running
	 * programs (synchronize_rcu), so from here on nothing writes the old one.
	 */
	if (bpf_map_update_elem(m->outer, &zero, &m->fds[m->slot ^ 1], BPF_ANY)) {
		fprintf(stderr, "%s: cannot swap maps: %s\n", m->probe, strerror(errno));
		return -1;
	}
	m->slot ^= 1;
	m->flip_ns = probe_now_ns();

	for (n = 0; n < m->max_keys; n++, key += m->key_size)
		if (bpf_map_get_next_key(old, n ? key - m->key_size : NULL, key))
			break;
	m->nkeys = n;
	return 0;
}

int swap_map_read(struct swap_map *m, uint32_t i)
{
	return bpf_map_lookup_elem(m->fds[m->slot ^ 1], swap_map_key(m, i), m->vals) ? -1 : 0;
}

void swap_map_clear(struct swap_map *m)
{
	int old = m->fds[m->slot ^ 1];

	/* Cleared for the interval after next, when the programs write to it again. */
	for (uint32_t i = 0; i < m->nkeys; i++)
		bpf_map_delete_elem(old, swap_map_key(m, i));
	m->nkeys = 0;
}
