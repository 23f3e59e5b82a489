/*
 * Unit tests for pvgpu-poold's VM-level scheduling, on a simulated clock
 *
 * Each simulated VM's device spends a grant in whole submissions of a
 * fixed length (they are not preempted) and hands it back when it is
 * spent or the VM has no more work, as hw/display/pvgpu/pvgpu-pool.c does.
 * One grant at a time unless a test asks for more.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <glib.h>
#include <math.h>

#include "pool-sched.h"

#define US 1000ull
#define MS 1000000ull
#define SEC 1000000000ull

typedef struct SimVm {
    PoolSchedVm sv;
    uint64_t job_ns;            /* one submission */
    bool busy;                  /* always has work */
    uint64_t period_ns;         /* else: one submission every period */
    uint64_t next_ns;           /* when that one arrives */
    bool pending;               /* it has arrived, not run yet */
    uint64_t max_wait_ns;       /* arrival to the start of its run */
    uint64_t ran_ns;            /* GPU time while measuring */
    unsigned revoked;
} SimVm;

typedef struct Sim {
    PoolSched *ps;
    SimVm *vms[8];
    unsigned n;
    uint64_t now;
} Sim;

static void revoked(PoolSchedVm *sv, void *opaque)
{
    SimVm *vm = (SimVm *)sv;

    vm->revoked++;
}

static void sim_init(Sim *s, unsigned concurrent)
{
    *s = (Sim) { .ps = pool_sched_new(concurrent) };
    g_assert_nonnull(s->ps);
    pool_sched_set_policy(s->ps, PVGPU_SCHED_WEIGHTED, 2 * MS,
                          PVGPU_SCHED_DEFAULT_BATCH_QUANTA);
}

static SimVm *sim_add(Sim *s, uint32_t weight, uint32_t reservation,
                      uint64_t job_ns, bool busy)
{
    SimVm *vm = g_new0(SimVm, 1);

    vm->sv.set.weight = weight;
    vm->sv.set.reservation = reservation;
    vm->job_ns = job_ns;
    vm->busy = busy;
    g_assert(pool_sched_join(s->ps, &vm->sv, s->now));
    s->vms[s->n++] = vm;
    if (busy) {
        pool_sched_demand(s->ps, &vm->sv, s->now, revoked, NULL);
    }
    return vm;
}

static bool has_work(SimVm *vm)
{
    return vm->busy || vm->pending;
}

/* Work that arrived by now asks for the GPU */
static void sim_arrivals(Sim *s)
{
    for (unsigned i = 0; i < s->n; i++) {
        SimVm *vm = s->vms[i];

        if (!vm->busy && vm->period_ns && !vm->pending &&
            vm->next_ns <= s->now) {
            vm->pending = true;
            pool_sched_demand(s->ps, &vm->sv, s->now, revoked, NULL);
        }
    }
}

static void sim_run(Sim *s, uint64_t until)
{
    while (s->now < until) {
        uint64_t wait;
        PoolSchedVm *sv;
        SimVm *vm;
        uint64_t used = 0;

        sim_arrivals(s);
        sv = pool_sched_next_grant(s->ps, s->now, &wait);
        if (!sv) {
            /* idle until the next arrival */
            uint64_t next = until;

            for (unsigned i = 0; i < s->n; i++) {
                if (s->vms[i]->period_ns && !s->vms[i]->pending) {
                    next = MIN(next, s->vms[i]->next_ns);
                }
            }
            s->now = MAX(next, s->now + (wait ?: 1));
            continue;
        }
        vm = (SimVm *)sv;
        /* whole submissions while the (possibly revoked) budget lasts */
        while (has_work(vm) && used < vm->sv.budget_ns) {
            if (vm->pending) {
                vm->max_wait_ns = MAX(vm->max_wait_ns, s->now - vm->next_ns);
                vm->pending = false;
                vm->next_ns += vm->period_ns;
            }
            used += vm->job_ns;
            vm->ran_ns += vm->job_ns;
            s->now += vm->job_ns;
            sim_arrivals(s);
        }
        pool_sched_end(s->ps, sv, used, has_work(vm), s->now, revoked, NULL);
    }
}

