/*
 * pvgpu GPU-time scheduler
 *
 * Pure C: like pvgpu-cmd.c this file includes no QEMU header, so that
 * tests/unit/ can build it without QEMU.  docs/pvgpu-scheduler.rst explains
 * the algorithm and proves its bounds; the comments here say why the code
 * looks the way it does.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hw/display/pvgpu-sched.h"

/*
 * Virtual time advances by cost * VT_SCALE / weight; scaling by the largest
 * weight keeps the rounding error under one unit per charge.
 */
#define VT_SCALE        PVGPU_SCHED_MAX_WEIGHT

/*
 * Longer costs (a hung renderer, a host clock jump) are clamped, which
 * keeps cost * VT_SCALE and cost * 100 far from overflowing.
 */
#define MAX_COST_NS     10000000000ull

/*
 * Latency histogram: exact below 32 ns, then 32 buckets per power of two,
 * so that a bucket's upper end is at most 1/32 (3.125%) above any value in
 * it: fine enough to compare a p99 against a bound 10% away.  Latencies
 * of 2^37 ns (137 s) and more share the last bucket.
 */
#define HIST_SUB_BITS   5
#define HIST_SUB        (1u << HIST_SUB_BITS)
#define HIST_MAX_LOG2   36
#define HIST_BUCKETS    ((HIST_MAX_LOG2 - HIST_SUB_BITS + 2) << HIST_SUB_BITS)

/*
 * Switch costs are exponentially weighted averages over 1 << COST_SHIFT
 * samples or so: enough to average out items of different lengths,
 * short enough to follow a workload that changes.  An entity's own cost
 * is only compared with once it has COST_WARMUP samples.
 */
#define COST_SHIFT      4
#define COST_WARMUP     4
/*
 * Batch turns get at most this many times longer than batch quanta for
 * the switch budget, so that a switch cost measured wrong (a host that
 * stalls the renderer) cannot hold the others off for long
 */
#define BUDGET_STRETCH  8

struct PvgpuSchedEntity {
    PvgpuSchedEntity *next;     /* in PvgpuSched.entities */
    uint32_t id;
    unsigned weight;
    unsigned cap;               /* percent, 0 for none */
    unsigned prio_class;
    bool removed;               /* freed when its last item completes */
    /* got work after it had none, and has not had a turn since */
    bool woken;

    PvgpuSchedItem *head, *tail;
    uint32_t queued;
    uint32_t inflight;
    uint64_t active_ns;         /* when it last got or finished work */

    uint64_t vtime;
    uint64_t turn_stamp;        /* PvgpuSched.turns at its last turn */
    int64_t credit;             /* cap budget, GPU ns times 100 */
    uint64_t refill_ns;         /* when credit was last brought up to date */

    uint64_t gpu_ns;
    uint64_t completed;
    /* average cost of its items that ran right after its own */
    int64_t warm_ns;
    unsigned warm_samples;
    uint64_t hist[HIST_BUCKETS];        /* enqueue-to-completion latency */
    uint64_t gpu_hist[HIST_BUCKETS];    /* GPU time of each item */
};

struct PvgpuSched {
    PvgpuSchedEntity *entities;
    PvgpuSchedPolicy policy;
    uint64_t quantum_ns;
    unsigned batch_quanta;
    unsigned max_inflight;
    unsigned solo_inflight;     /* 0: off */
    unsigned queue_limit;
    unsigned inflight;

    PvgpuSchedEntity *cur;      /* whose turn it is, or NULL */
    uint64_t turn_used;         /* GPU time completed by cur in its turn */
    uint64_t turns;             /* turns handed out so far */
    uint64_t switches;          /* of them, turns of another entity */
    const PvgpuSchedEntity *last; /* whose turn was the latest, or NULL */
    bool switched;              /* cur's turn follows another's, no item yet */
    unsigned switch_budget;     /* percent, 0: off */
    int64_t switch_cost_ns;     /* average extra cost of an item after one */
    unsigned switch_samples;
    unsigned nwoken;            /* entities woken, waiting for a turn */
    /* when an entity passed over at the last pick is under its cap again */
    uint64_t cap_due_ns;
    /* per class: floor of its entities' virtual times, never decreasing */
    uint64_t vmin[PVGPU_SCHED_NR_CLASSES];
    /* per class: turns it was passed over with work runnable */
    unsigned starved[PVGPU_SCHED_NR_CLASSES];
};

