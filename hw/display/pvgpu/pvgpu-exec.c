/*
 * pvgpu's command path: every control command, 2D and 3D, and contexts
 *
 * Runs in the main loop.  Everything that needs device state is checked
 * here, when the request arrives, so the guest gets the spec's error codes
 * (an unknown context, a resource not attached to the context, ...).  The
 * command then goes to the renderer as a job: virglrenderer on its render
 * thread (pvgpu-virgl.c) for a guest that negotiated VIRGL, pixman
 * (pvgpu-pixman.c) for a 2D guest.  Its completion comes back to
 * pvgpu_exec_job_done(), which answers the guest.
 * A job runs after every earlier job that touches the same context,
 * resource or scanout (deps_of(), pump()), so the state checked here is
 * the state the renderer will see for everything the job touches.  A
 * context's own work goes to the scheduler instead, from which the render
 * thread pulls it when its turn comes (pvgpu_exec_pull(), below pump()).
 *
 * Completions never dereference resources by pointer: a fenced job can
 * complete after later requests released its resource, so they look the
 * resource up again by id and serial number.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/error-report.h"
#include "qemu/log.h"
#include "qemu/main-loop.h"
#include "migration/blocker.h"
#include "migration/misc.h"
#include "migration/qemu-file-types.h"
#include "system/runstate.h"
#include "qemu/timer.h"
#include "hw/display/pvgpu.h"
#include "trace.h"

#define PVGPU_BLOB_MAPPING_CAST(obj) \
    OBJECT_CHECK(PvgpuBlobMapping, (obj), TYPE_PVGPU_BLOB_MAPPING)

static void pool_update(PvgpuState *s);
static void migration_update(PvgpuState *s);

static PvgpuContext *context_find(PvgpuState *s, uint32_t id)
{
    return g_hash_table_lookup(s->contexts, GUINT_TO_POINTER(id));
}

/*
 * Context @id with @serial: in the table, or destroyed by the guest and
 * still waiting for its CTX_DESTROY to reach the renderer.  NULL if it is
 * gone.
 */
static PvgpuContext *context_by_serial(PvgpuState *s, uint32_t id,
                                       uint64_t serial)
{
    PvgpuContext *ctx = context_find(s, id);

    if (ctx && ctx->serial == serial) {
        return ctx;
    }
    return g_hash_table_lookup(s->dying, &serial);
}

/* The context a context's request (ctx_serial) came for */
static PvgpuContext *context_of(PvgpuState *s, const PvgpuRequest *req)
{
    return context_by_serial(s, req->cmd.hdr.ctx_id, req->ctx_serial);
}

/* The context @cmd is for; one the renderer refused takes CTX_DESTROY only */
static PvgpuContext *context_find_or_fail(PvgpuState *s, const PvgpuCmd *cmd,
                                          uint32_t *err)
{
    PvgpuContext *ctx = context_find(s, cmd->hdr.ctx_id);

    if (!ctx) {
        *err = pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_INVALID_CONTEXT_ID,
                              "context %u does not exist", cmd->hdr.ctx_id);
    } else if (ctx->refused && cmd->hdr.type != PVGPU_CMD_CTX_DESTROY) {
        *err = pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_INVALID_CONTEXT_ID,
                              "context %u: the renderer refused to create "
                              "it, only CTX_DESTROY takes it",
                              cmd->hdr.ctx_id);
        ctx = NULL;
    }
    return ctx;
}

static void res_attached(PvgpuState *s, uint32_t id, int delta);

/* @ctx lets go of every resource attached to it */
static void contexts_detach_all(PvgpuState *s, PvgpuContext *ctx)
{
    GHashTableIter iter;
    gpointer key;

    g_hash_table_iter_init(&iter, ctx->resources);
    while (g_hash_table_iter_next(&iter, &key, NULL)) {
        res_attached(s, GPOINTER_TO_UINT(key), -1);
    }
    g_hash_table_remove_all(ctx->resources);
}

static void context_free(gpointer data)
{
    PvgpuContext *ctx = data;

    contexts_detach_all(ctx->s, ctx);

    /* the scheduling entity went with CTX_DESTROY's dispatch or a reset */
    assert(!ctx->entity);
    /* the renderer frees what its streams created when it goes */
    pvgpu_hostmem_release(ctx->s, ctx->pipe_hostmem);
    ctx->s->contexts_used -= ctx->used;
    g_array_free(ctx->pipe_pending, true);
    g_hash_table_destroy(ctx->resources);
    g_free(ctx);
}

static void pipe_note(const PvgpuPipeResource *pr, void *opaque)
{
    g_array_append_val((GArray *)opaque, *pr);
}

/*
 * SUBMIT_3D: resources the stream creates for itself
 * (PIPE_RESOURCE_CREATE) take host memory as soon as it runs, long
 * before a CREATE_BLOB names them: charge them now, against max_hostmem,
 * and bound how many a context may leave unclaimed.  They are noted in
 * the context's list as the stream is read, and taken out again if the
 * stream is refused.
 */
static uint32_t pipe_resources_admit(PvgpuState *s, PvgpuContext *ctx,
                                     const PvgpuCmd *cmd)
{
    guint before = ctx->pipe_pending->len;
    unsigned n = pvgpu_virgl_scan(cmd->u.submit_3d.data,
                                  cmd->u.submit_3d.size / 4, pipe_note,
                                  ctx->pipe_pending);
    uint64_t bytes = 0;
    uint32_t err = 0;

    if (!n) {
        /* nothing to charge, even above a lowered max_hostmem */
        return 0;
    }
    for (guint i = before; i < ctx->pipe_pending->len; i++) {
        uint64_t size = g_array_index(ctx->pipe_pending, PvgpuPipeResource,
                                      i).size;

        bytes = size > UINT64_MAX - bytes ? UINT64_MAX : bytes + size;
    }
    if (ctx->pipe_pending->len > PVGPU_MAX_PIPE_PENDING) {
        pvgpu_quota_refused(s, PVGPU_QUOTA_HOSTMEM, false, 0,
                            pvgpu_limit(s, PVGPU_SETTING_MAX_HOSTMEM));
        err = pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_OUT_OF_MEMORY,
                             "context %u would have %u resources created "
                             "by its command stream and not claimed by "
                             "RESOURCE_CREATE_BLOB (at most %u)", ctx->id,
                             ctx->pipe_pending->len, PVGPU_MAX_PIPE_PENDING);
    } else if (!pvgpu_hostmem_reserve(s, bytes)) {
        err = pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_OUT_OF_MEMORY,
                             "the command stream creates %u resources of "
                             "%" PRIu64 " bytes, %" PRIu64 " used of "
                             "max_hostmem %" PRIu64, n, bytes,
                             s->hostmem_used,
                             pvgpu_limit(s, PVGPU_SETTING_MAX_HOSTMEM));
    }
    if (err) {
        g_array_set_size(ctx->pipe_pending, before);
        return err;
    }
    ctx->pipe_hostmem += bytes;
    return 0;
}

/* The oldest resource of @ctx's streams with @blob_id, or -1. */
static int pipe_resource_find(PvgpuContext *ctx, uint64_t blob_id)
{
    for (guint i = 0; i < ctx->pipe_pending->len; i++) {
        if (g_array_index(ctx->pipe_pending, PvgpuPipeResource,
                          i).blob_id == blob_id) {
            return i;
        }
    }
    return -1;
}

/* Resource @id got (@delta 1) or lost (-1) a context it is attached to */
static void res_attached(PvgpuState *s, uint32_t id, int delta)
{
    PvgpuResource *res = pvgpu_resource_find(s, id);

    if (!res) {
        return;
    }
    s->shared_resources -= res->nctx > 1;
    res->nctx += delta;
    s->shared_resources += res->nctx > 1;
}

/*
 * Call @fn for every context: the guest's, and those it destroyed whose
 * CTX_DESTROY has not reached the renderer yet
 */
static void contexts_foreach(PvgpuState *s,
                             void (*fn)(PvgpuContext *ctx, void *opaque),
                             void *opaque)
{
    GHashTable *tables[] = { s->contexts, s->dying };

    for (unsigned t = 0; t < ARRAY_SIZE(tables); t++) {
        GHashTableIter iter;
        gpointer value;

        g_hash_table_iter_init(&iter, tables[t]);
        while (g_hash_table_iter_next(&iter, NULL, &value)) {
            fn(value, opaque);
        }
    }
}

typedef struct ResourceVisit {
    PvgpuState *s;
    uint32_t id;
    PvgpuDeps *deps;
} ResourceVisit;

static void context_forget_resource(PvgpuContext *ctx, void *opaque)
{
    ResourceVisit *v = opaque;

    if (g_hash_table_remove(ctx->resources, GUINT_TO_POINTER(v->id))) {
        res_attached(v->s, v->id, -1);
    }
}

static void contexts_forget_resource(PvgpuState *s, uint32_t id)
{
    ResourceVisit v = { .s = s, .id = id };

    contexts_foreach(s, context_forget_resource, &v);
}

static void context_deps_resource(PvgpuContext *ctx, void *opaque)
{
    ResourceVisit *v = opaque;

    if (g_hash_table_contains(ctx->resources, GUINT_TO_POINTER(v->id))) {
        pvgpu_deps_add(v->deps, PVGPU_DEP_CONTEXT, ctx->id);
    }
}

/*
 * Ordering.  A request reaches the renderer only after every earlier
 * request that touches the same context, resource or scanout (its deps,
 * set here when it arrives, from the state every earlier request left):
 * - a context's work (SUBMIT_3D, its transfers) touches the context, and
 *   so every resource attached to it: virglrenderer lets a context's
 *   commands use only those.  A resource command therefore touches the
 *   contexts the resource is attached to, and the scanouts showing it;
 * - contexts that share a resource touch each other: their work stays in
 *   queue order, since Linux does not wait in the guest for a fence of
 *   another context on the same timeline (it relies on the device's
 *   order) and implicit sharing has no fence at all;
 * - device-internal work (a renderer restart) touches everything.
 * docs/pvgpu-scheduler.rst, "Ordering", says why this is all the order
 * the guest relies on.
 */
static void deps_resource(PvgpuState *s, PvgpuDeps *d, uint32_t id)
{
    PvgpuResource *res = pvgpu_resource_find(s, id);
    ResourceVisit v = { .s = s, .id = id, .deps = d };

    pvgpu_deps_add(d, PVGPU_DEP_RESOURCE, id);
    if (!res) {
        return;
    }
    for (uint32_t i = 0; i < PVGPU_MAX_SCANOUTS; i++) {
        if (res->scanout_bitmask & (1u << i)) {
            pvgpu_deps_add(d, PVGPU_DEP_SCANOUT, i);
        }
    }
    if (res->nctx) {
        contexts_foreach(s, context_deps_resource, &v);
    }
}

static void deps_context(PvgpuState *s, PvgpuDeps *d, uint32_t ctx_id)
{
    PvgpuContext *ctx = context_find(s, ctx_id);
    GHashTableIter iter;
    gpointer key;

    pvgpu_deps_add(d, PVGPU_DEP_CONTEXT, ctx_id);
    if (!ctx || !s->shared_resources) {
        return;
    }
    /* the contexts it shares a resource with */
    g_hash_table_iter_init(&iter, ctx->resources);
    while (g_hash_table_iter_next(&iter, &key, NULL)) {
        PvgpuResource *res = pvgpu_resource_find(s, GPOINTER_TO_UINT(key));

        if (res && res->nctx > 1) {
            deps_resource(s, d, res->id);
        }
    }
}