static void sim_measure(Sim *s)
{
    for (unsigned i = 0; i < s->n; i++) {
        s->vms[i]->ran_ns = 0;
        s->vms[i]->max_wait_ns = 0;
    }
}

static double share(Sim *s, SimVm *vm)
{
    uint64_t sum = 0;

    for (unsigned i = 0; i < s->n; i++) {
        sum += s->vms[i]->ran_ns;
    }
    return sum ? 100.0 * vm->ran_ns / sum : 0;
}

static void sim_finish(Sim *s)
{
    for (unsigned i = 0; i < s->n; i++) {
        pool_sched_leave(s->ps, &s->vms[i]->sv, s->now);
        g_free(s->vms[i]);
    }
    pool_sched_free(s->ps);
}

/* Weights 1:3, both always busy: 25 % / 75 % */
static void test_weights(void)
{
    Sim s;
    SimVm *a, *b;

    sim_init(&s, 1);
    a = sim_add(&s, 100, 0, 1 * MS, true);
    b = sim_add(&s, 300, 0, 1 * MS, true);
    sim_run(&s, SEC);
    sim_measure(&s);
    sim_run(&s, s.now + 5 * SEC);
    g_assert_cmpfloat(fabs(share(&s, a) - 25), <, 1);
    g_assert_cmpfloat(fabs(share(&s, b) - 75), <, 1);
    g_assert_cmpuint(a->sv.eff_weight, ==, 2500);
    /* a run-time change: 3:3 */
    a->sv.set.weight = 300;
    pool_sched_reweigh(s.ps, s.now);
    sim_measure(&s);
    sim_run(&s, s.now + 5 * SEC);
    g_assert_cmpfloat(fabs(share(&s, a) - 50), <, 1);
    sim_finish(&s);
}

/*
 * A reservation holds whoever else is busy; an idle VM's time goes to the
 * busy ones (work-conserving)
 */
static void test_reservation(void)
{
    Sim s;
    SimVm *a, *b, *c;

    sim_init(&s, 1);
    a = sim_add(&s, 1, 60, 1 * MS, true);
    b = sim_add(&s, 100, 0, 1 * MS, true);
    c = sim_add(&s, 100, 0, 1 * MS, true);
    sim_run(&s, SEC);
    sim_measure(&s);
    sim_run(&s, s.now + 5 * SEC);
    g_assert_cmpfloat(share(&s, a), >=, 59);
    g_assert_cmpfloat(fabs(share(&s, b) - share(&s, c)), <, 1);
    /* b idle: a and c split its time, a keeps its reservation */
    b->busy = false;
    sim_measure(&s);
    sim_run(&s, s.now + 5 * SEC);
    g_assert_cmpuint(b->ran_ns, ==, 0);
    g_assert_cmpfloat(share(&s, a), >=, 60);
    g_assert_cmpfloat(share(&s, a) + share(&s, c), >, 99.9);
    /* a alone: all of it */
    c->busy = false;
    sim_measure(&s);
    sim_run(&s, s.now + SEC);
    g_assert_cmpfloat(share(&s, a), >, 99.9);
    sim_finish(&s);
}

/* Reservations beyond 100 % are refused; room is made by a VM leaving */
static void test_admission(void)
{
    Sim s;
    SimVm *a, *b = g_new0(SimVm, 1);

    sim_init(&s, 1);
    a = sim_add(&s, 100, 70, 1 * MS, true);
    b->sv.set.weight = 100;
    b->sv.set.reservation = 40;
    g_assert(!pool_sched_join(s.ps, &b->sv, s.now));
    g_assert_cmpuint(pool_sched_reserved(s.ps, NULL), ==, 70);
    g_assert_cmpuint(pool_sched_reserved(s.ps, &a->sv), ==, 0);
    sim_run(&s, 10 * MS);
    /* a leaves holding the GPU: charged at most its budget */
    pool_sched_leave(s.ps, &a->sv, s.now);
    s.vms[0] = b;
    g_assert(pool_sched_join(s.ps, &b->sv, s.now));
    b->job_ns = 1 * MS;
    b->busy = true;
    pool_sched_demand(s.ps, &b->sv, s.now, revoked, NULL);
    sim_run(&s, s.now + 10 * MS);
    g_assert_cmpuint(b->sv.gpu_ns, >, 0);
    g_free(a);
    sim_finish(&s);
}

