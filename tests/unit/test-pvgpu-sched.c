/*
 * Unit tests for pvgpu's GPU-time scheduler, without QEMU
 *
 * Most tests drive the scheduler with a model device on a simulated clock:
 * loads keep their entity's queue topped up, and a model GPU runs the
 * dispatched items one at a time, each for exactly its cost, and completes
 * them with that cost.  The bounds asserted are the ones
 * docs/pvgpu-scheduler.rst states.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <errno.h>
#include <glib.h>
#include <string.h>

#include "hw/display/pvgpu-sched.h"

#define US 1000ull
#define MS 1000000ull
#define SEC 1000000000ull
/* turn length of entities that never run dry, unless set otherwise */
#define BATCH_QUANTA PVGPU_SCHED_DEFAULT_BATCH_QUANTA

typedef struct Load Load;

/* A request of the model device; item is first, so an item is a Job. */
typedef struct Job {
    PvgpuSchedItem item;
    Load *load;
    uint64_t cost;
} Job;

struct Load {
    PvgpuSchedEntity *e;
    uint64_t cost;          /* GPU time of each of its items */
    unsigned weight;
    unsigned depth;         /* items kept queued; 0 makes the load idle */
    unsigned queued;
    uint64_t enqueued;
    uint64_t total_ns;      /* GPU time received since the start */
    uint64_t gpu_ns;        /* ... since sim_measure() */
    uint64_t ready_ns;      /* waiting for a dispatch since */
    uint64_t max_wait_ns;   /* longest such wait since sim_measure() */
    /*
     * a client that waits for each answer: after an item completes, the
     * next comes only @think_ns later (0: at once)
     */
    uint64_t think_ns;
    uint64_t think_until;
};

#define MAX_LOADS 4
#define GPU_DEPTH 4

typedef struct Run {
    uint64_t start, end;
} Run;

typedef struct Sim {
    PvgpuSched *s;
    PvgpuSchedPolicy policy;
    uint64_t quantum;
    unsigned max_inflight;
    uint64_t now;
    uint64_t measure_ns;    /* time of sim_measure() */
    Load load[MAX_LOADS];
    unsigned nr_loads;
    /* the model GPU runs gpu[0] until gpu_end, then the next */
    Job *gpu[GPU_DEPTH];
    unsigned gpu_n;
    uint64_t gpu_end;
    uint64_t cap_idle_ns;   /* time idled on the scheduler's wait_ns */
    /* a context switch: an item after another load's takes this longer */
    uint64_t switch_ns;
    Load *gpu_last;         /* whose item the model GPU ran last */
    GArray *trace;          /* if set, the load index of each dispatch */
    Load *record;           /* if set, its runs are appended to runs */
    GArray *runs;
} Sim;

static void sim_init(Sim *sim, PvgpuSchedPolicy policy, uint64_t quantum,
                     unsigned max_inflight)
{
    *sim = (Sim) {
        .s = pvgpu_sched_new(),
        .policy = policy,
        .quantum = quantum,
        .max_inflight = max_inflight,
    };
    g_assert_nonnull(sim->s);
    pvgpu_sched_set_policy(sim->s, policy);
    g_assert_cmpint(pvgpu_sched_set_quantum(sim->s, quantum), ==, 0);
    g_assert_cmpint(pvgpu_sched_set_max_inflight(sim->s, max_inflight), ==,
                    0);
}

static Load *sim_add(Sim *sim, uint64_t cost, unsigned weight)
{
    Load *l = &sim->load[sim->nr_loads];

    g_assert_cmpuint(sim->nr_loads, <, MAX_LOADS);
    *l = (Load) {
        .e = pvgpu_sched_entity_add(sim->s, sim->nr_loads),
        .cost = cost,
        .weight = weight,
        .depth = 4,
    };
    g_assert_nonnull(l->e);
    g_assert_cmpint(pvgpu_sched_entity_set_weight(l->e, weight), ==, 0);
    sim->nr_loads++;
    return l;
}

static void set_weight(Load *l, unsigned weight)
{
    g_assert_cmpint(pvgpu_sched_entity_set_weight(l->e, weight), ==, 0);
    l->weight = weight;
}

static void sim_measure(Sim *sim)
{
    sim->measure_ns = sim->now;
    for (unsigned i = 0; i < sim->nr_loads; i++) {
        sim->load[i].gpu_ns = 0;
        sim->load[i].max_wait_ns = 0;
        /* waits count from here: the bounds hold for the settings now */
        sim->load[i].ready_ns = sim->now;
    }
}

static void top_up(Sim *sim)
{
    for (unsigned i = 0; i < sim->nr_loads; i++) {
        Load *l = &sim->load[i];

        if (l->think_ns && sim->now < l->think_until) {
            continue;
        }
        if (!l->queued && l->depth) {
            l->ready_ns = sim->now;
        }
        while (l->queued < l->depth) {
            Job *job = g_new0(Job, 1);

            job->load = l;
            job->cost = l->cost;
            g_assert_cmpint(pvgpu_sched_enqueue(sim->s, l->e, &job->item,
                                                sim->now), ==, 0);
            l->queued++;
            l->enqueued++;
        }
    }
}

/* The model GPU starts @job: now, or when it finishes what it runs. */
static void gpu_start(Sim *sim, Job *job, uint64_t now)
{
    if (sim->gpu_last && sim->gpu_last != job->load) {
        job->cost += sim->switch_ns;
    }
    sim->gpu_last = job->load;
    sim->gpu_end = now + job->cost;
}

static void dispatch(Sim *sim, PvgpuSchedItem *item, PvgpuSchedEntity *e)
{
    Job *job = (Job *)item;
    Load *l = job->load;

    g_assert(l->e == e);
    l->queued--;
    l->max_wait_ns = MAX(l->max_wait_ns, sim->now - l->ready_ns);
    l->ready_ns = sim->now;
    if (sim->trace) {
        unsigned idx = l - sim->load;

        g_array_append_val(sim->trace, idx);
    }
    g_assert_cmpuint(sim->gpu_n, <, GPU_DEPTH);
    sim->gpu[sim->gpu_n++] = job;
    if (sim->gpu_n == 1) {
        gpu_start(sim, job, sim->now);
    }
}

/* Finish the item running on the model GPU and start the next. */
static void retire(Sim *sim)
{
    Job *job = sim->gpu[0];
    Load *l = job->load;

    sim->now = sim->gpu_end;
    sim->gpu_n--;
    memmove(sim->gpu, sim->gpu + 1, sim->gpu_n * sizeof(sim->gpu[0]));
    if (sim->gpu_n) {
        gpu_start(sim, sim->gpu[0], sim->now);
    }
    pvgpu_sched_complete(sim->s, &job->item, job->cost, sim->now);
    l->think_until = sim->now + l->think_ns;
    l->total_ns += job->cost;
    l->gpu_ns += job->cost;
    if (l == sim->record) {
        Run run = { sim->now - job->cost, sim->now };

        g_array_append_val(sim->runs, run);
    }
    g_free(job);
}

