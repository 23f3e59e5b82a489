/*
 * pvgpu renderer: the interface between the device and its backends
 *
 * The device hands the renderer jobs, each a typed operation (a
 * PvgpuRenderOp, plain data free of the virtio-gpu wire format, checked
 * by the device before) plus the readbacks to do after it.  The renderer
 * says only whether an operation failed; the device decides what the
 * guest is answered.  Finished jobs always come back to the main loop
 * through a bottom half, never from inside pvgpu_render_submit().
 *
 * Two backends implement it:
 * - virglrenderer on a thread of its own (pvgpu-virgl.c), for guests
 *   that negotiated VIRTIO_GPU_F_VIRGL.  Fenced jobs come back when their
 *   fence signals, which virglrenderer's sync thread reports through its
 *   poll fd: no polling tick, and the main loop never waits on GL (except
 *   reset and teardown, which drain the thread).
 * - pixman in the main loop (pvgpu-pixman.c), for 2D guests: host images
 *   in host memory, shown to QEMU's displays without a copy.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_DISPLAY_PVGPU_RENDER_H
#define HW_DISPLAY_PVGPU_RENDER_H

#include "qemu/queue.h"
#include "hw/qdev-core.h"
#include "ui/qemu-pixman.h"
#include "hw/display/pvgpu-cmd.h"

typedef struct PvgpuRenderer PvgpuRenderer;

typedef struct PvgpuRenderOpts {
    /*
     * DRM render node to render on; NULL: EGL surfaceless (any GPU or
     * Mesa's software rasterizer, no display or /dev/dri needed)
     */
    const char *render_node;
    /* OpenGL ES instead of desktop OpenGL on the host */
    bool gles;
    /*
     * A render process that finishes no job for this long while it has
     * some is hung, and killed (ns; 0: never)
     */
    int64_t hang_ns;
    /*
     * The device's re-entrancy guard: completions answer the guest, and a
     * guest may have placed its rings in the device's own BARs (the class
     * of CVE-2024-3446)
     */
    MemReentrancyGuard *guard;
    /*
     * The renderer owns the iovec array of every backing it holds (a
     * render process, whose arrays are its own): it takes a
     * BACKING_ATTACH's or RESOURCE_CREATE_BLOB's array when it accepts
     * the operation (the job's .iov_taken) and frees it when a detach,
     * an unref or a reset lets it go, in the order the operations run,
     * which is not the order fenced jobs complete in.  Otherwise the
     * arrays stay the caller's.
     */
    bool own_iov;
} PvgpuRenderOpts;

typedef struct PvgpuCapset {
    uint32_t id;
    uint32_t max_version;
    uint32_t max_size;
    uint8_t *data;          /* the capset at max_version */
} PvgpuCapset;

#define PVGPU_MAX_CAPSETS 2

/* A rectangle of a resource read back to host memory for presentation */
typedef struct PvgpuReadback {
    int scanout_id;         /* -1: the cursor */
    uint32_t resource_id;
    PvgpuRect r;
    /* export the whole resource as a dmabuf instead, if the renderer can */
    bool want_dmabuf;
    /*
     * where to write the pixels instead of a buffer of the renderer's own
     * (.pixels then stays NULL): r.width * r.height * 4 bytes of memory
     * the render process shares with QEMU
     */
    uint8_t *dest;
    /* filled by the renderer */
    uint32_t format;        /* PVGPU_FORMAT_* of the resource */
    uint8_t *pixels;        /* r.width * r.height * 4 bytes, top row first */
    /*
     * or, from a renderer whose images live in host memory the display
     * may read (pixman), a reference to the whole resource's image, which
     * stays the renderer's to write
     */
    pixman_image_t *image;
    bool ok;
    /* the export: fd -1 if none (then .pixels); closed by job_clear */
    struct {
        int fd;
        uint32_t width;
        uint32_t height;
        uint32_t stride;
        uint32_t fourcc;
        bool y0_top;
    } dmabuf;
} PvgpuReadback;

typedef enum PvgpuJobKind {
    PVGPU_JOB_OP,           /* execute .op, then its readbacks */
    PVGPU_JOB_READBACK,     /* only the readbacks (cursor images) */
    PVGPU_JOB_RESET,        /* internal: cancel jobs, restart the renderer */
    PVGPU_JOB_CANCEL,       /* internal: cancel jobs only */
    PVGPU_JOB_RESTART,      /* restart the renderer (a deferred reset) */
} PvgpuJobKind;

/*
 * What the renderer is asked to do: plain data (ids, boxes, the guest
 * memory as an iovec list, the command buffer), checked by the device
 * before, and free of the virtio-gpu wire format, so that it could as
 * well cross a process boundary.
 */
