/*
 * pvgpu's command path (pvgpu-exec.c)
 *
 * Owns the requests from the moment they are decoded until they are
 * answered (PvgpuRequest: held, queued in the scheduler, in flight), the
 * guest's contexts, the scheduler and dependency counts, the renderers
 * (virglrenderer for a 3D guest, pixman for a 2D one) and the blob
 * mappings in the host-visible BAR.  Every control and cursor command is
 * checked here against device state, committed, and handed to the
 * renderer; its completion answers the guest through pvgpu.c.  Nothing
 * committed is taken back: a resource or context whose creation the
 * renderer refused stays recorded, refused, until the guest lets go of it.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_DISPLAY_PVGPU_EXEC_H
#define HW_DISPLAY_PVGPU_EXEC_H

#include "qom/object.h"
#include "exec/memory.h"
#include "hw/virtio/virtio.h"
#include "hw/display/pvgpu-cmd.h"
#include "hw/display/pvgpu-deps.h"
#include "hw/display/pvgpu-pool.h"
#include "hw/display/pvgpu-render.h"
#include "hw/display/pvgpu-sched.h"
#include "hw/display/pvgpu-resource.h"

typedef struct PvgpuState PvgpuState;

/*
 * A host-visible blob mapped into the hostmem BAR (RESOURCE_MAP_BLOB).
 * A QOM object so that its memory region can outlive the mapping: the
 * renderer may only let go of the host memory once the last reference to
 * the region is gone (after an RCU grace period), see pvgpu-exec.c.
 */
typedef struct PvgpuBlobMapping {
    Object parent_obj;
    MemoryRegion mr;
    /* the UNMAP_BLOB or UNREF waiting for the region to be released */
    struct PvgpuRequest *waiter;
    /* or, after a reset, the device whose renderer restart waits */
    struct PvgpuState *s;
    /* or, after an unplug, the renderer whose freeing waits */
    PvgpuRenderer *renderer;
} PvgpuBlobMapping;

#define TYPE_PVGPU_BLOB_MAPPING "pvgpu-blob-mapping"

/* A guest 3D context (CTX_CREATE) */
typedef struct PvgpuContext {
    uint32_t id;
    uint32_t capset_id;
    GHashTable *resources;      /* ids of attached resources (a set) */
    PvgpuSchedEntity *entity;   /* its share of the GPU */
    uint32_t weight;
    uint32_t cap;
    uint32_t priority;
    uint64_t errors;            /* commands the renderer refused */
    /*
     * It ran a command stream: it holds GL state virglrenderer cannot
     * save, and so the guest cannot be migrated while it exists
     */
    bool used;
    /* tells this context from a later one with the same id */
    uint64_t serial;
    /*
     * The renderer refused to create it: the guest's id stays taken until
     * its CTX_DESTROY, the only command it still takes, which the
     * renderer need not see
     */
    bool refused;
    /*
     * Resources its command streams created that no CREATE_BLOB claimed
     * yet (PvgpuPipeResource), oldest first, and the host memory charged
     * for them; at most PVGPU_MAX_PIPE_PENDING.
     */
    GArray *pipe_pending;
    uint64_t pipe_hostmem;
    struct PvgpuState *s;
} PvgpuContext;

/* unclaimed stream-created resources a context may hold (Mesa: one) */
#define PVGPU_MAX_PIPE_PENDING 256

/*
 * One request popped from a virtqueue.  Requests the renderer executes
 * carry their job; the job's completion answers the guest.
 */