/*
 * Virtual times only ever get compared within a bounded distance of each
 * other (see pick()), so comparing them modulo 2^64 makes wrap-around
 * harmless.
 */
static bool vt_before(uint64_t a, uint64_t b)
{
    return (int64_t)(a - b) < 0;
}

/* Priority classes only mean something to the weighted policy. */
static unsigned entity_class(const PvgpuSched *s, const PvgpuSchedEntity *e)
{
    return s->policy == PVGPU_SCHED_WEIGHTED ? e->prio_class : 0;
}

static void charge_vtime(PvgpuSched *s, PvgpuSchedEntity *e, uint64_t cost)
{
    switch (s->policy) {
    case PVGPU_SCHED_BEST_EFFORT:
        /* equal virtual times leave pick() with pure round robin */
        break;
    case PVGPU_SCHED_EQUAL_SHARE:
        e->vtime += cost * VT_SCALE / PVGPU_SCHED_DEFAULT_WEIGHT;
        break;
    case PVGPU_SCHED_WEIGHTED:
        e->vtime += cost * VT_SCALE / e->weight;
        break;
    }
}

/*
 * Caps are token buckets.  The credit, in GPU ns times 100, fills at cap
 * percent of wall-clock time up to cap percent of one quantum, and each
 * completed item drains its cost.  Only the caller's clock moves it, so a
 * capped entity stays capped while the GPU idles: caps are deliberately
 * not work-conserving.
 */
static void cap_refill(PvgpuSched *s, PvgpuSchedEntity *e, uint64_t now)
{
    int64_t burst = (int64_t)e->cap * s->quantum_ns;
    uint64_t dt = now - e->refill_ns;

    e->refill_ns = now;
    /* the first test catches a bucket that shrank with the quantum */
    if (e->credit >= burst || dt > (uint64_t)(burst - e->credit) / e->cap) {
        e->credit = burst;
    } else {
        e->credit += (int64_t)(dt * e->cap);
    }
}

/* How long until @e is under its cap again; 0 if it is now. */
static uint64_t cap_wait(PvgpuSched *s, PvgpuSchedEntity *e, uint64_t now)
{
    if (!e->cap) {
        return 0;
    }
    cap_refill(s, e, now);
    return e->credit > 0 ? 0 : -e->credit / e->cap + 1;
}

/* Does @a get the turn rather than @b, both of the same class? */
static bool runs_before(const PvgpuSchedEntity *a, const PvgpuSchedEntity *b)
{
    if (a->vtime != b->vtime) {
        return vt_before(a->vtime, b->vtime);
    }
    /* the one that waited longest since its last turn: round robin */
    return a->turn_stamp < b->turn_stamp;
}

/*
 * Choose who gets the next turn: in the highest class with an entity that
 * has work and is under its cap, the entity with the lowest virtual time,
 * unless a lower class has been passed over for PVGPU_SCHED_AGING_TURNS
 * turns.  NULL if nobody can run; then @wait_ns is the time until a
 * capped entity may run again, 0 if none has work.
 */
static PvgpuSchedEntity *pick(PvgpuSched *s, uint64_t now, uint64_t *wait_ns)
{
    PvgpuSchedEntity *best[PVGPU_SCHED_NR_CLASSES] = { NULL };
    PvgpuSchedEntity *e;
    uint64_t min_wait = 0;
    int top = -1, chosen, c;

    for (e = s->entities; e; e = e->next) {
        uint64_t wait;

        c = entity_class(s, e);
        /*
         * An entity not competing for the GPU, idle or over its cap, must
         * not bank virtual time and come back owed a burst of GPU time:
         * keep it at its class's floor.  This also keeps every virtual
         * time within one turn's charge of vmin, which vt_before() needs.
         */
        if (vt_before(e->vtime, s->vmin[c])) {
            e->vtime = s->vmin[c];
        }
        if (!e->head) {
            continue;
        }
        wait = cap_wait(s, e, now);
        if (wait) {
            if (!min_wait || wait < min_wait) {
                min_wait = wait;
            }
            continue;
        }
        if (!best[c] || runs_before(e, best[c])) {
            best[c] = e;
        }
        if (c > top) {
            top = c;
        }
    }
    /* from then on it counts as waiting, like a woken entity */
    s->cap_due_ns = min_wait ? now + min_wait : 0;
    if (top < 0) {
        *wait_ns = min_wait;
        return NULL;
    }

    /* aging: the longest passed-over class of those due gets this turn */
    chosen = top;
    for (c = 0; c < top; c++) {
        if (best[c] && s->starved[c] >= PVGPU_SCHED_AGING_TURNS &&
            (chosen == top || s->starved[c] > s->starved[chosen])) {
            chosen = c;
        }
    }
    for (c = 0; c < PVGPU_SCHED_NR_CLASSES; c++) {
        if (best[c] && c < top && c != chosen) {
            s->starved[c]++;
        } else {
            s->starved[c] = 0;
        }
        /* best[c] has its class's lowest virtual time, none below vmin */
        if (best[c]) {
            s->vmin[c] = best[c]->vtime;
        }
    }
    return best[chosen];
}

