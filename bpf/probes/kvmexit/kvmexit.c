// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kvmexit loader: see kvmexit.bpf.c and bpf/README.md for the contract.
 *
 * Before load it reads the kvm_exit tracepoint's format file to learn which fields this
 * kernel has (x86: exit_reason, isa, vcpu_id; arm64: ret, esr_ec) and where, and hands the
 * offsets to the BPF program. Every interval it turns the kernel's running counts per (VM,
 * vCPU, reason) into deltas, busiest first, and names each reason: VMX basic exit reasons
 * (Intel SDM vol. 3 appendix C), SVM exit codes (AMD APM vol. 2 appendix C) or, on arm64,
 * the ESR exception class of a trap and the kvm exit code of everything else.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/types.h>
#include <bpf/bpf.h>
#include "probe.h"
#include "kernel.h"
#include "kvmexit.h"
#include "kvmexit.skel.h"

#define EV struct kvmexit_event
static const struct probe_field fields[] = {
	FIELD(EV, ts_ns, FT_U64, FMT_KTIME_NS, "ns", 0, "monotonic time at the end of the interval"),
	FIELD(EV, pid, FT_U32, FMT_PLAIN, "", 7, "tgid of the VMM process: the VM"),
	FIELD(EV, vcpu, FT_U32, FMT_PLAIN, "", 5, "vCPU id (x86); the vCPU thread id on arm64"),
	FIELD(EV, tid, FT_U32, FMT_PLAIN, "", 7, "the vCPU thread"),
	FIELD(EV, comm, FT_COMM, FMT_PLAIN, "", 16, "the vCPU thread's name"),
	FIELD(EV, isa, FT_U16, FMT_PLAIN, "", 0, "reason table: 1 VMX (Intel), 2 SVM (AMD), 3 arm64, 4 exit to the VMM (KVM_EXIT_*)"),
	FIELD(EV, reason, FT_U32, FMT_HEX, "", 0, "exit reason number (VMX basic reason, SVM exit code, arm64 EC or 0x100+kvm exit code)"),
	FIELD(EV, reason_name, FT_STR, FMT_PLAIN, "", 20, "the reason's name"),
	FIELD(EV, count, FT_U64, FMT_PLAIN, "", 9, "exits in this interval"),
	FIELD(EV, time_ns, FT_U64, FMT_PLAIN, "ns", 12, "time from those exits to the vCPU's next entry (isa 4: to the VMM's next KVM_RUN)"),
	FIELD(EV, total, FT_U64, FMT_PLAIN, "", 10, "exits since the probe started"),
};

static const struct probe_hook hooks[] = {
	{ "exit", "kvmexit_exit", HOOK_TRACEPOINT, "kvm/kvm_exit" },
	{ "entry", "kvmexit_entry", HOOK_TRACEPOINT, "kvm/kvm_entry" },
	{ "userspace", "kvmexit_user", HOOK_TRACEPOINT, "kvm/kvm_userspace_exit" },
	{ "run", "kvmexit_run", HOOK_TRACEPOINT, "syscalls/sys_enter_ioctl" },
};

struct name {
	__u32 code;
	const char *name;
};

