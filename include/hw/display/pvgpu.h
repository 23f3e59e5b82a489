/*
 * pvgpu: shared paravirtual GPU speaking the virtio-gpu protocol
 *
 * The device (PvgpuState) and its virtio transport (pvgpu.c: queues,
 * config space, features, reset, VMState, answering requests, events and
 * the run-time settings).  Its parts each have a header saying what they
 * own: pvgpu-exec.h (the command path), pvgpu-resource.h (the resource
 * table) and pvgpu-scanout.h (the scanouts).
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
#include "hw/display/pvgpu-exec.h"
#include "hw/display/pvgpu-pool.h"
#include "hw/display/pvgpu-render.h"
#include "hw/display/pvgpu-resource.h"
#include "hw/display/pvgpu-scanout.h"
#include "hw/display/pvgpu-sched.h"
#include "hw/display/pvgpu-settings.h"
#include "qapi/qapi-types-pvgpu.h"
#include "qemu/timer.h"
#include "qapi/qapi-types-common.h"

#define TYPE_PVGPU "pvgpu-device"
OBJECT_DECLARE_SIMPLE_TYPE(PvgpuState, PVGPU)

#define TYPE_PVGPU_PCI "pvgpu-pci"

/* virtio_gpu_config.events_read bits, spec 5.7.4 */
#define PVGPU_EVENT_DISPLAY (1u << 0)

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
    OnOffAuto render_process;   /* virglrenderer in pvgpu-render */
    char *render_helper;        /* that program; NULL: where it is built */
    uint32_t render_timeout;    /* seconds; 0: a render process never hangs */
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
    uint64_t context_serial;    /* the last context's serial */
    unsigned contexts_used;     /* of them, those with GL state (.used) */
    unsigned shared_resources;  /* attached to more than one context */
    QTAILQ_HEAD(, PvgpuRequest) inflight;   /* requests the renderer holds */
    /* requests in arrival order, not yet scheduled or dispatched */
    QTAILQ_HEAD(, PvgpuRequest) held;
    /*
     * Added while the guest has 3D state (pvgpu-exec.c); blocker_key: the
     * context and 3D resource counts it was added for
     */
    Error *migration_blocker;
    uint64_t blocker_key;
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
    uint32_t batch_quanta;
    uint32_t switch_budget;
    uint32_t max_fps;
    uint32_t max_contexts;
    uint32_t max_resources;
    uint32_t max_queued;
    uint32_t max_inflight;
    uint32_t solo_inflight;
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

    /* the GPU pool (property pool): NULL without one */
    CharBackend pool_chr;
    char *pool_name;
    uint32_t pool_reservation;
    PvgpuPool *pool;
    uint64_t frames;            /* flushes presented, for the pool */
    unsigned pool_held;         /* requests the last pump held for a grant */

    /* virtio_gpu_config */
    uint32_t events_read;

    GHashTable *resources;      /* id -> PvgpuResource */
    /* of them, 3D resources and host-memory blobs: they cannot migrate */
    unsigned resources_3d;
    uint64_t resource_serial;
    uint64_t hostmem_used;
    PvgpuScanout scanouts[PVGPU_MAX_SCANOUTS];
};

/* pvgpu.c: answering requests, limits, events */
/* The id of the pvgpu-pci device, or NULL */
const char *pvgpu_device_id(PvgpuState *s);
/* The QOM path of the pvgpu-pci device: g_free it */
char *pvgpu_device_path(PvgpuState *s);
/* For messages: the id, or the QOM path if none; g_free it */
char *pvgpu_device_label(PvgpuState *s);
void pvgpu_quota_refused(PvgpuState *s, PvgpuQuota quota, bool has_ctx,
                         uint32_t ctx_id, uint64_t limit);
/* The renderer refused command @type (PVGPU_CMD_*) of context @ctx_id */
void pvgpu_context_error(PvgpuState *s, uint32_t ctx_id, uint32_t type);
/* The device runs without 3D because of @reason: recorded and announced */
void pvgpu_3d_unavailable(PvgpuState *s, const char *reason);
/* The scheduler settings to change: those whose has_ is set */
typedef struct PvgpuSchedChange {
    bool has_policy;
    PvgpuSchedulerPolicy policy;
    bool has_quantum_us;
    uint32_t quantum_us;
    bool has_batch_quanta;
    uint32_t batch_quanta;
    bool has_switch_budget;
    uint32_t switch_budget;
    bool has_max_fps;
    uint32_t max_fps;
    bool has_inflight;
    uint32_t inflight;
    bool has_solo_inflight;
    uint32_t solo_inflight;
} PvgpuSchedChange;

/* Check every value of @c, then apply them all, or none */
bool pvgpu_set_scheduler(PvgpuState *s, const PvgpuSchedChange *c,
                         Error **errp);
bool pvgpu_set_context(PvgpuState *s, uint32_t ctx_id, bool has_weight,
                       uint32_t weight, bool has_cap, uint32_t cap,
                       bool has_priority, uint32_t priority, Error **errp);
/* The limits to change: those whose has_ is set */
typedef struct PvgpuLimitsChange {
    bool has_max_hostmem;
    uint64_t max_hostmem;
    bool has_max_contexts;
    uint32_t max_contexts;
    bool has_max_resources;
    uint32_t max_resources;
    bool has_max_queued;
    uint32_t max_queued;
} PvgpuLimitsChange;

/* Check every value of @c, then apply them all, or none */
bool pvgpu_set_limits(PvgpuState *s, const PvgpuLimitsChange *c,
                      Error **errp);
/*
 * The limit in force for @which (MAX_HOSTMEM, MAX_CONTEXTS, MAX_RESOURCES,
 * MAX_FPS): the device's own, bounded by its pool's
 */
uint64_t pvgpu_limit(PvgpuState *s, PvgpuSetting which);
/*
 * Is @value in @which's range (pvgpu-settings.h)?  If not, @errp names
 * the -device property (@property) or the QMP parameter.
 */
bool pvgpu_setting_check(PvgpuSetting which, uint64_t value, bool property,
                         Error **errp);
void pvgpu_request_respond(PvgpuState *s, PvgpuRequest *req, uint32_t err,
                           const uint8_t *resp, size_t resp_len);
void pvgpu_request_free(PvgpuRequest *req);

/* pvgpu.c */
void pvgpu_notify_config_event(PvgpuState *s, uint32_t event);
/*
 * Add the old spellings of properties (max_outputs, max_hostmem) to @obj
 * as aliases of @target's: the device's own, or its PCI proxy's
 */
void pvgpu_add_property_aliases(Object *obj, Object *target);

#endif /* HW_DISPLAY_PVGPU_H */
