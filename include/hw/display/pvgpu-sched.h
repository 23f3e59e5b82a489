/*
 * pvgpu GPU-time scheduler
 *
 * Decides whose queued GPU work goes to the renderer next.  The scheduling
 * entities are the guest's 3D contexts (conventionally identified by their
 * ctx_id) and entity 0 for the 2D/control stream.  Each entity has a FIFO
 * of work items, a weight, an optional cap and a priority class.
 * docs/pvgpu-scheduler.rst describes the algorithm and its bounds.
 *
 * Pure C like pvgpu-cmd.c: no QEMU headers, so that tests/unit/ runs it on
 * a simulated clock.  The scheduler never reads a clock: every call that
 * needs the time takes now_ns, a monotonic time in nanoseconds.  It is not
 * thread-safe; the caller serializes all calls.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_DISPLAY_PVGPU_SCHED_H
#define HW_DISPLAY_PVGPU_SCHED_H

#include <stdbool.h>
#include <stdint.h>

typedef enum PvgpuSchedPolicy {
    /* Round robin in turns of one quantum; no weights or classes. */
    PVGPU_SCHED_BEST_EFFORT,
    /* Equal GPU time for each entity with work; no weights or classes. */
    PVGPU_SCHED_EQUAL_SHARE,
    /* GPU time in proportion to weight, higher priority class first. */
    PVGPU_SCHED_WEIGHTED,
} PvgpuSchedPolicy;

#define PVGPU_SCHED_DEFAULT_WEIGHT          100
#define PVGPU_SCHED_MAX_WEIGHT              10000

/* Priority classes are 0 .. PVGPU_SCHED_NR_CLASSES - 1; higher goes first. */
#define PVGPU_SCHED_NR_CLASSES              4

/*
 * A lower class with runnable work is given a turn once it has been passed
 * over for this many turns, so higher classes cannot starve it.
 */
#define PVGPU_SCHED_AGING_TURNS             31

#define PVGPU_SCHED_DEFAULT_QUANTUM_NS      2000000ull
#define PVGPU_SCHED_MIN_QUANTUM_NS          100000ull
#define PVGPU_SCHED_MAX_QUANTUM_NS          1000000000ull
/*
 * A turn lasts one quantum while an entity that had run out of work
 * waits, "batch quanta" (by default this many) while only entities that
 * never ran dry compete
 */
#define PVGPU_SCHED_DEFAULT_BATCH_QUANTA    16
#define PVGPU_SCHED_MAX_BATCH_QUANTA        1000
/* Percent of GPU time context switches may cost (0 = off), at most */
#define PVGPU_SCHED_MAX_SWITCH_BUDGET       100

#define PVGPU_SCHED_DEFAULT_MAX_INFLIGHT    2
/* How long another entity must have had no work for one to run "solo" */
#define PVGPU_SCHED_SOLO_WINDOW_NS          100000000ull
#define PVGPU_SCHED_DEFAULT_QUEUE_LIMIT     256

typedef struct PvgpuSched PvgpuSched;
typedef struct PvgpuSchedEntity PvgpuSchedEntity;

/*
 * A unit of work, embedded by the caller in its own request structure:
 * queues are intrusive lists, so queueing never allocates and cannot fail
 * for lack of memory.  The fields are private to the scheduler.
 */
typedef struct PvgpuSchedItem {
    struct PvgpuSchedItem *next;
    PvgpuSchedEntity *entity;
    uint64_t enqueue_ns;
    bool after_switch;          /* first of a turn after another entity's */
} PvgpuSchedItem;

/* Called by pvgpu_sched_entity_remove() for each item still queued. */
typedef void PvgpuSchedDropFn(PvgpuSchedItem *item, void *opaque);

typedef struct PvgpuSchedStats {
    uint64_t gpu_ns;            /* GPU time charged */
    uint64_t completed;         /* items completed */
    uint32_t queued;            /* items waiting to be dispatched */
    uint32_t inflight;          /* items dispatched, not completed */
    /*
     * Enqueue-to-completion latency percentiles: upper ends of histogram
     * buckets, at most 3.125% above the true value (0 before any completion).
     */
    uint64_t latency_p50_ns;
    uint64_t latency_p99_ns;
    /*
     * Percentiles of the GPU time of one item (a batch the GPU runs
     * without preemption: what another entity may have to wait for),
     * with the same resolution
     */
    uint64_t batch_p50_ns;
    uint64_t batch_p99_ns;
} PvgpuSchedStats;

