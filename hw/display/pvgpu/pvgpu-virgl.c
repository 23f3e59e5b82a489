/*
 * pvgpu renderer backend: virglrenderer on a thread of its own
 *
 * The only file that calls virglrenderer.  Every call happens on the
 * render thread; the main loop talks to it through the job lists of
 * pvgpu-render-queue.h.  Scheduled work does not pass through "todo": the
 * thread pulls it from its source whenever "todo" is empty, right after a
 * fence signalled, and tells the source when it finished.
 *
 * Fences: virglrenderer runs with THREAD_SYNC, so its own sync thread
 * waits for the GPU and signals an eventfd (virgl_renderer_get_poll_fd())
 * that the render thread sleeps on next to its wake-up notifier; the
 * fence callbacks then run here, in virgl_renderer_poll().  No polling
 * tick.  virgl_renderer_reset() stops that sync thread for good (0.10.4),
 * so a device reset tears virglrenderer down and initialises it again
 * instead.  Where THREAD_SYNC is unavailable (VIRGL_DISABLE_MT, no
 * eventfd), pending fences are checked with a backoff from 50 us to 1 ms.
 *
 * Per-ring fences (VIRTIO_GPU_FLAG_INFO_RING_IDX) are implemented on the
 * global fence timeline: virglrenderer 0.10 has per-context fences only
 * among its unstable APIs.  A global fence signals once all work queued
 * before it is done, so a ring fence never signals early and fences of
 * one ring (indeed of all rings) complete in submission order.
 *
 * Resources a context's command stream creates (PIPE_RESOURCE_CREATE)
 * stay virglrenderer's until a CREATE_BLOB claims them, and virglrenderer
 * (0.10.4; 1.0.1 frees only the record, not the GL storage) does not free
 * unclaimed ones when the context goes.  The render thread notes them per
 * context and, before a context is destroyed, claims each with a blob of
 * the device's own resource id and unrefs it (pipe_reclaim()).
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <virglrenderer.h>
#include "qapi/error.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qemu/timer.h"
#include "standard-headers/linux/virtio_gpu.h"
#include "hw/display/pvgpu-render-queue.h"
#include "trace.h"

typedef struct PvgpuVirgl {
    PvgpuRenderer parent;
    PvgpuRenderQueue q;
    QemuThread thread;
    PvgpuRenderOpts opts;
    int drm_fd;

    /* render thread only */
    int flags;                  /* of virgl_renderer_init() */
    int poll_fd;                /* signalled fences; -1: poll them */
    bool broken;                /* re-initialisation failed */
    QSIMPLEQ_HEAD(, PvgpuRenderJob) fenced;
    uint32_t fence_seq;
    uint32_t fence_done;        /* fences signalled so far */
    uint64_t gpu_free_ns;       /* when the last fenced job finished */
    /* context id -> GArray of the blob ids its streams created, unclaimed */
    GHashTable *pipe_ids;
    /* opts.own_iov: resource id -> the iovec array virglrenderer holds */
    GHashTable *iovs;

    /* start-up handshake */
    QemuSemaphore started;
    char *init_error;
    char *describe;
    PvgpuCapset capsets[PVGPU_MAX_CAPSETS];
    unsigned ncapsets;
} PvgpuVirgl;

static const PvgpuRenderBackend pvgpu_virgl_backend;

static PvgpuVirgl *virgl_of(PvgpuRenderer *r)
{
    return container_of(r, PvgpuVirgl, parent);
}

/* virglrenderer is a process-wide singleton */
static bool pvgpu_virgl_in_use;

/* virglrenderer's struct virgl_box is six uint32_t: x, y, z, w, h, d */
QEMU_BUILD_BUG_ON(sizeof(PvgpuBox) != 6 * sizeof(uint32_t));

/* Render thread: hand @job to the main loop. */
static void job_finish(PvgpuVirgl *r, PvgpuRenderJob *job)
{
    uint64_t now = get_clock();

    /* the GPU runs jobs one after the other: charge only this one's part */
    job->gpu_ns = now - MAX(job->start_ns, r->gpu_free_ns);
    r->gpu_free_ns = now;
    trace_pvgpu_virgl_done(job->op.ctx_id, job->gpu_ns);
    pvgpu_queue_finish(&r->q, job);
}