/* Does somebody wait who should not sit out a batch turn? */
static bool turn_short(const PvgpuSched *s, uint64_t now)
{
    return s->nwoken || (s->cap_due_ns && now >= s->cap_due_ns);
}

uint64_t pvgpu_sched_switch_cost(const PvgpuSched *s)
{
    return s->switch_cost_ns > 0 ? s->switch_cost_ns : 0;
}

/*
 * Long enough that one switch per turn costs at most the budget's share
 * of it: a turn of cost * 100 / budget, within BUDGET_STRETCH times
 * batch quanta (and PVGPU_SCHED_MAX_BATCH_QUANTA)
 */
uint64_t pvgpu_sched_batch_turn(const PvgpuSched *s)
{
    uint64_t len = s->quantum_ns * s->batch_quanta;
    uint64_t cost = pvgpu_sched_switch_cost(s), want, most;

    if (!s->switch_budget || !cost) {
        return len;
    }
    want = cost * 100 / s->switch_budget;
    if (want <= len) {
        return len;
    }
    most = s->quantum_ns * (s->batch_quanta * BUDGET_STRETCH <
                            PVGPU_SCHED_MAX_BATCH_QUANTA ?
                            s->batch_quanta * BUDGET_STRETCH :
                            PVGPU_SCHED_MAX_BATCH_QUANTA);
    return want < most ? want : most;
}

static uint64_t turn_length(const PvgpuSched *s, uint64_t now)
{
    return turn_short(s, now) ? s->quantum_ns : pvgpu_sched_batch_turn(s);
}

PvgpuSched *pvgpu_sched_new(void)
{
    PvgpuSched *s = calloc(1, sizeof(*s));

    if (s) {
        s->policy = PVGPU_SCHED_WEIGHTED;
        s->quantum_ns = PVGPU_SCHED_DEFAULT_QUANTUM_NS;
        s->batch_quanta = PVGPU_SCHED_DEFAULT_BATCH_QUANTA;
        s->max_inflight = PVGPU_SCHED_DEFAULT_MAX_INFLIGHT;
        s->queue_limit = PVGPU_SCHED_DEFAULT_QUEUE_LIMIT;
    }
    return s;
}

void pvgpu_sched_free(PvgpuSched *s)
{
    while (s->entities) {
        PvgpuSchedEntity *e = s->entities;

        s->entities = e->next;
        free(e);
    }
    free(s);
}

void pvgpu_sched_set_policy(PvgpuSched *s, PvgpuSchedPolicy policy)
{
    PvgpuSchedEntity *e;

    if (policy == s->policy) {
        return;
    }
    /* virtual times of one policy mean nothing to another: start afresh */
    s->policy = policy;
    memset(s->vmin, 0, sizeof(s->vmin));
    memset(s->starved, 0, sizeof(s->starved));
    for (e = s->entities; e; e = e->next) {
        e->vtime = 0;
    }
}

int pvgpu_sched_set_quantum(PvgpuSched *s, uint64_t quantum_ns)
{
    if (quantum_ns < PVGPU_SCHED_MIN_QUANTUM_NS ||
        quantum_ns > PVGPU_SCHED_MAX_QUANTUM_NS) {
        return -EINVAL;
    }
    s->quantum_ns = quantum_ns;
    return 0;
}

int pvgpu_sched_set_batch_quanta(PvgpuSched *s, unsigned quanta)
{
    if (!quanta || quanta > PVGPU_SCHED_MAX_BATCH_QUANTA) {
        return -EINVAL;
    }
    s->batch_quanta = quanta;
    return 0;
}

int pvgpu_sched_set_switch_budget(PvgpuSched *s, unsigned pct)
{
    if (pct > PVGPU_SCHED_MAX_SWITCH_BUDGET) {
        return -EINVAL;
    }
    s->switch_budget = pct;
    return 0;
}

