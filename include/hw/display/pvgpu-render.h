/*
 * pvgpu renderer: virglrenderer on a thread of its own
 *
 * The device hands decoded commands to the renderer as jobs; a dedicated
 * thread runs every virglrenderer call, and finished jobs come back to the
 * main loop through a bottom half.  Fenced jobs come back when their fence
 * signals, which virglrenderer's sync thread reports through its poll fd:
 * no polling tick, and the main loop never waits on GL (except reset and
 * teardown, which drain the thread).
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_DISPLAY_PVGPU_RENDER_H
#define HW_DISPLAY_PVGPU_RENDER_H

#include "qemu/queue.h"
#include "hw/qdev-core.h"
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
     * The device's re-entrancy guard: completions answer the guest, and a
     * guest may have placed its rings in the device's own BARs (the class
     * of CVE-2024-3446)
     */
    MemReentrancyGuard *guard;
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
    /* filled by the renderer */
    uint32_t format;        /* PVGPU_FORMAT_* of the resource */
    uint8_t *pixels;        /* r.width * r.height * 4 bytes, top row first */
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
    PVGPU_JOB_CMD,          /* execute .cmd, then its readbacks */
    PVGPU_JOB_READBACK,     /* only the readbacks (cursor images) */
    PVGPU_JOB_RESET,        /* internal: cancel jobs, restart the renderer */
    PVGPU_JOB_CANCEL,       /* internal: cancel jobs only */
    PVGPU_JOB_RESTART,      /* restart the renderer (a deferred reset) */
} PvgpuJobKind;

typedef struct PvgpuRenderJob {
    PvgpuJobKind kind;
    PvgpuCmd cmd;
    /*
     * RESOURCE_ATTACH_BACKING, RESOURCE_CREATE_BLOB: the guest memory to
     * attach (stays the caller's)
     */
    struct iovec *iov;
    unsigned niov;
    /* RESOURCE_UNREF of a blob mapped until now: unmap it first */
    bool unmap_first;
    /* RESOURCE_MAP_BLOB: the host memory and how the guest must map it */
    void *map_ptr;
    uint64_t map_size;
    uint32_t map_info;
    unsigned nreadbacks;
    PvgpuReadback readbacks[PVGPU_MAX_SCANOUTS];

    /* complete only once the GPU is done, even if the guest did not ask */
    bool always_fence;
    /*
     * Scheduled work: the source's retire function is told when it is
     * done (on the render thread), which sets .retired
     */
    bool scheduled;
    bool retired;

    /* results */
    uint32_t err;           /* 0 or PVGPU_RESP_ERR_* */
    bool cancelled;         /* dropped by a reset: do not answer the guest */
    /* GPU time the job took: from when it started, or the GPU became free
     * of earlier work, to its fence */
    uint64_t gpu_ns;
    uint64_t start_ns;      /* renderer-internal */

    uint32_t fence_seq;     /* renderer-internal */
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

/* Set, or with NULLs remove, the renderer's source of scheduled work. */
void pvgpu_render_set_source(PvgpuRenderer *r, PvgpuRenderPullFn *pull,
                             PvgpuRenderRetireFn *retire, void *opaque);

/*
 * Start the render thread and initialise virglrenderer on it.  Only one
 * renderer can exist per process (virglrenderer is a process singleton).
 */
PvgpuRenderer *pvgpu_render_new(const PvgpuRenderOpts *opts,
                                PvgpuRenderDoneFn *done, void *opaque,
                                Error **errp);
/* Queue @job; jobs run in submission order. */
void pvgpu_render_submit(PvgpuRenderer *r, PvgpuRenderJob *job);
/* Have the render thread look at its source's work again. */
void pvgpu_render_kick(PvgpuRenderer *r);
/*
 * Destroy all contexts and resources.  Jobs not finished are returned
 * through the done callback with .cancelled set before this returns.
 * With @keep_memory, contexts and resources stay until a PVGPU_JOB_RESTART
 * job: the guest may still reach mapped memory until then.
 */
void pvgpu_render_reset(PvgpuRenderer *r, bool keep_memory);
/* Reset, stop the thread and free.  virglrenderer cannot be restarted. */
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
 * virglrenderer could not be initialised again after a reset: every job
 * fails from then on.  Known once pvgpu_render_reset() returned or a
 * PVGPU_JOB_RESTART job came back.
 */
bool pvgpu_render_broken(PvgpuRenderer *r);

/* Free the pixels of a job's readbacks, close their dmabufs. */
void pvgpu_render_job_clear(PvgpuRenderJob *job);

#endif /* HW_DISPLAY_PVGPU_RENDER_H */