typedef struct PvgpuRequest {
    PvgpuCmd cmd;               /* decoded; points into buf */
    PvgpuRenderJob job;         /* what the renderer is asked to do */
    struct PvgpuState *s;
    VirtQueue *vq;
    VirtQueueElement *elem;     /* NULL for device-internal jobs */
    uint8_t *buf;               /* the request's bytes */
    /* UNREF: the resource being released; DETACH_BACKING: its mapping */
    PvgpuResource *res;
    struct iovec *iov;
    unsigned niov;
    /* of the resource a CREATE/ATTACH or the context a CTX_CREATE is for */
    uint64_t serial;
    /* a context's work goes through the scheduler (job.scheduled) */
    PvgpuSchedItem item;
    /*
     * What it touches (pvgpu-exec.c, deps_of()): it reaches the renderer
     * only after every earlier request that touches any of it
     */
    PvgpuDeps deps;
    /*
     * CTX_DESTROY: the context, gone for the guest but kept (in
     * s->dying) with its scheduling entity until this reaches the
     * renderer, so that work queued before it still runs
     */
    struct PvgpuContext *dying;
    /*
     * UNMAP_BLOB, UNREF: the mapping whose region must be released before
     * the renderer may free its memory; NULL once released
     */
    PvgpuBlobMapping *unmap;
    /*
     * CREATE_BLOB of host memory (HOST3D, HOST3D_GUEST): the resource
     * it claims from its context's streams, which stays the context's if
     * the renderer refuses the blob
     */
    PvgpuPipeResource pipe_claim;
    bool pipe_claimed;
    /* the context it came for (CREATE_BLOB, a context's work) */
    uint64_t ctx_serial;
    /*
     * What to present once the renderer is done (RESOURCE_FLUSH,
     * SET_SCANOUT_BLOB), set by the command's check: rectangle @r of
     * resource @resource_id, from the guest memory of a blob (@blob), or
     * on the scanouts in @gl_mask, shown as dmabufs
     */
    struct {
        uint32_t resource_id;
        PvgpuRect r;
        bool blob;
        uint32_t gl_mask;
    } present;
    /*
     * MAP_BLOB: its resource (an UNREF of it waits for this map), and the
     * UNMAP_BLOB or UNREF queued after it, which waits (map_wait) until
     * the renderer has answered it
     */
    PvgpuResource *map_res;
    struct PvgpuRequest *unmap_waiter;
    bool map_wait;
    QTAILQ_ENTRY(PvgpuRequest) next;
    /* every request popped from a virtqueue, until freed */
    QLIST_ENTRY(PvgpuRequest) live;
    /* its queue was reset: nobody is answered, its element is given back */
    bool orphan;
    /*
     * A fenced request, in the device's fence order until answered; an
     * answer ready before those ahead of it waits here (pvgpu.c)
     */
    QTAILQ_ENTRY(PvgpuRequest) fence_next;
    bool in_fence_order;
    uint8_t *answer;
    size_t answer_len;
} PvgpuRequest;

bool pvgpu_exec_init(PvgpuState *s, Error **errp);
/* Can the device offer 3D (VIRTIO_GPU_F_VIRGL) to the guest? */
bool pvgpu_3d_available(PvgpuState *s);
void pvgpu_exec_fini(PvgpuState *s);
void pvgpu_exec_reset(PvgpuState *s);
void pvgpu_exec_set_features(PvgpuState *s, unsigned decode_caps);
void pvgpu_exec_submit(PvgpuState *s, PvgpuRequest *req);
/* A cursor queue command (no response, spec 5.7.6.10) */
void pvgpu_exec_cursor(PvgpuState *s, const PvgpuCmd *cmd);
PvgpuContext *pvgpu_context_find(PvgpuState *s, uint32_t ctx_id);
void pvgpu_exec_apply_scheduler(PvgpuState *s);
void pvgpu_exec_resume(PvgpuState *s);
/*
 * Why the device cannot be migrated now (its 3D state), or NULL: g_free
 * it.  pvgpu_exec_pre_save() refuses to save then.
 */
char *pvgpu_exec_migration_blocker(PvgpuState *s);
int pvgpu_exec_pre_save(PvgpuState *s);
/* The contexts that can migrate (none ran a command stream) */
extern const VMStateInfo pvgpu_vmstate_contexts;
/* Create the loaded contexts on the renderer, after the resources */
int pvgpu_exec_post_load(PvgpuState *s);


/* What the GPU pool client (pvgpu-pool.c) calls back */
extern const PvgpuPoolOps pvgpu_exec_pool_ops;

#endif /* HW_DISPLAY_PVGPU_EXEC_H */
