/*
 * pvgpu: shared paravirtual GPU speaking the virtio-gpu protocol
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_DISPLAY_PVGPU_H
#define HW_DISPLAY_PVGPU_H

#include "exec/memory.h"
#include "hw/virtio/virtio.h"
#include "qom/object.h"
#include "ui/console.h"
#include "ui/dmabuf.h"
#include "hw/display/pvgpu-cmd.h"
#include "hw/display/pvgpu-deps.h"
#include "hw/display/pvgpu-render.h"
#include "hw/display/pvgpu-sched.h"
#include "hw/display/pvgpu-settings.h"
#include "qapi/qapi-types-pvgpu.h"
#include "qemu/timer.h"
#include "qapi/qapi-types-common.h"

#define TYPE_PVGPU "pvgpu-device"
OBJECT_DECLARE_SIMPLE_TYPE(PvgpuState, PVGPU)

#define TYPE_PVGPU_PCI "pvgpu-pci"

/*
 * A cursor in a guest blob: the size Linux's virtio_gpu cursor plane uses
 * (64x64, DRM_FORMAT_ARGB8888 = B8G8R8A8_UNORM)
 */
#define PVGPU_CURSOR_SIZE 64
#define PVGPU_CURSOR_BLOB_BYTES (PVGPU_CURSOR_SIZE * PVGPU_CURSOR_SIZE * 4)

/* virtio_gpu_config.events_read bits, spec 5.7.4 */
#define PVGPU_EVENT_DISPLAY (1u << 0)

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

typedef struct PvgpuResource {
    uint32_t id;
    /* the renderer may write its guest backing (a 3D guest's) */
    bool is_3d;
    /* tells this resource from a later one with the same id */
    uint64_t serial;
    uint32_t format;
    uint32_t width;
    uint32_t height;
    /* host memory charged against max_hostmem */
    uint64_t hostmem;

    /* guest backing: the guest-physical list and its host mapping */
    uint32_t nr_entries;
    PvgpuMemEntry *entries;
    struct iovec *iov;
    unsigned niov;
    uint64_t backing_size;

    /* scanouts showing this resource, and the cursor using it */
    uint32_t scanout_bitmask;
    /* contexts it is attached to (pvgpu-exec.c) */
    uint32_t nctx;

    bool has_uuid;
    uint8_t uuid[16];

    /* RESOURCE_CREATE_BLOB; blob_mem 0 for 2D and 3D resources */
    uint32_t blob_mem;
    uint32_t blob_flags;
    uint64_t blob_size;
    PvgpuBlobMapping *mapping;  /* MAP_BLOB, until UNMAP_BLOB */
    /* the last MAP_BLOB, while the renderer has not answered it */
    struct PvgpuRequest *map_req;
    uint64_t map_offset;        /* of the last MAP_BLOB */
} PvgpuResource;

/* SET_SCANOUT_BLOB: a framebuffer inside a blob's guest memory */
typedef struct PvgpuFramebuffer {
    uint32_t format;
    uint32_t width;
    uint32_t height;
    uint32_t stride;
    uint32_t offset;
} PvgpuFramebuffer;

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
    /* tells this context from a later one with the same id */
    uint64_t serial;
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
     * it claims from its context's streams, handed back if the renderer
     * refuses the blob
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

#define PVGPU_DMABUF_CACHE 3

typedef struct PvgpuScanout {
    QemuConsole *con;
    /* what the guest set with SET_SCANOUT; resource_id 0 = disabled */
    uint32_t resource_id;
    PvgpuRect r;
    /* what the UI asked for through ui_info */
    uint32_t ui_width;
    uint32_t ui_height;
    bool ui_enabled;
    /* cursor, in scanout coordinates */
    uint32_t cursor_resource_id;
    uint32_t cursor_x;
    uint32_t cursor_y;
    uint32_t cursor_hot_x;
    uint32_t cursor_hot_y;
    /* SET_SCANOUT_BLOB: the framebuffer shown (fb.width 0: not a blob) */
    PvgpuFramebuffer fb;
    /* a copy of the visible rect when it is not contiguous on the host */
    pixman_image_t *shadow;
    /*
     * the renderer's image of the resource shown, when it shares it (the
     * surface points into it), and the rectangle the surface was built for
     */
    pixman_image_t *image;
    PvgpuRect image_r;
    uint64_t shadow_hostmem;
    /*
     * gl-scanout: the 3D resource shown, as the GL display imports it, and
     * the last few shown (a guest flips between two or three buffers; the
     * display keeps its imported texture in the QemuDmaBuf)
     */
    QemuDmaBuf *dmabuf;
    struct {
        uint32_t resource_id;
        PvgpuRect r;
        QemuDmaBuf *dmabuf;
    } dmabuf_cache[PVGPU_DMABUF_CACHE];
    unsigned dmabuf_next;
} PvgpuScanout;

