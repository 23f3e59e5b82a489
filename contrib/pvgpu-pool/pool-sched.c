/*
 * pvgpu-poold's VM-level scheduling (see pool-sched.h, docs/pvgpu-pool.rst)
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <assert.h>
#include <stddef.h>
#include <stdlib.h>

#include "pool-sched.h"

struct PoolSched {
    PvgpuSched *sched;
    uint64_t quantum_ns;
    unsigned concurrent;
    unsigned holders;
    PoolSchedVm *vms;           /* joined */
};

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

PoolSched *pool_sched_new(unsigned concurrent)
{
    PoolSched *ps = calloc(1, sizeof(*ps));

    if (!ps) {
        return NULL;
    }
    ps->sched = pvgpu_sched_new();
    if (!ps->sched) {
        free(ps);
        return NULL;
    }
    ps->concurrent = concurrent;
    ps->quantum_ns = PVGPU_SCHED_DEFAULT_QUANTUM_NS;
    /* one grant per VM at a time; --concurrent grants over all */
    pvgpu_sched_set_max_inflight(ps->sched, concurrent);
    pvgpu_sched_set_queue_limit(ps->sched, 1);
    return ps;
}

void pool_sched_free(PoolSched *ps)
{
    assert(!ps->vms);
    pvgpu_sched_free(ps->sched);
    free(ps);
}

void pool_sched_set_policy(PoolSched *ps, PvgpuSchedPolicy policy,
                           uint64_t quantum_ns, unsigned batch_quanta)
{
    pvgpu_sched_set_policy(ps->sched, policy);
    if (pvgpu_sched_set_quantum(ps->sched, quantum_ns) == 0) {
        ps->quantum_ns = quantum_ns;
    }
    pvgpu_sched_set_batch_quanta(ps->sched, batch_quanta);
}

uint32_t pool_sched_reserved(const PoolSched *ps, const PoolSchedVm *except)
{
    uint32_t sum = 0;

    for (const PoolSchedVm *vm = ps->vms; vm; vm = vm->next) {
        if (vm != except) {
            sum += vm->set.reservation;
        }
    }
    return sum;
}

/*
 * Effective weights: each VM's reservation plus its weighted part of the
 * unreserved rest, in hundredths of a percent.  With every VM busy the
 * shares are these; with some idle, the busy ones split the idle ones'
 * time in the same proportion, so a reservation holds either way.
 */
void pool_sched_reweigh(PoolSched *ps, uint64_t now_ns)
{
    uint32_t reserved = MIN(pool_sched_reserved(ps, NULL), 100);
    uint64_t wsum = 0;

    for (PoolSchedVm *vm = ps->vms; vm; vm = vm->next) {
        wsum += vm->set.weight;
    }
    for (PoolSchedVm *vm = ps->vms; vm; vm = vm->next) {
        uint64_t eff = vm->set.reservation * 100ull +
                       (100ull - reserved) * 100 * vm->set.weight / MAX(wsum, 1);

        vm->eff_weight = MAX(MIN(eff, PVGPU_SCHED_MAX_WEIGHT), 1);
        pvgpu_sched_entity_set_weight(vm->entity, vm->eff_weight);
        pvgpu_sched_entity_set_class(ps->sched, vm->entity, vm->set.priority);
        pvgpu_sched_entity_set_cap(ps->sched, vm->entity, vm->set.cap, now_ns);
    }
}

bool pool_sched_join(PoolSched *ps, PoolSchedVm *vm, uint64_t now_ns)
{
    if (pool_sched_reserved(ps, NULL) + vm->set.reservation > 100) {
        return false;
    }
    vm->entity = pvgpu_sched_entity_add(ps->sched, 0);
    if (!vm->entity) {
        return false;
    }
    vm->state = POOL_VM_IDLE;
    vm->next = ps->vms;
    ps->vms = vm;
    pool_sched_reweigh(ps, now_ns);
    return true;
}