static void deps_of(PvgpuState *s, PvgpuRequest *req)
{
    const PvgpuCmd *cmd = &req->cmd;
    PvgpuDeps *d = &req->deps;
    PvgpuContext *ctx;

    switch (cmd->hdr.type) {
    case PVGPU_CMD_CTX_CREATE:
    case PVGPU_CMD_SUBMIT_3D:
        deps_context(s, d, cmd->hdr.ctx_id);
        break;
    case PVGPU_CMD_CTX_DESTROY:
        deps_context(s, d, cmd->hdr.ctx_id);
        ctx = context_find(s, cmd->hdr.ctx_id);
        if (ctx) {
            GHashTableIter iter;
            gpointer key;

            g_hash_table_iter_init(&iter, ctx->resources);
            while (g_hash_table_iter_next(&iter, &key, NULL)) {
                pvgpu_deps_add(d, PVGPU_DEP_RESOURCE, GPOINTER_TO_UINT(key));
            }
        }
        break;
    case PVGPU_CMD_CTX_ATTACH_RESOURCE:
    case PVGPU_CMD_CTX_DETACH_RESOURCE:
        deps_context(s, d, cmd->hdr.ctx_id);
        deps_resource(s, d, cmd->u.resource.resource_id);
        break;
    case PVGPU_CMD_RESOURCE_CREATE_2D:
        deps_resource(s, d, cmd->u.create_2d.resource_id);
        break;
    case PVGPU_CMD_RESOURCE_CREATE_3D:
        deps_resource(s, d, cmd->u.create_3d.resource_id);
        break;
    case PVGPU_CMD_RESOURCE_CREATE_BLOB:
        deps_resource(s, d, cmd->u.create_blob.resource_id);
        if (cmd->hdr.ctx_id) {
            /* it may claim what the context's streams created */
            deps_context(s, d, cmd->hdr.ctx_id);
        }
        break;
    case PVGPU_CMD_RESOURCE_UNREF:
    case PVGPU_CMD_RESOURCE_DETACH_BACKING:
    case PVGPU_CMD_RESOURCE_UNMAP_BLOB:
        deps_resource(s, d, cmd->u.resource.resource_id);
        break;
    case PVGPU_CMD_RESOURCE_ATTACH_BACKING:
        deps_resource(s, d, cmd->u.attach_backing.resource_id);
        break;
    case PVGPU_CMD_TRANSFER_TO_HOST_2D:
        deps_resource(s, d, cmd->u.transfer_2d.resource_id);
        break;
    case PVGPU_CMD_TRANSFER_TO_HOST_3D:
    case PVGPU_CMD_TRANSFER_FROM_HOST_3D:
        deps_resource(s, d, cmd->u.transfer_3d.resource_id);
        if (cmd->hdr.ctx_id) {
            deps_context(s, d, cmd->hdr.ctx_id);
        }
        break;
    case PVGPU_CMD_RESOURCE_FLUSH:
        deps_resource(s, d, cmd->u.flush.resource_id);
        break;
    case PVGPU_CMD_RESOURCE_MAP_BLOB:
        deps_resource(s, d, cmd->u.map_blob.resource_id);
        break;
    case PVGPU_CMD_SET_SCANOUT:
        pvgpu_deps_add(d, PVGPU_DEP_SCANOUT, cmd->u.set_scanout.scanout_id);
        if (cmd->u.set_scanout.resource_id) {
            deps_resource(s, d, cmd->u.set_scanout.resource_id);
        }
        break;
    case PVGPU_CMD_SET_SCANOUT_BLOB:
        pvgpu_deps_add(d, PVGPU_DEP_SCANOUT,
                       cmd->u.set_scanout_blob.scanout_id);
        if (cmd->u.set_scanout_blob.resource_id) {
            deps_resource(s, d, cmd->u.set_scanout_blob.resource_id);
        }
        break;
    default:
        /* answered at once, from device state alone */
        break;
    }
}

static PvgpuRequest *request_for_job(PvgpuRenderJob *job)
{
    return container_of(job, PvgpuRequest, job);
}

/*
 * Scheduling.  A context's own work (SUBMIT_3D and transfers on behalf of
 * the context) goes through the scheduler, which decides whose work the
 * renderer gets next.  Everything else (resources, contexts, scanouts) is
 * dispatched straight to the render thread, which runs what it is handed
 * in order, ahead of scheduled work.  Either kind goes only once no
 * earlier request touching what it touches (deps_of()) is still held or
 * queued in the scheduler; scheduled work of contexts that touch nothing
 * in common is reordered freely.
 */
static bool is_context_work(const PvgpuCmd *cmd)
{
    switch (cmd->hdr.type) {
    case PVGPU_CMD_SUBMIT_3D:
        return true;
    case PVGPU_CMD_TRANSFER_TO_HOST_3D:
    case PVGPU_CMD_TRANSFER_FROM_HOST_3D:
        return cmd->hdr.ctx_id != 0;
    }
    return false;
}

/* Work a removed context still had queued: answered, not executed. */
static void drop_request(PvgpuSchedItem *item, void *opaque)
{
    PvgpuState *s = opaque;
    PvgpuRequest *req = container_of(item, PvgpuRequest, item);

    s->sched_queued--;
    pvgpu_dep_counts_remove(s->sched_deps, req->cmd.hdr.ctx_id,
                            &req->deps);
    pvgpu_request_respond(s, req, PVGPU_RESP_ERR_INVALID_CONTEXT_ID, NULL, 0);
}

/*
 * Free resource @res, gone from the table: MAP_BLOBs still with the
 * renderer find it gone (several, after MAP, UNMAP, MAP in one notify).
 */
static void resource_free(PvgpuState *s, PvgpuResource *res)
{
    PvgpuRequest *req;

    QLIST_FOREACH(req, &s->requests, live) {
        if (req->map_res == res) {
            req->map_res = NULL;
        }
    }
    pvgpu_resource_free(s, res);
}

/*
 * Free what a request took over from the device: an UNREF's resource, a
 * DETACH_BACKING's guest mapping.  Once the renderer let go of them, or
 * when a reset drops the request before the renderer saw it.
 */
static void request_release(PvgpuState *s, PvgpuRequest *req)
{
    if (req->map_res && req->map_res->map_req == req) {
        /* a MAP_BLOB dropped by a reset: its blob is no longer waited on */
        req->map_res->map_req = NULL;
    }
    if (req->res) {
        resource_free(s, g_steal_pointer(&req->res));
    }
    if (req->iov) {
        pvgpu_iov_unmap(s, g_steal_pointer(&req->iov), req->niov, true);
    }
}

/*
 * Hand a control command to the renderer: it runs after everything
 * handed over before it, including the scheduled work the render thread
 * pulled.
 */
static void dispatch(PvgpuState *s, PvgpuRequest *req)
{
    qemu_mutex_lock(&s->sched_lock);
    QTAILQ_INSERT_TAIL(&s->inflight, req, next);
    if (req->dying) {
        /*
         * CTX_DESTROY touches its context: nothing of it is queued in the
         * scheduler any more
         */
        pvgpu_sched_entity_remove(s->sched, req->dying->entity,
                                  drop_request, s);
        req->dying->entity = NULL;
    }
    qemu_mutex_unlock(&s->sched_lock);
    if (req->dying) {
        g_hash_table_remove(s->dying, &g_steal_pointer(&req->dying)->serial);
    }
    if (req->job.kind == PVGPU_JOB_RESTART ||
        s->renderer != s->pixman_renderer) {
        /* a deferred restart is of the renderer whose memory was mapped */
        s->virgl_used = true;
        pvgpu_render_submit(s->virgl_renderer, &req->job);
    } else {
        pvgpu_render_submit(s->renderer, &req->job);
    }
}

/*
 * Render thread, renderer lock held: the scheduler's next item, pulled
 * where the last one's fence signalled (no main-loop round trip).  Only
 * ever this thread dispatches scheduled work, in the scheduler's order.
 */
static PvgpuRenderJob *pvgpu_exec_pull(void *opaque)
{
    PvgpuState *s = opaque;
    PvgpuSchedItem *item = NULL;
    PvgpuSchedEntity *ent;
    PvgpuRequest *req = NULL;
    uint64_t now = get_clock(), wait = 0;
    bool poke = false;

    qemu_mutex_lock(&s->sched_lock);
    /*
     * in a pool, scheduled work runs while the device holds a grant, or
     * while the VM stops
     */
    if (!s->sched_paused && (!s->pool || qatomic_read(&s->draining) ||
                             pvgpu_pool_may_run(s->pool))) {
        item = pvgpu_sched_next(s->sched, now, &ent, &wait);
    }
    if (item) {
        req = container_of(item, PvgpuRequest, item);
        s->sched_queued--;
        s->sched_running++;
        QTAILQ_INSERT_TAIL(&s->inflight, req, next);
        /* a request held behind it may go now */
        if (pvgpu_dep_counts_remove(s->sched_deps, req->cmd.hdr.ctx_id,
                                    &req->deps) && s->sched_deps_waiting) {
            s->sched_deps_waiting = false;
            poke = true;
        }
    } else if (wait) {
        /* only capped contexts have work: the main loop's timer wakes us */
        s->sched_wake_ns = now + wait;
        poke = true;
    }
    qemu_mutex_unlock(&s->sched_lock);
    if (poke) {
        qemu_bh_schedule(s->pump_bh);
    }
    return req ? &req->job : NULL;
}

/* Render thread, renderer lock held: a pulled item is done; charge it */
static void pvgpu_exec_retire(PvgpuRenderJob *job, void *opaque)
{
    PvgpuState *s = opaque;
    PvgpuRequest *req = container_of(job, PvgpuRequest, job);

    qemu_mutex_lock(&s->sched_lock);
    pvgpu_sched_complete(s->sched, &req->item, job->gpu_ns, get_clock());
    s->sched_running--;
    qemu_mutex_unlock(&s->sched_lock);
}

/* May this flush go now, given the scanouts' frame-rate limits? */
static bool flush_allowed(PvgpuState *s, PvgpuRequest *req, uint64_t now,
                          uint64_t *next_ns)
{
    PvgpuRenderJob *job = &req->job;
    uint32_t mask = req->present.gl_mask;
    bool ok = true;

    for (unsigned i = 0; i < job->nreadbacks; i++) {
        mask |= 1u << job->readbacks[i].scanout_id;
    }
    for (unsigned i = 0; i < s->max_outputs; i++) {
        PvgpuFpsLimiter probe = s->fps[i];

        if (mask & (1u << i)) {
            ok &= pvgpu_fps_limiter_flip(&probe, now, next_ns);
        }
    }
    for (unsigned i = 0; i < s->max_outputs && ok; i++) {
        if (mask & (1u << i)) {
            pvgpu_fps_limiter_flip(&s->fps[i], now, next_ns);
        }
    }
    return ok;
}

/* May request @req, which nothing before it holds back, go now? */
static bool may_dispatch(PvgpuState *s, PvgpuRequest *req, uint64_t now,
                         uint64_t *wake)
{
    uint64_t next = 0;

    if (req->unmap || req->map_wait ||
        (req->job.kind == PVGPU_JOB_RESTART && s->releasing)) {
        /* an unmap waits for its region's release (pump_bh) */
        return false;
    }
    if (s->pool && req->elem && !s->draining &&
        !pvgpu_pool_may_run(s->pool)) {
        /* a pool member's renderer work waits for its grant */
        s->pool_held++;
        return false;
    }
    if (req->cmd.hdr.type != PVGPU_CMD_RESOURCE_FLUSH) {
        return true;
    }
    if (req->present.gl_mask && s->gl_blocked) {
        /* the GL display is still busy with the previous frame */
        return false;
    }
    if (!s->draining && !flush_allowed(s, req, now, &next)) {
        *wake = *wake ? MIN(*wake, next) : next;
        return false;
    }
    return true;
}

/*
 * Hand on, in arrival order, every held request that nothing holds back:
 * no earlier request still held, and no work queued in the scheduler,
 * touches what it touches.  A context's work joins the scheduler (only
 * other contexts' queued work holds it back: its own stays in order
 * there), the rest goes to the render thread.
 */