struct PvgpuState {
    VirtIODevice parent_obj;

    VirtQueue *ctrl_vq;
    VirtQueue *cursor_vq;
    /*
     * Requests popped and not yet freed.  Those a queue reset orphaned
     * (their element given back, still executing) count in @orphans; the
     * queues are not popped while there are too many of them.
     */
    QLIST_HEAD(, PvgpuRequest) requests;
    unsigned orphans;
    bool throttled;
    /* fenced control requests not yet answered, in arrival order */
    QTAILQ_HEAD(, PvgpuRequest) fence_order;
    QEMUBH *resume_bh;

    /* properties */
    uint32_t max_outputs;
    uint32_t xres;
    uint32_t yres;
    bool edid;
    uint64_t max_hostmem;
    bool blob;
    uint64_t hostmem;           /* size of the host-visible memory BAR */
    OnOffAuto virgl;
    char *render_node;
    bool gles;
    bool gl_scanout;
    unsigned gl_blocked;        /* the GL display is busy with a frame */

    /*
     * The renderers: virglrenderer's when it could be initialised, and
     * pixman; the guest's (virgl if it negotiated VIRGL, else pixman)
     */
    PvgpuRenderer *virgl_renderer;
    PvgpuRenderer *pixman_renderer;
    PvgpuRenderer *renderer;
    bool virgl_used;            /* given work since its last reset */
    unsigned decode_caps;       /* PVGPU_DECODE_* the guest negotiated */
    GHashTable *contexts;       /* ctx_id -> PvgpuContext */
    GHashTable *dying;          /* &serial -> PvgpuContext (CTX_DESTROY) */
    unsigned shared_resources;  /* attached to more than one context */
    QTAILQ_HEAD(, PvgpuRequest) inflight;   /* requests the renderer holds */
    /* requests in arrival order, not yet scheduled or dispatched */
    QTAILQ_HEAD(, PvgpuRequest) held;
    Error *migration_blocker;
    /* the host-visible memory region (BAR 4), when hostmem is set */
    MemoryRegion hostmem_bar;
    QEMUBH *pump_bh;            /* dispatch what may go now */
    /* mappings taken out by a reset, not yet released (PvgpuBlobMapping) */
    GSList *releasing;
    /* QEMU is shutting down: the renderer stops before the process exits */
    Notifier shutdown_notifier;

    /* GPU-time scheduling and limits (properties, QMP) */
    PvgpuSchedulerPolicy sched_policy;
    uint32_t quantum_us;
    uint32_t max_fps;
    uint32_t max_contexts;
    uint32_t max_resources;
    uint32_t max_queued;
    uint32_t max_inflight;
    /*
     * The scheduler is shared with the render thread, which pulls the
     * next item and charges finished ones where fences signal
     * (pvgpu-exec.c); sched_lock guards it, sched_queued, sched_deps,
     * sched_deps_waiting, sched_running, sched_paused, sched_wake_ns and
     * the inflight list.  Never held while
     * calling into the renderer (the render thread takes it under its own
     * lock).
     */
    QemuMutex sched_lock;
    PvgpuSched *sched;
    unsigned sched_queued;      /* items queued in the scheduler */
    PvgpuDepCounts *sched_deps; /* what they touch */
    bool sched_deps_waiting;    /* a held request waits for one of them */
    unsigned sched_running;     /* items pulled, not yet finished */
    bool sched_paused;          /* a reset is dropping the queues */
    uint64_t sched_wake_ns;     /* capped work may go then (0: none) */
    QEMUTimer *pump_timer;      /* caps and the frame-rate limiter */
    VMChangeStateEntry *vm_state;
    bool draining;              /* the VM stops: answer everything now */
    PvgpuFpsLimiter fps[PVGPU_MAX_SCANOUTS];
    uint64_t refusals;
    /* why the device has no 3D (query-pvgpu); NULL when it has */
    char *virgl_unavailable;
    struct {
        int64_t last_ns;
        uint32_t suppressed;
    } event_limit[PVGPU_QUOTA__MAX + 1];    /* last one: context errors */