static void sim_run(Sim *sim, uint64_t until)
{
    while (sim->now < until) {
        PvgpuSchedEntity *e;
        PvgpuSchedItem *item;
        uint64_t wait;

        top_up(sim);
        while ((item = pvgpu_sched_next(sim->s, sim->now, &e, &wait))) {
            dispatch(sim, item, e);
        }
        g_assert_null(e);
        if (sim->gpu_n && (!wait || sim->gpu_end <= sim->now + wait)) {
            retire(sim);
        } else if (wait) {
            /* the device would arm a timer */
            wait = MIN(wait, until - sim->now);
            if (!sim->gpu_n) {
                sim->cap_idle_ns += wait;
            }
            sim->now += wait;
        } else {
            /* work-conserving: the GPU idles only when nothing is queued */
            for (unsigned i = 0; i < sim->nr_loads; i++) {
                g_assert_cmpuint(sim->load[i].queued, ==, 0);
            }
            sim->now = until;
        }
    }
}

static void drop_job(PvgpuSchedItem *item, void *opaque)
{
    unsigned *dropped = opaque;

    (*dropped)++;
    g_free(item);
}

/* Remove the entities with their work, let the GPU finish, free all. */
static void sim_finish(Sim *sim)
{
    unsigned queued = 0, dropped = 0;

    for (unsigned i = 0; i < sim->nr_loads; i++) {
        PvgpuSchedStats st;

        pvgpu_sched_entity_stats(sim->load[i].e, &st);
        /* the scheduler charged exactly what the GPU ran */
        g_assert_cmpuint(st.gpu_ns, ==, sim->load[i].total_ns);
        g_assert_cmpuint(st.queued, ==, sim->load[i].queued);
        queued += st.queued;
        pvgpu_sched_entity_remove(sim->s, sim->load[i].e, drop_job, &dropped);
    }
    g_assert_cmpuint(dropped, ==, queued);
    while (sim->gpu_n) {
        retire(sim);
    }
    pvgpu_sched_free(sim->s);
    if (sim->trace) {
        g_array_free(sim->trace, true);
    }
    if (sim->runs) {
        g_array_free(sim->runs, true);
    }
}

/* Percentage of the GPU time given to loads since sim_measure(). */
static double share(Sim *sim, Load *l)
{
    uint64_t total = 0;

    for (unsigned i = 0; i < sim->nr_loads; i++) {
        total += sim->load[i].gpu_ns;
    }
    return 100.0 * l->gpu_ns / total;
}

/* Percentage of the elapsed time since sim_measure() */
static double time_share(Sim *sim, Load *l)
{
    return 100.0 * l->gpu_ns / (sim->now - sim->measure_ns);
}

static uint64_t longest_turn(Sim *sim)
{
    uint64_t cmax = 0;

    for (unsigned i = 0; i < sim->nr_loads; i++) {
        cmax = MAX(cmax, sim->load[i].cost);
    }
    /* loads that never run dry get batch turns */
    return sim->quantum * BATCH_QUANTA + sim->max_inflight * cmax;
}

/*
 * The documented bound on the wait of @l, when it has work and is under
 * its cap, until its next dispatch: the GPU time of the others' turns,
 * plus its own previous item running.  T is the longest turn.
 */
static uint64_t wait_bound(Sim *sim, Load *l)
{
    uint64_t t = longest_turn(sim), w_others = 0;
    unsigned n = sim->nr_loads;

    for (unsigned i = 0; i < n; i++) {
        if (&sim->load[i] != l) {
            w_others += sim->load[i].weight;
        }
    }
    switch (sim->policy) {
    case PVGPU_SCHED_BEST_EFFORT:
        return (n - 1) * t + l->cost;
    case PVGPU_SCHED_EQUAL_SHARE:
        return (2 * n - 1) * t + l->cost;
    default:
        return n * t + t * w_others / l->weight + l->cost;
    }
}

/* A lower priority class's bound under the weighted policy. */
static uint64_t aging_bound(Sim *sim, Load *l)
{
    return (PVGPU_SCHED_AGING_TURNS + PVGPU_SCHED_NR_CLASSES - 1) *
           longest_turn(sim) + l->cost;
}

static void test_weighted_shares(void)
{
    /* with one and with two items in flight at a time */
    for (unsigned inflight = 1; inflight <= 2; inflight++) {
        Sim sim;
        Load *a, *b, *c;

        sim_init(&sim, PVGPU_SCHED_WEIGHTED, 2 * MS, inflight);
        a = sim_add(&sim, 500 * US, 100);
        b = sim_add(&sim, 700 * US, 200);
        c = sim_add(&sim, 300 * US, 400);
        sim_run(&sim, 200 * MS);
        sim_measure(&sim);
        sim_run(&sim, 5200 * MS);
        g_assert_cmpfloat_with_epsilon(share(&sim, a), 100.0 / 7, 2);
        g_assert_cmpfloat_with_epsilon(share(&sim, b), 200.0 / 7, 2);
        g_assert_cmpfloat_with_epsilon(share(&sim, c), 400.0 / 7, 2);
        /* work-conserving: busy all the time */
        g_assert_cmpfloat(time_share(&sim, a) + time_share(&sim, b) +
                          time_share(&sim, c), >, 99.9);
        sim_finish(&sim);
    }
}

static void test_equal_share(void)
{
    Sim sim;
    Load *a, *b, *c;

    sim_init(&sim, PVGPU_SCHED_EQUAL_SHARE, 2 * MS, 1);
    /* weights and classes are ignored */
    a = sim_add(&sim, 200 * US, 100);
    b = sim_add(&sim, 1 * MS, 1000);
    c = sim_add(&sim, 3 * MS, 5000);
    g_assert_cmpint(pvgpu_sched_entity_set_class(sim.s, c->e, 3), ==, 0);
    sim_run(&sim, 200 * MS);
    sim_measure(&sim);
    sim_run(&sim, 5200 * MS);
    g_assert_cmpfloat_with_epsilon(share(&sim, a), 100.0 / 3, 2);
    g_assert_cmpfloat_with_epsilon(share(&sim, b), 100.0 / 3, 2);
    g_assert_cmpfloat_with_epsilon(share(&sim, c), 100.0 / 3, 2);
    sim_finish(&sim);
}

/*
 * The run of dispatches of one entity that starts at @trace[*i]: its
 * entity in @owner, its length returned; *i moves past it
 */
static unsigned trace_run(const GArray *trace, unsigned *i, unsigned *owner)
{
    unsigned len = 0;

    *owner = g_array_index(trace, unsigned, *i);
    for (; *i < trace->len && g_array_index(trace, unsigned, *i) == *owner;
         (*i)++) {
        len++;
    }
    return len;
}

