/*
 * pvgpu renderer backend: pixman, for 2D guests
 *
 * The resources of a guest that did not negotiate VIRTIO_GPU_F_VIRGL:
 * host images of RESOURCE_CREATE_2D and guest-memory blobs, their guest
 * backing (the device's mapping; this file only reads through it) and
 * TRANSFER_WRITE of 2D boxes.  The device has checked every operation
 * against its own records before; a job that still does not fit (a
 * resource that is not there, a box outside it) fails instead of
 * touching memory.
 *
 * Jobs run in the main loop as they are submitted, so the images are
 * always as far as the commands handed over; completions go back through
 * a bottom half, as the virgl backend's do, so the device is never
 * re-entered from pvgpu_render_submit().  Scheduled work is pulled in
 * that bottom half.  Readbacks hand out a reference to the resource's
 * image: QEMU's displays show it without a copy.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/iov.h"
#include "qemu/main-loop.h"
#include "qemu/timer.h"
#include "hw/display/pvgpu-render.h"

typedef struct PixmanResource {
    uint32_t format;
    pixman_image_t *image;      /* NULL for a blob */
    const struct iovec *iov;    /* the device's mapping of the backing */
    unsigned niov;
} PixmanResource;

typedef struct PvgpuPixman {
    PvgpuRenderer parent;
    QEMUBH *bh;
    PvgpuRenderDoneFn *done_fn;
    void *opaque;
    QSIMPLEQ_HEAD(, PvgpuRenderJob) done;
    PvgpuRenderPullFn *pull;
    PvgpuRenderRetireFn *retire;
    void *source;
    GHashTable *resources;      /* id -> PixmanResource */
} PvgpuPixman;

static const PvgpuRenderBackend pvgpu_pixman_backend;

static PvgpuPixman *pixman_of(PvgpuRenderer *r)
{
    assert(r->be == &pvgpu_pixman_backend);
    return container_of(r, PvgpuPixman, parent);
}

/*
 * The spec names formats by byte order in memory; pixman names them by
 * bit position in a native 32-bit word.
 */
pixman_format_code_t pvgpu_pixman_format(uint32_t format)
{
    switch (format) {
#if HOST_BIG_ENDIAN
    case PVGPU_FORMAT_B8G8R8A8_UNORM: return PIXMAN_b8g8r8a8;
    case PVGPU_FORMAT_B8G8R8X8_UNORM: return PIXMAN_b8g8r8x8;
    case PVGPU_FORMAT_A8R8G8B8_UNORM: return PIXMAN_a8r8g8b8;
    case PVGPU_FORMAT_X8R8G8B8_UNORM: return PIXMAN_x8r8g8b8;
    case PVGPU_FORMAT_R8G8B8A8_UNORM: return PIXMAN_r8g8b8a8;
    case PVGPU_FORMAT_X8B8G8R8_UNORM: return PIXMAN_x8b8g8r8;
    case PVGPU_FORMAT_A8B8G8R8_UNORM: return PIXMAN_a8b8g8r8;
    case PVGPU_FORMAT_R8G8B8X8_UNORM: return PIXMAN_r8g8b8x8;
#else
    case PVGPU_FORMAT_B8G8R8A8_UNORM: return PIXMAN_a8r8g8b8;
    case PVGPU_FORMAT_B8G8R8X8_UNORM: return PIXMAN_x8r8g8b8;
    case PVGPU_FORMAT_A8R8G8B8_UNORM: return PIXMAN_b8g8r8a8;
    case PVGPU_FORMAT_X8R8G8B8_UNORM: return PIXMAN_b8g8r8x8;
    case PVGPU_FORMAT_R8G8B8A8_UNORM: return PIXMAN_a8b8g8r8;
    case PVGPU_FORMAT_X8B8G8R8_UNORM: return PIXMAN_r8g8b8x8;
    case PVGPU_FORMAT_A8B8G8R8_UNORM: return PIXMAN_r8g8b8a8;
    case PVGPU_FORMAT_R8G8B8X8_UNORM: return PIXMAN_x8b8g8r8;
#endif
    default:
        return 0;
    }
}

static void resource_free(gpointer p)
{
    PixmanResource *pr = p;

    /* a display may hold the image longer: its bits go with it */
    if (pr->image) {
        pixman_image_unref(pr->image);
    }
    g_free(pr);
}

static void image_bits_free(pixman_image_t *image, void *bits)
{
    g_free(bits);
}