static void pvgpu_virgl_write_fence(void *cookie, uint32_t fence)
{
    PvgpuVirgl *r = cookie;
    PvgpuRenderJob *job;

    trace_pvgpu_virgl_fence(fence);
    /* fences signal in order: everything up to @fence is done */
    while ((job = QSIMPLEQ_FIRST(&r->fenced)) &&
           (int32_t)(job->fence_seq - fence) <= 0) {
        QSIMPLEQ_REMOVE_HEAD(&r->fenced, next);
        job_finish(r, job);
        r->fence_done++;
    }
}

static int pvgpu_virgl_get_drm_fd(void *cookie)
{
    PvgpuVirgl *r = cookie;

    return r->drm_fd;
}

static struct virgl_renderer_callbacks pvgpu_virgl_cbs = {
    .version = 2,
    .write_fence = pvgpu_virgl_write_fence,
    .get_drm_fd = pvgpu_virgl_get_drm_fd,
};

/*
 * Export the texture behind @rb's resource as a dmabuf for a GL display.
 * Needs a renderer on a GPU (a render node); EGL surfaceless on Mesa's
 * software rasterizer cannot export, and the caller reads back instead.
 */
static bool export_dmabuf(PvgpuReadback *rb,
                          const struct virgl_renderer_resource_info *info)
{
    int fd = -1, stride = 0, offset = 0;

    if (!info->tex_id || !info->drm_fourcc) {
        return false;
    }
    /* the export is made in virglrenderer's own context */
    virgl_renderer_force_ctx_0();
    if (virgl_renderer_get_fd_for_texture2(info->tex_id, &fd, &stride,
                                           &offset) || fd < 0) {
        return false;
    }
    if (offset != 0 || stride <= 0) {
        /* QEMU's displays import plane 0 at offset 0 */
        close(fd);
        return false;
    }
    rb->dmabuf.fd = fd;
    rb->dmabuf.width = info->width;
    rb->dmabuf.height = info->height;
    rb->dmabuf.stride = stride;
    rb->dmabuf.fourcc = info->drm_fourcc;
    rb->dmabuf.y0_top = info->flags & VIRTIO_GPU_RESOURCE_FLAG_Y_0_TOP;
    return true;
}

static void readback(PvgpuReadback *rb)
{
    struct virgl_renderer_resource_info info;
    size_t size = (size_t)rb->r.width * rb->r.height * 4;
    PvgpuBox box = {
        .x = rb->r.x, .y = rb->r.y, .w = rb->r.width, .h = rb->r.height,
        .d = 1,
    };
    struct iovec iov = { .iov_base = rb->dest, .iov_len = size };

    rb->ok = false;
    rb->dmabuf.fd = -1;
    if (virgl_renderer_resource_get_info(rb->resource_id, &info) ||
        pvgpu_format_bpp(info.virgl_format) != 4 ||
        !pvgpu_rect_inside(&rb->r, info.width, info.height)) {
        return;
    }
    rb->format = info.virgl_format;
    if (rb->want_dmabuf && export_dmabuf(rb, &info)) {
        rb->ok = true;
        return;
    }
    if (!rb->dest) {
        rb->pixels = g_try_malloc(size);
        if (!rb->pixels) {
            return;
        }
        iov.iov_base = rb->pixels;
    }
    /*
     * Transfers work in the guest's coordinates: for a resource without
     * Y_0_TOP (GL's bottom-up rows) virglrenderer inverts the rows itself,
     * so the pixels arrive top row first either way.  (Checked against
     * virtio-gpu-gl's GL display with glmark2's jellyfish and ideas.)
     */
    if (virgl_renderer_transfer_read_iov(rb->resource_id, 0, 0,
                                        rb->r.width * 4, 0,
                                        (struct virgl_box *)&box, 0,
                                        &iov, 1)) {
        g_free(rb->pixels);
        rb->pixels = NULL;
        return;
    }
    rb->ok = true;
}