/*
 * A new scheduler: PVGPU_SCHED_WEIGHTED, the default quantum, in-flight
 * and queue limits.  NULL if out of memory.
 */
PvgpuSched *pvgpu_sched_new(void);

/*
 * Free @s and any removed entity still waiting for in-flight items (no
 * completion may follow).  Remove every entity first: queued items are
 * not handed back here.
 */
void pvgpu_sched_free(PvgpuSched *s);

/*
 * Run-time settings; queued and in-flight work is kept.  A policy change
 * restarts virtual time, so the new policy starts from equal footing.
 * The setters returning int return 0 or -EINVAL for a value out of range.
 */
void pvgpu_sched_set_policy(PvgpuSched *s, PvgpuSchedPolicy policy);
/* Length of a turn, PVGPU_SCHED_MIN_QUANTUM_NS .. _MAX_QUANTUM_NS. */
int pvgpu_sched_set_quantum(PvgpuSched *s, uint64_t quantum_ns);
/*
 * Length in quanta, 1 .. PVGPU_SCHED_MAX_BATCH_QUANTA, of a turn while
 * no entity that ran dry waits.  Longer turns switch contexts less often
 * (a switch costs GPU time: cold caches, state reloads), and make shares
 * exact only over longer windows and longer waits for entities that
 * always have work.
 */
int pvgpu_sched_set_batch_quanta(PvgpuSched *s, unsigned quanta);
/*
 * Percent of GPU time, 0 .. PVGPU_SCHED_MAX_SWITCH_BUDGET, that context
 * switches may cost while only entities that never ran dry wait: batch
 * turns are then lengthened beyond batch quanta, up to 8 times that
 * (and PVGPU_SCHED_MAX_BATCH_QUANTA quanta), until the switch cost
 * measured (see pvgpu_sched_switch_cost()) is at most that share of a
 * turn.  0 (the default) keeps batch turns at batch quanta.
 */
int pvgpu_sched_set_switch_budget(PvgpuSched *s, unsigned pct);
/*
 * Items handed out and not yet completed, over all entities, >= 1.  More
 * than one keeps the renderer busy while the next item is chosen; the
 * price is that costs are known only at completion, so turns and caps may
 * overrun by up to this many items (see the docs).
 */
int pvgpu_sched_set_max_inflight(PvgpuSched *s, unsigned max_inflight);
/*
 * Items in flight, if more than the above, while all of them and the
 * next belong to the entity whose turn it is and no other entity has had
 * work for PVGPU_SCHED_SOLO_WINDOW_NS: nobody waits behind them then,
 * and a renderer that prepares the next item while the GPU runs the last
 * stays busy.  An entity that gets work after idling that long may then
 * wait for this many items instead.  0 (the default) turns it off.
 */
void pvgpu_sched_set_solo_inflight(PvgpuSched *s, unsigned solo_inflight);
/* Queued (not yet dispatched) items per entity, >= 1. */
int pvgpu_sched_set_queue_limit(PvgpuSched *s, unsigned limit);

/*
 * A new entity with the default weight, no cap and class 0; NULL if out
 * of memory.  @id only labels it.
 */
PvgpuSchedEntity *pvgpu_sched_entity_add(PvgpuSched *s, uint32_t id);

/*
 * Remove @e: @drop is called for each queued item, in order, so that the
 * caller can free it (@drop may be NULL if nothing is queued); @e must not
 * be used afterwards.  Items of @e still in flight must still be passed to
 * pvgpu_sched_complete(), which then only releases their in-flight slot.
 */
void pvgpu_sched_entity_remove(PvgpuSched *s, PvgpuSchedEntity *e,
                               PvgpuSchedDropFn *drop, void *opaque);

uint32_t pvgpu_sched_entity_id(const PvgpuSchedEntity *e);
/* 1 .. PVGPU_SCHED_MAX_WEIGHT */
int pvgpu_sched_entity_set_weight(PvgpuSchedEntity *e, unsigned weight);
/* Percent of wall-clock time, a ceiling in every policy; 0 removes it. */
int pvgpu_sched_entity_set_cap(PvgpuSched *s, PvgpuSchedEntity *e,
                               unsigned cap_pct, uint64_t now_ns);
