/*
 * pvgpu renderer backends with a thread of their own: the job lists
 * between the main loop and that thread.  See pvgpu-render-queue.h.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/main-loop.h"
#include "hw/display/pvgpu-render-queue.h"

/* Main loop: hand every finished job to the device; returns how many */
static unsigned deliver(PvgpuRenderQueue *q)
{
    PvgpuJobList done = QSIMPLEQ_HEAD_INITIALIZER(done);
    PvgpuRenderJob *job;
    unsigned n = 0;

    qemu_mutex_lock(&q->lock);
    QSIMPLEQ_CONCAT(&done, &q->done);
    qemu_mutex_unlock(&q->lock);
    while ((job = QSIMPLEQ_FIRST(&done))) {
        QSIMPLEQ_REMOVE_HEAD(&done, next);
        q->done_fn(job, q->opaque);
        n++;
    }
    return n;
}

static void queue_bh(void *opaque)
{
    deliver(opaque);
}

bool pvgpu_queue_init(PvgpuRenderQueue *q, PvgpuRenderDoneFn *done,
                      void *opaque, MemReentrancyGuard *guard, Error **errp)
{
    if (event_notifier_init(&q->wake, false) < 0) {
        error_setg(errp, "pvgpu: cannot create the render thread's notifier");
        return false;
    }
    qemu_mutex_init(&q->lock);
    qemu_sem_init(&q->reset_done, 0);
    qemu_sem_init(&q->run_done, 0);
    QSIMPLEQ_INIT(&q->todo);
    QSIMPLEQ_INIT(&q->done);
    q->done_fn = done;
    q->opaque = opaque;
    q->bh = qemu_bh_new_guarded(queue_bh, q, guard);
    return true;
}

void pvgpu_queue_destroy(PvgpuRenderQueue *q)
{
    qemu_bh_delete(q->bh);
    event_notifier_cleanup(&q->wake);
    qemu_sem_destroy(&q->reset_done);
    qemu_sem_destroy(&q->run_done);
    qemu_mutex_destroy(&q->lock);
}

void pvgpu_queue_set_source(PvgpuRenderQueue *q, PvgpuRenderPullFn *pull,
                            PvgpuRenderRetireFn *retire, void *opaque)
{
    qemu_mutex_lock(&q->lock);
    q->pull = pull;
    q->retire = retire;
    q->source = opaque;
    qemu_mutex_unlock(&q->lock);
}

void pvgpu_queue_submit(PvgpuRenderQueue *q, PvgpuRenderJob *job)
{
    qemu_mutex_lock(&q->lock);
    QSIMPLEQ_INSERT_TAIL(&q->todo, job, next);
    qemu_mutex_unlock(&q->lock);
    event_notifier_set(&q->wake);
}

bool pvgpu_queue_run(PvgpuRenderQueue *q, PvgpuRenderJob *job)
{
    job->sync = true;
    pvgpu_queue_submit(q, job);
    qemu_sem_wait(&q->run_done);
    return !job->failed;
}

unsigned pvgpu_queue_complete(PvgpuRenderQueue *q)
{
    qemu_bh_cancel(q->bh);
    return deliver(q);
}

void pvgpu_queue_kick(PvgpuRenderQueue *q)
{
    event_notifier_set(&q->wake);
}

void pvgpu_queue_reset(PvgpuRenderQueue *q, bool keep_memory)
{
    PvgpuRenderJob reset = {
        .kind = keep_memory ? PVGPU_JOB_CANCEL : PVGPU_JOB_RESET,
    };
    PvgpuJobList dropped = QSIMPLEQ_HEAD_INITIALIZER(dropped);
    PvgpuRenderJob *job;

    qemu_mutex_lock(&q->lock);
    /* queued work never runs; it goes back with whatever is done */
    QSIMPLEQ_CONCAT(&dropped, &q->todo);
    QSIMPLEQ_INSERT_TAIL(&q->todo, &reset, next);
    qemu_mutex_unlock(&q->lock);
    event_notifier_set(&q->wake);
    /* bounded by the batch of jobs the thread has already taken */
    qemu_sem_wait(&q->reset_done);

    qemu_mutex_lock(&q->lock);
    QSIMPLEQ_CONCAT(&dropped, &q->done);
    qemu_mutex_unlock(&q->lock);
    while ((job = QSIMPLEQ_FIRST(&dropped))) {
        QSIMPLEQ_REMOVE_HEAD(&dropped, next);
        job->cancelled = true;
        q->done_fn(job, q->opaque);
    }
}

void pvgpu_queue_stop(PvgpuRenderQueue *q)
{
    qemu_mutex_lock(&q->lock);
    q->quit = true;
    qemu_mutex_unlock(&q->lock);
    event_notifier_set(&q->wake);
}

void pvgpu_queue_hold(PvgpuRenderQueue *q, unsigned holds)
{
    assert(holds);
    pvgpu_queue_reset(q, true);
    q->holds = holds;
    /* the device's re-entrancy guard goes with it */
    qemu_bh_delete(q->bh);
    q->bh = qemu_bh_new_guarded(queue_bh, q, NULL);
}

bool pvgpu_queue_unhold(PvgpuRenderQueue *q)
{
    assert(q->holds);
    return !--q->holds;
}

bool pvgpu_queue_take(PvgpuRenderQueue *q, PvgpuJobList *batch)
{
    bool quit;

    qemu_mutex_lock(&q->lock);
    QSIMPLEQ_CONCAT(batch, &q->todo);
    quit = q->quit;
    qemu_mutex_unlock(&q->lock);
    return quit;
}

PvgpuRenderJob *pvgpu_queue_pull(PvgpuRenderQueue *q)
{
    PvgpuRenderJob *job = NULL;

    qemu_mutex_lock(&q->lock);
    if (q->pull && QSIMPLEQ_EMPTY(&q->todo) && !q->quit) {
        job = q->pull(q->source);
    }
    qemu_mutex_unlock(&q->lock);
    if (job) {
        pvgpu_render_job_begin(job);
    }
    return job;
}

void pvgpu_queue_finish(PvgpuRenderQueue *q, PvgpuRenderJob *job)
{
    if (job->sync) {
        /* the caller waits for it, and may free it once woken */
        qemu_sem_post(&q->run_done);
        return;
    }
    qemu_mutex_lock(&q->lock);
    if (job->scheduled && q->retire) {
        /* the scheduler learns it here, in time for the next pull */
        q->retire(job, q->source);
        job->retired = true;
    }
    QSIMPLEQ_INSERT_TAIL(&q->done, job, next);
    qemu_mutex_unlock(&q->lock);
    qemu_bh_schedule(q->bh);
}