static int resource_create(uint32_t id, uint32_t target, uint32_t format,
                           uint32_t bind, uint32_t width, uint32_t height,
                           uint32_t depth, uint32_t array_size,
                           uint32_t last_level, uint32_t nr_samples,
                           uint32_t flags)
{
    struct virgl_renderer_resource_create_args args = {
        .handle = id, .target = target, .format = format, .bind = bind,
        .width = width, .height = height, .depth = depth,
        .array_size = array_size, .last_level = last_level,
        .nr_samples = nr_samples, .flags = flags,
    };

    return virgl_renderer_resource_create(&args, NULL, 0);
}

#define FENCE_POLL_MIN_US 50
#define FENCE_POLL_MAX_US 1000
#define FENCE_DRAIN_MAX_NS (2 * NANOSECONDS_PER_SECOND)

/*
 * Wait for every pending fence.  virglrenderer 0.10.4 drops, without ever
 * signalling it, a fence created while a context was current if that
 * context is destroyed before the fence signals (qtest 3d/destroy-busy
 * hung once in dozens of runs; standalone, 2 to 5 of 20 fences followed
 * by a context destroy were lost, with a context's id or 0 alike).  So a
 * context goes only once the GPU has finished what came before; so does
 * a pvgpu_render_run() job run.  Bounded, so that a GPU that never
 * finishes cannot stop the thread for good.
 */
static void fences_drain(PvgpuVirgl *r)
{
    int64_t deadline = get_clock() + FENCE_DRAIN_MAX_NS;

    while (!QSIMPLEQ_EMPTY(&r->fenced)) {
        int64_t left = deadline - get_clock();

        if (left <= 0) {
            warn_report_once("pvgpu: GPU work still unfinished after 2 s; "
                             "going on without it");
            return;
        }
        if (r->poll_fd >= 0) {
            GPollFD pfd = { .fd = r->poll_fd, .events = G_IO_IN };

            qemu_poll_ns(&pfd, 1, left);
        } else {
            g_usleep(FENCE_POLL_MIN_US);
        }
        virgl_renderer_poll();
    }
}

typedef struct PipeNote {
    PvgpuVirgl *r;
    uint32_t ctx;
} PipeNote;

static void pipe_note(const PvgpuPipeResource *pr, void *opaque)
{
    PipeNote *pn = opaque;
    GArray *ids = g_hash_table_lookup(pn->r->pipe_ids,
                                      GUINT_TO_POINTER(pn->ctx));

    if (!ids) {
        ids = g_array_new(false, false, sizeof(uint32_t));
        g_hash_table_insert(pn->r->pipe_ids, GUINT_TO_POINTER(pn->ctx), ids);
    }
    g_array_append_val(ids, pr->blob_id);
}

/* A CREATE_BLOB of @ctx took over the oldest resource with @blob_id. */
static void pipe_claimed(PvgpuVirgl *r, uint32_t ctx, uint64_t blob_id)
{
    GArray *ids = g_hash_table_lookup(r->pipe_ids, GUINT_TO_POINTER(ctx));

    for (guint i = 0; ids && i < ids->len; i++) {
        if (g_array_index(ids, uint32_t, i) == blob_id) {
            g_array_remove_index(ids, i);
            return;
        }
    }
}

/*
 * Free what @ctx's streams created and nobody claimed: a blob of the
 * device's own resource id claims one (oldest first, as the guest's
 * would) and is unreferenced at once, until none with that id is left.
 * Over-noted ids (a refused create, a claim the thread missed) just fail.
 * The context must still exist.
 */
static void pipe_reclaim(PvgpuVirgl *r, uint32_t ctx)
{
    GArray *ids = g_hash_table_lookup(r->pipe_ids, GUINT_TO_POINTER(ctx));
    unsigned freed = 0;

    for (guint i = 0; ids && i < ids->len; i++) {
        struct virgl_renderer_resource_create_blob_args args = {
            .res_handle = PVGPU_RESOURCE_ID_DEVICE, .ctx_id = ctx,
            .blob_mem = VIRGL_RENDERER_BLOB_MEM_HOST3D,
            .blob_id = g_array_index(ids, uint32_t, i), .size = 1,
        };

        /* bounded: a renderer that never fails is not trusted either */
        for (guint n = 0; n <= ids->len &&
             !virgl_renderer_resource_create_blob(&args); n++) {
            virgl_renderer_resource_unref(PVGPU_RESOURCE_ID_DEVICE);
            freed++;
        }
    }
    if (ids) {
        trace_pvgpu_virgl_reclaim(ctx, ids->len, freed);
    }
    g_hash_table_remove(r->pipe_ids, GUINT_TO_POINTER(ctx));
}