void pvgpu_sched_set_solo_inflight(PvgpuSched *s, unsigned solo_inflight)
{
    s->solo_inflight = solo_inflight;
}

int pvgpu_sched_set_max_inflight(PvgpuSched *s, unsigned max_inflight)
{
    if (!max_inflight) {
        return -EINVAL;
    }
    s->max_inflight = max_inflight;
    return 0;
}

int pvgpu_sched_set_queue_limit(PvgpuSched *s, unsigned limit)
{
    if (!limit) {
        return -EINVAL;
    }
    s->queue_limit = limit;
    return 0;
}

PvgpuSchedEntity *pvgpu_sched_entity_add(PvgpuSched *s, uint32_t id)
{
    PvgpuSchedEntity *e = calloc(1, sizeof(*e));

    if (e) {
        e->id = id;
        e->weight = PVGPU_SCHED_DEFAULT_WEIGHT;
        /* join at the floor of class 0, as if it had just been idle */
        e->vtime = s->vmin[0];
        e->next = s->entities;
        s->entities = e;
    }
    return e;
}

static void entity_free(PvgpuSched *s, PvgpuSchedEntity *e)
{
    PvgpuSchedEntity **p;

    for (p = &s->entities; *p != e; p = &(*p)->next) {
        continue;
    }
    *p = e->next;
    if (s->last == e) {
        s->last = NULL;
    }
    free(e);
}

void pvgpu_sched_entity_remove(PvgpuSched *s, PvgpuSchedEntity *e,
                               PvgpuSchedDropFn *drop, void *opaque)
{
    while (e->head) {
        PvgpuSchedItem *item = e->head;

        e->head = item->next;
        drop(item, opaque);
    }
    e->tail = NULL;
    e->queued = 0;
    if (e->woken) {
        e->woken = false;
        s->nwoken--;
    }
    if (s->cur == e) {
        s->cur = NULL;
    }
    /*
     * Items in flight point at @e: keep it, without work so that pick()
     * passes over it, until the last of them completes.
     */
    if (e->inflight) {
        e->removed = true;
    } else {
        entity_free(s, e);
    }
}

uint32_t pvgpu_sched_entity_id(const PvgpuSchedEntity *e)
{
    return e->id;
}

int pvgpu_sched_entity_set_weight(PvgpuSchedEntity *e, unsigned weight)
{
    if (weight < 1 || weight > PVGPU_SCHED_MAX_WEIGHT) {
        return -EINVAL;
    }
    e->weight = weight;
    return 0;
}

int pvgpu_sched_entity_set_cap(PvgpuSched *s, PvgpuSchedEntity *e,
                               unsigned cap_pct, uint64_t now_ns)
{
    if (cap_pct > 100) {
        return -EINVAL;
    }
    if (e->cap) {
        cap_refill(s, e, now_ns);       /* earned at the old rate */
    } else {
        e->credit = INT64_MAX;          /* a new cap starts with full credit */
        e->refill_ns = now_ns;
    }
    e->cap = cap_pct;
    if (e->cap) {
        cap_refill(s, e, now_ns);       /* clamp to the new bucket size */
    }
    return 0;
}

int pvgpu_sched_entity_set_class(PvgpuSched *s, PvgpuSchedEntity *e,
                                 unsigned prio_class)
{
    if (prio_class >= PVGPU_SCHED_NR_CLASSES) {
        return -EINVAL;
    }
    if (prio_class == e->prio_class) {
        return 0;
    }
    e->prio_class = prio_class;
    /* virtual times of different classes are not comparable */
    if (s->policy == PVGPU_SCHED_WEIGHTED) {
        e->vtime = s->vmin[prio_class];
    }
    return 0;
}

/* Histogram bucket of a latency. */
static unsigned hist_index(uint64_t ns)
{
    unsigned log2;

    if (ns < HIST_SUB) {
        return ns;
    }
    if (ns >> (HIST_MAX_LOG2 + 1)) {
        return HIST_BUCKETS - 1;
    }
    log2 = 63 - __builtin_clzll(ns);
    return (log2 - HIST_SUB_BITS + 1) << HIST_SUB_BITS |
           (ns >> (log2 - HIST_SUB_BITS) & (HIST_SUB - 1));
}