static void test_best_effort(void)
{
    /*
     * items per turn of BATCH_QUANTA quanta of 2 ms (none of
     * the loads ever runs dry): 0.1 and 1 ms items, and one 64 ms item,
     * longer than the turn
     */
    const unsigned per_turn[] = {
        20 * BATCH_QUANTA, 2 * BATCH_QUANTA, 1,
    };
    Sim sim;
    GArray *turns = g_array_new(false, false, sizeof(unsigned));
    Load *a, *b, *c;
    unsigned i = 0;

    sim_init(&sim, PVGPU_SCHED_BEST_EFFORT, 2 * MS, 1);
    sim.trace = g_array_new(false, false, sizeof(unsigned));
    /* weights and classes are ignored */
    a = sim_add(&sim, 100 * US, 100);
    b = sim_add(&sim, 1 * MS, 200);
    c = sim_add(&sim, 64 * MS, 400);
    g_assert_cmpint(pvgpu_sched_entity_set_class(sim.s, a->e, 3), ==, 0);
    sim_run(&sim, 20 * SEC);

    /*
     * each turn is a batch turn's worth of items (but maybe the last, and
     * the first ones, while entities that just got work wait)
     */
    while (i < sim.trace->len) {
        unsigned owner, len = trace_run(sim.trace, &i, &owner);

        if (i < sim.trace->len && turns->len >= 3) {
            g_assert_cmpuint(len, ==, per_turn[owner]);
        }
        g_array_append_val(turns, owner);
    }
    /* round robin: every entity exactly once in any three turns */
    g_assert_cmpuint(turns->len, >, 400);
    for (i = 3; i < turns->len; i++) {
        g_assert_cmpuint(g_array_index(turns, unsigned, i), !=,
                         g_array_index(turns, unsigned, i - 1));
        g_assert_cmpuint(g_array_index(turns, unsigned, i), ==,
                         g_array_index(turns, unsigned, i - 3));
    }
    g_array_free(turns, true);

    /* turns are not time-fair: the 64 ms items get a double share */
    sim_measure(&sim);
    sim_run(&sim, sim.now + 8 * SEC);
    g_assert_cmpfloat_with_epsilon(share(&sim, a), 25, 2);
    g_assert_cmpfloat_with_epsilon(share(&sim, b), 25, 2);
    g_assert_cmpfloat_with_epsilon(share(&sim, c), 50, 2);
    sim_finish(&sim);
}

/*
 * Entities that never run dry get batch turns (BATCH_QUANTA
 * quanta: fewer GPU context switches), but one that just got work ends
 * the running turn at one quantum: its waits are bounded as if every turn
 * were Q + k * C long.
 */
static void test_wakeup(void)
{
    Sim sim;
    Load *v;
    unsigned i = 0, turns = 0;

    sim_init(&sim, PVGPU_SCHED_EQUAL_SHARE, 2 * MS, 1);
    sim.trace = g_array_new(false, false, sizeof(unsigned));
    sim_add(&sim, 1 * MS, 100);
    sim_add(&sim, 1 * MS, 100);
    sim_run(&sim, SEC);
    /* after the first two turns (both woken), 32 items of 1 ms a turn */
    while (i < sim.trace->len) {
        unsigned owner, len = trace_run(sim.trace, &i, &owner);

        if (i < sim.trace->len && ++turns > 2) {
            g_assert_cmpuint(len, ==, 2 * BATCH_QUANTA);
        }
    }
    g_assert_cmpuint(turns, >, 20);
    g_array_free(sim.trace, true);
    sim.trace = NULL;

    /* a light client that waits 0.5 ms for each answer, then submits */
    v = sim_add(&sim, 100 * US, 100);
    v->depth = 1;
    v->think_ns = 500 * US;
    sim_measure(&sim);
    sim_run(&sim, sim.now + SEC);
    /* equal share's bound with turns of Q + k * C, not of batch turns */
    g_assert_cmpuint(v->max_wait_ns, <=, 5 * (2 * MS + 1 * MS) + 100 * US);
    g_assert_cmpuint(v->gpu_ns, >, 0);
    sim_finish(&sim);
}

/*
 * The length of batch turns is a setting, changed at run time: entities
 * that never run dry switch every batch_quanta quanta, and every turn
 * that goes to another entity counts as a switch.
 */
static void test_batch_quanta(void)
{
    static const unsigned quanta[] = { 4, 64, 1 };
    uint64_t prev = BATCH_QUANTA * 2 * MS;
    Sim sim;

    sim_init(&sim, PVGPU_SCHED_WEIGHTED, 2 * MS, 1);
    sim_add(&sim, 1 * MS, 100);
    sim_add(&sim, 1 * MS, 300);
    sim_run(&sim, 100 * MS);
    g_assert_cmpuint(pvgpu_sched_switches(sim.s), >, 0);
    for (unsigned k = 0; k < G_N_ELEMENTS(quanta); k++) {
        /* long enough for the shares to be exact within one turn */
        uint64_t turn = quanta[k] * 2 * MS, run = MAX(SEC, 100 * turn);
        uint64_t before, changes = 0;
        unsigned i = 0, turns = 0;

        g_assert_cmpint(pvgpu_sched_set_batch_quanta(sim.s, quanta[k]), ==,
                        0);
        /*
         * The turn running when the setting changed ends by the new
         * length; the entity behind by up to one turn of the old length
         * then catches up (virtual time keeps shares over the long run)
         */
        sim_run(&sim, sim.now + 2 * (prev + turn));
        prev = turn;
        before = pvgpu_sched_switches(sim.s);
        sim.trace = g_array_new(false, false, sizeof(unsigned));
        sim_measure(&sim);
        sim_run(&sim, sim.now + run);
        while (i < sim.trace->len) {
            unsigned owner, len = trace_run(sim.trace, &i, &owner);

            /* a turn is 2 * quanta items of 1 ms; the first is cut */
            if (turns++ && i < sim.trace->len) {
                g_assert_cmpuint(len % (2 * quanta[k]), ==, 0);
            }
            /* another entity's run follows */
            changes += i < sim.trace->len;
        }
        /* one switch per change of owner, none for a turn of the same */
        g_assert_cmpuint(pvgpu_sched_switches(sim.s) - before, ==, changes);
        g_assert_cmpuint(changes, >=, run / turn / 4 - 1);
        g_assert_cmpfloat_with_epsilon(share(&sim, &sim.load[1]), 75, 2);
        g_array_free(sim.trace, true);
        sim.trace = NULL;
    }
    sim_finish(&sim);
}

/*
 * A GPU on which an item after another entity's takes longer than the
 * 4 ms of the others (a CPU renderer's cold caches): the scheduler
 * measures that, and with a switch budget lengthens batch turns until
 * switches cost at most the budget, up to 8 times batch quanta; a woken
 * entity is not held by them.
 */