static void pipe_reclaim_all(PvgpuVirgl *r)
{
    GList *ctxs = g_hash_table_get_keys(r->pipe_ids);

    for (GList *l = ctxs; l; l = l->next) {
        pipe_reclaim(r, GPOINTER_TO_UINT(l->data));
    }
    g_list_free(ctxs);
}

static const char *const op_names[] = {
    [PVGPU_OP_NONE] = "none",
    [PVGPU_OP_CTX_CREATE] = "ctx-create",
    [PVGPU_OP_CTX_DESTROY] = "ctx-destroy",
    [PVGPU_OP_CTX_ATTACH] = "ctx-attach",
    [PVGPU_OP_CTX_DETACH] = "ctx-detach",
    [PVGPU_OP_RESOURCE_CREATE_2D] = "resource-create-2d",
    [PVGPU_OP_RESOURCE_CREATE] = "resource-create",
    [PVGPU_OP_RESOURCE_CREATE_BLOB] = "resource-create-blob",
    [PVGPU_OP_RESOURCE_UNREF] = "resource-unref",
    [PVGPU_OP_BACKING_ATTACH] = "backing-attach",
    [PVGPU_OP_BACKING_DETACH] = "backing-detach",
    [PVGPU_OP_TRANSFER_WRITE] = "transfer-write",
    [PVGPU_OP_TRANSFER_READ] = "transfer-read",
    [PVGPU_OP_SUBMIT] = "submit",
    [PVGPU_OP_MAP] = "map",
    [PVGPU_OP_UNMAP] = "unmap",
};

static const char *op_name(PvgpuOpKind kind)
{
    return kind < ARRAY_SIZE(op_names) && op_names[kind] ? op_names[kind]
                                                         : "?";
}

/*
 * virglrenderer holds @job's iovec array for resource @id: with
 * opts.own_iov it is ours from now on (replacing one it let go of)
 */
static void iov_held(PvgpuVirgl *r, PvgpuRenderJob *job, uint32_t id)
{
    if (r->opts.own_iov) {
        g_hash_table_insert(r->iovs, GUINT_TO_POINTER(id), job->op.iov);
        job->iov_taken = true;
    }
}

/* virglrenderer holds no iovec array for resource @id any more */
static void iov_released(PvgpuVirgl *r, uint32_t id)
{
    g_hash_table_remove(r->iovs, GUINT_TO_POINTER(id));
}

