/*
 * pvgpu-poold's VM-level scheduling: who gets the GPU next, for how long
 *
 * Owns the pool's accounting: each joined VM is an entity of a
 * pvgpu-sched.c scheduler, its turn is a grant (a budget of GPU time the
 * VM's device spends locally), its effective weight combines its
 * reservation and weight, and admission keeps reservations within
 * 100 %.  Pure C, no QEMU headers, no clock: the daemon passes the time
 * in, and tests/unit/test-pvgpu-pool-sched.c runs it on a simulated one.
 * The daemon (pvgpu-poold.c) does the I/O around it.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef PVGPU_POOL_SCHED_H
#define PVGPU_POOL_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "hw/display/pvgpu-sched.h"

typedef enum PoolVmState {
    POOL_VM_IDLE,               /* no demand */
    POOL_VM_QUEUED,             /* waits for a grant */
    POOL_VM_GRANTED,            /* holds the GPU */
} PoolVmState;

/* What the pool's administrator sets for a VM */
typedef struct PoolVmSettings {
    uint32_t weight;            /* 1 .. PVGPU_SCHED_MAX_WEIGHT */
    uint32_t cap;               /* percent, 0: none */
    uint32_t priority;          /* class */
    uint32_t reservation;       /* percent */
} PoolVmSettings;

#define POOL_VM_DEFAULT_SETTINGS \
    ((PoolVmSettings) { .weight = PVGPU_SCHED_DEFAULT_WEIGHT })

typedef struct PoolSchedVm {
    /* the caller's, applied by pool_sched_join()/_reweigh() */
    PoolVmSettings set;

    /* read-only for the caller */
    PoolVmState state;
    uint32_t seq;               /* of the latest grant */
    uint64_t budget_ns;         /* of the grant held */
    uint64_t grant_ns;          /* when it was given */
    uint64_t gpu_ns;            /* charged since it joined */
    uint64_t grants;
    uint32_t eff_weight;        /* hundredths of a percent */

    /* private */
    PvgpuSchedEntity *entity;
    PvgpuSchedItem item;
    struct PoolSchedVm *next;
} PoolSchedVm;

typedef struct PoolSched PoolSched;

/* Called for a holder whose grant was cut to @vm->budget_ns (REVOKE) */
typedef void PoolRevokeFn(PoolSchedVm *vm, void *opaque);

/* At most @concurrent VMs hold grants at once (1: exact shares) */
PoolSched *pool_sched_new(unsigned concurrent);
void pool_sched_free(PoolSched *ps);
/* @batch_quanta: grant length in quanta among VMs that are always busy */
void pool_sched_set_policy(PoolSched *ps, PvgpuSchedPolicy policy,
                           uint64_t quantum_ns, unsigned batch_quanta);

/* Sum of the reservations of the joined VMs other than @except */
uint32_t pool_sched_reserved(const PoolSched *ps, const PoolSchedVm *except);

/*
 * Join @vm, its settings filled in.  False if its reservation does not
 * fit beside the others' (or out of memory); then @vm is not joined.
 */
bool pool_sched_join(PoolSched *ps, PoolSchedVm *vm, uint64_t now_ns);
/* @vm leaves; a grant it holds is charged what it used, at most its budget */
void pool_sched_leave(PoolSched *ps, PoolSchedVm *vm, uint64_t now_ns);
/* The joined VMs' settings changed: recompute effective weights */
void pool_sched_reweigh(PoolSched *ps, uint64_t now_ns);

/*
 * @vm has work.  If it woke from idle while a holder has a grant longer
 * than a quantum, that grant is cut to one quantum and @revoke told.
 */
void pool_sched_demand(PoolSched *ps, PoolSchedVm *vm, uint64_t now_ns,
                       PoolRevokeFn *revoke, void *opaque);

/*
 * The next VM to hand a grant to (its state GRANTED, seq and budget set),
 * or NULL: nobody waits, --concurrent VMs hold grants, or only capped VMs
 * wait, and then @wait_ns says for how long (else 0).
 */
PoolSchedVm *pool_sched_next_grant(PoolSched *ps, uint64_t now_ns,
                                   uint64_t *wait_ns);

/*
 * @vm's grant is over after @used_ns; @busy: it wants another.  Callers
 * check @vm's state first: a RETURN for a grant taken back is not one.
 */
void pool_sched_end(PoolSched *ps, PoolSchedVm *vm, uint64_t used_ns,
                    bool busy, uint64_t now_ns, PoolRevokeFn *revoke,
                    void *opaque);

#endif /* PVGPU_POOL_SCHED_H */
