/*
 * pvgpu dependencies: what a request touches, and what queued work touches
 *
 * The device orders requests only where they touch the same thing: a
 * context (its command queue), a resource or a scanout.  Everything else
 * may run in any order, which is what lets the scheduler pick between
 * contexts and keeps one context's held work (a flush the frame-rate
 * limiter delays, an unmap waiting for its region) from stalling the
 * others.  docs/pvgpu-scheduler.rst, "Ordering", gives the rules.
 *
 * This file owns two plain data structures, no device state:
 * - PvgpuDeps, the keys one request touches (or "everything");
 * - PvgpuDepCounts, the keys of work queued in the scheduler, counted per
 *   owning context, so that a request can ask "does queued work touch
 *   what I touch?" and a context's work "... of any other context?".
 * Pure C on GLib, no QEMU headers (unit-tested in tests/unit); no locking,
 * the caller's.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_DISPLAY_PVGPU_DEPS_H
#define HW_DISPLAY_PVGPU_DEPS_H

#include <stdbool.h>
#include <stdint.h>

typedef enum PvgpuDepKind {
    PVGPU_DEP_CONTEXT,
    PVGPU_DEP_RESOURCE,
    PVGPU_DEP_SCANOUT,
} PvgpuDepKind;

/* The keys of one request; zero-initialised it touches nothing. */
typedef struct PvgpuDeps {
    bool all;               /* everything: device-internal work */
    unsigned n;
    unsigned size;
    uint64_t *keys;
} PvgpuDeps;

/* Add one key (once: duplicates are dropped). */
void pvgpu_deps_add(PvgpuDeps *d, PvgpuDepKind kind, uint32_t id);
void pvgpu_deps_add_all(PvgpuDeps *d);
bool pvgpu_deps_has(const PvgpuDeps *d, PvgpuDepKind kind, uint32_t id);
/* Free the keys; @d touches nothing again. */
void pvgpu_deps_clear(PvgpuDeps *d);

/*
 * A set of keys (the union of several requests'), for "does anything
 * before this request touch what it touches?"
 */
typedef struct PvgpuDepSet PvgpuDepSet;

PvgpuDepSet *pvgpu_dep_set_new(void);
void pvgpu_dep_set_free(PvgpuDepSet *set);
void pvgpu_dep_set_add(PvgpuDepSet *set, const PvgpuDeps *d);
bool pvgpu_dep_set_overlaps(const PvgpuDepSet *set, const PvgpuDeps *d);

/*
 * Keys of queued work, counted per owning context.  Work that touches
 * everything is counted apart and conflicts with every request.
 */
typedef struct PvgpuDepCounts PvgpuDepCounts;

PvgpuDepCounts *pvgpu_dep_counts_new(void);
void pvgpu_dep_counts_free(PvgpuDepCounts *c);
void pvgpu_dep_counts_add(PvgpuDepCounts *c, uint32_t owner,
                          const PvgpuDeps *d);
/*
 * Take back what pvgpu_dep_counts_add() counted for the same @owner and
 * @d.  Returns whether some key is no longer touched by any queued work,
 * or nothing is queued any more (someone waiting may go now).
 */
bool pvgpu_dep_counts_remove(PvgpuDepCounts *c, uint32_t owner,
                             const PvgpuDeps *d);
/*
 * Does queued work touch any key of @d?  With @has_owner, only work of
 * contexts other than @owner counts (a context's own work stays in its
 * order anyway).
 */
bool pvgpu_dep_counts_conflict(const PvgpuDepCounts *c, bool has_owner,
                               uint32_t owner, const PvgpuDeps *d);
bool pvgpu_dep_counts_empty(const PvgpuDepCounts *c);
void pvgpu_dep_counts_clear(PvgpuDepCounts *c);

#endif /* HW_DISPLAY_PVGPU_DEPS_H */