/* Run one operation; returns 0, or non-zero if virglrenderer refused it. */
static int exec_op(PvgpuVirgl *r, PvgpuRenderJob *job)
{
    const PvgpuRenderOp *op = &job->op;
    uint32_t ctx = op->ctx_id, id = op->resource_id;
    int ret = 0;

    switch (op->kind) {
    case PVGPU_OP_NONE:
        /* presentation only: the readbacks, or guest memory */
        break;
    case PVGPU_OP_CTX_CREATE:
        /* notes of a context that was never created are of nothing */
        g_hash_table_remove(r->pipe_ids, GUINT_TO_POINTER(ctx));
        if (op->u.ctx_create.capset_id) {
            ret = virgl_renderer_context_create_with_flags(
                ctx, op->u.ctx_create.capset_id, op->u.ctx_create.nlen,
                op->u.ctx_create.name);
        } else {
            ret = virgl_renderer_context_create(ctx, op->u.ctx_create.nlen,
                                                op->u.ctx_create.name);
        }
        break;
    case PVGPU_OP_CTX_DESTROY:
        fences_drain(r);
        pipe_reclaim(r, ctx);
        virgl_renderer_context_destroy(ctx);
        break;
    case PVGPU_OP_CTX_ATTACH:
        virgl_renderer_ctx_attach_resource(ctx, id);
        break;
    case PVGPU_OP_CTX_DETACH:
        virgl_renderer_ctx_detach_resource(ctx, id);
        break;
    case PVGPU_OP_RESOURCE_CREATE_2D:
        /* PIPE_TEXTURE_2D, a render target stored top-down like 2D memory */
        ret = resource_create(id, 2, op->u.create.format,
                              VIRGL_RES_BIND_RENDER_TARGET,
                              op->u.create.width, op->u.create.height,
                              1, 1, 0, 0, VIRTIO_GPU_RESOURCE_FLAG_Y_0_TOP);
        break;
    case PVGPU_OP_RESOURCE_CREATE: {
        const typeof(op->u.create) *c = &op->u.create;

        ret = resource_create(id, c->target, c->format, c->bind, c->width,
                              c->height, c->depth, c->array_size,
                              c->last_level, c->nr_samples, c->flags);
        break;
    }
    case PVGPU_OP_RESOURCE_UNREF: {
        struct iovec *iov = NULL;
        int n = 0;

        if (op->u.unref.unmap_first) {
            virgl_renderer_resource_unmap(id);
        }
        /* the device still owns the backing and unmaps it afterwards */
        virgl_renderer_resource_detach_iov(id, &iov, &n);
        virgl_renderer_resource_unref(id);
        iov_released(r, id);
        break;
    }
    case PVGPU_OP_BACKING_ATTACH:
        ret = virgl_renderer_resource_attach_iov(id, op->iov, op->niov);
        if (!ret) {
            iov_held(r, job, id);
        }
        break;
    case PVGPU_OP_BACKING_DETACH: {
        struct iovec *iov = NULL;
        int n = 0;

        virgl_renderer_resource_detach_iov(id, &iov, &n);
        iov_released(r, id);
        break;
    }
    case PVGPU_OP_TRANSFER_WRITE:
    case PVGPU_OP_TRANSFER_READ: {
        const typeof(op->u.transfer) *t = &op->u.transfer;
        PvgpuBox box = t->box;

        if (op->kind == PVGPU_OP_TRANSFER_WRITE) {
            ret = virgl_renderer_transfer_write_iov(
                id, ctx, t->level, t->stride, t->layer_stride,
                (struct virgl_box *)&box, t->offset, op->iov, op->niov);
        } else {
            ret = virgl_renderer_transfer_read_iov(
                id, ctx, t->level, t->stride, t->layer_stride,
                (struct virgl_box *)&box, t->offset, op->iov, op->niov);
        }
        break;
    }
    case PVGPU_OP_SUBMIT: {
        PipeNote pn = { r, ctx };

        ret = virgl_renderer_submit_cmd((void *)op->u.submit.dwords, ctx,
                                        op->u.submit.ndw);
        /* even a refused stream ran up to the command that failed */
        pvgpu_virgl_scan((const uint8_t *)op->u.submit.dwords,
                         op->u.submit.ndw, pipe_note, &pn);
        break;
    }
    case PVGPU_OP_RESOURCE_CREATE_BLOB: {
        const typeof(op->u.blob) *b = &op->u.blob;
        struct virgl_renderer_resource_create_blob_args args = {
            .res_handle = id, .ctx_id = ctx,
            .blob_mem = b->blob_mem, .blob_flags = b->blob_flags,
            .blob_id = b->blob_id, .size = b->size,
            .iovecs = op->iov, .num_iovs = op->niov,
        };

        ret = virgl_renderer_resource_create_blob(&args);
        if (!ret && op->niov) {
            iov_held(r, job, id);
        }
        if (!ret && ctx) {
            pipe_claimed(r, ctx, b->blob_id);
        }
        break;
    }
    case PVGPU_OP_MAP:
        ret = virgl_renderer_resource_map(id, &job->map_ptr, &job->map_size);
        if (!ret && virgl_renderer_resource_get_map_info(id, &job->map_info)) {
            /* the caching is the renderer's to tell; without it, refuse */
            virgl_renderer_resource_unmap(id);
            ret = -EINVAL;
        }
        break;
    case PVGPU_OP_UNMAP:
        ret = virgl_renderer_resource_unmap(id);
        break;
    default:
        g_assert_not_reached();
    }
    /*
     * virglrenderer refuses what it cannot execute, including a malformed
     * command stream.  Depending on the error it may treat the context as
     * lost afterwards (like a GL context after a GPU reset); other
     * contexts are never affected.
     */
    trace_pvgpu_virgl_cmd(op_name(op->kind), ctx, ret);
    return ret;
}