static void pump(PvgpuState *s)
{
    uint64_t now = get_clock(), wake = 0;
    PvgpuDepSet *held = NULL;   /* what the requests left held touch */
    PvgpuRequest *req, *next_req;
    bool kick = false;
    unsigned queued;

    s->pool_held = 0;
    QTAILQ_FOREACH_SAFE(req, &s->held, next, next_req) {
        const PvgpuCmd *cmd = &req->cmd;
        bool context_work = is_context_work(cmd);
        PvgpuContext *ctx = NULL;
        int ret = 0;

        if (held && pvgpu_dep_set_overlaps(held, &req->deps)) {
            goto hold;
        }
        if (context_work) {
            ctx = context_of(s, req);
        }
        qemu_mutex_lock(&s->sched_lock);
        if (pvgpu_dep_counts_conflict(s->sched_deps, context_work,
                                      cmd->hdr.ctx_id, &req->deps)) {
            /* pvgpu_exec_pull() pokes us once that work is pulled */
            s->sched_deps_waiting = true;
            qemu_mutex_unlock(&s->sched_lock);
            goto hold;
        }
        if (context_work) {
            /*
             * Off the held list before the render thread can pull it:
             * pulled, it goes on the inflight list through the same link
             */
            QTAILQ_REMOVE(&s->held, req, next);
            ret = -ENOENT;
            if (ctx) {
                /* before the render thread can see it */
                req->job.scheduled = true;
                ret = pvgpu_sched_enqueue(s->sched, ctx->entity, &req->item,
                                          now);
                if (!ret) {
                    s->sched_queued++;
                    pvgpu_dep_counts_add(s->sched_deps, cmd->hdr.ctx_id,
                                         &req->deps);
                } else {
                    req->job.scheduled = false;
                }
            }
        }
        qemu_mutex_unlock(&s->sched_lock);
        if (context_work) {
            if (ret < 0) {
                uint32_t err = ctx ? PVGPU_RESP_ERR_OUT_OF_MEMORY
                                   : PVGPU_RESP_ERR_INVALID_CONTEXT_ID;

                if (ctx) {
                    pvgpu_quota_refused(s, PVGPU_QUOTA_QUEUED, true, ctx->id,
                                        s->max_queued);
                }
                pvgpu_request_respond(s, req,
                                      pvgpu_cmd_fail(cmd, err,
                                                     "context %u: queue full "
                                                     "or context gone",
                                                     cmd->hdr.ctx_id),
                                      NULL, 0);
            } else {
                /* the render thread pulls it from the scheduler */
                kick = true;
            }
            continue;
        }
        if (may_dispatch(s, req, now, &wake)) {
            QTAILQ_REMOVE(&s->held, req, next);
            dispatch(s, req);
            continue;
        }
hold:
        /* what touches what it touches waits behind it */
        if (!held) {
            held = pvgpu_dep_set_new();
        }
        pvgpu_dep_set_add(held, &req->deps);
    }
    pvgpu_dep_set_free(held);

    qemu_mutex_lock(&s->sched_lock);
    queued = s->sched_queued;
    if (s->sched_wake_ns) {
        wake = wake ? MIN(wake, s->sched_wake_ns) : s->sched_wake_ns;
        s->sched_wake_ns = 0;
    }
    if (kick) {
        /* a render thread with work in flight pulls when it finishes */
        kick = s->sched_running < MAX(s->max_inflight, s->solo_inflight);
    }
    qemu_mutex_unlock(&s->sched_lock);
    if (s->pool) {
        /* a member asks the pool for the GPU, or hands it back */
        pool_update(s);
    }
    if (kick) {
        pvgpu_render_kick(s->renderer);
    }
    trace_pvgpu_pump(!QTAILQ_EMPTY(&s->held) ?
                     pvgpu_cmd_name(QTAILQ_FIRST(&s->held)->cmd.hdr.type) :
                     "-", queued, wake ? wake - now : 0);
    if (wake) {
        timer_mod(s->pump_timer, wake);
    }
}

/*
 * Answers to the guest are DMA, which a guest may aim at the device's own
 * registers (the class of CVE-2024-3446): everything that can answer runs
 * in the virtqueue handlers or in bottom halves under the transport's
 * re-entrancy guard, never straight from a timer or a QMP command.
 */
static void pvgpu_exec_pump_timer(void *opaque)
{
    PvgpuState *s = opaque;

    /* a capped context may go again: the render thread pulls it */
    pvgpu_render_kick(s->renderer);
    qemu_bh_schedule(s->pump_bh);
}

/* What the renderer is to do for @req (its readbacks aside) */
static PvgpuRenderOp *op_set(PvgpuRequest *req, PvgpuOpKind kind,
                             uint32_t ctx_id, uint32_t resource_id)
{
    PvgpuRenderOp *op = &req->job.op;

    op->kind = kind;
    op->ctx_id = ctx_id;
    op->resource_id = resource_id;
    return op;
}

static void submit(PvgpuState *s, PvgpuRequest *req)
{
    /*
     * The guest asked to know when the GPU is done, or the scheduler
     * charges a submission's GPU time
     */
    if ((req->cmd.hdr.flags & PVGPU_FLAG_FENCE) ||
        req->cmd.hdr.type == PVGPU_CMD_SUBMIT_3D) {
        req->job.fence = true;
    }
    if (!req->deps.n) {
        /* nothing said what it touches: then it touches everything */
        pvgpu_deps_add_all(&req->deps);
    }
    QTAILQ_INSERT_TAIL(&s->held, req, next);
    pump(s);
}

PvgpuContext *pvgpu_context_find(PvgpuState *s, uint32_t ctx_id)
{
    return s->contexts ? g_hash_table_lookup(s->contexts,
                                             GUINT_TO_POINTER(ctx_id)) : NULL;
}

/* @format: a 2D resource's PVGPU_FORMAT_*, 0 for a 3D one */
static uint32_t resource_create(PvgpuState *s, PvgpuRequest *req,
                                uint32_t id, uint32_t format, uint32_t width,
                                uint32_t height, uint64_t size)
{
    const PvgpuCmd *cmd = &req->cmd;
    PvgpuResource *res;
    uint32_t err = 0;

    if (!pvgpu_resource_admit(s, cmd, id, &err) ||
        !pvgpu_hostmem_charge(s, cmd, id, size, &err)) {
        return err;
    }
    res = pvgpu_resource_new(s, id, format, width, height, size);
    req->serial = res->serial;
    submit(s, req);
    return 0;
}

static uint32_t capset_info(PvgpuState *s, PvgpuRequest *req)
{
    const PvgpuCmd *cmd = &req->cmd;
    const PvgpuCapset *caps;
    unsigned n = pvgpu_render_capsets(s->renderer, &caps);
    uint32_t i = cmd->u.get_capset_info.capset_index;
    uint8_t resp[PVGPU_CAPSET_INFO_RESP_SIZE];

    if (i >= n) {
        return pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_INVALID_PARAMETER,
                              "capset index %u, device has %u", i, n);
    }
    pvgpu_request_respond(s, req, 0, resp,
                          pvgpu_resp_encode_capset_info(resp, &cmd->hdr,
                                                        caps[i].id,
                                                        caps[i].max_version,
                                                        caps[i].max_size));
    return 0;
}

static const PvgpuCapset *capset_find(PvgpuState *s, uint32_t id)
{
    const PvgpuCapset *caps;
    unsigned n = pvgpu_render_capsets(s->renderer, &caps);

    for (unsigned i = 0; i < n; i++) {
        if (caps[i].id == id) {
            return &caps[i];
        }
    }
    return NULL;
}

static uint32_t capset_get(PvgpuState *s, PvgpuRequest *req)
{
    const PvgpuCmd *cmd = &req->cmd;
    const PvgpuCapset *c = capset_find(s, cmd->u.get_capset.capset_id);
    g_autofree uint8_t *resp = NULL;
    size_t len;

    if (!c || cmd->u.get_capset.capset_version > c->max_version) {
        return pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_INVALID_PARAMETER,
                              "capset %u version %u not supported",
                              cmd->u.get_capset.capset_id,
                              cmd->u.get_capset.capset_version);
    }
    /*
     * virglrenderer fills a capset at its maximum version; older versions
     * are prefixes of it by construction of the virgl caps structures.
     */
    resp = g_malloc(PVGPU_HDR_SIZE + c->max_size);
    len = pvgpu_resp_encode_hdr(resp, &cmd->hdr, PVGPU_RESP_OK_CAPSET);
    memcpy(resp + len, c->data, c->max_size);
    pvgpu_request_respond(s, req, 0, resp, len + c->max_size);
    return 0;
}

/* A context of the guest's, recorded with its scheduling entity */
static PvgpuContext *context_new(PvgpuState *s, uint32_t id,
                                 uint32_t capset_id)
{
    PvgpuContext *ctx = g_new0(PvgpuContext, 1);

    ctx->id = id;
    ctx->capset_id = capset_id;
    ctx->resources = g_hash_table_new(NULL, NULL);
    ctx->pipe_pending = g_array_new(false, false, sizeof(PvgpuPipeResource));
    ctx->s = s;
    qemu_mutex_lock(&s->sched_lock);
    ctx->entity = pvgpu_sched_entity_add(s->sched, ctx->id);
    qemu_mutex_unlock(&s->sched_lock);
    ctx->serial = ++s->context_serial;
    ctx->weight = PVGPU_SCHED_DEFAULT_WEIGHT;
    g_hash_table_insert(s->contexts, GUINT_TO_POINTER(ctx->id), ctx);
    return ctx;
}

static uint32_t ctx_create(PvgpuState *s, PvgpuRequest *req)
{
    const PvgpuCmd *cmd = &req->cmd;
    uint32_t capset = cmd->u.ctx_create.capset_id;
    uint64_t max_contexts = pvgpu_limit(s, PVGPU_SETTING_MAX_CONTEXTS);
    PvgpuRenderOp *op;
    PvgpuContext *ctx;

    if (context_find(s, cmd->hdr.ctx_id)) {
        return pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_INVALID_CONTEXT_ID,
                              "context %u already exists", cmd->hdr.ctx_id);
    }
    if (capset && !capset_find(s, capset)) {
        return pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_INVALID_PARAMETER,
                              "capset %u not supported", capset);
    }
    if (g_hash_table_size(s->contexts) >= max_contexts) {
        pvgpu_quota_refused(s, PVGPU_QUOTA_CONTEXTS, false, 0, max_contexts);
        return pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_OUT_OF_MEMORY,
                              "max-contexts %" PRIu64 " reached",
                              max_contexts);
    }
    ctx = context_new(s, cmd->hdr.ctx_id, capset ?: PVGPU_CAPSET_VIRGL);
    req->serial = ctx->serial;
    trace_pvgpu_ctx_create(ctx->id, ctx->capset_id,
                           cmd->u.ctx_create.debug_name);
    op = op_set(req, PVGPU_OP_CTX_CREATE, ctx->id, 0);
    op->u.ctx_create.capset_id = capset;
    op->u.ctx_create.nlen = cmd->u.ctx_create.nlen;
    op->u.ctx_create.name = cmd->u.ctx_create.debug_name;
    submit(s, req);
    return 0;
}

/*
 * Linux attaches a resource to a context once per GEM handle and detaches
 * it when the handle is closed, so a resource with two handles in one
 * process (drmModeGetFB makes one) is attached twice and detached twice.
 * Attachments are therefore counted: the resource stays usable until the
 * last detach, and only the first attach and the last detach reach the
 * renderer.  (A detach of a resource not attached at all is refused by
 * the caller: a driver that balances its handles never sends one.)
 * Returns whether the renderer must be told.
 */
static bool ctx_attach_count(PvgpuState *s, PvgpuContext *ctx, uint32_t id,
                             bool attach)
{
    gpointer key = GUINT_TO_POINTER(id);
    unsigned n = GPOINTER_TO_UINT(g_hash_table_lookup(ctx->resources, key));

    trace_pvgpu_ctx_attach(ctx->id, id, attach, n);
    if (attach) {
        g_hash_table_insert(ctx->resources, key,
                            GUINT_TO_POINTER(n < UINT_MAX ? n + 1 : n));
        if (n == 0) {
            res_attached(s, id, 1);
        }
        return n == 0;
    }
    assert(n);
    if (n > 1) {
        g_hash_table_insert(ctx->resources, key, GUINT_TO_POINTER(n - 1));
        return false;
    }
    g_hash_table_remove(ctx->resources, key);
    res_attached(s, id, -1);
    return true;
}

/* Can the context of @cmd use @res (spec: only resources attached to it)? */
static bool ctx_may_use(PvgpuState *s, const PvgpuCmd *cmd,
                        PvgpuResource *res, uint32_t *err)
{
    PvgpuContext *ctx;

    if (cmd->hdr.ctx_id == 0) {
        return true;
    }
    ctx = context_find_or_fail(s, cmd, err);
    if (!ctx) {
        return false;
    }
    if (!g_hash_table_contains(ctx->resources, GUINT_TO_POINTER(res->id))) {
        *err = pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_INVALID_RESOURCE_ID,
                              "resource %u is not attached to context %u",
                              res->id, ctx->id);
        return false;
    }
    return true;
}

/* --- blobs ------------------------------------------------------------- */

/*
 * Mapped as the guest sees it: by every MAP_BLOB and UNMAP_BLOB it queued
 * so far, whether or not the renderer has executed them.
 */
static bool blob_mapped(PvgpuResource *res)
{
    return res->map_req ? !res->map_req->unmap_waiter : res->mapping != NULL;
}

static void blob_unmap_begin(PvgpuState *s, PvgpuResource *res,
                             PvgpuRequest *req);

/*
 * An UNMAP_BLOB or UNREF of a mapped blob: the region goes now, or, if
 * the renderer has not answered the MAP_BLOB yet, as soon as it does.
 */
static void blob_unmap_queue(PvgpuState *s, PvgpuResource *res,
                             PvgpuRequest *req)
{
    if (res->map_req) {
        assert(!res->map_req->unmap_waiter);
        res->map_req->unmap_waiter = req;
        req->map_wait = true;
    } else {
        blob_unmap_begin(s, res, req);
    }
}