/* Lowest latency in bucket @i, the inverse of hist_index(). */
static uint64_t hist_low(unsigned i)
{
    unsigned log2;

    if (i < HIST_SUB) {
        return i;
    }
    log2 = (i >> HIST_SUB_BITS) + HIST_SUB_BITS - 1;
    return (uint64_t)(HIST_SUB | (i & (HIST_SUB - 1))) <<
           (log2 - HIST_SUB_BITS);
}

/* Upper end of the bucket of @hist holding the @pct percentile. */
static uint64_t hist_percentile(const PvgpuSchedEntity *e,
                                const uint64_t *hist, unsigned pct)
{
    uint64_t rank = (e->completed * pct + 99) / 100, seen = 0;
    unsigned i;

    if (!e->completed) {
        return 0;
    }
    for (i = 0; seen + hist[i] < rank; i++) {
        seen += hist[i];
    }
    return hist_low(i + 1) - 1;
}

void pvgpu_sched_entity_stats(const PvgpuSchedEntity *e,
                              PvgpuSchedStats *stats)
{
    *stats = (PvgpuSchedStats) {
        .gpu_ns = e->gpu_ns,
        .completed = e->completed,
        .queued = e->queued,
        .inflight = e->inflight,
        .latency_p50_ns = hist_percentile(e, e->hist, 50),
        .latency_p99_ns = hist_percentile(e, e->hist, 99),
        .batch_p50_ns = hist_percentile(e, e->gpu_hist, 50),
        .batch_p99_ns = hist_percentile(e, e->gpu_hist, 99),
    };
}

static int enqueue(PvgpuSched *s, PvgpuSchedEntity *e, PvgpuSchedItem *item,
                   uint64_t now_ns, bool may_wake)
{
    if (e->queued >= s->queue_limit) {
        return -ENOSPC;
    }
    item->next = NULL;
    item->entity = e;
    item->enqueue_ns = now_ns;
    e->active_ns = now_ns;
    if (may_wake && !e->head && !e->inflight && !e->woken && e != s->cur) {
        /* idle until now: whoever has the GPU yields it sooner */
        e->woken = true;
        s->nwoken++;
    }
    if (e->tail) {
        e->tail->next = item;
    } else {
        e->head = item;
    }
    e->tail = item;
    e->queued++;
    return 0;
}

int pvgpu_sched_enqueue(PvgpuSched *s, PvgpuSchedEntity *e,
                        PvgpuSchedItem *item, uint64_t now_ns)
{
    return enqueue(s, e, item, now_ns, true);
}

int pvgpu_sched_enqueue_busy(PvgpuSched *s, PvgpuSchedEntity *e,
                             PvgpuSchedItem *item, uint64_t now_ns)
{
    return enqueue(s, e, item, now_ns, false);
}

/*
 * May @e, whose turn it is, have more than max_inflight items in flight?
 * Only if everything in flight is its own and nobody else has had work
 * for a while (see pvgpu_sched_set_solo_inflight())
 */
static bool solo(const PvgpuSched *s, const PvgpuSchedEntity *e,
                 uint64_t now_ns)
{
    if (!e || !e->head || e->inflight != s->inflight ||
        s->inflight >= s->solo_inflight) {
        return false;
    }
    for (const PvgpuSchedEntity *o = s->entities; o; o = o->next) {
        if (o != e && !o->removed &&
            (o->head ||
             now_ns - o->active_ns < PVGPU_SCHED_SOLO_WINDOW_NS)) {
            return false;
        }
    }
    return true;
}

PvgpuSchedItem *pvgpu_sched_next(PvgpuSched *s, uint64_t now_ns,
                                 PvgpuSchedEntity **entity,
                                 uint64_t *wait_ns)
{
    PvgpuSchedEntity *e = s->cur;
    PvgpuSchedItem *item;

    *entity = NULL;
    *wait_ns = 0;
    if (s->inflight >= s->max_inflight && !solo(s, e, now_ns)) {
        return NULL;
    }
    /*
     * A turn lasts until its entity has run out of work, hit its cap, or
     * used a quantum while an entity waits that was woken (or is under
     * its cap again), batch_quanta of them while only
     * entities that never ran dry wait: switching contexts on the GPU is
     * not free, and turns bound how long anybody waits.
     */
    if (!e || !e->head ||
        s->turn_used >= turn_length(s, now_ns) ||
        cap_wait(s, e, now_ns)) {
        s->cur = e = pick(s, now_ns, wait_ns);
        s->turn_used = 0;
        if (!e) {
            return NULL;
        }
        e->turn_stamp = ++s->turns;
        if (e != s->last) {
            s->switches += s->last != NULL;
            s->switched = s->last != NULL;
            s->last = e;
        }
        if (e->woken) {
            e->woken = false;
            s->nwoken--;
        }
    }

    item = e->head;
    e->head = item->next;
    if (!e->head) {
        e->tail = NULL;
    }
    item->after_switch = s->switched;
    s->switched = false;
    e->queued--;
    e->inflight++;
    s->inflight++;
    *entity = e;
    return item;
}