    /* virtio_gpu_config */
    uint32_t events_read;

    GHashTable *resources;      /* id -> PvgpuResource */
    uint64_t resource_serial;
    uint64_t hostmem_used;
    PvgpuScanout scanouts[PVGPU_MAX_SCANOUTS];
};

/* pvgpu.c: answering requests, limits, events */
const char *pvgpu_device_id(PvgpuState *s);
void pvgpu_quota_refused(PvgpuState *s, PvgpuQuota quota, bool has_ctx,
                         uint32_t ctx_id, uint64_t limit);
void pvgpu_context_error(PvgpuState *s, uint32_t ctx_id, const char *command);
/* The device runs without 3D because of @reason: recorded and announced */
void pvgpu_3d_unavailable(PvgpuState *s, const char *reason);
bool pvgpu_set_scheduler(PvgpuState *s, bool has_policy,
                         PvgpuSchedulerPolicy policy, bool has_quantum_us,
                         uint32_t quantum_us, bool has_max_fps,
                         uint32_t max_fps, Error **errp);
bool pvgpu_set_context(PvgpuState *s, uint32_t ctx_id, bool has_weight,
                       uint32_t weight, bool has_cap, uint32_t cap,
                       bool has_priority, uint32_t priority, Error **errp);
bool pvgpu_set_limits(PvgpuState *s, bool has_max_hostmem,
                      uint64_t max_hostmem, bool has_max_contexts,
                      uint32_t max_contexts, bool has_max_resources,
                      uint32_t max_resources, bool has_max_queued,
                      uint32_t max_queued, Error **errp);
/*
 * Is @value in @which's range (pvgpu-settings.h)?  If not, @errp names
 * the -device property (@property) or the QMP parameter.
 */
bool pvgpu_setting_check(PvgpuSetting which, uint64_t value, bool property,
                         Error **errp);
void pvgpu_request_respond(PvgpuState *s, PvgpuRequest *req, uint32_t err,
                           const uint8_t *resp, size_t resp_len);
void pvgpu_request_free(PvgpuRequest *req);

/* pvgpu-exec.c: the command path, contexts, scheduling, the renderers */
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

/* pvgpu-2d.c: the resource table, its checks and accounting, migration */
uint32_t G_GNUC_PRINTF(3, 4) pvgpu_cmd_fail(const PvgpuCmd *cmd, uint32_t err,
                                            const char *fmt, ...);
PvgpuResource *pvgpu_resource_find_or_fail(PvgpuState *s,
                                           const PvgpuCmd *cmd, uint32_t id,
                                           uint32_t *err);
bool pvgpu_resource_admit(PvgpuState *s, const PvgpuCmd *cmd, uint32_t id,
                          uint32_t *err);
/*
 * Host memory accounting against max_hostmem.  The resource table owns
 * hostmem_used: whatever holds host memory for the guest (resources,
 * blob scanout shadows, stream-created resources) charges and releases
 * it through these, nowhere else.
 *
 * pvgpu_hostmem_reserve: charge @size if it fits under max_hostmem;
 * false (and a PVGPU_QUOTA_EXCEEDED event) if not.
 * pvgpu_hostmem_restore: charge @size unconditionally, for memory that
 * was held all along and is only handed back (max_hostmem may have been
 * lowered meanwhile).
 * pvgpu_hostmem_charge: pvgpu_hostmem_reserve for command @cmd (resource
 * @id), which fails with ERR_OUT_OF_MEMORY and a guest-error log line;
 * @cmd may be NULL (nothing logged).
 */
bool pvgpu_hostmem_reserve(PvgpuState *s, uint64_t size);
void pvgpu_hostmem_restore(PvgpuState *s, uint64_t size);
void pvgpu_hostmem_release(PvgpuState *s, uint64_t size);
bool pvgpu_hostmem_charge(PvgpuState *s, const PvgpuCmd *cmd, uint32_t id,
                          uint64_t size, uint32_t *err);
void pvgpu_resource_free(PvgpuState *s, PvgpuResource *res);
uint32_t pvgpu_backing_attach(PvgpuState *s, const PvgpuCmd *cmd,
                              PvgpuResource **pres);