typedef enum PvgpuOpKind {
    PVGPU_OP_NONE,              /* nothing: only the job's readbacks */
    PVGPU_OP_CTX_CREATE,
    PVGPU_OP_CTX_DESTROY,
    PVGPU_OP_CTX_ATTACH,        /* .resource_id to .ctx_id */
    PVGPU_OP_CTX_DETACH,
    PVGPU_OP_RESOURCE_CREATE_2D,    /* .u.create: format, width, height */
    PVGPU_OP_RESOURCE_CREATE,   /* .u.create, a 3D resource */
    PVGPU_OP_RESOURCE_CREATE_BLOB,  /* .u.blob, guest memory in .iov */
    PVGPU_OP_RESOURCE_UNREF,    /* .u.unref */
    PVGPU_OP_BACKING_ATTACH,    /* guest memory in .iov */
    PVGPU_OP_BACKING_DETACH,
    /*
     * .u.transfer between the resource and its attached guest memory, or
     * the memory in .iov if given (restoring and saving migrated state)
     */
    PVGPU_OP_TRANSFER_WRITE,    /* memory to resource */
    PVGPU_OP_TRANSFER_READ,     /* resource to memory */
    PVGPU_OP_SUBMIT,            /* .u.submit in .ctx_id */
    PVGPU_OP_MAP,               /* results in the job's .map_* */
    PVGPU_OP_UNMAP,
} PvgpuOpKind;

typedef struct PvgpuRenderOp {
    PvgpuOpKind kind;
    uint32_t ctx_id;            /* 0: none */
    uint32_t resource_id;
    union {
        struct {
            uint32_t capset_id; /* 0: the renderer's default */
            uint32_t nlen;
            const char *name;   /* nlen bytes, the caller's */
        } ctx_create;
        PvgpuResource3dInfo create;
        struct {
            uint32_t blob_mem;
            uint32_t blob_flags;
            uint64_t blob_id;
            uint64_t size;
        } blob;
        struct {
            bool unmap_first;   /* a blob mapped until now */
        } unref;
        struct {
            PvgpuBox box;
            uint64_t offset;
            uint32_t level;
            uint32_t stride;    /* 0: the resource's own */
            uint32_t layer_stride;
        } transfer;
        struct {
            const uint32_t *dwords; /* the caller's */
            uint32_t ndw;
        } submit;
    } u;
    /* BACKING_ATTACH, RESOURCE_CREATE_BLOB, TRANSFER_*: memory, the caller's */
    struct iovec *iov;
    unsigned niov;
} PvgpuRenderOp;

typedef struct PvgpuRenderJob {
    PvgpuJobKind kind;
    PvgpuRenderOp op;
    /* complete only once the GPU is done with it (a renderer fence) */
    bool fence;
    unsigned nreadbacks;
    PvgpuReadback readbacks[PVGPU_MAX_SCANOUTS];

    /*
     * Scheduled work: the source's retire function is told when it is
     * done (on the render thread), which sets .retired
     */
    bool scheduled;
    bool retired;

    /* results */
    bool failed;            /* the renderer refused the operation */
    bool iov_taken;         /* PvgpuRenderOpts.own_iov: op.iov is its now */
    bool cancelled;         /* dropped by a reset: do not answer the guest */
    /* MAP: the host memory and how the guest must map it */
    void *map_ptr;
    uint64_t map_size;
    uint32_t map_info;
    /*
     * GPU time the job took: from when it started, or the GPU became free
     * of earlier work, to its fence
     */
    uint64_t gpu_ns;
    uint64_t start_ns;      /* renderer-internal */

    uint32_t fence_seq;     /* renderer-internal */
    bool sync;              /* renderer-internal: pvgpu_render_run() */
    QSIMPLEQ_ENTRY(PvgpuRenderJob) next;
} PvgpuRenderJob;

/* Called in the main loop (with the BQL) for every finished job. */
typedef void PvgpuRenderDoneFn(PvgpuRenderJob *job, void *opaque);

/*
 * A source of scheduled work the render thread pulls itself, so that the
 * next job starts where the last one's fence signals, without a round
 * trip through the main loop.  Both run on the render thread, with the
 * renderer's lock held: pull() whenever no submitted job is waiting (so a
 * job submitted earlier always runs first), returning a job to run or
 * NULL; retire() for every finished job marked .scheduled (its .gpu_ns
 * set, .cancelled if a reset dropped it), before it goes back to the main
 * loop.  They must not call into the renderer.
 */
typedef PvgpuRenderJob *PvgpuRenderPullFn(void *opaque);
typedef void PvgpuRenderRetireFn(PvgpuRenderJob *job, void *opaque);

/* A backend: the functions below, for its renderers */
typedef struct PvgpuRenderBackend {
    void (*set_source)(PvgpuRenderer *r, PvgpuRenderPullFn *pull,
                       PvgpuRenderRetireFn *retire, void *opaque);
    void (*submit)(PvgpuRenderer *r, PvgpuRenderJob *job);
    bool (*run)(PvgpuRenderer *r, PvgpuRenderJob *job);
    unsigned (*complete)(PvgpuRenderer *r);
    void (*kick)(PvgpuRenderer *r);
    void (*reset)(PvgpuRenderer *r, bool keep_memory);
    void (*free_later)(PvgpuRenderer *r, unsigned holds);
    void (*unhold)(PvgpuRenderer *r);
    unsigned (*capsets)(PvgpuRenderer *r, const PvgpuCapset **capsets);
    const char *(*describe)(PvgpuRenderer *r);
    char *(*broken)(PvgpuRenderer *r);
    /* renderers in a process of their own; NULL for the others */
    bool (*process)(PvgpuRenderer *r, int *pid, unsigned *restarts);
} PvgpuRenderBackend;