uint64_t pvgpu_sched_turn_left(const PvgpuSched *s,
                               const PvgpuSchedEntity *e, uint64_t now_ns)
{
    uint64_t len = e->cap ? s->quantum_ns : turn_length(s, now_ns);

    if (e != s->cur || s->turn_used >= len) {
        return 0;
    }
    return len - s->turn_used;
}

bool pvgpu_sched_turn_short(const PvgpuSched *s, uint64_t now_ns)
{
    return turn_short(s, now_ns);
}

uint64_t pvgpu_sched_switches(const PvgpuSched *s)
{
    return s->switches;
}

/*
 * What a switch costs: an entity's first item after another entity's turn
 * against its items that followed its own.  The two kinds come from the
 * same stream of the entity's work, so differences in length between
 * entities or between an entity's items average out.  Items run with
 * others in flight (max_inflight > 1) blur both kinds alike.  A sample
 * counts for at most the entity's average item either way: an item
 * that took many times that (a shader compiled, a host that stalled the
 * renderer) says nothing about switches, and would otherwise sway the
 * average for a long time.
 */
/*
 * Add @sample to the average *@avg of *@n samples: the plain mean of the
 * first @exact, then an exponentially weighted one over 1 << COST_SHIFT
 */
static void average_in(int64_t *avg, unsigned *n, unsigned exact,
                       int64_t sample)
{
    if (*n < exact) {
        ++*n;
        *avg += (sample - *avg) / (int64_t)*n;
    } else {
        *avg += (sample - *avg) / (1 << COST_SHIFT);
    }
}

static void measure_switch(PvgpuSched *s, PvgpuSchedEntity *e,
                           const PvgpuSchedItem *item, uint64_t cost_ns)
{
    int64_t cost = cost_ns;

    if (!item->after_switch) {
        average_in(&e->warm_ns, &e->warm_samples, COST_WARMUP, cost);
        return;
    }
    if (e->warm_samples < COST_WARMUP) {
        return;
    }
    cost -= e->warm_ns;
    if (cost > e->warm_ns) {
        cost = e->warm_ns;
    } else if (cost < -e->warm_ns) {
        cost = -e->warm_ns;
    }
    average_in(&s->switch_cost_ns, &s->switch_samples, 1u << COST_SHIFT,
               cost);
}

void pvgpu_sched_complete(PvgpuSched *s, PvgpuSchedItem *item,
                          uint64_t cost_ns, uint64_t now_ns)
{
    PvgpuSchedEntity *e = item->entity;

    s->inflight--;
    e->inflight--;
    if (e->removed) {
        if (!e->inflight) {
            entity_free(s, e);
        }
        return;
    }

    e->active_ns = now_ns;
    cost_ns = cost_ns < MAX_COST_NS ? cost_ns : MAX_COST_NS;
    e->gpu_ns += cost_ns;
    e->completed++;
    e->hist[hist_index(now_ns - item->enqueue_ns)]++;
    e->gpu_hist[hist_index(cost_ns)]++;
    measure_switch(s, e, item, cost_ns);
    charge_vtime(s, e, cost_ns);
    if (e->cap) {
        cap_refill(s, e, now_ns);
        e->credit -= (int64_t)cost_ns * 100;
    }
    if (e == s->cur) {
        s->turn_used += cost_ns;
    }
}

bool pvgpu_fps_limiter_flip(PvgpuFpsLimiter *l, uint64_t now_ns,
                            uint64_t *next_ns)
{
    if (l->max_fps && l->flipped) {
        /* rounded up, so that the rate never exceeds max_fps */
        uint64_t interval = (1000000000ull + l->max_fps - 1) / l->max_fps;

        if (now_ns - l->last_ns < interval) {
            *next_ns = l->last_ns + interval;
            return false;
        }
    }
    l->flipped = true;
    l->last_ns = now_ns;
    return true;
}