static void test_switch_budget(void)
{
    static const struct {
        uint64_t switch_ns;
        unsigned budget;
        uint64_t cost;          /* measured */
        uint64_t turn;
    } cases[] = {
        /* off: batch quanta */
        { 2 * MS, 0, 2 * MS, BATCH_QUANTA * 2 * MS },
        /* 2 ms * 100 / 1 */
        { 2 * MS, 1, 2 * MS, 200 * MS },
        { 2 * MS, 5, 2 * MS, 40 * MS },
        /* switches cost nothing */
        { 0, 1, 0, BATCH_QUANTA * 2 * MS },
        /* 300 ms would be more than 8 times 32 ms */
        { 3 * MS, 1, 3 * MS, 8 * BATCH_QUANTA * 2 * MS },
        /* a sample counts for at most the average item */
        { 40 * MS, 1, 4 * MS, 8 * BATCH_QUANTA * 2 * MS },
    };

    for (unsigned k = 0; k < G_N_ELEMENTS(cases); k++) {
        uint64_t run = MAX(2 * SEC, 100 * cases[k].turn), before, penalty;
        Load *light;
        Sim sim;

        sim_init(&sim, PVGPU_SCHED_WEIGHTED, 2 * MS, 1);
        sim.switch_ns = cases[k].switch_ns;
        g_assert_cmpint(pvgpu_sched_set_switch_budget(sim.s,
                                                      cases[k].budget), ==,
                        0);
        sim_add(&sim, 4 * MS, 100);
        sim_add(&sim, 4 * MS, 300);
        /* not measured until entities have items of both kinds */
        g_assert_cmpuint(pvgpu_sched_switch_cost(sim.s), ==, 0);
        sim_run(&sim, run / 4);
        /* exact: the model's items are all alike */
        g_assert_cmpuint(pvgpu_sched_switch_cost(sim.s), ==, cases[k].cost);
        g_assert_cmpuint(pvgpu_sched_batch_turn(sim.s), ==, cases[k].turn);

        before = pvgpu_sched_switches(sim.s);
        sim_measure(&sim);
        sim_run(&sim, sim.now + run);
        penalty = (pvgpu_sched_switches(sim.s) - before) *
                  cases[k].switch_ns;
        g_assert_cmpfloat_with_epsilon(share(&sim, &sim.load[1]), 75, 2);
        /* at most a switch per turn (the budget's share of it, or less) */
        g_assert_cmpuint(penalty, <=,
                         (run / cases[k].turn + 1) * cases[k].switch_ns);
        if (!cases[k].budget) {
            /* without a budget these switches cost more than 1 % */
            g_assert_cmpuint(penalty, >, run / 100);
        }

        /*
         * A client that waits for each answer is not held by long turns:
         * the one running ends after a quantum and its item, and the
         * policy may pick each of the others for one before it (the
         * items after a switch, all of them here, cost the switch more)
         */
        light = sim_add(&sim, 100 * US, 100);
        light->depth = 1;
        light->think_ns = 10 * MS;
        sim_run(&sim, sim.now + 100 * MS);
        sim_measure(&sim);
        sim_run(&sim, sim.now + SEC);
        g_assert_cmpuint(light->max_wait_ns, <=,
                         2 * MS + 3 * (4 * MS + cases[k].switch_ns));
        sim_finish(&sim);
    }
    {
        PvgpuSched *s = pvgpu_sched_new();

        g_assert_cmpint(pvgpu_sched_set_switch_budget(s, 101), ==, -EINVAL);
        g_assert_cmpint(pvgpu_sched_set_switch_budget(s, 100), ==, 0);
        pvgpu_sched_free(s);
    }
}

/* One context submits 5 ms batches, the other 0.1 ms ones: 50 times less. */
static void test_batch_size(void)
{
    static const struct {
        PvgpuSchedPolicy policy;
        unsigned weight_small;
        double share_large;
    } cases[] = {
        { PVGPU_SCHED_WEIGHTED, 100, 50 },
        { PVGPU_SCHED_WEIGHTED, 300, 25 },
        { PVGPU_SCHED_EQUAL_SHARE, 300, 50 },
        /*
         * round robin is not time-fair: turns of 16 quanta of 2 ms (both
         * never run dry) are 7 x 5 ms against 320 x 0.1 ms
         */
        { PVGPU_SCHED_BEST_EFFORT, 100, 3500.0 / 67 },
    };

    G_STATIC_ASSERT(BATCH_QUANTA == 16);
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        Sim sim;
        Load *large, *small;

        sim_init(&sim, cases[i].policy, 2 * MS, 1);
        large = sim_add(&sim, 5 * MS, 100);
        small = sim_add(&sim, 100 * US, cases[i].weight_small);
        sim_run(&sim, 100 * MS);
        sim_measure(&sim);
        sim_run(&sim, 3100 * MS);
        g_assert_cmpfloat_with_epsilon(share(&sim, large),
                                       cases[i].share_large, 2);
        g_assert_cmpfloat_with_epsilon(share(&sim, small),
                                       100 - cases[i].share_large, 2);
        sim_finish(&sim);
    }
}

/* GPU time of @runs inside [from, to) */
static uint64_t busy_in(GArray *runs, uint64_t from, uint64_t to)
{
    uint64_t busy = 0;

    for (unsigned i = 0; i < runs->len; i++) {
        Run *r = &g_array_index(runs, Run, i);
        uint64_t start = MAX(r->start, from), end = MIN(r->end, to);

        busy += end > start ? end - start : 0;
    }
    return busy;
}

static void test_cap_alone(void)
{
    static const uint64_t windows[] = { 2 * MS, 10 * MS, 50 * MS };
    const uint64_t quantum = 2 * MS, cost = 500 * US;
    Sim sim;
    Load *a;

    sim_init(&sim, PVGPU_SCHED_WEIGHTED, quantum, 1);
    a = sim_add(&sim, cost, 100);
    g_assert_cmpint(pvgpu_sched_entity_set_cap(sim.s, a->e, 25, 0), ==, 0);
    sim.record = a;
    sim.runs = g_array_new(false, false, sizeof(Run));
    sim_run(&sim, 2 * SEC);

    /*
     * Alone, yet held to its cap: over any window W at most
     * cap * (W + quantum) plus the item that was running.
     */
    g_assert_cmpfloat(time_share(&sim, a), >=, 24.5);
    g_assert_cmpuint(a->gpu_ns, <=, (sim.now + quantum) / 4 + cost);
    for (unsigned i = 0; i < G_N_ELEMENTS(windows); i++) {
        for (uint64_t t = 0; t + windows[i] <= 2 * SEC; t += 250 * US) {
            g_assert_cmpuint(busy_in(sim.runs, t, t + windows[i]), <=,
                             (windows[i] + quantum) / 4 + cost);
        }
    }
    /* the idle time was asked for through wait_ns */
    g_assert_cmpuint(sim.cap_idle_ns, >=, 2 * SEC - a->gpu_ns - cost);
    sim_finish(&sim);
}

static void test_cap_shared(void)
{
    for (PvgpuSchedPolicy p = PVGPU_SCHED_BEST_EFFORT;
         p <= PVGPU_SCHED_WEIGHTED; p++) {
        Sim sim;
        Load *a, *b;

        sim_init(&sim, p, 1 * MS, 1);
        a = sim_add(&sim, 500 * US, 1000);
        b = sim_add(&sim, 500 * US, 100);
        g_assert_cmpint(pvgpu_sched_entity_set_cap(sim.s, a->e, 20, 0), ==,
                        0);
        sim_run(&sim, 100 * MS);
        sim_measure(&sim);
        sim_run(&sim, 2100 * MS);
        /* caps hold in every policy; the others get the rest */
        g_assert_cmpfloat(time_share(&sim, a), <=, 20.5);
        g_assert_cmpfloat(time_share(&sim, a), >=, 19);
        g_assert_cmpfloat(time_share(&sim, b), >=, 79.5);

        /*
         * Lifting the cap must not pay back what the cap withheld: b keeps
         * getting turns within its bound, and a its normal share.
         */
        g_assert_cmpint(pvgpu_sched_entity_set_cap(sim.s, a->e, 0, sim.now),
                        ==, 0);
        sim_measure(&sim);
        sim_run(&sim, sim.now + SEC);
        g_assert_cmpuint(b->max_wait_ns, <=, wait_bound(&sim, b));
        g_assert_cmpfloat_with_epsilon(share(&sim, a),
                                       p == PVGPU_SCHED_WEIGHTED ?
                                       100000.0 / 1100 : 50, 2);
        sim_finish(&sim);
    }
}

