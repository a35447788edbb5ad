/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef BPFLEET_OUTPUT_H
#define BPFLEET_OUTPUT_H

#include <stdint.h>
#include <stdio.h>
#include "probe.h"

enum output_mode { OUT_TABLE, OUT_JSON, OUT_MACHINE };

const char *tcp_state_name(uint64_t s);
const char *hook_kind_name(enum hook_kind k);
void output_table_header(const struct probe_def *def);
int output_record(const struct probe_def *def, enum output_mode mode, const void *rec, size_t size);
int output_frame(uint16_t kind, const void *payload, uint32_t len);
void output_manifest(FILE *o, const struct probe_def *def);

#endif