/*
 * A VM that wakes while another holds a batch-length grant gets the GPU
 * within a quantum and one submission: the holder's grant is cut
 */
static void test_wakeup(void)
{
    Sim s;
    SimVm *greedy, *light;

    sim_init(&s, 1);
    greedy = sim_add(&s, 100, 0, 1 * MS, true);
    light = sim_add(&s, 100, 0, 100 * US, false);
    light->period_ns = 5 * MS;
    light->next_ns = 3 * MS;
    sim_run(&s, SEC);
    g_assert_cmpuint(greedy->revoked, >, 10);
    /* quantum 2 ms, plus the submission running when it was cut */
    g_assert_cmpuint(light->max_wait_ns, <=, 2 * MS + 1 * MS);
    g_assert_cmpuint(light->ran_ns, >, 0);
    sim_finish(&s);
}

/*
 * --batch-quanta 64: busy VMs get grants of 64 quanta, a fourth as many
 * as with the default 16, with the same shares; a VM that wakes still
 * waits at most a quantum and a submission
 */
static void test_batch_grants(void)
{
    Sim s;
    SimVm *a, *b, *light;
    uint64_t grants[2];

    for (int run = 0; run < 2; run++) {
        unsigned quanta = run ? 64 : PVGPU_SCHED_DEFAULT_BATCH_QUANTA;

        sim_init(&s, 1);
        pool_sched_set_policy(s.ps, PVGPU_SCHED_WEIGHTED, 2 * MS, quanta);
        a = sim_add(&s, 100, 0, 1 * MS, true);
        b = sim_add(&s, 300, 0, 1 * MS, true);
        sim_run(&s, SEC);
        g_assert_cmpuint(a->sv.budget_ns, ==, quanta * 2 * MS);
        sim_measure(&s);
        grants[run] = a->sv.grants + b->sv.grants;
        sim_run(&s, s.now + 10 * SEC);
        grants[run] = a->sv.grants + b->sv.grants - grants[run];
        g_assert_cmpfloat(fabs(share(&s, a) - 25), <, 2);
        g_assert_cmpfloat(fabs(share(&s, b) - 75), <, 2);

        light = sim_add(&s, 100, 0, 100 * US, false);
        light->period_ns = 50 * MS;
        light->next_ns = s.now + 7 * MS;
        sim_measure(&s);
        sim_run(&s, s.now + SEC);
        g_assert_cmpuint(light->ran_ns, >, 0);
        g_assert_cmpuint(light->max_wait_ns, <=, 2 * MS + 1 * MS);
        sim_finish(&s);
    }
    /* about a fourth as many grants (10 s at 32 ms against 128 ms) */
    g_assert_cmpuint(grants[1] * 3, <, grants[0]);
    g_assert_cmpuint(grants[1] * 5, >, grants[0]);
}

/* A VM that leaves while it waits for the GPU is dropped cleanly */
static void test_leave_queued(void)
{
    Sim s;
    PoolSchedVm *granted;
    SimVm *holder, *waiter;
    uint64_t wait;

    sim_init(&s, 1);
    sim_add(&s, 100, 0, 1 * MS, true);
    sim_add(&s, 100, 0, 1 * MS, true);
    granted = pool_sched_next_grant(s.ps, s.now, &wait);
    g_assert_nonnull(granted);
    holder = (SimVm *)granted;
    waiter = s.vms[0] == holder ? s.vms[1] : s.vms[0];
    g_assert_cmpint(waiter->sv.state, ==, POOL_VM_QUEUED);
    pool_sched_leave(s.ps, &waiter->sv, s.now);
    g_free(waiter);
    s.vms[0] = holder;
    s.n = 1;
    s.now += 1 * MS;
    pool_sched_end(s.ps, granted, 1 * MS, true, s.now, revoked, NULL);
    sim_run(&s, s.now + 100 * MS);
    g_assert_cmpuint(holder->sv.gpu_ns, >=, 100 * MS);
    sim_finish(&s);
}