/* A queued item is the VM's own: nothing to free */
static void drop_item(PvgpuSchedItem *item, void *opaque)
{
}

static void grant_over(PoolSched *ps, PoolSchedVm *vm, uint64_t used_ns,
                       uint64_t now_ns)
{
    assert(vm->state == POOL_VM_GRANTED && ps->holders);
    pvgpu_sched_complete(ps->sched, &vm->item, used_ns, now_ns);
    vm->gpu_ns += used_ns;
    vm->state = POOL_VM_IDLE;
    ps->holders--;
}

void pool_sched_leave(PoolSched *ps, PoolSchedVm *vm, uint64_t now_ns)
{
    PoolSchedVm **p;

    if (vm->state == POOL_VM_GRANTED) {
        grant_over(ps, vm, MIN(now_ns - vm->grant_ns, vm->budget_ns), now_ns);
    }
    pvgpu_sched_entity_remove(ps->sched, vm->entity, drop_item, NULL);
    vm->entity = NULL;
    for (p = &ps->vms; *p != vm; p = &(*p)->next) {
        assert(*p);
    }
    *p = vm->next;
    pool_sched_reweigh(ps, now_ns);
}

void pool_sched_demand(PoolSched *ps, PoolSchedVm *vm, uint64_t now_ns,
                       PoolRevokeFn *revoke, void *opaque)
{
    if (vm->state != POOL_VM_IDLE) {
        return;
    }
    pvgpu_sched_enqueue(ps->sched, vm->entity, &vm->item, now_ns);
    vm->state = POOL_VM_QUEUED;
    if (ps->holders < ps->concurrent ||
        !pvgpu_sched_turn_short(ps->sched, now_ns)) {
        return;
    }
    /*
     * A VM that woke from idle waits at most a quantum: a holder of a
     * longer grant is told to stop after one (pvgpu-sched's short turn)
     */
    for (PoolSchedVm *h = ps->vms; h; h = h->next) {
        if (h->state == POOL_VM_GRANTED && h->budget_ns > ps->quantum_ns) {
            h->budget_ns = ps->quantum_ns;
            revoke(h, opaque);
        }
    }
}

PoolSchedVm *pool_sched_next_grant(PoolSched *ps, uint64_t now_ns,
                                   uint64_t *wait_ns)
{
    PvgpuSchedEntity *ent;
    PvgpuSchedItem *item;
    PoolSchedVm *vm;

    *wait_ns = 0;
    if (ps->holders >= ps->concurrent) {
        return NULL;
    }
    item = pvgpu_sched_next(ps->sched, now_ns, &ent, wait_ns);
    if (!item) {
        return NULL;
    }
    vm = (PoolSchedVm *)((char *)item - offsetof(PoolSchedVm, item));
    vm->state = POOL_VM_GRANTED;
    /*
     * What is left of its turn (batch turns while nobody woke), but a
     * quantum at least: a VM handed a sliver of a turn gives it back
     * before it could run anything, still busy, a round trip for
     * nothing.  What it uses is charged either way.
     */
    vm->budget_ns = MAX(pvgpu_sched_turn_left(ps->sched, ent, now_ns),
                        ps->quantum_ns);
    vm->grant_ns = now_ns;
    vm->seq++;
    vm->grants++;
    ps->holders++;
    return vm;
}

void pool_sched_end(PoolSched *ps, PoolSchedVm *vm, uint64_t used_ns,
                    bool busy, uint64_t now_ns, PoolRevokeFn *revoke,
                    void *opaque)
{
    grant_over(ps, vm, used_ns, now_ns);
    if (busy) {
        /*
         * Still busy: it never ran out of work, so it did not wake (with
         * --concurrent, it is not the turn's VM any more, which
         * pvgpu_sched_enqueue() would take for a wake and cut the other
         * grants to a quantum)
         */
        pvgpu_sched_enqueue_busy(ps->sched, vm->entity, &vm->item, now_ns);
        vm->state = POOL_VM_QUEUED;
    }
}