static bool create_2d(PvgpuPixman *p, const PvgpuRenderOp *op)
{
    const typeof(op->u.create) *c = &op->u.create;
    pixman_format_code_t format = pvgpu_pixman_format(c->format);
    size_t stride = (size_t)c->width * 4;
    PixmanResource *pr;
    void *bits;

    if (!format || !c->width || !c->height ||
        c->width > PVGPU_MAX_DIMENSION || c->height > PVGPU_MAX_DIMENSION ||
        g_hash_table_contains(p->resources,
                              GUINT_TO_POINTER(op->resource_id))) {
        return false;
    }
    bits = g_try_malloc0(stride * c->height);
    if (!bits) {
        return false;
    }
    pr = g_new0(PixmanResource, 1);
    pr->format = c->format;
    pr->image = pixman_image_create_bits(format, c->width, c->height, bits,
                                         stride);
    if (!pr->image) {
        g_free(bits);
        g_free(pr);
        return false;
    }
    /* the bits go with the last reference, a display's or ours */
    pixman_image_set_destroy_function(pr->image, image_bits_free, bits);
    g_hash_table_insert(p->resources, GUINT_TO_POINTER(op->resource_id), pr);
    return true;
}

/*
 * Guest memory (or the op's own) into the box of an image, rows @stride
 * apart from @offset
 */
static bool transfer_write(PixmanResource *pr, const PvgpuRenderOp *op)
{
    const struct iovec *iov = op->iov ? op->iov : pr->iov;
    unsigned niov = op->iov ? op->niov : pr->niov;
    const typeof(op->u.transfer) *t = &op->u.transfer;
    uint32_t width = pixman_image_get_width(pr->image);
    uint32_t height = pixman_image_get_height(pr->image);
    size_t img_stride = pixman_image_get_stride(pr->image);
    uint8_t *bits = (uint8_t *)pixman_image_get_data(pr->image);
    uint64_t stride = t->stride ? t->stride : (uint64_t)width * 4;
    size_t row = (size_t)t->box.w * 4;

    if (!iov || t->box.x > width || t->box.w > width - t->box.x ||
        t->box.y > height || t->box.h > height - t->box.y) {
        return false;
    }
    if (t->box.x == 0 && t->box.w == width && stride == img_stride &&
        t->offset == (uint64_t)t->box.y * stride) {
        /* whole rows: one contiguous copy */
        iov_to_buf(iov, niov, t->offset, bits + t->offset,
                   img_stride * t->box.h);
        return true;
    }
    for (uint32_t y = 0; y < t->box.h; y++) {
        iov_to_buf(iov, niov, t->offset + y * stride,
                   bits + (t->box.y + y) * img_stride + t->box.x * 4, row);
    }
    return true;
}

/* Returns false if the operation failed. */
static bool exec_op(PvgpuPixman *p, PvgpuRenderJob *job)
{
    const PvgpuRenderOp *op = &job->op;
    PixmanResource *pr = g_hash_table_lookup(p->resources,
                                             GUINT_TO_POINTER(op->resource_id));

    switch (op->kind) {
    case PVGPU_OP_NONE:
        return true;
    case PVGPU_OP_RESOURCE_CREATE_2D:
        return create_2d(p, op);
    case PVGPU_OP_RESOURCE_CREATE_BLOB:
        if (pr || op->u.blob.blob_mem != PVGPU_BLOB_MEM_GUEST || op->ctx_id) {
            return false;
        }
        pr = g_new0(PixmanResource, 1);
        pr->iov = op->iov;
        pr->niov = op->niov;
        g_hash_table_insert(p->resources, GUINT_TO_POINTER(op->resource_id),
                            pr);
        return true;
    case PVGPU_OP_RESOURCE_UNREF:
        return g_hash_table_remove(p->resources,
                                   GUINT_TO_POINTER(op->resource_id));
    case PVGPU_OP_BACKING_ATTACH:
        if (!pr || pr->iov) {
            return false;
        }
        pr->iov = op->iov;
        pr->niov = op->niov;
        return true;
    case PVGPU_OP_BACKING_DETACH:
        if (!pr) {
            return false;
        }
        pr->iov = NULL;
        pr->niov = 0;
        return true;
    case PVGPU_OP_TRANSFER_WRITE:
        /* a blob is guest memory itself: nothing to copy */
        return pr && (!pr->image || transfer_write(pr, op));
    default:
        /* contexts, 3D resources, command streams, mappings: not here */
        return false;
    }
}

static void readback(PvgpuPixman *p, PvgpuReadback *rb)
{
    PixmanResource *pr = g_hash_table_lookup(p->resources,
                                             GUINT_TO_POINTER(rb->resource_id));

    rb->ok = false;
    rb->dmabuf.fd = -1;
    if (!pr || !pr->image ||
        !pvgpu_rect_inside(&rb->r, pixman_image_get_width(pr->image),
                           pixman_image_get_height(pr->image))) {
        return;
    }
    rb->format = pr->format;
    rb->image = pixman_image_ref(pr->image);
    rb->ok = true;
}

/* @job's operation, then its readbacks unless the operation failed */
static void execute(PvgpuPixman *p, PvgpuRenderJob *job)
{
    if (job->kind == PVGPU_JOB_OP) {
        job->failed = !exec_op(p, job);
    }
    for (unsigned i = 0; i < job->nreadbacks && !job->failed; i++) {
        readback(p, &job->readbacks[i]);
    }
}