/* VMX basic exit reasons. */
static const struct name vmx[] = {
	{ 0, "EXCEPTION_NMI" }, { 1, "EXTERNAL_INTERRUPT" }, { 2, "TRIPLE_FAULT" },
	{ 3, "INIT_SIGNAL" }, { 4, "SIPI_SIGNAL" }, { 7, "INTERRUPT_WINDOW" }, { 8, "NMI_WINDOW" },
	{ 9, "TASK_SWITCH" }, { 10, "CPUID" }, { 12, "HLT" }, { 13, "INVD" }, { 14, "INVLPG" },
	{ 15, "RDPMC" }, { 16, "RDTSC" }, { 18, "VMCALL" }, { 19, "VMCLEAR" }, { 20, "VMLAUNCH" },
	{ 21, "VMPTRLD" }, { 22, "VMPTRST" }, { 23, "VMREAD" }, { 24, "VMRESUME" }, { 25, "VMWRITE" },
	{ 26, "VMOFF" }, { 27, "VMON" }, { 28, "CR_ACCESS" }, { 29, "DR_ACCESS" },
	{ 30, "IO_INSTRUCTION" }, { 31, "MSR_READ" }, { 32, "MSR_WRITE" }, { 33, "INVALID_STATE" },
	{ 34, "MSR_LOAD_FAIL" }, { 36, "MWAIT_INSTRUCTION" }, { 37, "MONITOR_TRAP_FLAG" },
	{ 39, "MONITOR_INSTRUCTION" }, { 40, "PAUSE_INSTRUCTION" }, { 41, "MCE_DURING_VMENTRY" },
	{ 43, "TPR_BELOW_THRESHOLD" }, { 44, "APIC_ACCESS" }, { 45, "EOI_INDUCED" },
	{ 46, "GDTR_IDTR" }, { 47, "LDTR_TR" }, { 48, "EPT_VIOLATION" }, { 49, "EPT_MISCONFIG" },
	{ 50, "INVEPT" }, { 51, "RDTSCP" }, { 52, "PREEMPTION_TIMER" }, { 53, "INVVPID" },
	{ 54, "WBINVD" }, { 55, "XSETBV" }, { 56, "APIC_WRITE" }, { 57, "RDRAND" }, { 58, "INVPCID" },
	{ 59, "VMFUNC" }, { 60, "ENCLS" }, { 61, "RDSEED" }, { 62, "PML_FULL" }, { 63, "XSAVES" },
	{ 64, "XRSTORS" }, { 67, "UMWAIT" }, { 68, "TPAUSE" }, { 74, "BUS_LOCK" }, { 75, "NOTIFY" },
	{ 77, "TDCALL" }, { 84, "MSR_READ_IMM" }, { 85, "MSR_WRITE_IMM" },
};

/* SVM exit codes (the ranges for CR/DR accesses and exceptions are named in svm_name()). */
static const struct name svm[] = {
	{ 0x060, "INTR" }, { 0x061, "NMI" }, { 0x062, "SMI" }, { 0x063, "INIT" }, { 0x064, "VINTR" },
	{ 0x065, "CR0_SEL_WRITE" }, { 0x066, "IDTR_READ" }, { 0x067, "GDTR_READ" },
	{ 0x068, "LDTR_READ" }, { 0x069, "TR_READ" }, { 0x06a, "IDTR_WRITE" }, { 0x06b, "GDTR_WRITE" },
	{ 0x06c, "LDTR_WRITE" }, { 0x06d, "TR_WRITE" }, { 0x06e, "RDTSC" }, { 0x06f, "RDPMC" },
	{ 0x070, "PUSHF" }, { 0x071, "POPF" }, { 0x072, "CPUID" }, { 0x073, "RSM" }, { 0x074, "IRET" },
	{ 0x075, "SWINT" }, { 0x076, "INVD" }, { 0x077, "PAUSE" }, { 0x078, "HLT" },
	{ 0x079, "INVLPG" }, { 0x07a, "INVLPGA" }, { 0x07b, "IOIO" }, { 0x07c, "MSR" },
	{ 0x07d, "TASK_SWITCH" }, { 0x07e, "FERR_FREEZE" }, { 0x07f, "SHUTDOWN" }, { 0x080, "VMRUN" },
	{ 0x081, "VMMCALL" }, { 0x082, "VMLOAD" }, { 0x083, "VMSAVE" }, { 0x084, "STGI" },
	{ 0x085, "CLGI" }, { 0x086, "SKINIT" }, { 0x087, "RDTSCP" }, { 0x088, "ICEBP" },
	{ 0x089, "WBINVD" }, { 0x08a, "MONITOR" }, { 0x08b, "MWAIT" }, { 0x08c, "MWAIT_COND" },
	{ 0x08d, "XSETBV" }, { 0x08e, "RDPRU" }, { 0x08f, "EFER_WRITE_TRAP" },
	{ 0x0a2, "INVPCID" }, { 0x0a5, "BUS_LOCK" }, { 0x0a6, "IDLE_HLT" }, { 0x400, "NPF" },
	{ 0x401, "AVIC_INCOMPLETE_IPI" }, { 0x402, "AVIC_NOACCEL" }, { 0x403, "VMGEXIT" },
	{ 0xffffffff, "INVALID" },
};