static uint32_t blob_create(PvgpuState *s, PvgpuRequest *req)
{
    const PvgpuCmd *cmd = &req->cmd;
    const typeof(cmd->u.create_blob) *c = &cmd->u.create_blob;
    /* host memory is the renderer's to allocate; guest memory is not */
    uint64_t hostmem = c->blob_mem == PVGPU_BLOB_MEM_GUEST ? 0 : c->size;
    /* of that, already charged to the context */
    uint64_t charged = 0;
    PvgpuContext *ctx = NULL;
    PvgpuRenderOp *op;
    PvgpuResource *res;
    uint32_t err = 0;
    int claim = -1;

    if (c->blob_mem != PVGPU_BLOB_MEM_GUEST) {
        ctx = context_find_or_fail(s, cmd, &err);
        if (!ctx) {
            return err;
        }
    }
    if (ctx) {
        /*
         * It turns a resource the context's stream created into the
         * guest's: whichever is larger, the size the guest gives or the
         * one the stream asked for, is charged.
         */
        claim = pipe_resource_find(ctx, c->blob_id);
        if (claim >= 0) {
            charged = g_array_index(ctx->pipe_pending, PvgpuPipeResource,
                                    claim).size;
            hostmem = MAX(hostmem, charged);
        }
    }
    if (!pvgpu_resource_admit(s, cmd, c->resource_id, &err) ||
        !pvgpu_hostmem_charge(s, cmd, c->resource_id, hostmem - charged,
                              &err)) {
        return err;
    }
    res = pvgpu_blob_new(s, cmd, &err);
    if (!res) {
        pvgpu_hostmem_release(s, hostmem - charged);
        return err;
    }
    if (claim >= 0) {
        req->pipe_claim = g_array_index(ctx->pipe_pending, PvgpuPipeResource,
                                        claim);
        req->pipe_claimed = true;
        req->ctx_serial = ctx->serial;
        g_array_remove_index(ctx->pipe_pending, claim);
        ctx->pipe_hostmem -= charged;
    }
    res->hostmem = hostmem;
    req->serial = res->serial;
    op = op_set(req, PVGPU_OP_RESOURCE_CREATE_BLOB,
                c->blob_mem == PVGPU_BLOB_MEM_GUEST ? 0 : cmd->hdr.ctx_id,
                c->resource_id);
    op->u.blob.blob_mem = c->blob_mem;
    op->u.blob.blob_flags = c->blob_flags;
    op->u.blob.blob_id = c->blob_id;
    op->u.blob.size = c->size;
    op->iov = res->iov;
    op->niov = res->niov;
    pvgpu_resource_insert(s, res);
    trace_pvgpu_resource_create_blob(c->resource_id, c->blob_mem,
                                     c->blob_flags, c->blob_id, c->size, 0);
    submit(s, req);
    return 0;
}

static uint32_t blob_map(PvgpuState *s, PvgpuRequest *req)
{
    const PvgpuCmd *cmd = &req->cmd;
    uint64_t offset = cmd->u.map_blob.offset;
    PvgpuResource *res, *other;
    GHashTableIter iter;
    uint32_t err = 0;

    res = pvgpu_resource_find_or_fail(s, cmd, cmd->u.map_blob.resource_id,
                                      &err);
    if (!res) {
        return err;
    }
    if (!s->hostmem) {
        return pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_UNSPEC,
                              "the device has no host-visible memory "
                              "(property hostmem)");
    }
    if (res->blob_mem != PVGPU_BLOB_MEM_HOST3D &&
        res->blob_mem != PVGPU_BLOB_MEM_HOST3D_GUEST) {
        return pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_INVALID_PARAMETER,
                              "resource %u is not a host blob", res->id);
    }
    if (!(res->blob_flags & PVGPU_BLOB_FLAG_USE_MAPPABLE) ||
        blob_mapped(res)) {
        return pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_INVALID_PARAMETER,
                              "blob %u is not mappable or already mapped",
                              res->id);
    }
    if (offset % qemu_real_host_page_size() || offset >= s->hostmem ||
        res->blob_size > s->hostmem - offset) {
        return pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_INVALID_PARAMETER,
                              "offset 0x%" PRIx64 " unaligned, or blob %u of "
                              "%" PRIu64 " bytes does not fit in hostmem",
                              offset, res->id, res->blob_size);
    }
    /* regions of one container must not overlap */
    g_hash_table_iter_init(&iter, s->resources);
    while (g_hash_table_iter_next(&iter, NULL, (gpointer *)&other)) {
        if (blob_mapped(other) &&
            offset < other->map_offset + other->blob_size &&
            other->map_offset < offset + res->blob_size) {
            return pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_INVALID_PARAMETER,
                                  "blob %u at 0x%" PRIx64 " overlaps blob "
                                  "%u", res->id, offset, other->id);
        }
    }
    res->map_req = req;
    res->map_offset = offset;
    req->map_res = res;
    op_set(req, PVGPU_OP_MAP, 0, res->id);
    submit(s, req);
    return 0;
}

static void blob_mapping_finalize(Object *obj)
{
    PvgpuBlobMapping *m = container_of(obj, PvgpuBlobMapping, parent_obj);
    PvgpuRequest *req = m->waiter;

    /*
     * The last reference to the region is gone, which may happen on the
     * RCU thread: let the main loop hand the request to the renderer.
     */
    if (req) {
        req->unmap = NULL;
        qemu_bh_schedule(req->s->pump_bh);
    } else if (m->s) {
        /* a reset's renderer restart waits for the last of these */
        m->s->releasing = g_slist_remove(m->s->releasing, m);
        qemu_bh_schedule(m->s->pump_bh);
    } else if (m->renderer) {
        /* the device is gone; its renderer waits for the last of these */
        pvgpu_render_unhold(m->renderer);
    }
}

static const TypeInfo pvgpu_blob_mapping_info = {
    .name = TYPE_PVGPU_BLOB_MAPPING,
    .parent = TYPE_OBJECT,
    .instance_size = sizeof(PvgpuBlobMapping),
    .instance_finalize = blob_mapping_finalize,
};

static void pvgpu_exec_register_types(void)
{
    type_register_static(&pvgpu_blob_mapping_info);
}

type_init(pvgpu_exec_register_types)

/*
 * What a command whose operation the renderer refused is answered:
 * invalid parameters for what it judges itself (a command stream, a 3D
 * resource's or blob's description, a mapping), an unspecified failure
 * otherwise.
 */
static uint32_t renderer_refusal(const PvgpuRenderOp *op)
{
    switch (op->kind) {
    case PVGPU_OP_SUBMIT:
    case PVGPU_OP_RESOURCE_CREATE:
    case PVGPU_OP_RESOURCE_CREATE_BLOB:
    case PVGPU_OP_MAP:
        return PVGPU_RESP_ERR_INVALID_PARAMETER;
    default:
        return PVGPU_RESP_ERR_UNSPEC;
    }
}

/*
 * MAP_BLOB came back from the renderer: show the memory in the BAR, and
 * let an UNMAP_BLOB or UNREF queued after it take it out again.
 */
static uint32_t blob_map_done(PvgpuState *s, PvgpuRequest *req,
                              uint8_t *resp, size_t *resp_len)
{
    const PvgpuRenderJob *job = &req->job;
    const PvgpuCmd *cmd = &req->cmd;
    /*
     * NULL if it was freed meanwhile, which an UNREF of it should not do:
     * it waits for this map (map_wait) or, touching the same resource,
     * for an UNMAP_BLOB that does
     */
    PvgpuResource *res = req->map_res;
    PvgpuRequest *waiter = g_steal_pointer(&req->unmap_waiter);
    uint64_t offset = cmd->u.map_blob.offset;
    g_autofree char *name = NULL;
    PvgpuBlobMapping *m;
    uint32_t err = 0;
    bool oversized = false;

    if (res && res->map_req == req) {
        res->map_req = NULL;
    }
    if (!res) {
        err = pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_INVALID_RESOURCE_ID,
                             "blob %u is gone", cmd->u.map_blob.resource_id);
    } else if (job->failed) {
        err = pvgpu_cmd_fail(cmd, renderer_refusal(&job->op),
                             "the renderer cannot map blob %u",
                             res->id);
    } else if (job->map_size > s->hostmem - offset ||
               job->map_size > res->blob_size + qemu_real_host_page_size()) {
        oversized = true;
        err = pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_INVALID_PARAMETER,
                             "blob %u maps %" PRIu64 " bytes, more than fit",
                             res->id, job->map_size);
    }
    /*
     * The request waiting for this map is still held (map_wait stops the
     * pump at it): settle it before anything below pumps again
     */
    if (waiter) {
        waiter->map_wait = false;
    }
    if (err && waiter &&
        waiter->cmd.hdr.type == PVGPU_CMD_RESOURCE_UNMAP_BLOB) {
        /* what it would have seen had it come after the failure */
        uint32_t unmap_err = pvgpu_cmd_fail(
            &waiter->cmd, PVGPU_RESP_ERR_INVALID_PARAMETER,
            "blob %u is not mapped: its MAP_BLOB failed",
            cmd->u.map_blob.resource_id);

        QTAILQ_REMOVE(&s->held, waiter, next);
        pvgpu_request_respond(s, waiter, unmap_err, NULL, 0);
    }
    if (oversized) {
        /* the renderer mapped it: it unmaps it again, in order */
        PvgpuRequest *unmap = g_new0(PvgpuRequest, 1);

        unmap->s = s;
        unmap->cmd.hdr.type = PVGPU_CMD_RESOURCE_UNMAP_BLOB;
        unmap->cmd.u.resource.resource_id = res->id;
        op_set(unmap, PVGPU_OP_UNMAP, 0, res->id);
        deps_resource(s, &unmap->deps, res->id);
        submit(s, unmap);
    }
    if (err) {
        return err;
    }
    m = PVGPU_BLOB_MAPPING_CAST(object_new(TYPE_PVGPU_BLOB_MAPPING));
    name = g_strdup_printf("blob[%u]", res->id);
    object_property_add_child(OBJECT(s), name, OBJECT(m));
    object_unref(OBJECT(m));
    memory_region_init_ram_ptr(&m->mr, OBJECT(m), "pvgpu-blob",
                               job->map_size, job->map_ptr);
    memory_region_add_subregion(&s->hostmem_bar, offset, &m->mr);
    res->mapping = m;
    trace_pvgpu_blob_map(res->id, offset, job->map_size,
                         job->map_info);
    if (waiter) {
        blob_unmap_begin(s, res, waiter);
    }
    *resp_len = pvgpu_resp_encode_map_info(resp, &cmd->hdr,
                                           job->map_info &
                                           PVGPU_MAP_CACHE_MASK);
    return 0;
}

/* A reset took @m out: the renderer restarts once it is released */
static void blob_mapping_orphan(PvgpuState *s, PvgpuBlobMapping *m)
{
    m->waiter = NULL;
    m->s = s;
    s->releasing = g_slist_prepend(s->releasing, m);
}

/*
 * Take @res's memory out of the BAR.  The renderer may free it only once
 * the region is released (nothing, not even an in-flight access through
 * an old memory map, can reach it): @req (UNMAP_BLOB or UNREF; NULL on
 * reset) waits for that.
 */
static void blob_unmap_begin(PvgpuState *s, PvgpuResource *res,
                             PvgpuRequest *req)
{
    PvgpuBlobMapping *m = g_steal_pointer(&res->mapping);

    trace_pvgpu_blob_unmap(res->id, m->mr.addr);
    m->waiter = req;
    if (req) {
        req->unmap = m;
    } else {
        blob_mapping_orphan(s, m);
    }
    memory_region_del_subregion(&s->hostmem_bar, &m->mr);
    object_unparent(OBJECT(m));
}

static void pvgpu_exec_pump_bh(void *opaque)
{
    pump(opaque);
}