/* 0 .. PVGPU_SCHED_NR_CLASSES - 1 */
int pvgpu_sched_entity_set_class(PvgpuSched *s, PvgpuSchedEntity *e,
                                 unsigned prio_class);
void pvgpu_sched_entity_stats(const PvgpuSchedEntity *e,
                              PvgpuSchedStats *stats);

/*
 * Queue @item on @e.  Returns 0, or -ENOSPC if @e already has the queue
 * limit's worth of items queued.
 */
int pvgpu_sched_enqueue(PvgpuSched *s, PvgpuSchedEntity *e,
                        PvgpuSchedItem *item, uint64_t now_ns);
/*
 * The same for an entity that has not run out of work, though nothing of
 * it is queued or in flight: the caller keeps one item per entity and
 * queues it again as soon as it completes (pvgpu-poold's grants, handed
 * back by a VM that is still busy).  Unlike pvgpu_sched_enqueue() this
 * does not count @e as woken, which would cut the running turns to one
 * quantum.
 */
int pvgpu_sched_enqueue_busy(PvgpuSched *s, PvgpuSchedEntity *e,
                             PvgpuSchedItem *item, uint64_t now_ns);

/*
 * The next item to hand to the renderer, and its entity in @entity, or
 * NULL.  When NULL, @wait_ns says when to call again: if only entities
 * over their cap have work, it is the time (> 0) until the first of them
 * may run again; otherwise it is 0, and the next enqueue or completion is
 * the time to call again.
 */
PvgpuSchedItem *pvgpu_sched_next(PvgpuSched *s, uint64_t now_ns,
                                 PvgpuSchedEntity **entity,
                                 uint64_t *wait_ns);

/*
 * GPU time left in the turn of @e, the entity of the item
 * pvgpu_sched_next() just returned: for a caller that hands out turns as
 * budgets to spend elsewhere (pvgpu-poold's grants to VMs).  At most one
 * quantum for a capped entity, so that its cap overruns by no more.
 */
uint64_t pvgpu_sched_turn_left(const PvgpuSched *s,
                               const PvgpuSchedEntity *e, uint64_t now_ns);

/* Would the turn now running be cut to one quantum (an entity woke)? */
bool pvgpu_sched_turn_short(const PvgpuSched *s, uint64_t now_ns);

/*
 * Turns handed to another entity than the turn before (context switches
 * on the GPU, as far as the scheduler decides them), since @s was made.
 */
uint64_t pvgpu_sched_switches(const PvgpuSched *s);

/*
 * What a context switch costs the GPU, as measured so far: how much
 * longer an entity's first item after another entity's turn took than
 * its items that ran after its own (each sample at most the entity's
 * average item), averaged over recent switches; 0 until measured, or if
 * switches cost nothing measurable.
 */
uint64_t pvgpu_sched_switch_cost(const PvgpuSched *s);

/*
 * Length of a turn while only entities that never ran dry wait: batch
 * quanta, or longer to keep switches within the switch budget.
 */
uint64_t pvgpu_sched_batch_turn(const PvgpuSched *s);

/*
 * The renderer finished @item, which took @cost_ns of GPU time: charge its
 * entity.  Safe, and required, after the entity was removed.
 */
void pvgpu_sched_complete(PvgpuSched *s, PvgpuSchedItem *item,
                          uint64_t cost_ns, uint64_t now_ns);

/*
 * Frame-rate limiter, one per scanout.  Zero-initialize it; max_fps
 * (0 = unlimited) may be changed at any time and applies to the next
 * flip.
 */
typedef struct PvgpuFpsLimiter {
    unsigned max_fps;
    bool flipped;               /* last_ns is valid */
    uint64_t last_ns;           /* time of the last flip allowed */
} PvgpuFpsLimiter;

/*
 * May a flip happen at @now_ns?  If so, records it and returns true;
 * otherwise returns false and sets @next_ns to the earliest time it may.
 */
bool pvgpu_fps_limiter_flip(PvgpuFpsLimiter *l, uint64_t now_ns,
                            uint64_t *next_ns);

#endif /* HW_DISPLAY_PVGPU_SCHED_H */
