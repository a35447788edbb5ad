// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* What the running kernel offers: tracefs events, kprobes, BTF, JIT. Used for hook selection. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <bpf/btf.h>
#include "kernel.h"

static const char *tracefs_roots[] = { "/sys/kernel/tracing", "/sys/kernel/debug/tracing" };

static bool path_exists(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0;
}

const char *kernel_tracefs(void)
{
	for (size_t i = 0; i < sizeof(tracefs_roots) / sizeof(tracefs_roots[0]); i++) {
		char p[256];

		snprintf(p, sizeof(p), "%s/events", tracefs_roots[i]);
		if (path_exists(p))
			return tracefs_roots[i];
	}
	return NULL;
}

bool kernel_tracepoint_exists(const char *category, const char *name)
{
	const char *root = kernel_tracefs();
	char p[512];

	if (!root)
		return false;
	snprintf(p, sizeof(p), "%s/events/%s/%s/id", root, category, name);
	return path_exists(p);
}

/* A raw tracepoint is named without its category; find the category that holds it. */
bool kernel_raw_tracepoint_exists(const char *name)
{
	const char *root = kernel_tracefs();
	char cmd[512], line[256];
	bool found = false;
	FILE *f;

	if (!root)
		return false;
	snprintf(cmd, sizeof(cmd), "%s/available_events", root);
	f = fopen(cmd, "r");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		line[strcspn(line, "\n")] = 0;
		found = colon && strcmp(colon + 1, name) == 0;
	}
	fclose(f);
	return found;
}

bool kernel_has_kprobes(void)
{
	const char *root = kernel_tracefs();
	char p[256];

	if (path_exists("/sys/bus/event_source/devices/kprobe/type"))
		return true;
	if (!root)
		return false;
	snprintf(p, sizeof(p), "%s/kprobe_events", root);
	return path_exists(p);
}

/* Is the function a kprobe can attach to? available_filter_functions lists the traceable
 * ones; without it (no ftrace) fall back to kallsyms text symbols. */
bool kernel_function_exists(const char *func)
{
	const char *root = kernel_tracefs();
	char p[256], line[512];
	size_t n = strlen(func);
	bool found = false;
	FILE *f = NULL;

	if (root) {
		snprintf(p, sizeof(p), "%s/available_filter_functions", root);
		f = fopen(p, "r");
	}
	if (f) {
		while (!found && fgets(line, sizeof(line), f))
			found = strncmp(line, func, n) == 0 && (line[n] == '\n' || line[n] == ' ');
		fclose(f);
		return found;
	}
	f = fopen("/proc/kallsyms", "r");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char type, sym[256];

		if (sscanf(line, "%*s %c %255s", &type, sym) == 2)
			found = (type == 'T' || type == 't') && strcmp(sym, func) == 0;
	}
	fclose(f);
	return found;
}

bool kernel_has_btf(void)
{
	return path_exists("/sys/kernel/btf/vmlinux");
}

bool kernel_btf_has_tp(const char *name)
{
	static struct btf *vmlinux;
	static bool tried;
	char tname[256];

	if (!tried) {
		tried = true;
		if (kernel_has_btf())
			vmlinux = btf__load_vmlinux_btf();
	}
	if (!vmlinux)
		return false;
	snprintf(tname, sizeof(tname), "btf_trace_%s", name);
	return btf__find_by_name_kind(vmlinux, tname, BTF_KIND_TYPEDEF) > 0;
}

int kernel_jit_enabled(void)
{
	FILE *f = fopen("/proc/sys/net/core/bpf_jit_enable", "r");
	int v = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%d", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}