static uint32_t exec(PvgpuState *s, PvgpuRequest *req)
{
    PvgpuRenderJob *job = &req->job;
    const PvgpuCmd *cmd = &req->cmd;
    PvgpuRenderOp *op;
    PvgpuResource *res;
    PvgpuContext *ctx;
    uint32_t err = 0;

    /* before this command changes anything */
    deps_of(s, req);
    switch (cmd->hdr.type) {
    case PVGPU_CMD_GET_CAPSET_INFO:
        return capset_info(s, req);
    case PVGPU_CMD_GET_CAPSET:
        return capset_get(s, req);

    case PVGPU_CMD_CTX_CREATE:
        return ctx_create(s, req);
    case PVGPU_CMD_CTX_DESTROY:
        ctx = context_find_or_fail(s, cmd, &err);
        if (!ctx) {
            return err;
        }
        /*
         * Gone for the guest now; the work it queued before still runs
         * first (this touches the context), then the context and its
         * scheduling entity go (dispatch()).  Until then its attachments
         * still order commands on its resources after that work.
         */
        g_hash_table_steal(s->contexts, GUINT_TO_POINTER(ctx->id));
        g_hash_table_insert(s->dying, &ctx->serial, ctx);
        req->dying = ctx;
        /* the renderer has nothing of a context it refused */
        op_set(req, ctx->refused ? PVGPU_OP_NONE : PVGPU_OP_CTX_DESTROY,
               ctx->id, 0);
        submit(s, req);
        return 0;
    case PVGPU_CMD_CTX_ATTACH_RESOURCE:
    case PVGPU_CMD_CTX_DETACH_RESOURCE:
        ctx = context_find_or_fail(s, cmd, &err);
        res = ctx ? pvgpu_resource_find_or_fail(s, cmd,
                                                cmd->u.resource.resource_id,
                                                &err) : NULL;
        if (!res) {
            return err;
        }
        if (cmd->hdr.type == PVGPU_CMD_CTX_DETACH_RESOURCE &&
            !g_hash_table_contains(ctx->resources,
                                   GUINT_TO_POINTER(res->id))) {
            return pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_INVALID_RESOURCE_ID,
                                  "resource %u is not attached to context %u",
                                  res->id, ctx->id);
        }
        if (!ctx_attach_count(s, ctx, res->id,
                              cmd->hdr.type == PVGPU_CMD_CTX_ATTACH_RESOURCE)) {
            /* the renderer's view does not change */
            pvgpu_request_respond(s, req, 0, NULL, 0);
            return 0;
        }
        op_set(req, cmd->hdr.type == PVGPU_CMD_CTX_ATTACH_RESOURCE ?
                    PVGPU_OP_CTX_ATTACH : PVGPU_OP_CTX_DETACH,
               ctx->id, res->id);
        submit(s, req);
        return 0;

    case PVGPU_CMD_RESOURCE_CREATE_2D:
        op = op_set(req, PVGPU_OP_RESOURCE_CREATE_2D, 0,
                    cmd->u.create_2d.resource_id);
        op->u.create.format = cmd->u.create_2d.format;
        op->u.create.width = cmd->u.create_2d.width;
        op->u.create.height = cmd->u.create_2d.height;
        return resource_create(s, req, cmd->u.create_2d.resource_id,
                               cmd->u.create_2d.format,
                               cmd->u.create_2d.width,
                               cmd->u.create_2d.height,
                               (uint64_t)cmd->u.create_2d.width *
                               cmd->u.create_2d.height *
                               pvgpu_format_bpp(cmd->u.create_2d.format));
    case PVGPU_CMD_RESOURCE_CREATE_3D: {
        const PvgpuResource3dInfo *c = &cmd->u.create_3d.info;

        op = op_set(req, PVGPU_OP_RESOURCE_CREATE, 0,
                    cmd->u.create_3d.resource_id);
        op->u.create = *c;
        return resource_create(s, req, cmd->u.create_3d.resource_id, 0,
                               c->width, c->height,
                               pvgpu_resource_3d_size(c->target, c->width,
                                                      c->height, c->depth,
                                                      c->array_size,
                                                      c->last_level,
                                                      c->nr_samples));
    }

    case PVGPU_CMD_RESOURCE_UNREF:
        res = pvgpu_resource_find_or_fail(s, cmd, cmd->u.resource.resource_id,
                                          &err);
        if (!res) {
            return err;
        }
        /* gone for the guest now; freed once the renderer let go of it */
        op = op_set(req, res->refused ? PVGPU_OP_NONE :
                                        PVGPU_OP_RESOURCE_UNREF, 0, res->id);
        op->u.unref.unmap_first = blob_mapped(res);
        if (blob_mapped(res)) {
            blob_unmap_queue(s, res, req);
        }
        pvgpu_scanout_detach_resource(s, res);
        contexts_forget_resource(s, res->id);
        pvgpu_resource_remove(s, res);
        req->res = res;
        submit(s, req);
        return 0;

    case PVGPU_CMD_RESOURCE_ATTACH_BACKING:
        err = pvgpu_backing_attach(s, cmd, &res);
        if (err) {
            return err;
        }
        op = op_set(req, PVGPU_OP_BACKING_ATTACH, 0, res->id);
        op->iov = res->iov;
        op->niov = res->niov;
        req->serial = res->serial;
        submit(s, req);
        return 0;

    case PVGPU_CMD_RESOURCE_DETACH_BACKING:
        res = pvgpu_resource_with_backing(s, cmd, cmd->u.resource.resource_id,
                                          &err);
        if (!res) {
            return err;
        }
        /* unmapped once the renderer has detached it */
        req->iov = g_steal_pointer(&res->iov);
        req->niov = res->niov;
        res->niov = 0;
        pvgpu_backing_free(s, res);
        op_set(req, PVGPU_OP_BACKING_DETACH, 0, res->id);
        submit(s, req);
        return 0;

    case PVGPU_CMD_TRANSFER_TO_HOST_2D: {
        const typeof(cmd->u.transfer_2d) *t = &cmd->u.transfer_2d;

        res = pvgpu_check_transfer_2d(s, cmd, &err);
        if (!res) {
            return err;
        }
        if (res->blob_mem) {
            /* the guest's memory is the resource (Linux's dumb buffers) */
            pvgpu_request_respond(s, req, 0, NULL, 0);
            return 0;
        }
        op = op_set(req, PVGPU_OP_TRANSFER_WRITE, 0, res->id);
        op->u.transfer.box = (PvgpuBox) {
            .x = t->r.x, .y = t->r.y, .w = t->r.width, .h = t->r.height,
            .d = 1,
        };
        op->u.transfer.offset = t->offset;
        submit(s, req);
        return 0;
    }

    case PVGPU_CMD_TRANSFER_TO_HOST_3D:
    case PVGPU_CMD_TRANSFER_FROM_HOST_3D:
        res = pvgpu_resource_with_backing(s, cmd,
                                          cmd->u.transfer_3d.resource_id,
                                          &err);
        if (!res || !ctx_may_use(s, cmd, res, &err)) {
            return err;
        }
        if (cmd->hdr.ctx_id) {
            req->ctx_serial = context_find(s, cmd->hdr.ctx_id)->serial;
        }
        /* levels, layers and the backing's bounds are virglrenderer's */
        op = op_set(req, cmd->hdr.type == PVGPU_CMD_TRANSFER_TO_HOST_3D ?
                         PVGPU_OP_TRANSFER_WRITE : PVGPU_OP_TRANSFER_READ,
                    cmd->hdr.ctx_id, res->id);
        op->u.transfer.box = cmd->u.transfer_3d.box;
        op->u.transfer.offset = cmd->u.transfer_3d.offset;
        op->u.transfer.level = cmd->u.transfer_3d.level;
        op->u.transfer.stride = cmd->u.transfer_3d.stride;
        op->u.transfer.layer_stride = cmd->u.transfer_3d.layer_stride;
        submit(s, req);
        return 0;

    case PVGPU_CMD_SUBMIT_3D:
        ctx = context_find_or_fail(s, cmd, &err);
        if (!ctx) {
            return err;
        }
        err = pipe_resources_admit(s, ctx, cmd);
        if (err) {
            return err;
        }
        req->ctx_serial = ctx->serial;
        if (!ctx->used) {
            /* from now on it holds GL state virglrenderer cannot save */
            ctx->used = true;
            s->contexts_used++;
        }
        trace_pvgpu_submit_3d(cmd->hdr.ctx_id, cmd->u.submit_3d.size,
                              cmd->hdr.fence_id);
        op = op_set(req, PVGPU_OP_SUBMIT, ctx->id, 0);
        op->u.submit.dwords = (const uint32_t *)cmd->u.submit_3d.data;
        op->u.submit.ndw = cmd->u.submit_3d.size / 4;
        submit(s, req);
        return 0;

    case PVGPU_CMD_SET_SCANOUT: {
        const typeof(cmd->u.set_scanout) *c = &cmd->u.set_scanout;

        res = pvgpu_scanout_target(s, cmd, c->scanout_id, c->resource_id,
                                   &c->r, &err);
        if (!res) {
            if (!err) {
                /* disabled */
                pvgpu_request_respond(s, req, 0, NULL, 0);
            }
            return err;
        }
        if (!pvgpu_scanout_set_3d(s, c->scanout_id, res, &c->r)) {
            job->readbacks[0] = (PvgpuReadback) {
                .scanout_id = c->scanout_id, .resource_id = res->id,
                .r = c->r,
                .want_dmabuf = pvgpu_scanout_wants_dmabuf(s, c->scanout_id),
            };
            job->nreadbacks = 1;
        }
        submit(s, req);
        return 0;
    }

    case PVGPU_CMD_RESOURCE_FLUSH:
        res = pvgpu_check_flush(s, cmd, &err);
        if (!res) {
            return err;
        }
        req->present.resource_id = res->id;
        req->present.r = cmd->u.flush.r;
        if (res->blob_mem) {
            /* guest memory, shown once the work before the flush is done */
            req->present.blob = true;
            submit(s, req);
            return 0;
        }
        for (uint32_t i = 0; i < s->max_outputs; i++) {
            PvgpuReadback *rb = &job->readbacks[job->nreadbacks];

            if (!(res->scanout_bitmask & (1u << i)) ||
                !pvgpu_rect_intersect(&cmd->u.flush.r, &s->scanouts[i].r,
                                      &rb->r)) {
                continue;
            }
            if (s->scanouts[i].dmabuf) {
                /* the display reads the texture once the GPU is done */
                req->present.gl_mask |= 1u << i;
                job->fence = true;
                continue;
            }
            rb->scanout_id = i;
            rb->resource_id = res->id;
            job->nreadbacks++;
        }
        submit(s, req);
        return 0;

    case PVGPU_CMD_RESOURCE_CREATE_BLOB:
        return blob_create(s, req);
    case PVGPU_CMD_RESOURCE_MAP_BLOB:
        return blob_map(s, req);
    case PVGPU_CMD_RESOURCE_UNMAP_BLOB:
        res = pvgpu_resource_find_or_fail(s, cmd, cmd->u.resource.resource_id,
                                          &err);
        if (!res) {
            return err;
        }
        if (!blob_mapped(res)) {
            return pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_INVALID_PARAMETER,
                                  "blob %u is not mapped", res->id);
        }
        blob_unmap_queue(s, res, req);
        op_set(req, PVGPU_OP_UNMAP, 0, res->id);
        submit(s, req);
        return 0;
    case PVGPU_CMD_SET_SCANOUT_BLOB:
        err = pvgpu_set_scanout_blob(s, cmd);
        if (err) {
            return err;
        }
        /* shown again once the work before it is done */
        req->present.resource_id = cmd->u.set_scanout_blob.resource_id;
        req->present.r = cmd->u.set_scanout_blob.r;
        req->present.blob = req->present.resource_id != 0;
        submit(s, req);
        return 0;

    default: {
        /* display info, EDID and UUIDs need no renderer */
        uint8_t resp[PVGPU_MAX_RESP_SIZE];
        size_t len;

        err = pvgpu_info_exec(s, cmd, resp, &len);
        if (!err) {
            pvgpu_request_respond(s, req, 0, resp, len);
        }
        return err;
    }
    }
}

void pvgpu_exec_submit(PvgpuState *s, PvgpuRequest *req)
{
    uint32_t err = exec(s, req);

    if (err) {
        pvgpu_request_respond(s, req, err, NULL, 0);
    }
    migration_update(s);
}

bool pvgpu_3d_available(PvgpuState *s)
{
    return s->virgl_renderer && !pvgpu_render_broken(s->virgl_renderer);
}

/*
 * After a reset the renderer may have failed to start again, or its
 * render process died: the device goes on without 3D, and says so
 * (query-pvgpu, PVGPU_3D_UNAVAILABLE); a process started again by a reset
 * brings 3D back.
 */
static void renderer_check(PvgpuState *s)
{
    g_autofree char *why = NULL;

    if (!s->virgl_renderer) {
        return;
    }
    why = pvgpu_render_broken_why(s->virgl_renderer);
    if (why && g_strcmp0(why, s->virgl_unavailable)) {
        pvgpu_3d_unavailable(s, why);
    } else if (!why && s->virgl_unavailable) {
        trace_pvgpu_3d_available();
        g_clear_pointer(&s->virgl_unavailable, g_free);
    }
}

/*
 * The renderer refused a CREATE_BLOB that claimed a resource of its
 * context's streams: that stays the context's (the renderer frees it with
 * the context), and so does its charge, even above a lowered
 * max_hostmem.  @res: the blob, unless the guest unreffed it already (its
 * charge, with the claim's, was or will be released with it).
 */
static void claim_keep(PvgpuState *s, PvgpuRequest *req, PvgpuResource *res)
{
    PvgpuContext *ctx = context_by_serial(s, req->job.op.ctx_id,
                                          req->ctx_serial);
    uint64_t size = req->pipe_claim.size;

    if (!ctx) {
        /* gone, and what its streams made with it */
        return;
    }
    g_array_prepend_val(ctx->pipe_pending, req->pipe_claim);
    ctx->pipe_hostmem += size;
    if (res) {
        res->hostmem -= size;
    } else {
        pvgpu_hostmem_restore(s, size);
    }
}

