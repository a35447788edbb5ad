/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef BPFLEET_KERNEL_H
#define BPFLEET_KERNEL_H

#include <stdbool.h>

const char *kernel_tracefs(void);
bool kernel_tracepoint_exists(const char *category, const char *name);
bool kernel_raw_tracepoint_exists(const char *name);
bool kernel_has_kprobes(void);
bool kernel_function_exists(const char *func);
bool kernel_has_btf(void);
bool kernel_btf_has_tp(const char *name);
/* 1 on, 0 off, -1 unknown */
int kernel_jit_enabled(void);

#endif