/*
 * Destroy all contexts and resources.  virgl_renderer_reset() would stop
 * the sync thread for good (0.10.4), so tear virglrenderer down and
 * initialise it again instead.
 */
static void restart(PvgpuVirgl *r)
{
    pipe_reclaim_all(r);
    virgl_renderer_cleanup(r);
    g_hash_table_remove_all(r->iovs);
    if (!r->broken && virgl_renderer_init(r, r->flags, &pvgpu_virgl_cbs)) {
        error_report("pvgpu: virglrenderer failed to restart after a "
                     "reset; 3D commands will fail");
        qatomic_set(&r->broken, true);
    }
    r->poll_fd = r->broken ? -1 : virgl_renderer_get_poll_fd();
}

static void run_job(PvgpuVirgl *r, PvgpuRenderJob *job)
{
    if (job->kind == PVGPU_JOB_RESET || job->kind == PVGPU_JOB_CANCEL) {
        PvgpuRenderJob *f;

        if (job->kind == PVGPU_JOB_RESET) {
            restart(r);
        }
        /*
         * Their work is gone, or its fences will signal for nobody (fence
         * numbers only grow, so a later job is never mistaken for them).
         */
        while ((f = QSIMPLEQ_FIRST(&r->fenced))) {
            QSIMPLEQ_REMOVE_HEAD(&r->fenced, next);
            f->cancelled = true;
            job_finish(r, f);
        }
        qemu_sem_post(&r->q.reset_done);
        return;
    }
    if (job->kind == PVGPU_JOB_RESTART) {
        restart(r);
        job_finish(r, job);
        return;
    }
    if (job->sync) {
        fences_drain(r);
    }
    job->start_ns = get_clock();
    if (r->broken) {
        job->failed = true;
        job_finish(r, job);
        return;
    }
    if (job->kind == PVGPU_JOB_OP) {
        job->failed = exec_op(r, job) != 0;
    }
    for (unsigned i = 0; i < job->nreadbacks && !job->failed; i++) {
        readback(&job->readbacks[i]);
    }
    if (job->kind == PVGPU_JOB_OP && !job->failed && job->fence) {
        job->fence_seq = ++r->fence_seq;
        if (virgl_renderer_create_fence(job->fence_seq,
                                        job->op.ctx_id) == 0) {
            QSIMPLEQ_INSERT_TAIL(&r->fenced, job, next);
            return;
        }
        job->failed = true;
    }
    job_finish(r, job);
}

static bool render_init(PvgpuVirgl *r)
{
    int flags = VIRGL_RENDERER_USE_EGL | VIRGL_RENDERER_THREAD_SYNC;
    int ret;

    if (r->opts.render_node) {
        r->drm_fd = qemu_open_old(r->opts.render_node, O_RDWR | O_CLOEXEC);
        if (r->drm_fd < 0) {
            r->init_error = g_strdup_printf("cannot open %s: %s",
                                            r->opts.render_node,
                                            strerror(errno));
            return false;
        }
    } else {
        flags |= VIRGL_RENDERER_USE_SURFACELESS;
    }
    if (r->opts.gles) {
        flags |= VIRGL_RENDERER_USE_GLES;
    }
    ret = virgl_renderer_init(r, flags, &pvgpu_virgl_cbs);
    if (ret) {
        r->init_error = g_strdup_printf("virgl_renderer_init(flags 0x%x) "
                                        "failed: %s", flags, strerror(-ret));
        return false;
    }
    r->flags = flags;
    /* -1 when virglrenderer could not start its sync thread */
    r->poll_fd = virgl_renderer_get_poll_fd();
    for (uint32_t id = PVGPU_CAPSET_VIRGL; id <= PVGPU_CAPSET_VIRGL2; id++) {
        PvgpuCapset *c = &r->capsets[r->ncapsets];

        virgl_renderer_get_cap_set(id, &c->max_version, &c->max_size);
        if (!c->max_size) {
            continue;
        }
        c->id = id;
        c->data = g_malloc0(c->max_size);
        virgl_renderer_fill_caps(id, c->max_version, c->data);
        r->ncapsets++;
    }
    r->describe = g_strdup_printf("virglrenderer, %s%s, capsets %u, "
                                  "fences %s",
                                  r->opts.render_node ?: "EGL surfaceless",
                                  r->opts.gles ? ", GLES" : "", r->ncapsets,
                                  r->poll_fd >= 0 ? "signalled" : "polled");
    return true;
}