/*
 * A creation the renderer refused.  The record stays, as the guest's id
 * stays taken until it unrefs or destroys it (Linux only logs the error
 * response); marked refused, it takes that command only, and the
 * renderer is not asked about it again.  Nothing else is taken back: a
 * command that was committed behind it (an ATTACH_BACKING, a SET_SCANOUT)
 * stays committed, and the renderer refuses what it cannot do with it.
 */
static void job_refused(PvgpuState *s, PvgpuRequest *req)
{
    const PvgpuRenderOp *op = &req->job.op;
    PvgpuResource *res;
    PvgpuContext *ctx;

    switch (op->kind) {
    case PVGPU_OP_RESOURCE_CREATE_2D:
    case PVGPU_OP_RESOURCE_CREATE:
    case PVGPU_OP_RESOURCE_CREATE_BLOB:
        /* not a later resource with the same id */
        res = pvgpu_resource_find(s, op->resource_id);
        if (res && res->serial != req->serial) {
            res = NULL;
        }
        if (res) {
            trace_pvgpu_refused(res->id, 0);
            pvgpu_resource_refuse(s, res);
        }
        if (req->pipe_claimed) {
            claim_keep(s, req, res);
        }
        break;
    case PVGPU_OP_CTX_CREATE:
        ctx = context_find(s, op->ctx_id);
        if (ctx && ctx->serial == req->serial) {
            trace_pvgpu_refused(0, ctx->id);
            ctx->refused = true;
            /* its streams, all refused, left no GL state */
            s->contexts_used -= ctx->used;
            ctx->used = false;
        }
        break;
    default:
        /* nothing the device recorded depends on it */
        break;
    }
}

static void pvgpu_exec_job_done(PvgpuRenderJob *job, void *opaque)
{
    PvgpuState *s = opaque;
    PvgpuRequest *req = request_for_job(job);
    const PvgpuCmd *cmd = &req->cmd;
    uint32_t err = job->failed ? renderer_refusal(&job->op) : 0;
    uint8_t resp[PVGPU_MAX_RESP_SIZE];
    size_t resp_len = 0;
    bool cancelled;

    qemu_mutex_lock(&s->sched_lock);
    QTAILQ_REMOVE(&s->inflight, req, next);
    if (job->scheduled && !job->retired) {
        /* dropped by a reset before it ran */
        pvgpu_sched_complete(s->sched, &req->item, job->gpu_ns, get_clock());
        s->sched_running--;
    }
    qemu_mutex_unlock(&s->sched_lock);
    if (job->kind == PVGPU_JOB_RESTART ||
        (job->failed && s->renderer == s->virgl_renderer)) {
        renderer_check(s);
    }
    if (job->op.kind == PVGPU_OP_MAP && !job->cancelled) {
        err = blob_map_done(s, req, resp, &resp_len);
        pvgpu_request_respond(s, req, err, resp, resp_len);
        pump(s);
        return;
    }
    for (uint32_t i = 0; i < s->max_outputs && !job->cancelled; i++) {
        if (req->present.gl_mask & (1u << i)) {
            pvgpu_scanout_gl_update(s, i, req->present.resource_id,
                                    &req->present.r);
        }
    }
    if (req->present.blob && !job->cancelled) {
        PvgpuResource *res = pvgpu_resource_find(s, req->present.resource_id);

        if (res && res->blob_mem) {
            pvgpu_scanout_flush(s, res, &req->present.r);
        }
    }
    if (!err && !job->cancelled &&
        cmd->hdr.type == PVGPU_CMD_RESOURCE_FLUSH) {
        s->frames++;
    }
    if (err && !job->cancelled) {
        pvgpu_cmd_fail(cmd, err, "the renderer refused it");
        if (cmd->hdr.ctx_id) {
            PvgpuContext *ctx = pvgpu_context_find(s, cmd->hdr.ctx_id);

            if (ctx) {
                ctx->errors++;
            }
            pvgpu_context_error(s, cmd->hdr.ctx_id, cmd->hdr.type);
        }
        job_refused(s, req);
        /* what the renderer refused does not hold migration back */
        migration_update(s);
    }
    request_release(s, req);
    for (unsigned i = 0; i < job->nreadbacks && !job->cancelled; i++) {
        if (!job->readbacks[i].ok) {
            continue;
        }
        if (job->kind == PVGPU_JOB_READBACK) {
            pvgpu_cursor_present(s, job->readbacks[i].scanout_id,
                                 &job->readbacks[i]);
        } else {
            pvgpu_scanout_present(s, &job->readbacks[i]);
        }
    }
    pvgpu_render_job_clear(job);

    /* req, and job in it, are freed below */
    cancelled = job->cancelled;
    if (cancelled || !req->elem) {
        pvgpu_request_free(req);
    } else {
        pvgpu_request_respond(s, req, err, NULL, 0);
    }
    if (!cancelled) {
        pump(s);
    }
}

/* The cursor image of @res is the renderer's: defined once read back */
static void cursor_readback(PvgpuState *s, uint32_t scanout_id,
                            PvgpuResource *res)
{
    PvgpuRequest *req = g_new0(PvgpuRequest, 1);

    req->s = s;
    req->job.kind = PVGPU_JOB_READBACK;
    req->job.readbacks[0] = (PvgpuReadback) {
        .scanout_id = scanout_id, .resource_id = res->id,
        .r = { 0, 0, res->width, res->height },
    };
    req->job.nreadbacks = 1;
    deps_resource(s, &req->deps, res->id);
    submit(s, req);
}

/*
 * Cursor queue commands have no response (spec 5.7.6.10); errors are
 * only logged.
 */
void pvgpu_exec_cursor(PvgpuState *s, const PvgpuCmd *cmd)
{
    const typeof(cmd->u.cursor) *c = &cmd->u.cursor;
    PvgpuResource *res = NULL;
    uint32_t err;

    trace_pvgpu_cursor(pvgpu_cmd_name(cmd->hdr.type), c->scanout_id,
                       c->resource_id, c->x, c->y);
    if (c->scanout_id >= s->max_outputs) {
        pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_INVALID_SCANOUT_ID,
                 "scanout %u, device has %u", c->scanout_id, s->max_outputs);
        return;
    }
    if (cmd->hdr.type == PVGPU_CMD_UPDATE_CURSOR && c->resource_id) {
        res = pvgpu_resource_find_or_fail(s, cmd, c->resource_id, &err);
        if (!res) {
            return;
        }
        if (res->blob_mem == PVGPU_BLOB_MEM_GUEST) {
            /*
             * A blob has no size of its own: like Linux's cursor plane,
             * take it as a PVGPU_CURSOR_SIZE square of 4-byte pixels
             */
            if (res->backing_size < PVGPU_CURSOR_BLOB_BYTES ||
                c->hot_x >= PVGPU_CURSOR_SIZE ||
                c->hot_y >= PVGPU_CURSOR_SIZE) {
                pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_INVALID_PARAMETER,
                               "cursor blob %u holds %" PRIu64 " bytes of "
                               "guest memory (needs %u) or hotspot %u,%u is "
                               "outside it", res->id, res->backing_size,
                               PVGPU_CURSOR_BLOB_BYTES, c->hot_x, c->hot_y);
                return;
            }
        } else if (res->width > 256 || res->height > 256 ||
                   c->hot_x >= res->width || c->hot_y >= res->height) {
            pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_INVALID_PARAMETER,
                     "cursor resource %u is %ux%u with hotspot %u,%u",
                     res->id, res->width, res->height, c->hot_x, c->hot_y);
            return;
        }
    }
    s->scanouts[c->scanout_id].cursor_x = c->x;
    s->scanouts[c->scanout_id].cursor_y = c->y;
    if (cmd->hdr.type == PVGPU_CMD_UPDATE_CURSOR) {
        s->scanouts[c->scanout_id].cursor_hot_x = c->hot_x;
        s->scanouts[c->scanout_id].cursor_hot_y = c->hot_y;
    }
    if (res && res->blob_mem != PVGPU_BLOB_MEM_GUEST) {
        /* the image is the renderer's: defined when read back */
        s->scanouts[c->scanout_id].cursor_resource_id = res->id;
        cursor_readback(s, c->scanout_id, res);
        return;
    }
    pvgpu_scanout_cursor(s, c->scanout_id, res,
                         cmd->hdr.type == PVGPU_CMD_UPDATE_CURSOR);
}


/* How long stopping the VM waits for the guest's requests at most */
#define DRAIN_MAX_NS (5 * NANOSECONDS_PER_SECOND)

/*
 * The VM stops (migration, savevm, stop): a guest's requests are all
 * answered now, the frame-rate limit and the pool's grant notwithstanding,
 * for a request popped but not answered would be lost with the saved
 * state.  Runs after virtio's own handler, which pops what the guest
 * notified last.  A guest whose contexts ran command streams cannot be
 * migrated: its work goes on, and is not waited for.
 */
static void pvgpu_exec_vm_state_change(void *opaque, bool running,
                                       RunState state)
{
    PvgpuState *s = opaque;
    PvgpuRenderJob barrier = { .kind = PVGPU_JOB_OP };
    int64_t deadline = get_clock() + DRAIN_MAX_NS;
    bool busy;

    if (running || s->contexts_used) {
        return;
    }
    qatomic_set(&s->draining, true);
    for (;;) {
        pump(s);
        /* returns once everything handed over before is done */
        pvgpu_render_run(s->renderer, &barrier);
        if (pvgpu_render_complete(s->renderer)) {
            continue;
        }
        /* a context's transfers are pulled by the render thread */
        qemu_mutex_lock(&s->sched_lock);
        busy = s->sched_queued || s->sched_running;
        qemu_mutex_unlock(&s->sched_lock);
        if (!busy) {
            break;
        }
        if (get_clock() > deadline) {
            warn_report("pvgpu: requests still unanswered as the VM stops");
            break;
        }
        pvgpu_render_kick(s->renderer);
        g_usleep(100);
    }
    qatomic_set(&s->draining, false);
}

/* --- migration ----------------------------------------------------------- */

static gint compare_ids(gconstpointer a, gconstpointer b)
{
    return GPOINTER_TO_UINT(a) < GPOINTER_TO_UINT(b) ? -1 :
           GPOINTER_TO_UINT(a) > GPOINTER_TO_UINT(b);
}

static void context_note_used(PvgpuContext *ctx, void *opaque)
{
    GList **ids = opaque;

    if (ctx->used) {
        *ids = g_list_insert_sorted(*ids, GUINT_TO_POINTER(ctx->id),
                                    compare_ids);
    }
}

/*
 * Why the guest's state cannot be migrated now, or NULL if it can: state
 * that only virglrenderer holds and cannot save, the GL state of contexts
 * that ran command streams, 3D resources and host-memory blobs.  What
 * else a 3D guest has moves: 2D resources and guest-memory blobs are
 * read back and recreated on the destination (pvgpu-resource.c), and so
 * are contexts that never ran a command stream, with their attachments
 * (Linux creates one for every DRM client, fbcon's among them).
 */
char *pvgpu_exec_migration_blocker(PvgpuState *s)
{
    g_autoptr(GList) ids = NULL;
    g_autofree char *label = NULL;
    unsigned n = 0;
    GString *why;

    if (!s->contexts_used && !s->resources_3d) {
        return NULL;
    }
    label = pvgpu_device_label(s);
    why = g_string_new(NULL);
    g_string_printf(why, "pvgpu %s: virglrenderer cannot save the guest's "
                    "3D state (", label);
    if (s->contexts_used) {
        contexts_foreach(s, context_note_used, &ids);
        g_string_append_printf(why, "%u 3D context%s with GL state",
                               s->contexts_used,
                               s->contexts_used == 1 ? "" : "s");
        for (GList *l = ids; l && n < 8; l = l->next, n++) {
            g_string_append_printf(why, "%s%u", n ? ", " : ": ids ",
                                   GPOINTER_TO_UINT(l->data));
        }
        if (g_list_length(ids) > n) {
            g_string_append(why, ", ...");
        }
    }
    if (s->resources_3d) {
        g_string_append_printf(why, "%s%u 3D resource%s",
                               s->contexts_used ? "; " : "",
                               s->resources_3d,
                               s->resources_3d == 1 ? "" : "s");
    }
    g_string_append(why, "); it can be migrated again once the guest has "
                    "closed them");
    return g_string_free(why, false);
}

/*
 * Keep the migration blocker in step with the guest's 3D state (after
 * every command and reset).  While a migration runs no blocker can be
 * added: a context that runs a command stream then fails the migration
 * in pvgpu_exec_pre_save() instead.
 */