static void test_priority(void)
{
    Sim sim;
    Load *low, *high, *mid;

    sim_init(&sim, PVGPU_SCHED_WEIGHTED, 2 * MS, 1);
    sim.trace = g_array_new(false, false, sizeof(unsigned));
    low = sim_add(&sim, 1 * MS, 100);
    high = sim_add(&sim, 1 * MS, 100);
    g_assert_cmpint(pvgpu_sched_entity_set_class(sim.s, high->e, 3), ==, 0);
    sim_run(&sim, 3 * SEC);

    /* low queued first, but high goes first and gets nearly everything */
    g_assert_cmpuint(g_array_index(sim.trace, unsigned, 0), ==, 1);
    g_assert_cmpfloat_with_epsilon(share(&sim, low),
                                   100.0 / (PVGPU_SCHED_AGING_TURNS + 1),
                                   0.5);
    /* low waits about AGING_TURNS turns of high, and no longer */
    g_assert_cmpuint(low->max_wait_ns, >=, PVGPU_SCHED_AGING_TURNS * 2 * MS);
    g_assert_cmpuint(low->max_wait_ns, <=, aging_bound(&sim, low));

    /* two starving classes below high */
    mid = sim_add(&sim, 2 * MS, 100);
    g_assert_cmpint(pvgpu_sched_entity_set_class(sim.s, mid->e, 1), ==, 0);
    sim_measure(&sim);
    sim_run(&sim, 6 * SEC);
    g_assert_cmpuint(low->max_wait_ns, <=, aging_bound(&sim, low));
    g_assert_cmpuint(mid->max_wait_ns, <=, aging_bound(&sim, mid));
    g_assert_cmpfloat(share(&sim, high), >, 85);

    /* without high, the lower classes get all of the GPU */
    high->depth = 0;
    sim_run(&sim, 6100 * MS);
    sim_measure(&sim);
    sim_run(&sim, 7100 * MS);
    g_assert_cmpuint(high->gpu_ns, ==, 0);
    g_assert_cmpfloat(time_share(&sim, low) + time_share(&sim, mid), >, 99.9);
    sim_finish(&sim);
}

/*
 * Phases that starve naive schedulers: a runs alone for a second (banking
 * virtual time would make it wait for the newcomers), then b leaves and
 * comes back (banking its idle time would starve the others).
 */
static void test_starvation(void)
{
    for (PvgpuSchedPolicy p = PVGPU_SCHED_BEST_EFFORT;
         p <= PVGPU_SCHED_WEIGHTED; p++) {
        Sim sim;
        Load *b, *c;

        sim_init(&sim, p, 2 * MS, 1);
        sim_add(&sim, 300 * US, 100);
        b = sim_add(&sim, 1 * MS, 400);
        c = sim_add(&sim, 2500 * US, 1000);
        b->depth = c->depth = 0;
        sim_run(&sim, 1 * SEC);
        b->depth = c->depth = 4;
        sim_run(&sim, 2 * SEC);
        b->depth = 0;
        sim_run(&sim, 2500 * MS);
        b->depth = 4;
        sim_run(&sim, 3500 * MS);
        for (unsigned i = 0; i < 3; i++) {
            g_assert_cmpuint(sim.load[i].max_wait_ns, <=,
                             wait_bound(&sim, &sim.load[i]));
        }
        sim_finish(&sim);
    }
}

static void collect(PvgpuSchedItem *item, void *opaque)
{
    g_ptr_array_add(opaque, item);
}

static void test_remove(void)
{
    PvgpuSched *s = pvgpu_sched_new();
    PvgpuSchedEntity *a, *b, *again, *e;
    PvgpuSchedItem items[8], *got[2];
    PvgpuSchedStats st;
    GPtrArray *dropped = g_ptr_array_new();
    uint64_t wait;

    g_assert_cmpint(pvgpu_sched_set_max_inflight(s, 2), ==, 0);
    a = pvgpu_sched_entity_add(s, 7);
    b = pvgpu_sched_entity_add(s, 8);
    g_assert_cmpuint(pvgpu_sched_entity_id(a), ==, 7);
    for (unsigned i = 0; i < 5; i++) {
        g_assert_cmpint(pvgpu_sched_enqueue(s, a, &items[i], 0), ==, 0);
    }
    /* a's turn: two of its items go to the renderer */
    for (unsigned i = 0; i < 2; i++) {
        got[i] = pvgpu_sched_next(s, 0, &e, &wait);
        g_assert(e == a);
    }
    g_assert(got[0] == &items[0] && got[1] == &items[1]);
    for (unsigned i = 5; i < 8; i++) {
        g_assert_cmpint(pvgpu_sched_enqueue(s, b, &items[i], 0), ==, 0);
    }

    /* remove a with three items queued and two in flight */
    pvgpu_sched_entity_remove(s, a, collect, dropped);
    g_assert_cmpuint(dropped->len, ==, 3);
    for (unsigned i = 0; i < 3; i++) {
        g_assert(g_ptr_array_index(dropped, i) == &items[2 + i]);
    }
    /* its in-flight items still occupy the renderer */
    g_assert_null(pvgpu_sched_next(s, 0, &e, &wait));
    g_assert_cmpuint(wait, ==, 0);

    /* the context id is reused before the old items complete */
    again = pvgpu_sched_entity_add(s, 7);
    pvgpu_sched_complete(s, got[0], 1 * MS, 1 * MS);
    pvgpu_sched_complete(s, got[1], 1 * MS, 2 * MS);
    pvgpu_sched_entity_stats(again, &st);
    g_assert_cmpuint(st.completed, ==, 0);
    g_assert_cmpuint(st.inflight, ==, 0);
    g_assert_cmpuint(st.gpu_ns, ==, 0);

    /* b runs; removing it while it is the current turn */
    g_assert(pvgpu_sched_next(s, 2 * MS, &e, &wait) == &items[5]);
    g_assert(e == b);
    pvgpu_sched_complete(s, &items[5], 1 * MS, 3 * MS);
    pvgpu_sched_entity_remove(s, b, collect, dropped);
    g_assert_cmpuint(dropped->len, ==, 5);
    g_assert_null(pvgpu_sched_next(s, 3 * MS, &e, &wait));

    /* the new entity works normally; removing it idle frees it at once */
    g_assert_cmpint(pvgpu_sched_enqueue(s, again, &items[0], 3 * MS), ==, 0);
    g_assert(pvgpu_sched_next(s, 3 * MS, &e, &wait) == &items[0]);
    g_assert(e == again);
    pvgpu_sched_complete(s, &items[0], 1 * MS, 4 * MS);
    pvgpu_sched_entity_stats(again, &st);
    g_assert_cmpuint(st.completed, ==, 1);
    g_assert_cmpuint(st.gpu_ns, ==, 1 * MS);
    pvgpu_sched_entity_remove(s, again, collect, dropped);
    g_assert_cmpuint(dropped->len, ==, 5);

    /* a removed entity with items in flight is released with s */
    a = pvgpu_sched_entity_add(s, 9);
    g_assert_cmpint(pvgpu_sched_enqueue(s, a, &items[0], 4 * MS), ==, 0);
    g_assert(pvgpu_sched_next(s, 4 * MS, &e, &wait) == &items[0]);
    pvgpu_sched_entity_remove(s, a, collect, dropped);
    pvgpu_sched_free(s);
    g_ptr_array_free(dropped, true);
}

