/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The loader contract every bpfleet probe follows (bpf/README.md): common arguments, hook
 * selection at load time, BTF discovery, output modes (table, --json, --machine), loss
 * counters and exit codes. A probe's own x.c only describes itself and fills .rodata.
 */
#ifndef BPFLEET_PROBE_H
#define BPFLEET_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <bpf/libbpf.h>
#include "bpfleet/stats.h"

/* Exit codes (documented in bpf/README.md). */
enum {
	EXIT_OK = 0,
	EXIT_RUNTIME = 1,	/* failure while running (I/O, map read) */
	EXIT_USAGE = 2,		/* bad arguments */
	EXIT_UNSUPPORTED = 3,	/* kernel lacks a hook or BTF the probe needs */
	EXIT_LOAD = 4,		/* the kernel (verifier) rejected the program */
	EXIT_ATTACH = 5,	/* attaching a selected hook failed */
	EXIT_PERM = 6,		/* not allowed to load BPF (needs root / CAP_BPF+CAP_PERFMON) */
};

enum hook_kind {
	HOOK_TRACEPOINT,	/* SEC("tracepoint/cat/name"), needs tracefs event */
	HOOK_TP_BTF,		/* SEC("tp_btf/name"), needs kernel BTF with btf_trace_<name> */
	HOOK_RAW_TP,		/* SEC("raw_tp/name"), needs the tracepoint, no BTF */
	HOOK_KPROBE,		/* SEC("kprobe/func"), needs kprobes and the symbol */
	HOOK_KRETPROBE,		/* SEC("kretprobe/func") */
	HOOK_XDP,		/* SEC("xdp"), attached by def->attach to the probe's interface */
	HOOK_PERF_EVENT,	/* SEC("perf_event"): target "cpu-clock", one event per CPU,
				 * opened and attached by the probe's def->attach */
	HOOK_UPROBE,		/* SEC("uprobe")/SEC("uretprobe"): target "libc:func", attached by
				 * def->attach to the probe's process and library */
};

struct probe_hook {
	const char *group;	/* hooks of one group are alternatives, in preference order */
	const char *prog;	/* BPF program name in the object */
	enum hook_kind kind;
	const char *target;	/* "cat/name" for tracepoints, the tracepoint name, or a function */
};

enum field_type {
	FT_U8, FT_U16, FT_U32, FT_U64, FT_S32, FT_S64,
	FT_COMM,	/* char[16], NUL-padded */
	FT_ADDR,	/* __u8[16]: IPv4 in the first 4 bytes or IPv6, per the "family" field */
	FT_STR,		/* char[N]: UTF-8 text, NUL-terminated unless it fills N (folded stacks) */
};

enum field_format {
	FMT_PLAIN,
	FMT_FAMILY,	/* AF_INET / AF_INET6 */
	FMT_TCPSTATE,	/* kernel TCP state numbers */
	FMT_HEX,
	FMT_KTIME_NS,	/* CLOCK_MONOTONIC ns (bpf_ktime_get_ns) */
};

struct probe_field {
	const char *name;
	enum field_type type;
	size_t offset;
	size_t size;
	enum field_format format;
	const char *unit;	/* "ns", "us", "bytes", "packets", "" */
	const char *desc;
	int width;		/* table column width, 0: no table column */
};