/* arm64: ESR_ELx exception classes of traps; 0x100 + the kvm exit code for the rest. */
static const struct name arm64[] = {
	{ 0x00, "UNKNOWN" }, { 0x01, "WFx" }, { 0x03, "CP15_32" }, { 0x04, "CP15_64" },
	{ 0x05, "CP14_MR" }, { 0x06, "CP14_LS" }, { 0x07, "FP_ASIMD" }, { 0x0c, "CP14_64" },
	{ 0x0e, "ILL" }, { 0x11, "SVC32" }, { 0x12, "HVC32" }, { 0x13, "SMC32" }, { 0x15, "SVC64" },
	{ 0x16, "HVC64" }, { 0x17, "SMC64" }, { 0x18, "SYS64" }, { 0x19, "SVE" }, { 0x1f, "IMP_DEF" },
	{ 0x20, "IABT_LOW" }, { 0x21, "IABT_CUR" }, { 0x22, "PC_ALIGN" }, { 0x24, "DABT_LOW" },
	{ 0x25, "DABT_CUR" }, { 0x26, "SP_ALIGN" }, { 0x28, "FP_EXC32" }, { 0x2c, "FP_EXC64" },
	{ 0x2f, "SERROR" }, { 0x30, "BREAKPT_LOW" }, { 0x32, "SOFTSTP_LOW" }, { 0x34, "WATCHPT_LOW" },
	{ 0x38, "BKPT32" }, { 0x3c, "BRK64" },
	{ 0x100, "IRQ" }, { 0x101, "EL1_SERROR" }, { 0x102, "TRAP" }, { 0x103, "ILLEGAL" },
};

/* KVM_EXIT_* of include/uapi/linux/kvm.h: why KVM_RUN returned to the VMM. */
static const char *const user_exit[] = {
	"UNKNOWN", "EXCEPTION", "IO", "HYPERCALL", "DEBUG", "HLT", "MMIO", "IRQ_WINDOW_OPEN",
	"SHUTDOWN", "FAIL_ENTRY", "INTR", "SET_TPR", "TPR_ACCESS", "S390_SIEIC", "S390_RESET",
	"DCR", "NMI", "INTERNAL_ERROR", "OSI", "PAPR_HCALL", "S390_UCONTROL", "WATCHDOG",
	"S390_TSCH", "EPR", "SYSTEM_EVENT", "S390_STSI", "IOAPIC_EOI", "HYPERV", "ARM_NISV",
	"X86_RDMSR", "X86_WRMSR", "DIRTY_RING_FULL", "AP_RESET_HOLD", "X86_BUS_LOCK", "XEN",
	"RISCV_SBI", "RISCV_CSR", "NOTIFY", "LOONGARCH_IOCSR", "MEMORY_FAULT", "TDX",
};

static const char *lookup(const struct name *t, size_t n, __u32 code)
{
	for (size_t i = 0; i < n; i++)
		if (t[i].code == code)
			return t[i].name;
	return NULL;
}

static void reason_name(__u16 isa, __u32 r, char *buf, size_t len)
{
	static const char *cr[] = { "CR0", "CR1", "CR2", "CR3", "CR4", "CR5", "CR6", "CR7", "CR8" };
	const char *n = NULL;

	switch (isa) {
	case KVMEXIT_ISA_VMX:
		n = lookup(vmx, sizeof(vmx) / sizeof(vmx[0]), r);
		break;
	case KVMEXIT_ISA_SVM:
		if (r < 0x20 && (r & 0xf) <= 8) {
			snprintf(buf, len, "%s_%s", r & 0x10 ? "WRITE" : "READ", cr[r & 0xf]);
			return;
		}
		if (r >= 0x20 && r < 0x40) {
			snprintf(buf, len, "%s_DR%u", r & 0x10 ? "WRITE" : "READ", r & 0xf);
			return;
		}
		if (r >= 0x40 && r < 0x60) {
			snprintf(buf, len, "EXCP_%u", r - 0x40);
			return;
		}
		n = lookup(svm, sizeof(svm) / sizeof(svm[0]), r);
		break;
	case KVMEXIT_ISA_ARM64:
		n = lookup(arm64, sizeof(arm64) / sizeof(arm64[0]), r);
		break;
	case KVMEXIT_ISA_USER:
		if (r < sizeof(user_exit) / sizeof(user_exit[0])) {
			snprintf(buf, len, "USER_%s", user_exit[r]);
			return;
		}
		break;
	}
	if (n)
		snprintf(buf, len, "%s", n);
	else
		snprintf(buf, len, "%s_0x%x", isa == KVMEXIT_ISA_VMX ? "VMX" : isa == KVMEXIT_ISA_SVM ? "SVM" :
			 isa == KVMEXIT_ISA_USER ? "USER" : "EC", r);
}