static void test_runtime_switch(void)
{
    static const unsigned weights[][3] = {
        { 100, 200, 400 }, { 400, 200, 100 },
    };
    static const PvgpuSchedPolicy unweighted[] = {
        PVGPU_SCHED_EQUAL_SHARE, PVGPU_SCHED_BEST_EFFORT,
    };
    Sim sim;

    sim_init(&sim, PVGPU_SCHED_BEST_EFFORT, 2 * MS, 2);
    for (unsigned i = 0; i < 3; i++) {
        sim_add(&sim, 500 * US, 100);
    }
    sim_run(&sim, SEC);
    for (unsigned i = 0; i < 3; i++) {
        g_assert_cmpfloat_with_epsilon(share(&sim, &sim.load[i]), 100.0 / 3,
                                       2);
    }

    /* to weighted, then new weights, with work queued and in flight */
    pvgpu_sched_set_policy(sim.s, PVGPU_SCHED_WEIGHTED);
    sim.policy = PVGPU_SCHED_WEIGHTED;
    for (unsigned w = 0; w < G_N_ELEMENTS(weights); w++) {
        for (unsigned i = 0; i < 3; i++) {
            set_weight(&sim.load[i], weights[w][i]);
        }
        sim_measure(&sim);
        sim_run(&sim, sim.now + SEC);
        for (unsigned i = 0; i < 3; i++) {
            g_assert_cmpfloat_with_epsilon(share(&sim, &sim.load[i]),
                                           weights[w][i] * 100.0 / 700, 2);
        }
    }

    /* a new quantum, and the unweighted policies again */
    g_assert_cmpint(pvgpu_sched_set_quantum(sim.s, 500 * US), ==, 0);
    sim.quantum = 500 * US;
    for (unsigned p = 0; p < G_N_ELEMENTS(unweighted); p++) {
        pvgpu_sched_set_policy(sim.s, unweighted[p]);
        sim.policy = unweighted[p];
        sim_measure(&sim);
        sim_run(&sim, sim.now + SEC);
        for (unsigned i = 0; i < 3; i++) {
            Load *l = &sim.load[i];
            PvgpuSchedStats st;

            g_assert_cmpfloat_with_epsilon(share(&sim, l), 100.0 / 3, 2);
            g_assert_cmpuint(l->max_wait_ns, <=, wait_bound(&sim, l));
            /* nothing was lost on the way */
            pvgpu_sched_entity_stats(l->e, &st);
            g_assert_cmpuint(st.completed + st.inflight + st.queued, ==,
                             l->enqueued);
        }
    }
    sim_finish(&sim);
}

static void test_limits(void)
{
    PvgpuSched *s = pvgpu_sched_new();
    PvgpuSchedEntity *a = pvgpu_sched_entity_add(s, 1), *e;
    PvgpuSchedItem items[6];
    PvgpuSchedStats st;
    uint64_t wait;

    /* the queue limit refuses distinctly, and recovers */
    g_assert_cmpint(pvgpu_sched_set_queue_limit(s, 4), ==, 0);
    for (unsigned i = 0; i < 4; i++) {
        g_assert_cmpint(pvgpu_sched_enqueue(s, a, &items[i], 0), ==, 0);
    }
    g_assert_cmpint(pvgpu_sched_enqueue(s, a, &items[4], 0), ==, -ENOSPC);
    pvgpu_sched_entity_stats(a, &st);
    g_assert_cmpuint(st.queued, ==, 4);
    g_assert(pvgpu_sched_next(s, 0, &e, &wait) == &items[0]);
    g_assert_cmpint(pvgpu_sched_enqueue(s, a, &items[4], 0), ==, 0);
    g_assert_cmpint(pvgpu_sched_set_queue_limit(s, 2), ==, 0);
    g_assert_cmpint(pvgpu_sched_enqueue(s, a, &items[5], 0), ==, -ENOSPC);

    /* the in-flight limit, also lowered below what is in flight */
    g_assert_cmpint(pvgpu_sched_set_max_inflight(s, 3), ==, 0);
    g_assert(pvgpu_sched_next(s, 0, &e, &wait) == &items[1]);
    g_assert(pvgpu_sched_next(s, 0, &e, &wait) == &items[2]);
    g_assert_null(pvgpu_sched_next(s, 0, &e, &wait));
    g_assert_cmpuint(wait, ==, 0);
    pvgpu_sched_entity_stats(a, &st);
    g_assert_cmpuint(st.inflight, ==, 3);
    g_assert_cmpuint(st.queued, ==, 2);
    g_assert_cmpint(pvgpu_sched_set_max_inflight(s, 1), ==, 0);
    pvgpu_sched_complete(s, &items[0], 10 * US, 10 * US);
    g_assert_null(pvgpu_sched_next(s, 10 * US, &e, &wait));
    pvgpu_sched_complete(s, &items[1], 10 * US, 20 * US);
    g_assert_null(pvgpu_sched_next(s, 20 * US, &e, &wait));
    pvgpu_sched_complete(s, &items[2], 10 * US, 30 * US);
    g_assert(pvgpu_sched_next(s, 30 * US, &e, &wait) == &items[3]);
    pvgpu_sched_complete(s, &items[3], 10 * US, 40 * US);
    g_assert(pvgpu_sched_next(s, 40 * US, &e, &wait) == &items[4]);
    pvgpu_sched_complete(s, &items[4], 10 * US, 50 * US);

    /* out-of-range settings are refused */
    g_assert_cmpint(pvgpu_sched_set_queue_limit(s, 0), ==, -EINVAL);
    g_assert_cmpint(pvgpu_sched_set_max_inflight(s, 0), ==, -EINVAL);
    g_assert_cmpint(pvgpu_sched_set_batch_quanta(s, 0), ==, -EINVAL);
    g_assert_cmpint(pvgpu_sched_set_batch_quanta(s,
                        PVGPU_SCHED_MAX_BATCH_QUANTA + 1), ==, -EINVAL);
    g_assert_cmpint(pvgpu_sched_set_batch_quanta(s,
                        PVGPU_SCHED_MAX_BATCH_QUANTA), ==, 0);
    g_assert_cmpint(pvgpu_sched_set_quantum(s, PVGPU_SCHED_MIN_QUANTUM_NS - 1),
                    ==, -EINVAL);
    g_assert_cmpint(pvgpu_sched_set_quantum(s, PVGPU_SCHED_MAX_QUANTUM_NS + 1),
                    ==, -EINVAL);
    g_assert_cmpint(pvgpu_sched_set_quantum(s, PVGPU_SCHED_MAX_QUANTUM_NS),
                    ==, 0);
    g_assert_cmpint(pvgpu_sched_entity_set_weight(a, 0), ==, -EINVAL);
    g_assert_cmpint(pvgpu_sched_entity_set_weight(a,
                                                  PVGPU_SCHED_MAX_WEIGHT + 1),
                    ==, -EINVAL);
    g_assert_cmpint(pvgpu_sched_entity_set_weight(a, PVGPU_SCHED_MAX_WEIGHT),
                    ==, 0);
    g_assert_cmpint(pvgpu_sched_entity_set_cap(s, a, 101, 0), ==, -EINVAL);
    g_assert_cmpint(pvgpu_sched_entity_set_cap(s, a, 100, 0), ==, 0);
    g_assert_cmpint(pvgpu_sched_entity_set_class(s, a,
                                                 PVGPU_SCHED_NR_CLASSES),
                    ==, -EINVAL);
    pvgpu_sched_entity_remove(s, a, NULL, NULL);
    pvgpu_sched_free(s);
}