PvgpuResource *pvgpu_resource_with_backing(PvgpuState *s, const PvgpuCmd *cmd,
                                           uint32_t id, uint32_t *err);
/* Checks shared by the 2D and 3D command paths (pvgpu-2d.c says what) */
PvgpuResource *pvgpu_check_transfer_2d(PvgpuState *s, const PvgpuCmd *cmd,
                                       uint32_t *err);
PvgpuResource *pvgpu_check_flush(PvgpuState *s, const PvgpuCmd *cmd,
                                 uint32_t *err);
bool pvgpu_backing_map(PvgpuState *s, PvgpuResource *res);
void pvgpu_backing_free(PvgpuState *s, PvgpuResource *res);
void pvgpu_iov_unmap(PvgpuState *s, struct iovec *iov, unsigned niov,
                     bool writable);
uint32_t pvgpu_set_scanout_blob(PvgpuState *s, const PvgpuCmd *cmd);
PvgpuResource *pvgpu_scanout_target(PvgpuState *s, const PvgpuCmd *cmd,
                                    uint32_t scanout_id, uint32_t resource_id,
                                    const PvgpuRect *r, uint32_t *err);
PvgpuResource *pvgpu_blob_new(PvgpuState *s, const PvgpuCmd *cmd,
                              bool is_3d, uint32_t *err);
/* A renderer's resource @id, recorded and charged @hostmem (reserved) */
PvgpuResource *pvgpu_resource_new(PvgpuState *s, uint32_t id, uint32_t format,
                                  uint32_t width, uint32_t height,
                                  uint64_t hostmem);
/* Display info, EDID and UUIDs: the commands no renderer takes part in */
uint32_t pvgpu_info_exec(PvgpuState *s, const PvgpuCmd *cmd,
                         uint8_t *resp, size_t *resp_len);
void pvgpu_resources_init(PvgpuState *s);
void pvgpu_resources_reset(PvgpuState *s);
void pvgpu_resources_fini(PvgpuState *s);
PvgpuResource *pvgpu_resource_find(PvgpuState *s, uint32_t id);
extern const VMStateInfo pvgpu_vmstate_resources;
int pvgpu_resources_post_load(PvgpuState *s);

/* pvgpu-scanout.c: scanouts as QEMU consoles */
bool pvgpu_scanouts_init(PvgpuState *s, Error **errp);
void pvgpu_scanouts_fini(PvgpuState *s);
void pvgpu_scanouts_reset(PvgpuState *s);
void pvgpu_scanout_disable(PvgpuState *s, uint32_t scanout_id);
void pvgpu_scanout_flush(PvgpuState *s, PvgpuResource *res,
                         const PvgpuRect *r);
void pvgpu_scanout_detach_resource(PvgpuState *s, PvgpuResource *res);
void pvgpu_scanout_cursor(PvgpuState *s, uint32_t scanout_id,
                          PvgpuResource *res, bool update);
void pvgpu_scanouts_display_info(PvgpuState *s, PvgpuDisplayOne *pmodes);
size_t pvgpu_scanout_edid(PvgpuState *s, uint32_t scanout_id,
                          uint8_t *edid, size_t size);
void pvgpu_scanouts_post_load(PvgpuState *s);
uint32_t pvgpu_scanout_set_blob(PvgpuState *s, uint32_t scanout_id,
                                PvgpuResource *res,
                                const PvgpuFramebuffer *fb,
                                const PvgpuRect *r);
/* The renderer's resources: pixels come as readbacks */
bool pvgpu_scanout_set_3d(PvgpuState *s, uint32_t scanout_id,
                          PvgpuResource *res, const PvgpuRect *r);
void pvgpu_scanout_present(PvgpuState *s, const PvgpuReadback *rb);
bool pvgpu_scanout_wants_dmabuf(PvgpuState *s, uint32_t scanout_id);
void pvgpu_scanout_gl_update(PvgpuState *s, uint32_t scanout_id,
                             uint32_t resource_id, const PvgpuRect *r);
void pvgpu_cursor_present(PvgpuState *s, uint32_t scanout_id,
                          const PvgpuReadback *rb);

/* pvgpu.c */
void pvgpu_notify_config_event(PvgpuState *s, uint32_t event);

#endif /* HW_DISPLAY_PVGPU_H */