/* --concurrent 2: two VMs hold grants at once, a third waits */
static void test_concurrent(void)
{
    const uint64_t batch = PVGPU_SCHED_DEFAULT_BATCH_QUANTA * 2 * MS;
    PoolSchedVm *a, *b, *c;
    Sim s;
    uint64_t wait;

    sim_init(&s, 2);
    for (int i = 0; i < 3; i++) {
        sim_add(&s, 100, 0, 1 * MS, true);
    }
    a = pool_sched_next_grant(s.ps, s.now, &wait);
    b = pool_sched_next_grant(s.ps, s.now, &wait);
    g_assert_nonnull(a);
    g_assert_nonnull(b);
    g_assert_null(pool_sched_next_grant(s.ps, s.now, &wait));
    /* the third joined idle and woke: a quantum while it waits */
    g_assert_cmpuint(a->budget_ns, ==, 2 * MS);

    /*
     * The first hands its grant back still busy, while the second holds
     * its own: it did not wake (it is not the turn's VM, but it never ran
     * out of work), so the third's grant is a batch turn, and so is the
     * next one, and nobody's grant is cut
     */
    s.now += 2 * MS;
    pool_sched_end(s.ps, a, 2 * MS, true, s.now, revoked, NULL);
    c = pool_sched_next_grant(s.ps, s.now, &wait);
    g_assert_nonnull(c);
    g_assert(c != a && c != b);
    g_assert_cmpuint(c->budget_ns, ==, batch);
    g_assert_null(pool_sched_next_grant(s.ps, s.now, &wait));
    pool_sched_end(s.ps, b, b->budget_ns, true, s.now, revoked, NULL);
    g_assert(pool_sched_next_grant(s.ps, s.now, &wait) == a);
    g_assert_cmpuint(a->budget_ns, ==, batch);
    g_assert_cmpuint(c->budget_ns, ==, batch);
    for (int i = 0; i < 3; i++) {
        g_assert_cmpuint(s.vms[i]->revoked, ==, 0);
    }

    /* a VM that really woke still cuts the holders' grants */
    g_assert(b->state == POOL_VM_QUEUED);
    pool_sched_leave(s.ps, b, s.now);
    g_assert(pool_sched_join(s.ps, b, s.now));
    s.now += 10 * MS;
    pool_sched_demand(s.ps, b, s.now, revoked, NULL);
    g_assert_cmpuint(a->budget_ns, ==, 2 * MS);
    g_assert_cmpuint(c->budget_ns, ==, 2 * MS);
    pool_sched_end(s.ps, a, 2 * MS, true, s.now, revoked, NULL);
    pool_sched_end(s.ps, c, 2 * MS, true, s.now, revoked, NULL);
    sim_finish(&s);
}

/*
 * A VM that hands its grant back with a sliver of its turn left, still
 * busy, is granted a quantum, not the sliver: it could not use a few
 * microseconds before handing them back, over and over
 */
static void test_sliver(void)
{
    PoolSchedVm *a;
    Sim s;
    uint64_t wait;

    sim_init(&s, 1);
    sim_add(&s, 100, 0, 1 * MS, true);
    a = pool_sched_next_grant(s.ps, s.now, &wait);
    g_assert_nonnull(a);
    s.now += a->budget_ns - 1 * US;
    pool_sched_end(s.ps, a, a->budget_ns - 1 * US, true, s.now, revoked,
                   NULL);
    g_assert(pool_sched_next_grant(s.ps, s.now, &wait) == a);
    g_assert_cmpuint(a->budget_ns, >=, 2 * MS);
    pool_sched_end(s.ps, a, 0, false, s.now, revoked, NULL);
    sim_finish(&s);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/pvgpu-pool-sched/weights", test_weights);
    g_test_add_func("/pvgpu-pool-sched/reservation", test_reservation);
    g_test_add_func("/pvgpu-pool-sched/admission", test_admission);
    g_test_add_func("/pvgpu-pool-sched/wakeup", test_wakeup);
    g_test_add_func("/pvgpu-pool-sched/batch-grants", test_batch_grants);
    g_test_add_func("/pvgpu-pool-sched/leave-queued", test_leave_queued);
    g_test_add_func("/pvgpu-pool-sched/concurrent", test_concurrent);
    g_test_add_func("/pvgpu-pool-sched/sliver", test_sliver);
    return g_test_run();
}