/*
 * Solo in-flight items: more than max_inflight only while one entity has
 * had work for the window, and back to max_inflight as soon as another
 * gets work
 */
static void test_solo_inflight(void)
{
    PvgpuSched *s = pvgpu_sched_new();
    PvgpuSchedEntity *a = pvgpu_sched_entity_add(s, 1);
    PvgpuSchedEntity *b = pvgpu_sched_entity_add(s, 2), *e;
    const uint64_t win = PVGPU_SCHED_SOLO_WINDOW_NS;
    PvgpuSchedItem ia[8], ib[1];
    uint64_t wait, t = win;

    g_assert_cmpint(pvgpu_sched_set_max_inflight(s, 1), ==, 0);
    pvgpu_sched_set_solo_inflight(s, 2);
    for (unsigned i = 0; i < 5; i++) {
        g_assert_cmpint(pvgpu_sched_enqueue(s, a, &ia[i], t), ==, 0);
    }
    /* b never had work: a runs two at a time */
    g_assert(pvgpu_sched_next(s, t, &e, &wait) == &ia[0]);
    g_assert(pvgpu_sched_next(s, t, &e, &wait) == &ia[1]);
    g_assert_null(pvgpu_sched_next(s, t, &e, &wait));
    pvgpu_sched_complete(s, &ia[0], MS, t += MS);
    g_assert(pvgpu_sched_next(s, t, &e, &wait) == &ia[2]);

    /* b gets work: one at a time, and b is next */
    g_assert_cmpint(pvgpu_sched_enqueue(s, b, &ib[0], t += MS), ==, 0);
    pvgpu_sched_complete(s, &ia[1], MS, t += MS);
    g_assert_null(pvgpu_sched_next(s, t, &e, &wait));
    pvgpu_sched_complete(s, &ia[2], MS, t += MS);
    g_assert(pvgpu_sched_next(s, t, &e, &wait) == &ib[0]);
    g_assert_null(pvgpu_sched_next(s, t, &e, &wait));
    pvgpu_sched_complete(s, &ib[0], MS, t += MS);

    /* b idle, but for less than the window: still one at a time */
    g_assert(pvgpu_sched_next(s, t, &e, &wait) == &ia[3]);
    g_assert_null(pvgpu_sched_next(s, t + win - 1, &e, &wait));
    /* after the window, two again */
    g_assert(pvgpu_sched_next(s, t + win, &e, &wait) == &ia[4]);
    t += win;
    g_assert_cmpint(pvgpu_sched_enqueue(s, a, &ia[5], t), ==, 0);
    g_assert_null(pvgpu_sched_next(s, t, &e, &wait));

    /* off: one at a time */
    pvgpu_sched_complete(s, &ia[3], MS, t += MS);
    pvgpu_sched_complete(s, &ia[4], MS, t += MS);
    pvgpu_sched_set_solo_inflight(s, 0);
    g_assert_cmpint(pvgpu_sched_enqueue(s, a, &ia[6], t), ==, 0);
    g_assert(pvgpu_sched_next(s, t, &e, &wait) == &ia[5]);
    g_assert_null(pvgpu_sched_next(s, t, &e, &wait));
    pvgpu_sched_complete(s, &ia[5], MS, t += MS);
    g_assert(pvgpu_sched_next(s, t, &e, &wait) == &ia[6]);
    pvgpu_sched_complete(s, &ia[6], MS, t += MS);
    pvgpu_sched_entity_remove(s, a, NULL, NULL);
    pvgpu_sched_entity_remove(s, b, NULL, NULL);
    pvgpu_sched_free(s);
}

static void test_latency(void)
{
    PvgpuSched *s = pvgpu_sched_new();
    PvgpuSchedEntity *a = pvgpu_sched_entity_add(s, 1), *e;
    PvgpuSchedEntity *b = pvgpu_sched_entity_add(s, 2);
    PvgpuSchedItem item;
    PvgpuSchedStats st;
    uint64_t now = 0, wait;

    pvgpu_sched_entity_stats(a, &st);
    g_assert_cmpuint(st.latency_p50_ns, ==, 0);
    g_assert_cmpuint(st.latency_p99_ns, ==, 0);

    /* latencies 1 us .. 1000 us: p50 is 500 us, p99 990 us */
    for (unsigned i = 1000; i >= 1; i--) {
        g_assert_cmpint(pvgpu_sched_enqueue(s, a, &item, now), ==, 0);
        g_assert(pvgpu_sched_next(s, now, &e, &wait) == &item);
        pvgpu_sched_complete(s, &item, 100, now + i * US);
        now += SEC;
    }
    pvgpu_sched_entity_stats(a, &st);
    g_assert_cmpuint(st.completed, ==, 1000);
    g_assert_cmpuint(st.gpu_ns, ==, 100 * 1000);
    /* every item took 100 ns: its bucket, 2 ns wide, ends at 101 ns */
    g_assert_cmpuint(st.batch_p50_ns, ==, 101);
    g_assert_cmpuint(st.batch_p99_ns, ==, 101);
    g_assert_cmpuint(st.latency_p50_ns, >=, 500 * US);
    g_assert_cmpuint(st.latency_p50_ns, <=, 500 * US * 33 / 32);
    g_assert_cmpuint(st.latency_p99_ns, >=, 990 * US);
    g_assert_cmpuint(st.latency_p99_ns, <=, 990 * US * 33 / 32);

    /* small latencies are exact, huge ones saturate at 2^37 ns */
    for (unsigned i = 1; i <= 31; i++) {
        g_assert_cmpint(pvgpu_sched_enqueue(s, b, &item, now), ==, 0);
        g_assert(pvgpu_sched_next(s, now, &e, &wait) == &item);
        pvgpu_sched_complete(s, &item, 1, now + i);
        now += SEC;
    }
    pvgpu_sched_entity_stats(b, &st);
    g_assert_cmpuint(st.latency_p50_ns, ==, 16);
    g_assert_cmpuint(st.latency_p99_ns, ==, 31);
    for (unsigned i = 0; i < 100; i++) {
        g_assert_cmpint(pvgpu_sched_enqueue(s, b, &item, now), ==, 0);
        g_assert(pvgpu_sched_next(s, now, &e, &wait) == &item);
        now += 1000 * SEC;
        pvgpu_sched_complete(s, &item, 1, now);
    }
    pvgpu_sched_entity_stats(b, &st);
    g_assert_cmpuint(st.latency_p99_ns, ==, (1ull << 37) - 1);

    /*
     * GPU times have their own histogram: items of 1 us .. 1000 us each
     * waiting 1 ms in the queue
     */
    e = pvgpu_sched_entity_add(s, 3);
    for (unsigned i = 1; i <= 1000; i++) {
        PvgpuSchedEntity *got;

        g_assert_cmpint(pvgpu_sched_enqueue(s, e, &item, now), ==, 0);
        g_assert(pvgpu_sched_next(s, now + 1000 * US, &got, &wait) ==
                 &item);
        pvgpu_sched_complete(s, &item, i * US, now + 1000 * US + i * US);
        now += SEC;
    }
    pvgpu_sched_entity_stats(e, &st);
    g_assert_cmpuint(st.batch_p50_ns, >=, 500 * US);
    g_assert_cmpuint(st.batch_p50_ns, <=, 500 * US * 33 / 32);
    g_assert_cmpuint(st.batch_p99_ns, >=, 990 * US);
    g_assert_cmpuint(st.batch_p99_ns, <=, 990 * US * 33 / 32);
    g_assert_cmpuint(st.latency_p50_ns, >=, 1500 * US);
    g_assert_cmpuint(st.latency_p50_ns, <=, 1500 * US * 33 / 32);
    pvgpu_sched_entity_remove(s, e, NULL, NULL);

    pvgpu_sched_entity_remove(s, a, NULL, NULL);
    pvgpu_sched_entity_remove(s, b, NULL, NULL);
    pvgpu_sched_free(s);
}