static void migration_update(PvgpuState *s)
{
    uint64_t key = (uint64_t)s->contexts_used << 32 | s->resources_3d;
    g_autofree char *why = NULL;
    Error *err = NULL;

    if (key == s->blocker_key) {
        return;
    }
    if (s->migration_blocker) {
        migrate_del_blocker(&s->migration_blocker);
    }
    s->blocker_key = 0;
    if (!key || migration_is_running()) {
        return;
    }
    why = pvgpu_exec_migration_blocker(s);
    error_setg(&s->migration_blocker, "%s", why);
    if (migrate_add_blocker(&s->migration_blocker, &err) < 0) {
        /* only -only-migratable, which pvgpu_exec_set_features() checked */
        warn_report_err(err);
        return;
    }
    s->blocker_key = key;
}

int pvgpu_exec_pre_save(PvgpuState *s)
{
    g_autofree char *why = pvgpu_exec_migration_blocker(s);

    if (why) {
        error_report("%s", why);
        return -EBUSY;
    }
    return 0;
}

/* What migrates: contexts and attachments the renderer did not refuse */
static bool attachment_migrates(PvgpuState *s, gpointer key)
{
    PvgpuResource *res = pvgpu_resource_find(s, GPOINTER_TO_UINT(key));

    return res && !res->refused;
}

static uint32_t contexts_migrating(PvgpuState *s)
{
    GHashTableIter iter;
    gpointer value;
    uint32_t n = 0;

    g_hash_table_iter_init(&iter, s->contexts);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        n += !((PvgpuContext *)value)->refused;
    }
    return n;
}

static uint32_t attachments_migrating(PvgpuState *s, PvgpuContext *ctx)
{
    GHashTableIter iter;
    gpointer key;
    uint32_t n = 0;

    g_hash_table_iter_init(&iter, ctx->resources);
    while (g_hash_table_iter_next(&iter, &key, NULL)) {
        n += attachment_migrates(s, key);
    }
    return n;
}

/*
 * Stream: the guest's contexts, none of which ran a command stream (the
 * VM stopped, their CTX_DESTROYs done): per context its id, capset,
 * scheduling settings and attachments (resource id, count).  Recorded on
 * load, created on the renderer by pvgpu_exec_post_load().
 */
static int pvgpu_contexts_put(QEMUFile *f, void *pv, size_t size,
                              const VMStateField *field, JSONWriter *vmdesc)
{
    PvgpuState *s = pv;
    GHashTableIter iter, ri;
    gpointer value, key, count;

    if (s->contexts_used || g_hash_table_size(s->dying)) {
        error_report("pvgpu: 3D contexts with GL state cannot be migrated");
        return -EINVAL;
    }
    /*
     * Not what the renderer refused to create: nothing of it is left to
     * move (the guest's CTX_DESTROY or UNREF of it fails there)
     */
    qemu_put_be32(f, contexts_migrating(s));
    g_hash_table_iter_init(&iter, s->contexts);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        PvgpuContext *ctx = value;

        if (ctx->refused) {
            continue;
        }
        qemu_put_be32(f, ctx->id);
        qemu_put_be32(f, ctx->capset_id);
        qemu_put_be32(f, ctx->weight);
        qemu_put_be32(f, ctx->cap);
        qemu_put_be32(f, ctx->priority);
        qemu_put_be32(f, attachments_migrating(s, ctx));
        g_hash_table_iter_init(&ri, ctx->resources);
        while (g_hash_table_iter_next(&ri, &key, &count)) {
            if (!attachment_migrates(s, key)) {
                continue;
            }
            qemu_put_be32(f, GPOINTER_TO_UINT(key));
            qemu_put_be32(f, GPOINTER_TO_UINT(count));
        }
    }
    return 0;
}

static int pvgpu_contexts_get(QEMUFile *f, void *pv, size_t size,
                              const VMStateField *field)
{
    PvgpuState *s = pv;
    uint32_t count = qemu_get_be32(f);

    for (uint32_t n = 0; n < count; n++) {
        uint32_t id = qemu_get_be32(f);
        uint32_t capset = qemu_get_be32(f);
        uint32_t weight = qemu_get_be32(f);
        uint32_t cap = qemu_get_be32(f);
        uint32_t priority = qemu_get_be32(f);
        uint32_t nres = qemu_get_be32(f);
        PvgpuContext *ctx;

        if (!id || context_find(s, id) ||
            n >= pvgpu_setting_info(PVGPU_SETTING_MAX_CONTEXTS)->max ||
            (capset != PVGPU_CAPSET_VIRGL && capset != PVGPU_CAPSET_VIRGL2) ||
            !pvgpu_setting_valid(PVGPU_SETTING_WEIGHT, weight) ||
            !pvgpu_setting_valid(PVGPU_SETTING_CAP, cap) ||
            !pvgpu_setting_valid(PVGPU_SETTING_PRIORITY, priority) ||
            nres > g_hash_table_size(s->resources)) {
            error_report("pvgpu: invalid context %u in migration stream", id);
            return -EINVAL;
        }
        ctx = context_new(s, id, capset);
        ctx->weight = weight;
        ctx->cap = cap;
        ctx->priority = priority;
        qemu_mutex_lock(&s->sched_lock);
        pvgpu_sched_entity_set_weight(ctx->entity, weight);
        pvgpu_sched_entity_set_cap(s->sched, ctx->entity, cap, get_clock());
        pvgpu_sched_entity_set_class(s->sched, ctx->entity, priority);
        qemu_mutex_unlock(&s->sched_lock);
        for (uint32_t i = 0; i < nres; i++) {
            uint32_t res_id = qemu_get_be32(f);
            uint32_t attached = qemu_get_be32(f);

            if (!attached || !pvgpu_resource_find(s, res_id) ||
                g_hash_table_contains(ctx->resources,
                                      GUINT_TO_POINTER(res_id))) {
                error_report("pvgpu: invalid attachment of resource %u to "
                             "context %u in migration stream", res_id, id);
                return -EINVAL;
            }
            g_hash_table_insert(ctx->resources, GUINT_TO_POINTER(res_id),
                                GUINT_TO_POINTER(attached));
            res_attached(s, res_id, 1);
        }
    }
    return qemu_file_get_error(f);
}

const VMStateInfo pvgpu_vmstate_contexts = {
    .name = "pvgpu-contexts",
    .get = pvgpu_contexts_get,
    .put = pvgpu_contexts_put,
};

/* Run @op for a context being restored */
static bool context_restore_op(PvgpuState *s, PvgpuContext *ctx,
                               PvgpuOpKind kind, uint32_t res_id)
{
    PvgpuRenderJob job = {
        .kind = PVGPU_JOB_OP,
        .op = { .kind = kind, .ctx_id = ctx->id, .resource_id = res_id },
    };

    if (kind == PVGPU_OP_CTX_CREATE) {
        job.op.u.ctx_create.capset_id = ctx->capset_id;
        job.op.u.ctx_create.name = "pvgpu-migrated";
        job.op.u.ctx_create.nlen = strlen(job.op.u.ctx_create.name);
    }
    return pvgpu_render_run(s->renderer, &job);
}

int pvgpu_exec_post_load(PvgpuState *s)
{
    GHashTableIter iter, ri;
    gpointer value, key;

    g_hash_table_iter_init(&iter, s->contexts);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        PvgpuContext *ctx = value;

        if (pvgpu_render_is_pixman(s->renderer) ||
            !context_restore_op(s, ctx, PVGPU_OP_CTX_CREATE, 0)) {
            error_report("pvgpu: cannot restore 3D context %u on %s",
                         ctx->id, pvgpu_render_describe(s->renderer));
            return -EINVAL;
        }
        g_hash_table_iter_init(&ri, ctx->resources);
        while (g_hash_table_iter_next(&ri, &key, NULL)) {
            if (!context_restore_op(s, ctx, PVGPU_OP_CTX_ATTACH,
                                    GPOINTER_TO_UINT(key))) {
                error_report("pvgpu: cannot attach resource %u to 3D "
                             "context %u", GPOINTER_TO_UINT(key), ctx->id);
                return -EINVAL;
            }
        }
    }
    return 0;
}

/* @r renders the guest's commands from now on, and pulls its work */
static void renderer_activate(PvgpuState *s, PvgpuRenderer *r)
{
    if (s->renderer && s->renderer != r) {
        pvgpu_render_set_source(s->renderer, NULL, NULL, NULL);
    }
    pvgpu_render_set_source(r, pvgpu_exec_pull, pvgpu_exec_retire, s);
    s->renderer = r;
}

static void reset(PvgpuState *s, bool unplug);

/*
 * QEMU is shutting down (a guest power-off, a host signal, quit): nothing
 * will be answered any more, and the host's GL stack is torn down by
 * exit handlers once main() returns.  The render thread must be idle by
 * then (a readback or draw still running in Mesa crashed QEMU on its way
 * out), so drop the work as an unplug does.  A QEMU kept alive by
 * -no-shutdown resets the device before the guest runs again.
 */
static void pvgpu_exec_shutdown(Notifier *n, void *data)
{
    PvgpuState *s = container_of(n, PvgpuState, shutdown_notifier);

    trace_pvgpu_shutdown(g_hash_table_size(s->contexts));
    reset(s, true);
}

/*
 * Start virglrenderer for the device: in a render process when
 * render-process is on, or auto and the process can map the guest's RAM,
 * else in QEMU's process.  False, with @errp set, if none started.
 */
static bool virgl_start(PvgpuState *s, const PvgpuRenderOpts *opts,
                        Error **errp)
{
    bool required = s->render_process == ON_OFF_AUTO_ON;
    Error *why_not = NULL;
    bool remote;

    if (required && s->hostmem) {
        error_setg(errp, "pvgpu: render-process=on: host-visible blobs "
                   "(hostmem) need virglrenderer in QEMU's process");
        return false;
    }
    if (required && !pvgpu_remote_possible(s->render_helper, errp)) {
        error_prepend(errp, "pvgpu: render-process=on: ");
        return false;
    }
    /* auto: a render process unless blobs are mapped or there is none */
    remote = required ||
             (s->render_process == ON_OFF_AUTO_AUTO && !s->hostmem &&
              pvgpu_remote_possible(s->render_helper, &why_not));
    if (remote) {
        s->virgl_renderer = pvgpu_remote_new(opts, s->render_helper,
                                             pvgpu_exec_job_done, s,
                                             required ? errp : &why_not);
        if (s->virgl_renderer || required) {
            return s->virgl_renderer != NULL;
        }
        /* e.g. -sandbox spawn=deny, as libvirt starts QEMU */
    }
    s->virgl_renderer = pvgpu_virgl_new(opts, pvgpu_exec_job_done, s, errp);
    if (s->virgl_renderer && why_not) {
        /* what the user may not know: say it once, at start */
        warn_reportf_err(why_not, "pvgpu: virglrenderer runs in QEMU's "
                         "process, where a guest that crashes it crashes "
                         "QEMU; for a render process, ");
    } else {
        error_free(why_not);
    }
    return s->virgl_renderer != NULL;
}

bool pvgpu_exec_init(PvgpuState *s, Error **errp)
{
    DeviceState *transport = qdev_get_parent_bus(DEVICE(s))->parent;
    PvgpuRenderOpts opts = {
        .render_node = s->render_node,
        .gles = s->gles,
        .hang_ns = (int64_t)s->render_timeout * NANOSECONDS_PER_SECOND,
        /* the transport's: its registers are what DMA could reach */
        .guard = &transport->mem_reentrancy_guard,
    };
    Error *err = NULL;

    /* virgl=auto goes on in 2D, an explicit render-process=on does not */
    if (s->virgl != ON_OFF_AUTO_OFF && !virgl_start(s, &opts, &err) &&
        (s->virgl == ON_OFF_AUTO_ON || s->render_process == ON_OFF_AUTO_ON)) {
        error_propagate(errp, err);
        return false;
    }
    QTAILQ_INIT(&s->inflight);
    QTAILQ_INIT(&s->held);
    qemu_mutex_init(&s->sched_lock);
    s->contexts = g_hash_table_new_full(NULL, NULL, NULL, context_free);
    s->dying = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL,
                                     context_free);
    if (s->virgl == ON_OFF_AUTO_OFF) {
        pvgpu_3d_unavailable(s, "disabled with virgl=off");
    } else if (!s->virgl_renderer) {
        pvgpu_3d_unavailable(s, error_get_pretty(err));
        warn_reportf_err(err, "pvgpu: 3D disabled: ");
    }
    s->sched = pvgpu_sched_new();
    s->sched_deps = pvgpu_dep_counts_new();
    /* a guest is 2D until it negotiates VIRGL (pvgpu_exec_set_features()) */
    s->pixman_renderer = pvgpu_pixman_new(&opts, pvgpu_exec_job_done, s);
    renderer_activate(s, s->pixman_renderer);
    s->shutdown_notifier.notify = pvgpu_exec_shutdown;
    qemu_register_shutdown_notifier(&s->shutdown_notifier);
    s->pump_timer = timer_new_ns(QEMU_CLOCK_REALTIME, pvgpu_exec_pump_timer, s);
    s->pump_bh = virtio_bh_new_guarded(DEVICE(s), pvgpu_exec_pump_bh, s);
    /* below virtio's priority (0): last when the VM stops */
    s->vm_state = qemu_add_vm_change_state_handler_prio(
        pvgpu_exec_vm_state_change, s, -1);
    pvgpu_exec_apply_scheduler(s);
    return true;
}