/*
 * The offset of a 4-byte field of a tracepoint from its format file ("field:unsigned int
 * exit_reason;\toffset:8;\tsize:4;"); -1 if absent. Exits 3 if the field has another size.
 */
static int tp_field(const char *event, const char *field)
{
	char path[256], line[512], pat[80];
	int off = -1, size = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/events/kvm/%s/format", kernel_tracefs() ?: "/sys/kernel/tracing", event);
	f = fopen(path, "r");
	if (!f)
		return -1;	/* no tracepoint: hook selection says so */
	snprintf(pat, sizeof(pat), " %s;", field);
	while (fgets(line, sizeof(line), f)) {
		char *p = strstr(line, pat), *o;

		if (!p || !strstr(line, "field:"))
			continue;
		o = strstr(p, "offset:");
		if (o && sscanf(o, "offset:%d;\tsize:%d;", &off, &size) == 2)
			break;
		off = -1;
	}
	fclose(f);
	if (off >= 0 && size != 4) {
		fprintf(stderr, "kvmexit: unsupported on this kernel: kvm_exit field %s has %d bytes, "
			"this loader reads 4 (%s)\n", field, size, path);
		exit(EXIT_UNSUPPORTED);
	}
	return off;
}

struct seen {
	struct kvmexit_key key;
	__u64 count;		/* kernel totals, summed over CPUs */
	__u64 time_ns;
	__u64 total;		/* exits counted since start */
	__u32 tid;
	char comm[16];
	__u64 dcount, dtime;	/* this interval */
};

static struct seen *prev;
static size_t nprev;

static int by_key(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct kvmexit_key));	/* a total order is all we need */
}

static int by_count_desc(const void *a, const void *b)
{
	const struct seen *x = a, *y = b;

	if (x->dcount != y->dcount)
		return x->dcount > y->dcount ? -1 : 1;
	return by_key(a, b);
}

static int on_interval(struct probe_ctx *ctx, struct bpf_object *obj)
{
	struct bpf_map *map = bpf_object__find_map_by_name(obj, "exits");
	int ncpu = libbpf_num_possible_cpus(), fd, err = 0;
	struct kvmexit_key key, *kp = NULL;
	struct kvmexit_val *vals;
	struct seen *cur = NULL, *t, *next;
	size_t n = 0, cap = 0, p = 0;
	__u64 ts = probe_now_ns();

	if (!map || ncpu <= 0)
		return -1;
	fd = bpf_map__fd(map);
	vals = calloc((size_t)ncpu, sizeof(*vals));
	if (!vals)
		return -1;
	while (bpf_map_get_next_key(fd, kp, &key) == 0) {
		struct seen s = { .key = key };

		kp = &key;
		if (bpf_map_lookup_elem(fd, &key, vals)) {
			probe_count_lost(ctx, 1);
			continue;
		}
		for (int c = 0; c < ncpu; c++) {
			s.count += vals[c].count;
			s.time_ns += vals[c].time_ns;
			if (!s.comm[0] && vals[c].comm[0]) {
				memcpy(s.comm, vals[c].comm, sizeof(s.comm));
				s.tid = vals[c].tid;
			}
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			t = realloc(cur, cap * sizeof(*cur));
			if (!t) {
				err = -1;
				goto out;
			}
			cur = t;
		}
		cur[n++] = s;
	}
	qsort(cur, n, sizeof(*cur), by_key);
	for (size_t i = 0; i < n; i++) {
		bool known;

		while (p < nprev && by_key(&prev[p], &cur[i]) < 0)
			p++;
		known = p < nprev && !by_key(&prev[p], &cur[i]) && cur[i].count >= prev[p].count;
		cur[i].dcount = known ? cur[i].count - prev[p].count : cur[i].count;
		cur[i].dtime = known ? cur[i].time_ns - prev[p].time_ns : cur[i].time_ns;
		cur[i].total = (known ? prev[p].total : 0) + cur[i].dcount;
	}
	/* Keep the merged state (sorted by key) for the next interval; forget VMs that are gone. */
	next = malloc((n ? n : 1) * sizeof(*next));
	if (!next) {
		err = -1;
		goto out;
	}
	free(prev);
	prev = next;
	nprev = 0;
	for (size_t i = 0; i < n; i++) {
		if (!cur[i].dcount && probe_pid_gone(cur[i].key.tgid)) {
			bpf_map_delete_elem(fd, &cur[i].key);
			continue;
		}
		prev[nprev++] = cur[i];
	}
	qsort(cur, n, sizeof(*cur), by_count_desc);
	for (size_t i = 0; i < n && cur[i].dcount && !err; i++) {
		struct kvmexit_event e = {
			.ts_ns = ts, .count = cur[i].dcount, .time_ns = cur[i].dtime, .total = cur[i].total,
			.pid = cur[i].key.tgid, .tid = cur[i].tid, .vcpu = cur[i].key.vcpu,
			.reason = cur[i].key.reason, .isa = (__u16)cur[i].key.isa,
		};

		memcpy(e.comm, cur[i].comm, sizeof(e.comm));
		reason_name(e.isa, e.reason, e.reason_name, sizeof(e.reason_name));
		if (probe_emit(ctx, &e, sizeof(e)) == -EPIPE)
			err = -1;
	}
out:
	free(cur);
	free(vals);
	return err;
}