static void test_fps_limiter(void)
{
    const uint64_t interval = 16666667;     /* 1 s / 60, rounded up */
    PvgpuFpsLimiter l = { 0 };
    uint64_t next = 0, t, flips;

    /* unlimited */
    for (unsigned i = 0; i < 1000; i++) {
        g_assert_true(pvgpu_fps_limiter_flip(&l, 5 * MS, &next));
    }

    /* 60 fps: flipping whenever allowed gives 60 flips a second */
    l = (PvgpuFpsLimiter) { .max_fps = 60 };
    for (t = 0, flips = 0; t < SEC; t = next) {
        if (pvgpu_fps_limiter_flip(&l, t, &next)) {
            flips++;
            next = t + 1;
        }
    }
    g_assert_cmpuint(flips, ==, 60);
    /* polled every millisecond: a flip every 17 ms */
    l = (PvgpuFpsLimiter) { .max_fps = 60 };
    for (t = 0, flips = 0; t < SEC; t += MS) {
        flips += pvgpu_fps_limiter_flip(&l, t, &next);
    }
    g_assert_cmpuint(flips, ==, 59);

    /* refused flips name the earliest time */
    t = 2 * SEC;
    g_assert_true(pvgpu_fps_limiter_flip(&l, t, &next));
    g_assert_false(pvgpu_fps_limiter_flip(&l, t + 1, &next));
    g_assert_cmpuint(next, ==, t + interval);

    /* changes apply to the next flip */
    l.max_fps = 30;
    g_assert_false(pvgpu_fps_limiter_flip(&l, t + 20 * MS, &next));
    g_assert_cmpuint(next, ==, t + 33333334);
    l.max_fps = 1000;
    g_assert_true(pvgpu_fps_limiter_flip(&l, t + 20 * MS, &next));
    g_assert_false(pvgpu_fps_limiter_flip(&l, t + 20 * MS + 999 * US, &next));
    l.max_fps = 0;
    g_assert_true(pvgpu_fps_limiter_flip(&l, t + 20 * MS + 999 * US, &next));
}

/*
 * Turns as budgets (pvgpu-poold hands a VM its turn as a grant): what is
 * left of the turn of the entity whose item was just handed out.
 */
static void test_turn_left(void)
{
    PvgpuSched *s = pvgpu_sched_new();
    PvgpuSchedEntity *a = pvgpu_sched_entity_add(s, 1);
    PvgpuSchedEntity *b = pvgpu_sched_entity_add(s, 2);
    PvgpuSchedEntity *e;
    PvgpuSchedItem ia, ib;
    uint64_t wait;

    pvgpu_sched_set_max_inflight(s, 1);
    g_assert_cmpint(pvgpu_sched_set_quantum(s, 2 * MS), ==, 0);
    /* alone: a batch turn */
    pvgpu_sched_enqueue(s, a, &ia, 0);
    g_assert(pvgpu_sched_next(s, 0, &e, &wait) == &ia && e == a);
    g_assert_cmpuint(pvgpu_sched_turn_left(s, a, 0), ==,
                     BATCH_QUANTA * 2 * MS);
    g_assert_cmpuint(pvgpu_sched_turn_left(s, b, 0), ==, 0);
    pvgpu_sched_complete(s, &ia, 10 * MS, 10 * MS);
    pvgpu_sched_enqueue(s, a, &ia, 10 * MS);
    g_assert(pvgpu_sched_next(s, 10 * MS, &e, &wait) == &ia);
    g_assert_cmpuint(pvgpu_sched_turn_left(s, a, 10 * MS), ==,
                     BATCH_QUANTA * 2 * MS - 10 * MS);
    g_assert(!pvgpu_sched_turn_short(s, 10 * MS));
    /* b wakes: a's turn is cut to a quantum, which it has used */
    pvgpu_sched_enqueue(s, b, &ib, 11 * MS);
    g_assert(pvgpu_sched_turn_short(s, 11 * MS));
    g_assert_cmpuint(pvgpu_sched_turn_left(s, a, 11 * MS), ==, 0);
    pvgpu_sched_complete(s, &ia, 1 * MS, 12 * MS);
    g_assert(pvgpu_sched_next(s, 12 * MS, &e, &wait) == &ib && e == b);
    g_assert_cmpuint(pvgpu_sched_turn_left(s, b, 12 * MS), >=, 2 * MS);
    pvgpu_sched_complete(s, &ib, 1 * MS, 13 * MS);
    /* a capped entity's turn is at most a quantum */
    g_assert_cmpint(pvgpu_sched_entity_set_cap(s, b, 50, 13 * MS), ==, 0);
    pvgpu_sched_enqueue(s, b, &ib, 13 * MS);
    g_assert(pvgpu_sched_next(s, 13 * MS, &e, &wait) == &ib);
    g_assert_cmpuint(pvgpu_sched_turn_left(s, b, 13 * MS), <=, 2 * MS);
    pvgpu_sched_complete(s, &ib, 1 * MS, 14 * MS);
    pvgpu_sched_entity_remove(s, a, NULL, NULL);
    pvgpu_sched_entity_remove(s, b, NULL, NULL);
    pvgpu_sched_free(s);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/pvgpu-sched/weighted-shares", test_weighted_shares);
    g_test_add_func("/pvgpu-sched/equal-share", test_equal_share);
    g_test_add_func("/pvgpu-sched/best-effort", test_best_effort);
    g_test_add_func("/pvgpu-sched/batch-size", test_batch_size);
    g_test_add_func("/pvgpu-sched/wakeup", test_wakeup);
    g_test_add_func("/pvgpu-sched/batch-quanta", test_batch_quanta);
    g_test_add_func("/pvgpu-sched/switch-budget", test_switch_budget);
    g_test_add_func("/pvgpu-sched/cap-alone", test_cap_alone);
    g_test_add_func("/pvgpu-sched/cap-shared", test_cap_shared);
    g_test_add_func("/pvgpu-sched/priority", test_priority);
    g_test_add_func("/pvgpu-sched/starvation", test_starvation);
    g_test_add_func("/pvgpu-sched/remove", test_remove);
    g_test_add_func("/pvgpu-sched/runtime-switch", test_runtime_switch);
    g_test_add_func("/pvgpu-sched/limits", test_limits);
    g_test_add_func("/pvgpu-sched/solo-inflight", test_solo_inflight);
    g_test_add_func("/pvgpu-sched/latency", test_latency);
    g_test_add_func("/pvgpu-sched/fps-limiter", test_fps_limiter);
    g_test_add_func("/pvgpu-sched/turn-left", test_turn_left);
    return g_test_run();
}