/* Render thread: scheduled work to run now, if nothing submitted waits */
static PvgpuRenderJob *pull(PvgpuVirgl *r)
{
    PvgpuRenderJob *job = pvgpu_queue_pull(&r->q);

    if (job) {
        trace_pvgpu_virgl_pull(op_name(job->op.kind), job->op.ctx_id);
    }
    return job;
}

static void *pvgpu_render_thread(void *opaque)
{
    PvgpuVirgl *r = opaque;
    int backoff_us = FENCE_POLL_MIN_US;

    if (!render_init(r)) {
        qemu_sem_post(&r->started);
        return NULL;
    }
    qemu_sem_post(&r->started);

    for (;;) {
        GPollFD pfd[2] = {
            { .fd = event_notifier_get_fd(&r->q.wake), .events = G_IO_IN },
            { .fd = r->poll_fd, .events = G_IO_IN },
        };
        PvgpuJobList batch = QSIMPLEQ_HEAD_INITIALIZER(batch);
        PvgpuRenderJob *job;
        uint32_t before;
        bool quit;

        if (QSIMPLEQ_EMPTY(&r->fenced) || r->poll_fd >= 0) {
            /* idle, or the sync thread wakes us when a fence signals */
            backoff_us = FENCE_POLL_MIN_US;
            qemu_poll_ns(pfd, r->poll_fd >= 0 ? 2 : 1, -1);
        } else {
            qemu_poll_ns(pfd, 1, (int64_t)backoff_us * SCALE_US);
        }
        event_notifier_test_and_clear(&r->q.wake);
        quit = pvgpu_queue_take(&r->q, &batch);

        while ((job = QSIMPLEQ_FIRST(&batch))) {
            QSIMPLEQ_REMOVE_HEAD(&batch, next);
            run_job(r, job);
        }
        /* collect signalled fences, also the ones of the batch just run */
        before = r->fence_done;
        virgl_renderer_poll();
        trace_pvgpu_virgl_poll(r->fence_done - before,
                               !QSIMPLEQ_EMPTY(&r->fenced), backoff_us);
        /* the next scheduled work starts here, where its turn came */
        while ((job = pull(r))) {
            run_job(r, job);
        }
        if (r->fence_done != before) {
            backoff_us = FENCE_POLL_MIN_US;
        } else {
            backoff_us = MIN(backoff_us * 2, FENCE_POLL_MAX_US);
        }
        if (quit) {
            break;
        }
    }
    pipe_reclaim_all(r);
    virgl_renderer_cleanup(r);
    g_hash_table_remove_all(r->iovs);
    return NULL;
}

/* What pvgpu_virgl_new() set up around the thread */
static void renderer_destroy(PvgpuVirgl *r)
{
    if (r->drm_fd >= 0) {
        close(r->drm_fd);
    }
    for (unsigned i = 0; i < r->ncapsets; i++) {
        g_free(r->capsets[i].data);
    }
    qemu_sem_destroy(&r->started);
    g_free(r->init_error);
    g_free(r->describe);
    g_free((char *)r->opts.render_node);
    g_hash_table_destroy(r->pipe_ids);
    g_hash_table_destroy(r->iovs);
    g_free(r);
}