/* Hand the device's scheduling settings to the scheduler. */
void pvgpu_exec_apply_scheduler(PvgpuState *s)
{
    static const PvgpuSchedPolicy policy[] = {
        [PVGPU_SCHEDULER_POLICY_BEST_EFFORT] = PVGPU_SCHED_BEST_EFFORT,
        [PVGPU_SCHEDULER_POLICY_EQUAL_SHARE] = PVGPU_SCHED_EQUAL_SHARE,
        [PVGPU_SCHEDULER_POLICY_WEIGHTED] = PVGPU_SCHED_WEIGHTED,
    };

    for (unsigned i = 0; i < PVGPU_MAX_SCANOUTS; i++) {
        s->fps[i].max_fps = pvgpu_limit(s, PVGPU_SETTING_MAX_FPS);
    }
    if (!s->sched) {
        return;
    }
    qemu_mutex_lock(&s->sched_lock);
    pvgpu_sched_set_policy(s->sched, policy[s->sched_policy]);
    pvgpu_sched_set_quantum(s->sched, (uint64_t)s->quantum_us * SCALE_US);
    pvgpu_sched_set_batch_quanta(s->sched, s->batch_quanta);
    pvgpu_sched_set_switch_budget(s->sched, s->switch_budget);
    pvgpu_sched_set_queue_limit(s->sched, s->max_queued);
    pvgpu_sched_set_max_inflight(s->sched, s->max_inflight);
    pvgpu_sched_set_solo_inflight(s->sched, s->solo_inflight);
    qemu_mutex_unlock(&s->sched_lock);
    /* what a cap or the frame-rate limit held back may go now */
    qemu_bh_schedule(s->pump_bh);
}

/*
 * The guest negotiated its features: a 3D guest renders on virglrenderer,
 * a 2D guest on pixman.  (Commands a guest sent before negotiating stay
 * with pixman, failing or forgotten, until the next reset.)  A 3D guest
 * cannot be migrated while it has contexts: with -only-migratable it gets
 * no 3D.
 */
void pvgpu_exec_set_features(PvgpuState *s, unsigned decode_caps)
{
    Error *probe = NULL, *err = NULL;

    s->decode_caps = pvgpu_3d_available(s) ? decode_caps
                                 : decode_caps & ~(PVGPU_DECODE_3D |
                                                   PVGPU_DECODE_CONTEXT_INIT);
    if (s->decode_caps & PVGPU_DECODE_3D) {
        error_setg(&probe, "pvgpu: 3D contexts cannot be migrated");
        if (migrate_add_blocker(&probe, &err) == -EACCES) {
            warn_reportf_err(err, "pvgpu: 3D disabled for this guest: ");
            s->decode_caps &= ~(PVGPU_DECODE_3D | PVGPU_DECODE_CONTEXT_INIT);
        } else if (probe) {
            migrate_del_blocker(&probe);
        } else {
            /* a migration runs: nothing can be told yet */
            error_free(err);
        }
    }
    renderer_activate(s, s->decode_caps & PVGPU_DECODE_3D ?
                         s->virgl_renderer : s->pixman_renderer);
    trace_pvgpu_renderer(pvgpu_render_describe(s->renderer));
}

/* Something pump() waits for without a timer changed (gl_block) */
void pvgpu_exec_resume(PvgpuState *s)
{
    qemu_bh_schedule(s->pump_bh);
}

static void reset_drop(PvgpuSchedItem *item, void *opaque)
{
    PvgpuState *s = opaque;

    PvgpuRequest *req = container_of(item, PvgpuRequest, item);

    s->sched_queued--;
    pvgpu_dep_counts_remove(s->sched_deps, req->cmd.hdr.ctx_id,
                            &req->deps);
    request_release(s, req);
    pvgpu_request_free(req);
}

/*
 * Mapped memory belongs to the renderer, and a vCPU may reach a region
 * until it is released after an RCU grace period.  So a reset takes every
 * mapping out of the BAR and, if any is not released yet, keeps the
 * renderer's contexts and resources until they are: a restart request
 * then heads the queue, and the guest's next commands wait behind it.
 * @unplug: the device goes, so does the renderer: no restart at all.
 */
static void reset(PvgpuState *s, bool unplug)
{
    GHashTableIter iter;
    PvgpuRequest *req;
    gpointer value;

    QTAILQ_FOREACH(req, &s->held, next) {
        if (req->unmap) {
            /* an UNMAP_BLOB or UNREF still waiting: nobody answers it now */
            blob_mapping_orphan(s, g_steal_pointer(&req->unmap));
        }
    }
    g_hash_table_iter_init(&iter, s->resources);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        PvgpuResource *res = value;

        if (res->mapping) {
            blob_unmap_begin(s, res, NULL);
        }
    }
    /* the renderer pulls nothing more until the queues are gone */
    qemu_mutex_lock(&s->sched_lock);
    s->sched_paused = true;
    qemu_mutex_unlock(&s->sched_lock);
    /* cancels and hands back every job in flight, synchronously */
    if (s->virgl_used ||
        (s->virgl_renderer && pvgpu_render_broken(s->virgl_renderer))) {
        /* a render process that died starts again here */
        pvgpu_render_reset(s->virgl_renderer, unplug || s->releasing);
        renderer_check(s);
        s->virgl_used = false;
    }
    /* also what a guest left there before it negotiated VIRGL */
    pvgpu_render_reset(s->pixman_renderer, false);
    renderer_activate(s, s->pixman_renderer);
    qemu_mutex_lock(&s->sched_lock);
    assert(QTAILQ_EMPTY(&s->inflight));
    while (!QTAILQ_EMPTY(&s->held)) {
        req = QTAILQ_FIRST(&s->held);
        QTAILQ_REMOVE(&s->held, req, next);
        if (req->dying) {
            /* a CTX_DESTROY that never got to run */
            pvgpu_sched_entity_remove(s->sched, req->dying->entity,
                                      reset_drop, s);
            req->dying->entity = NULL;
        }
        /* an UNREF's resource, a DETACH_BACKING's mapping */
        request_release(s, req);
        pvgpu_request_free(req);
    }
    /* queued work of every context is dropped with it */
    g_hash_table_iter_init(&iter, s->contexts);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        PvgpuContext *ctx = value;

        pvgpu_sched_entity_remove(s->sched, ctx->entity, reset_drop, s);
        ctx->entity = NULL;
    }
    timer_del(s->pump_timer);
    assert(s->sched_queued == 0 && s->sched_running == 0);
    assert(pvgpu_dep_counts_empty(s->sched_deps));
    s->sched_deps_waiting = false;
    s->sched_wake_ns = 0;
    s->sched_paused = unplug;
    qemu_mutex_unlock(&s->sched_lock);
    g_hash_table_remove_all(s->contexts);
    g_hash_table_remove_all(s->dying);
    /* nothing is attached to a context any more */
    assert(s->shared_resources == 0);
    assert(s->contexts_used == 0);
    /* the resources go next (pvgpu_resources_reset()): no 3D state is left */
    if (s->migration_blocker) {
        migrate_del_blocker(&s->migration_blocker);
    }
    s->blocker_key = 0;
    s->decode_caps = 0;
    if (s->pool) {
        /* nothing left to run: a grant held goes back to the pool */
        pool_update(s);
    }
    if (s->releasing && !unplug) {
        req = g_new0(PvgpuRequest, 1);
        req->s = s;
        req->job.kind = PVGPU_JOB_RESTART;
        pvgpu_deps_add_all(&req->deps);
        QTAILQ_INSERT_TAIL(&s->held, req, next);
        trace_pvgpu_restart_deferred(g_slist_length(s->releasing));
    }
}

void pvgpu_exec_reset(PvgpuState *s)
{
    reset(s, false);
}

void pvgpu_exec_fini(PvgpuState *s)
{
    unsigned holds = 0;

    notifier_remove(&s->shutdown_notifier);
    qemu_del_vm_change_state_handler(s->vm_state);
    reset(s, true);
    /*
     * Regions released later must not look for the device.  The renderer,
     * whose memory they may still show, outlives it until they are.
     */
    for (GSList *l = s->releasing; l; l = l->next) {
        PvgpuBlobMapping *m = l->data;

        m->s = NULL;
        m->renderer = s->virgl_renderer;
        holds++;
    }
    g_slist_free(g_steal_pointer(&s->releasing));
    trace_pvgpu_render_free(holds);
    if (s->virgl_renderer) {
        /* what the renderer still finishes is no longer this device's */
        pvgpu_render_set_source(s->virgl_renderer, NULL, NULL, NULL);
    }
    pvgpu_render_free_later(g_steal_pointer(&s->virgl_renderer), holds);
    pvgpu_render_free(g_steal_pointer(&s->pixman_renderer));
    s->renderer = NULL;
    g_free(g_steal_pointer(&s->virgl_unavailable));
    g_hash_table_destroy(s->contexts);
    s->contexts = NULL;
    g_hash_table_destroy(s->dying);
    s->dying = NULL;
    qemu_bh_delete(s->pump_bh);
    timer_free(s->pump_timer);
    pvgpu_sched_free(s->sched);
    s->sched = NULL;
    pvgpu_dep_counts_free(g_steal_pointer(&s->sched_deps));
    qemu_mutex_destroy(&s->sched_lock);
}

/* --- the GPU pool's view of the command path (pvgpu-pool.h) ---------- */

static void pool_wake(void *opaque)
{
    PvgpuState *s = opaque;

    /* scheduled work is pulled by the render thread, the rest pumped */
    pvgpu_render_kick(s->renderer);
    qemu_bh_schedule(s->pump_bh);
}

static void pool_load(void *opaque, unsigned *running, unsigned *waiting)
{
    PvgpuState *s = opaque;
    PvgpuRequest *req;

    *running = 0;
    /* held for the grant (not for the frame-rate limit or an unmap) */
    *waiting = s->pool_held;
    qemu_mutex_lock(&s->sched_lock);
    QTAILQ_FOREACH(req, &s->inflight, next) {
        (*running)++;
    }
    *waiting += s->sched_queued;
    qemu_mutex_unlock(&s->sched_lock);
}

static void pool_update(PvgpuState *s)
{
    unsigned running, waiting;

    pool_load(s, &running, &waiting);
    pvgpu_pool_update(s->pool, running, waiting);
}

static void pool_limits_changed(void *opaque)
{
    /* max-fps in force; the other limits are read where they apply */
    pvgpu_exec_apply_scheduler(opaque);
}

static void pool_stats(void *opaque, PvgpuPoolMsg *m)
{
    PvgpuState *s = opaque;
    GHashTableIter iter;
    gpointer value;

    m->u.stats.hostmem = s->hostmem_used;
    m->u.stats.resources = g_hash_table_size(s->resources);
    m->u.stats.frames = s->frames;
    qemu_mutex_lock(&s->sched_lock);
    m->u.stats.queued = s->sched_queued;
    g_hash_table_iter_init(&iter, s->contexts);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        PvgpuContext *ctx = value;
        PvgpuPoolContextStats *cs;
        PvgpuSchedStats st;

        if (!ctx->entity || m->u.stats.ncontexts == PVGPU_POOL_MAX_CONTEXTS) {
            continue;
        }
        pvgpu_sched_entity_stats(ctx->entity, &st);
        cs = &m->u.stats.ctx[m->u.stats.ncontexts++];
        cs->ctx_id = ctx->id;
        cs->queued = st.queued;
        cs->gpu_ns = st.gpu_ns;
        cs->fence_p99_ns = st.latency_p99_ns;
        m->u.stats.submissions += st.completed;
        /* the VM's figures are its worst context's */
        m->u.stats.fence_p50_ns = MAX(m->u.stats.fence_p50_ns,
                                      st.latency_p50_ns);
        m->u.stats.fence_p99_ns = MAX(m->u.stats.fence_p99_ns,
                                      st.latency_p99_ns);
    }
    qemu_mutex_unlock(&s->sched_lock);
}

const PvgpuPoolOps pvgpu_exec_pool_ops = {
    .wake = pool_wake,
    .load = pool_load,
    .limits_changed = pool_limits_changed,
    .stats = pool_stats,
};