#define FIELD(st, member, t, fmt, unit, w, desc) \
	{ #member, t, offsetof(st, member), sizeof(((st *)0)->member), fmt, unit, desc, w }

struct probe_arg {
	const char *name;	/* long option */
	const char *value;	/* metavar, NULL for a flag */
	const char *desc;
};

/*
 * The on-device smoke test of a probe (manifest "smoke"; run by the agent on RunSmokeTest):
 * start the loader with args, fire the trigger, and expect a record whose fields match every
 * entry of expect. args and expect values may hold placeholders the agent fills from its
 * trigger: {port} (the trigger's TCP or UDP port), {pid} (the process that made the activity),
 * {addr} (its own 127/8 address), {bytes}, {pages}, {loops}, {files}, {packets} (bpf/README.md,
 * "Smoke tests", lists the triggers and what each fills).
 */
struct probe_smoke_expect {
	const char *field;	/* a field of the record */
	const char *op;		/* "eq" or "ge" (numbers) */
	const char *value;	/* as the loader's --json prints it (e.g. "ESTABLISHED"), or a placeholder */
};

struct probe_smoke {
	/* What the agent does on the device: "tcp_loopback" (a server on 127.0.0.1:{port}, one client
	 * connection from the agent's own process that sends {bytes}, the server echoes them, both
	 * close), "process_activity" (a child shell {pid} runs, sleeps, forks/execs, exits),
	 * "page_touch" (the agent {pid} faults in {pages} fresh pages), "cpu_load" (a child {pid}
	 * busy in the kernel until the load average is above 0), "open_files" (a child {pid} holds
	 * {files} open files), "ping_loopback" (pings {addr} over lo), "udp_loopback" ({packets}
	 * datagrams from {addr} over lo) or "kvm_guest" (a QEMU KVM guest {pid} starts running). */
	const char *trigger;
	const char *const *args;	/* NULL-terminated loader args isolating the trigger */
	const struct probe_smoke_expect *expect;
	size_t nexpect;
	const char *description;	/* what a passing record proves, for people */
};

struct probe_ctx;

struct probe_def {
	const char *name;
	const char *version;
	const char *summary;
	const char *kind;		/* "stream": one record per kernel event; "interval": aggregates */
	const char *record;		/* C struct name of a record */
	size_t record_size;
	const struct probe_field *fields;
	size_t nfields;
	const struct probe_hook *hooks;
	size_t nhooks;
	const struct probe_arg *args;	/* probe-specific options (besides the common ones) */
	size_t nargs;
	/* Probe-specific option; return 0 if handled, -1 if not this probe's option. */
	int (*parse_arg)(const char *name, const char *value);
	/* Interval probes: called every --interval with the loaded object. Returns <0 on error. */
	int (*on_interval)(struct probe_ctx *ctx, struct bpf_object *obj);
	/* The smoke test (NULL: the probe has none; the agent reports it as a failure saying so). */
	const struct probe_smoke *smoke;
	/* Attaches one loaded program of a HOOK_XDP, HOOK_PERF_EVENT or HOOK_UPROBE hook, which
	 * bpf_program__attach() cannot (probe_run attaches the others). Returns 0 or an exit
	 * code, having said why on stderr. */
	int (*attach)(struct bpf_program *prog, const struct probe_hook *hook);
	/* Adds probe-specific members to HELLO: writes ',"key":value...' into buf, returns length
	 * (XDP probes: the interface and the mode chosen). */
	int (*hello)(char *buf, size_t len);
};

struct probe_env {
	bool verbose;
	bool json;
	bool machine;
	bool describe;
	bool manifest;
	int duration_s;			/* 0: until SIGINT/SIGTERM */
	int interval_ms;		/* interval probes and stats cadence in machine mode */
	uint32_t pid;
	char comm[BPFLEET_TASK_COMM_LEN];
	bool comm_set;
	uint16_t lports[BPFLEET_MAX_PORTS];
	uint32_t nlports;
	uint16_t rports[BPFLEET_MAX_PORTS];
	uint32_t nrports;
	const char *btf_path;
	const char *prefer;		/* --prefer KIND: try this hook kind first */
	uint32_t ringbuf_kb;
	/* After a poll that returned records, wait this long and drain again before writing: fewer,
	 * larger writes (fewer wakeups of the reader) for at most this much added latency. */
	int linger_ms;
	int stats_interval_ms;
};

extern struct probe_env env;

/*
 * The start of every main(), before the skeleton is opened: parses argv (the common options,
 * then def->parse_arg; exits on --help or usage errors), prints the manifest for --manifest
 * without touching the kernel, points opts->btf_custom_path at the BTF libbpf should use
 * (NULL: the kernel's own; exits with EXIT_UNSUPPORTED and a message naming the kernel when
 * there is none), and prints the description for --describe. Returns false when the loader
 * should exit with EXIT_OK (after --manifest or --describe), true when it should go on.
 */
bool probe_init(const struct probe_def *def, int argc, char **argv,
		struct bpf_object_open_opts *opts);

/* The skeleton's open failed (errno says why): prints so and returns EXIT_RUNTIME. */
int probe_open_failed(const struct probe_def *def);

/*
 * After open, before load: resizes the ring buffer, writes common filters into .rodata
 * (the skeleton's rodata pointer is passed as the struct of common fields) and chooses one
 * hook per group, disabling autoload of the others. Exits with EXIT_UNSUPPORTED when a group
 * has no hook this kernel offers.
 */
void probe_prepare(const struct probe_def *def, struct bpf_object *obj);

/* Load, attach the chosen hooks, poll the ring buffer and run intervals until done. */
int probe_run(const struct probe_def *def, struct bpf_object *obj);

/* Emits one record in the current output mode (interval probes call it from on_interval). */
int probe_emit(struct probe_ctx *ctx, const void *rec, size_t size);

/* Counts records an interval probe could not read (lost) and marks an interval end. */
void probe_count_lost(struct probe_ctx *ctx, uint64_t n);
/* Counts records whose text was cut to fit its field (stack probes: a folded stack). */
void probe_count_truncated(struct probe_ctx *ctx, uint64_t n);
void probe_interval_end(struct probe_ctx *ctx);

/* Monotonic clock in ns, same clock as bpf_ktime_get_ns(). */
uint64_t probe_now_ns(void);

/*
 * True when process pid no longer exists (kill(pid, 0) fails with ESRCH). Interval probes
 * use it to forget per-process state of processes that exited. pid 0 is never gone.
 */
bool probe_pid_gone(uint32_t pid);

/* Embedded manifests/BTFs: provided by generated code per probe and architecture. */
struct embedded_btf {
	const char *release;
	const unsigned char *start;
	const unsigned char *end;
};
extern const struct embedded_btf bpfleet_embedded_btfs[];

#endif
