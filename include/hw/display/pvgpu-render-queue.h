/*
 * pvgpu renderer backends with a thread of their own: the job lists
 * between the main loop and that thread
 *
 * pvgpu-virgl.c (virglrenderer on a render thread) and pvgpu-remote.c
 * (a thread talking to a render process) hand jobs over the same way:
 * "todo" (main loop -> thread, woken through an event notifier) and
 * "done" (thread -> main loop, drained by a bottom half) under one mutex,
 * scheduled work pulled by the thread from its source, synchronous runs
 * and resets that wait for the thread.  This is that part; what the
 * thread does with a job is the backend's.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_DISPLAY_PVGPU_RENDER_QUEUE_H
#define HW_DISPLAY_PVGPU_RENDER_QUEUE_H

#include "qemu/event_notifier.h"
#include "qemu/thread.h"
#include "hw/display/pvgpu-render.h"

typedef QSIMPLEQ_HEAD(PvgpuJobList, PvgpuRenderJob) PvgpuJobList;

typedef struct PvgpuRenderQueue {
    QemuMutex lock;
    EventNotifier wake;
    QEMUBH *bh;
    PvgpuRenderDoneFn *done_fn;
    void *opaque;

    /* under lock */
    PvgpuJobList todo;
    PvgpuJobList done;
    bool quit;
    PvgpuRenderPullFn *pull;
    PvgpuRenderRetireFn *retire;
    void *source;

    QemuSemaphore reset_done;   /* the thread handled a reset job */
    QemuSemaphore run_done;     /* a pvgpu_render_run() job finished */
    unsigned holds;             /* free_later(): regions not released yet */
} PvgpuRenderQueue;

bool pvgpu_queue_init(PvgpuRenderQueue *q, PvgpuRenderDoneFn *done,
                      void *opaque, MemReentrancyGuard *guard, Error **errp);
/* After the thread is gone */
void pvgpu_queue_destroy(PvgpuRenderQueue *q);

/* --- the main loop's side: the backend functions of pvgpu-render.h --- */
void pvgpu_queue_set_source(PvgpuRenderQueue *q, PvgpuRenderPullFn *pull,
                            PvgpuRenderRetireFn *retire, void *opaque);
void pvgpu_queue_submit(PvgpuRenderQueue *q, PvgpuRenderJob *job);
bool pvgpu_queue_run(PvgpuRenderQueue *q, PvgpuRenderJob *job);
unsigned pvgpu_queue_complete(PvgpuRenderQueue *q);
void pvgpu_queue_kick(PvgpuRenderQueue *q);
/*
 * Queue a PVGPU_JOB_RESET (or, with @keep_memory, PVGPU_JOB_CANCEL) for
 * the thread, which posts reset_done once it handled it; then hand back
 * every job not handed back yet, cancelled.
 */
void pvgpu_queue_reset(PvgpuRenderQueue *q, bool keep_memory);
/* The thread is to end after its next batch */
void pvgpu_queue_stop(PvgpuRenderQueue *q);
/*
 * free_later() with @holds > 0: no job may complete for the device that
 * is going (all are cancelled), and its re-entrancy guard goes with it
 */
void pvgpu_queue_hold(PvgpuRenderQueue *q, unsigned holds);
/* unhold(): true when the last region was released (free now) */
bool pvgpu_queue_unhold(PvgpuRenderQueue *q);

/* --- the thread's side --- */
/* Take the jobs submitted so far into @batch; true if the thread is to end */
bool pvgpu_queue_take(PvgpuRenderQueue *q, PvgpuJobList *batch);
/* Scheduled work to run now, if nothing submitted waits */
PvgpuRenderJob *pvgpu_queue_pull(PvgpuRenderQueue *q);
/* Hand @job back: to its pvgpu_render_run() caller, or to the main loop */
void pvgpu_queue_finish(PvgpuRenderQueue *q, PvgpuRenderJob *job);

#endif /* HW_DISPLAY_PVGPU_RENDER_QUEUE_H */
