/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A double-buffered per-CPU hash map, drained by the loader every interval (tcpbytes, tcptop).
 *
 * The object has two per-CPU hash maps of the same type, a and b, and an array of maps whose
 * slot 0 points at the one the programs write (initially a). Each interval the loader flips
 * slot 0 to the other map, reads every entry of the retired one (one value per possible CPU)
 * and clears it, so nothing counted between a read and a delete is lost.
 *
 *	if (swap_map_flip(&m))			// retire the map written so far; collect its keys
 *		return -1;
 *	for (uint32_t i = 0; i < m.nkeys; i++) {
 *		if (swap_map_read(&m, i)) ...	// per-CPU values of key i in m.vals
 *		... swap_map_key(&m, i), ((const struct val *)m.vals)[cpu] ...
 *	}
 *	swap_map_clear(&m);			// empty it for the interval after next
 */
#ifndef BPFLEET_SWAP_MAP_H
#define BPFLEET_SWAP_MAP_H

#include <stddef.h>
#include <stdint.h>
#include <bpf/libbpf.h>

struct swap_map {
	const char *probe;	/* for messages */
	int outer;		/* the array of maps; -1 until swap_map_setup() succeeded */
	int fds[2];		/* maps a and b */
	int slot;		/* which of fds slot 0 points at */
	int ncpu;		/* possible CPUs: values per key */
	uint32_t key_size;
	uint32_t max_keys;	/* max_entries of a and b */
	char *keys;		/* keys of the retired map (max_keys of key_size bytes) */
	uint32_t nkeys;		/* how many, after swap_map_flip() */
	void *vals;		/* ncpu values of one key, after swap_map_read(); each 8-byte
				 * aligned, as the kernel copies per-CPU values out */
	uint64_t flip_ns;	/* probe_now_ns() right after the last flip: the interval's end */
};

#define SWAP_MAP_INIT { .outer = -1 }

/*
 * Finds the array of maps and the two maps by name and allocates the key and value buffers.
 * Prints "<probe>: ..." and returns -1 when a map is missing or memory is short.
 */
int swap_map_setup(struct swap_map *m, struct bpf_object *obj, const char *probe,
		   const char *outer, const char *a, const char *b);

/*
 * Points the programs at the other map, notes the time in m->flip_ns, then collects the keys
 * of the map just retired into m->keys and m->nkeys. Returns 0, or -1 (with a message) when
 * the flip failed.
 */
int swap_map_flip(struct swap_map *m);

/* Key i of the retired map. */
static inline const void *swap_map_key(const struct swap_map *m, uint32_t i)
{
	return m->keys + (size_t)i * m->key_size;
}

/* Reads the per-CPU values of key i into m->vals. Returns 0, or -1 when it cannot be read. */
int swap_map_read(struct swap_map *m, uint32_t i);

/* Deletes the collected keys from the retired map. */
void swap_map_clear(struct swap_map *m);

#endif