/* What every backend's renderer starts with */
struct PvgpuRenderer {
    const PvgpuRenderBackend *be;
};

/* Set, or with NULLs remove, the renderer's source of scheduled work. */
void pvgpu_render_set_source(PvgpuRenderer *r, PvgpuRenderPullFn *pull,
                             PvgpuRenderRetireFn *retire, void *opaque);

/*
 * virglrenderer: start the render thread and initialise virglrenderer on
 * it.  Only one such renderer can exist per process (virglrenderer is a
 * process singleton).
 */
PvgpuRenderer *pvgpu_virgl_new(const PvgpuRenderOpts *opts,
                               PvgpuRenderDoneFn *done, void *opaque,
                               Error **errp);

/*
 * virglrenderer in a render process (pvgpu-remote.c): start @helper (NULL:
 * contrib/pvgpu-render's pvgpu-render beside QEMU or where it is
 * installed) and wait for it to be ready.  Any number of them may exist.
 * pvgpu_remote_possible() tells whether the guest's RAM can be shared
 * with one and the helper is there.
 */
PvgpuRenderer *pvgpu_remote_new(const PvgpuRenderOpts *opts,
                                const char *helper, PvgpuRenderDoneFn *done,
                                void *opaque, Error **errp);
bool pvgpu_remote_possible(const char *helper, Error **errp);

/*
 * pixman: 2D resources (RESOURCE_CREATE_2D images, guest-memory blobs),
 * backing, TRANSFER_WRITE of 2D boxes, readbacks as image references.
 * Everything else fails.  Jobs run in the main loop as they are
 * submitted; their completions come through a bottom half.
 */
PvgpuRenderer *pvgpu_pixman_new(const PvgpuRenderOpts *opts,
                                PvgpuRenderDoneFn *done, void *opaque);
bool pvgpu_render_is_pixman(PvgpuRenderer *r);
/* pixman's format of PVGPU_FORMAT_* @format; 0 if it has none */
pixman_format_code_t pvgpu_pixman_format(uint32_t format);
/* Queue @job; jobs run in submission order. */
void pvgpu_render_submit(PvgpuRenderer *r, PvgpuRenderJob *job);
/*
 * Run @job now and wait for it, with no completion: false if it failed.
 * It runs once every job submitted before it is done, fences included.
 * For the VM stopped (saving and restoring state, draining): on a
 * renderer thread it waits for the GPU.  Readbacks hold pixels or image
 * references: pvgpu_render_job_clear().  Not for .fence or scheduled jobs.
 */
bool pvgpu_render_run(PvgpuRenderer *r, PvgpuRenderJob *job);
/*
 * Hand back every finished job now instead of from the bottom half (the
 * VM stops: nothing popped may stay unanswered).  Returns how many.
 */
unsigned pvgpu_render_complete(PvgpuRenderer *r);
/* Have the render thread look at its source's work again. */
void pvgpu_render_kick(PvgpuRenderer *r);
/*
 * Destroy all contexts and resources.  Jobs not finished are returned
 * through the done callback with .cancelled set before this returns.
 * With @keep_memory, contexts and resources stay until a PVGPU_JOB_RESTART
 * job: the guest may still reach mapped memory until then.
 */
void pvgpu_render_reset(PvgpuRenderer *r, bool keep_memory);
/* Reset and free (NULL: nothing). */
void pvgpu_render_free(PvgpuRenderer *r);
/*
 * The device is going while @holds regions still show the renderer's
 * memory: cancel everything now, free once pvgpu_render_unhold() has been
 * called @holds times (at once for 0).
 */
void pvgpu_render_free_later(PvgpuRenderer *r, unsigned holds);
void pvgpu_render_unhold(PvgpuRenderer *r);

unsigned pvgpu_render_capsets(PvgpuRenderer *r, const PvgpuCapset **capsets);
const char *pvgpu_render_describe(PvgpuRenderer *r);
/*
 * The renderer cannot render (every job fails): virglrenderer could not be
 * initialised again after a reset, or its render process died.  Known
 * once pvgpu_render_reset() returned, a PVGPU_JOB_RESTART job or a
 * failed job came back.  pvgpu_render_broken_why() says why (NULL: it is
 * not broken), to be freed.
 */
bool pvgpu_render_broken(PvgpuRenderer *r);
char *pvgpu_render_broken_why(PvgpuRenderer *r);
/*
 * A renderer in a process of its own: its pid (0 while there is none)
 * and how many times it was started again after it died.
 */
bool pvgpu_render_process(PvgpuRenderer *r, int *pid, unsigned *restarts);

/* A backend starts @job (submitted or pulled): no results yet */
void pvgpu_render_job_begin(PvgpuRenderJob *job);
/* Free the pixels of a job's readbacks, drop their images, close dmabufs */
void pvgpu_render_job_clear(PvgpuRenderJob *job);

#endif /* HW_DISPLAY_PVGPU_RENDER_H */