PvgpuRenderer *pvgpu_virgl_new(const PvgpuRenderOpts *opts,
                               PvgpuRenderDoneFn *done, void *opaque,
                               Error **errp)
{
    PvgpuVirgl *r;

    if (pvgpu_virgl_in_use) {
        error_setg(errp, "virglrenderer is in use in this process (it "
                   "serves one 3D device at a time: another pvgpu device, "
                   "or an unplugged one whose blob mappings the guest "
                   "still holds; each device with a render process has "
                   "its own)");
        return NULL;
    }
    r = g_new0(PvgpuVirgl, 1);
    r->parent.be = &pvgpu_virgl_backend;
    r->opts.render_node = g_strdup(opts->render_node);
    r->opts.gles = opts->gles;
    r->opts.own_iov = opts->own_iov;
    r->drm_fd = -1;
    qemu_sem_init(&r->started, 0);
    QSIMPLEQ_INIT(&r->fenced);
    r->pipe_ids = g_hash_table_new_full(NULL, NULL, NULL,
                                        (GDestroyNotify)g_array_unref);
    r->iovs = g_hash_table_new_full(NULL, NULL, NULL, g_free);
    if (!pvgpu_queue_init(&r->q, done, opaque, opts->guard, errp)) {
        renderer_destroy(r);
        return NULL;
    }

    /* virglrenderer's own init runs on the thread that will use it */
    qemu_thread_create(&r->thread, "pvgpu-render", pvgpu_render_thread, r,
                       QEMU_THREAD_JOINABLE);
    qemu_sem_wait(&r->started);
    if (r->init_error) {
        error_setg(errp, "pvgpu: %s", r->init_error);
        qemu_thread_join(&r->thread);
        pvgpu_queue_destroy(&r->q);
        renderer_destroy(r);
        return NULL;
    }
    pvgpu_virgl_in_use = true;
    trace_pvgpu_virgl_init(r->describe);
    return &r->parent;
}

static void virgl_kick(PvgpuRenderer *base)
{
    pvgpu_queue_kick(&virgl_of(base)->q);
}

static void virgl_set_source(PvgpuRenderer *base, PvgpuRenderPullFn *pull,
                             PvgpuRenderRetireFn *retire, void *opaque)
{
    pvgpu_queue_set_source(&virgl_of(base)->q, pull, retire, opaque);
}

static void virgl_submit(PvgpuRenderer *base, PvgpuRenderJob *job)
{
    pvgpu_queue_submit(&virgl_of(base)->q, job);
}

static bool virgl_run(PvgpuRenderer *base, PvgpuRenderJob *job)
{
    return pvgpu_queue_run(&virgl_of(base)->q, job);
}

static unsigned virgl_complete(PvgpuRenderer *base)
{
    return pvgpu_queue_complete(&virgl_of(base)->q);
}

static void virgl_reset(PvgpuRenderer *base, bool keep_memory)
{
    pvgpu_queue_reset(&virgl_of(base)->q, keep_memory);
}

/* Reset, stop the thread and free.  virglrenderer cannot be restarted. */
static void virgl_free(PvgpuVirgl *r)
{
    /* the thread's exit destroys everything anyway */
    pvgpu_queue_reset(&r->q, true);
    pvgpu_queue_stop(&r->q);
    qemu_thread_join(&r->thread);
    pvgpu_queue_destroy(&r->q);
    renderer_destroy(r);
    /*
     * The thread cleaned virglrenderer up: the next device may initialise
     * it again (as a reset does, on the render thread)
     */
    pvgpu_virgl_in_use = false;
}

static void virgl_free_later(PvgpuRenderer *base, unsigned holds)
{
    PvgpuVirgl *r = virgl_of(base);

    if (holds) {
        pvgpu_queue_hold(&r->q, holds);
    } else {
        virgl_free(r);
    }
}

static void virgl_unhold(PvgpuRenderer *base)
{
    PvgpuVirgl *r = virgl_of(base);

    if (pvgpu_queue_unhold(&r->q)) {
        virgl_free(r);
    }
}

static unsigned virgl_capsets(PvgpuRenderer *base,
                              const PvgpuCapset **capsets)
{
    PvgpuVirgl *r = virgl_of(base);

    *capsets = r->capsets;
    return r->ncapsets;
}

static char *virgl_broken(PvgpuRenderer *base)
{
    return qatomic_read(&virgl_of(base)->broken) ?
           g_strdup("virglrenderer failed to restart after a device reset") :
           NULL;
}

static const char *virgl_describe(PvgpuRenderer *base)
{
    return virgl_of(base)->describe;
}

static const PvgpuRenderBackend pvgpu_virgl_backend = {
    .set_source = virgl_set_source,
    .submit = virgl_submit,
    .run = virgl_run,
    .complete = virgl_complete,
    .kick = virgl_kick,
    .reset = virgl_reset,
    .free_later = virgl_free_later,
    .unhold = virgl_unhold,
    .capsets = virgl_capsets,
    .describe = virgl_describe,
    .broken = virgl_broken,
};