/*
 * Smoke test (bpf/README.md, "Smoke tests"): kvm_guest starts a paused QEMU VM ({pid}) and lets
 * it run; its firmware's port I/O reaches QEMU as exits to the VMM (isa 4), on every host.
 */
static const char *const smoke_args[] = { "--pid", "{pid}", "--interval", "200", NULL };
static const struct probe_smoke_expect smoke_expect[] = {
	{ "pid", "eq", "{pid}" },
	{ "isa", "eq", "4" },
	{ "count", "ge", "1" },
};
static const struct probe_smoke smoke = {
	.trigger = "kvm_guest",
	.args = smoke_args,
	.expect = smoke_expect,
	.nexpect = sizeof(smoke_expect) / sizeof(smoke_expect[0]),
	.description = "exits of the VM {pid} to its VMM once it runs",
};

static const struct probe_def def = {
	.name = "kvmexit",
	.version = "1.0.0",
	.summary = "KVM exits per VM, vCPU and reason with time to re-entry, per interval (kvm_exit/kvm_entry tracepoints; x86 VMX/SVM, arm64)",
	.kind = "interval",
	.record = "kvmexit_event",
	.record_size = sizeof(EV),
	.fields = fields,
	.nfields = sizeof(fields) / sizeof(fields[0]),
	.hooks = hooks,
	.nhooks = sizeof(hooks) / sizeof(hooks[0]),
	.on_interval = on_interval,
	.smoke = &smoke,
};

int main(int argc, char **argv)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	struct kvmexit_bpf *skel;
	int err;

	if (!probe_init(&def, argc, argv, &opts))
		return EXIT_OK;
	skel = kvmexit_bpf__open_opts(&opts);
	if (!skel)
		return probe_open_failed(&def);
	/* Hook selection first: without the kvm tracepoints it exits 3, saying so. */
	probe_prepare(&def, skel->obj);
	skel->rodata->off_exit_reason = tp_field("kvm_exit", "exit_reason");
	skel->rodata->off_isa = tp_field("kvm_exit", "isa");
	skel->rodata->off_vcpu_id = tp_field("kvm_exit", "vcpu_id");
	skel->rodata->off_ret = tp_field("kvm_exit", "ret");
	skel->rodata->off_esr_ec = tp_field("kvm_exit", "esr_ec");
	skel->rodata->off_user_reason = tp_field("kvm_userspace_exit", "reason");
	if (skel->rodata->off_exit_reason < 0 &&
	    (skel->rodata->off_esr_ec < 0 || skel->rodata->off_ret < 0)) {
		fprintf(stderr, "kvmexit: unsupported on this kernel: kvm:kvm_exit has neither "
			"exit_reason (x86) nor ret and esr_ec (arm64); see its format file in tracefs\n");
		kvmexit_bpf__destroy(skel);
		return EXIT_UNSUPPORTED;
	}
	if (skel->rodata->off_user_reason < 0) {
		fprintf(stderr, "kvmexit: unsupported on this kernel: kvm:kvm_userspace_exit has no "
			"4-byte reason field; see its format file in tracefs\n");
		kvmexit_bpf__destroy(skel);
		return EXIT_UNSUPPORTED;
	}
	err = probe_run(&def, skel->obj);
	kvmexit_bpf__destroy(skel);
	free(prev);
	return err;
}
