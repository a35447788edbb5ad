/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Machine-mode framing on a loader's stdout (all three target architectures are little-endian;
 * the header is written little-endian explicitly anyway). See bpf/README.md, "Machine mode".
 */
#ifndef BPFLEET_FRAME_H
#define BPFLEET_FRAME_H

#include <stdint.h>

enum bpfleet_frame_kind {
	BPFLEET_FRAME_EVENT = 1,	/* payload: one record, layout per the manifest's "record" */
	BPFLEET_FRAME_STATS = 2,	/* payload: JSON object, counters since start */
	BPFLEET_FRAME_HELLO = 3,	/* payload: JSON object, probe + chosen hooks + BTF source */
	BPFLEET_FRAME_INTERVAL = 4,	/* payload: JSON object, closes one interval of records */
};

struct bpfleet_frame_hdr {
	uint32_t len;	/* payload bytes that follow */
	uint16_t kind;	/* enum bpfleet_frame_kind */
	uint16_t flags;	/* reserved, 0 */
};

#endif
