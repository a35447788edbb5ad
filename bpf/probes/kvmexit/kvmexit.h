/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* kvmexit: exits of one vCPU for one reason over one interval. Fixed-width fields only. */
#ifndef BPFLEET_KVMEXIT_H
#define BPFLEET_KVMEXIT_H

/* Which table a reason number belongs to (from the kvm_exit tracepoint's fields). */
enum kvmexit_isa {
	KVMEXIT_ISA_VMX = 1,	/* x86 Intel: VMX basic exit reason (exit_reason & 0xffff) */
	KVMEXIT_ISA_SVM = 2,	/* x86 AMD: SVM exit code */
	KVMEXIT_ISA_ARM64 = 3,	/* arm64: ESR exception class for traps, 0x100 + kvm exit code otherwise */
	KVMEXIT_ISA_USER = 4,	/* an exit KVM hands to the VMM: kvm_run->exit_reason (KVM_EXIT_*) */
};

struct kvmexit_event {
	__u64 ts_ns;		/* monotonic time at the end of the interval */
	__u64 count;		/* exits in this interval */
	__u64 time_ns;		/* isa 1-3: exit to the vCPU's next entry; 4: exit to the VMM's next KVM_RUN */
	__u64 total;		/* exits since the probe started */
	__u32 pid;		/* tgid of the VMM (e.g. qemu-system-x86_64): the VM */
	__u32 tid;		/* the vCPU thread */
	__u32 vcpu;		/* vCPU id (x86: the tracepoint's vcpu_id; arm64: the thread id) */
	__u32 reason;		/* exit reason number, per isa */
	__u16 isa;		/* enum kvmexit_isa */
	__u16 __pad;
	__u32 __pad2;
	char comm[16];		/* the vCPU thread's name (QEMU: "CPU 0/KVM") */
	char reason_name[32];	/* the reason's name, from the loader's tables */
};

struct kvmexit_key {
	__u32 tgid;
	__u32 vcpu;
	__u32 reason;
	__u32 isa;
};

/* Per CPU, since the entry was created; never reset in the kernel. */
struct kvmexit_val {
	__u64 count;
	__u64 time_ns;
	__u32 tid;
	__u32 __pad;
	char comm[16];
};

/* One vCPU thread between an exit and its next entry. */
struct kvmexit_pending {
	__u64 ts;
	struct kvmexit_key key;
};

#endif
