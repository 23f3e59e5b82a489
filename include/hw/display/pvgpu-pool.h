/*
 * pvgpu pool client: a device's membership of a GPU pool (pvgpu-poold)
 *
 * Owns the connection to the pool (a chardev, property pool), the grant
 * the device holds, and the pool's bounds on the device's limits.  The
 * command path (pvgpu-exec.c) asks it, where the render thread pulls
 * scheduled work, whether the device may run work now, and tells it
 * what the work cost.  Without a pool, or while the pool is away, the
 * device schedules on its own, exactly as without one.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_DISPLAY_PVGPU_POOL_H
#define HW_DISPLAY_PVGPU_POOL_H

#include "chardev/char-fe.h"
#include "hw/display/pvgpu-pool-proto.h"
#include "hw/display/pvgpu-settings.h"
#include "qapi/qapi-types-pvgpu.h"

typedef struct PvgpuPool PvgpuPool;

/* What the pool client asks of the device */
typedef struct PvgpuPoolOps {
    /* the gate opened (a grant, or the pool went away): run what waits */
    void (*wake)(void *opaque);
    /*
     * How busy the device is: requests the renderer holds (@running),
     * requests waiting for the gate or queued for the GPU (@waiting)
     */
    void (*load)(void *opaque, unsigned *running, unsigned *waiting);
    /* the pool's bounds changed */
    void (*limits_changed)(void *opaque);
    /* fill a STATS message: contexts, queue, memory, fences, frames */
    void (*stats)(void *opaque, PvgpuPoolMsg *m);
} PvgpuPoolOps;

/*
 * Join the pool behind @chr as @name.  @chr must be connected to a
 * chardev; the client takes over its handlers.
 */
PvgpuPool *pvgpu_pool_new(CharBackend *chr, const char *name,
                          uint32_t reservation_pct, const PvgpuPoolOps *ops,
                          void *opaque);
void pvgpu_pool_free(PvgpuPool *p);

/*
 * Any thread (the render thread, before it pulls scheduled work; the main
 * loop, before it dispatches a control command): may the device's work
 * go to the renderer now?
 */
bool pvgpu_pool_may_run(PvgpuPool *p);

/*
 * Main loop: the device's load changed (work arrived, finished, was
 * dropped): ask for a grant, or hand one back.  Same meaning of
 * @running and @waiting as PvgpuPoolOps.load.
 */
void pvgpu_pool_update(PvgpuPool *p, unsigned running, unsigned waiting);

/*
 * The pool's bound on @which (MAX_HOSTMEM, MAX_CONTEXTS, MAX_RESOURCES,
 * MAX_FPS), 0 if it sets none.
 */
uint64_t pvgpu_pool_bound(PvgpuPool *p, PvgpuSetting which);
/* The device refused its guest because of the pool's bound on @which */
void pvgpu_pool_limit_hit(PvgpuPool *p, PvgpuSetting which, uint64_t value);

PvgpuPoolMember *pvgpu_pool_info(PvgpuPool *p);

#endif /* HW_DISPLAY_PVGPU_POOL_H */