static void run_job(PvgpuPixman *p, PvgpuRenderJob *job)
{
    job->start_ns = get_clock();
    if (job->kind == PVGPU_JOB_RESTART) {
        g_hash_table_remove_all(p->resources);
    }
    execute(p, job);
    job->gpu_ns = get_clock() - job->start_ns;
    if (job->scheduled && p->retire) {
        p->retire(job, p->source);
        job->retired = true;
    }
    QSIMPLEQ_INSERT_TAIL(&p->done, job, next);
    qemu_bh_schedule(p->bh);
}

static unsigned complete(PvgpuPixman *p)
{
    PvgpuRenderJob *job;
    unsigned n = 0;

    /* the scheduler's work, in its order, once nothing submitted waits */
    while (p->pull && (job = p->pull(p->source))) {
        pvgpu_render_job_begin(job);
        run_job(p, job);
    }
    /* each done_fn may submit more, which lands behind */
    while ((job = QSIMPLEQ_FIRST(&p->done))) {
        QSIMPLEQ_REMOVE_HEAD(&p->done, next);
        p->done_fn(job, p->opaque);
        n++;
    }
    return n;
}

static void pvgpu_pixman_bh(void *opaque)
{
    complete(opaque);
}

PvgpuRenderer *pvgpu_pixman_new(const PvgpuRenderOpts *opts,
                                PvgpuRenderDoneFn *done, void *opaque)
{
    PvgpuPixman *p = g_new0(PvgpuPixman, 1);

    p->parent.be = &pvgpu_pixman_backend;
    p->done_fn = done;
    p->opaque = opaque;
    QSIMPLEQ_INIT(&p->done);
    p->resources = g_hash_table_new_full(NULL, NULL, NULL, resource_free);
    p->bh = qemu_bh_new_guarded(pvgpu_pixman_bh, p, opts->guard);
    return &p->parent;
}

bool pvgpu_render_is_pixman(PvgpuRenderer *r)
{
    return r->be == &pvgpu_pixman_backend;
}

/* Everything submitted ran already: jobs run as they are submitted */
static bool pixman_run(PvgpuRenderer *r, PvgpuRenderJob *job)
{
    execute(pixman_of(r), job);
    return !job->failed;
}

static unsigned pixman_complete(PvgpuRenderer *r)
{
    PvgpuPixman *p = pixman_of(r);

    qemu_bh_cancel(p->bh);
    return complete(p);
}

static void pixman_set_source(PvgpuRenderer *r, PvgpuRenderPullFn *pull,
                              PvgpuRenderRetireFn *retire, void *opaque)
{
    PvgpuPixman *p = pixman_of(r);

    p->pull = pull;
    p->retire = retire;
    p->source = opaque;
}

static void pixman_submit(PvgpuRenderer *r, PvgpuRenderJob *job)
{
    run_job(pixman_of(r), job);
}

static void pixman_kick(PvgpuRenderer *r)
{
    qemu_bh_schedule(pixman_of(r)->bh);
}

/*
 * Every job is done by now; those not yet handed back are, as cancelled.
 * Host images are host memory only: nothing outlives the reset but the
 * references displays hold.
 */
static void pixman_reset(PvgpuRenderer *r, bool keep_memory)
{
    PvgpuPixman *p = pixman_of(r);
    PvgpuRenderJob *job;

    qemu_bh_cancel(p->bh);
    while ((job = QSIMPLEQ_FIRST(&p->done))) {
        QSIMPLEQ_REMOVE_HEAD(&p->done, next);
        job->cancelled = true;
        p->done_fn(job, p->opaque);
    }
    g_hash_table_remove_all(p->resources);
}

static void pixman_free_later(PvgpuRenderer *r, unsigned holds)
{
    PvgpuPixman *p = pixman_of(r);

    /* nothing of its memory is ever mapped into the guest */
    assert(!holds);
    pixman_reset(r, false);
    qemu_bh_delete(p->bh);
    g_hash_table_destroy(p->resources);
    g_free(p);
}

static void pixman_unhold(PvgpuRenderer *r)
{
    g_assert_not_reached();
}

static unsigned pixman_capsets(PvgpuRenderer *r, const PvgpuCapset **capsets)
{
    *capsets = NULL;
    return 0;
}

static const char *pixman_describe(PvgpuRenderer *r)
{
    return "pixman (2D)";
}

static char *pixman_broken(PvgpuRenderer *r)
{
    return NULL;
}

static const PvgpuRenderBackend pvgpu_pixman_backend = {
    .set_source = pixman_set_source,
    .submit = pixman_submit,
    .run = pixman_run,
    .complete = pixman_complete,
    .kick = pixman_kick,
    .reset = pixman_reset,
    .free_later = pixman_free_later,
    .unhold = pixman_unhold,
    .capsets = pixman_capsets,
    .describe = pixman_describe,
    .broken = pixman_broken,
};
