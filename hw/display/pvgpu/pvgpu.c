/*
 * pvgpu: shared paravirtual GPU speaking the virtio-gpu protocol
 *
 * The virtio transport side: queues, configuration space, features,
 * properties, reset and migration.  Requests are copied out of the
 * virtqueue, decoded by pvgpu-cmd.c and executed by pvgpu-exec.c; only this
 * file touches virtqueues.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/cutils.h"
#include "qemu/iov.h"
#include "qemu/log.h"
#include "qemu/main-loop.h"
#include "qemu/module.h"
#include "qemu/units.h"
#include "hw/qdev-properties.h"
#include "hw/qdev-properties-system.h"
#include "system/system.h"
#include "hw/core/qdev-prop-internal.h"
#include "qapi/visitor.h"
#include "qapi/util.h"
#include "qapi/qapi-events-pvgpu.h"
#include "qemu/timer.h"
#include "hw/virtio/virtio.h"
#include "migration/vmstate.h"
#include "standard-headers/linux/virtio_gpu.h"
#include "standard-headers/linux/virtio_ids.h"
#include "hw/display/pvgpu.h"
#include "trace.h"

/* virtio_gpu_config, spec 5.7.4: four little-endian 32-bit words */
#define PVGPU_CONFIG_SIZE 16

/* The id the user gave the pvgpu-pci device, "" if none. */
/* The pvgpu-pci device: what the user created, named and addresses */
static Object *pvgpu_proxy(PvgpuState *s)
{
    BusState *bus = qdev_get_parent_bus(DEVICE(s));

    return bus ? OBJECT(bus->parent) : OBJECT(s);
}

const char *pvgpu_device_id(PvgpuState *s)
{
    return DEVICE(pvgpu_proxy(s))->id;
}

char *pvgpu_device_path(PvgpuState *s)
{
    return object_get_canonical_path(pvgpu_proxy(s));
}

char *pvgpu_device_label(PvgpuState *s)
{
    return pvgpu_device_id(s) ? g_strdup(pvgpu_device_id(s))
                              : pvgpu_device_path(s);
}

/*
 * Events are limited to one per second per device and kind, like QEMU's
 * own noisy events; the next one reports how many were left out.
 */
static bool event_allowed(PvgpuState *s, unsigned kind, uint32_t *suppressed)
{
    int64_t now = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);

    if (s->event_limit[kind].last_ns &&
        now - s->event_limit[kind].last_ns < NANOSECONDS_PER_SECOND) {
        s->event_limit[kind].suppressed++;
        return false;
    }
    *suppressed = s->event_limit[kind].suppressed;
    s->event_limit[kind].suppressed = 0;
    s->event_limit[kind].last_ns = now;
    return true;
}

/* The device's own limit for @which, its pool's bound aside */
static uint64_t own_limit(PvgpuState *s, PvgpuSetting which)
{
    switch (which) {
    case PVGPU_SETTING_MAX_HOSTMEM:
        return s->max_hostmem;
    case PVGPU_SETTING_MAX_CONTEXTS:
        return s->max_contexts;
    case PVGPU_SETTING_MAX_RESOURCES:
        return s->max_resources;
    case PVGPU_SETTING_MAX_QUEUED:
        return s->max_queued;
    case PVGPU_SETTING_MAX_FPS:
        /* 0 is none */
        return s->max_fps ?: UINT64_MAX;
    default:
        g_assert_not_reached();
    }
}

uint64_t pvgpu_limit(PvgpuState *s, PvgpuSetting which)
{
    uint64_t own = own_limit(s, which);
    uint64_t bound = s->pool ? pvgpu_pool_bound(s->pool, which) : 0;
    uint64_t limit = bound && bound < own ? bound : own;

    return which == PVGPU_SETTING_MAX_FPS && limit == UINT64_MAX ? 0 : limit;
}

void pvgpu_quota_refused(PvgpuState *s, PvgpuQuota quota, bool has_ctx,
                         uint32_t ctx_id, uint64_t limit)
{
    static const PvgpuSetting setting[] = {
        [PVGPU_QUOTA_HOSTMEM] = PVGPU_SETTING_MAX_HOSTMEM,
        [PVGPU_QUOTA_CONTEXTS] = PVGPU_SETTING_MAX_CONTEXTS,
        [PVGPU_QUOTA_RESOURCES] = PVGPU_SETTING_MAX_RESOURCES,
        [PVGPU_QUOTA_QUEUED] = PVGPU_SETTING_MAX_QUEUED,
    };
    g_autofree char *path = NULL;
    uint32_t suppressed;

    if (s->pool && limit < own_limit(s, setting[quota])) {
        /* the pool's bound refused it: the pool shows who hit what */
        pvgpu_pool_limit_hit(s->pool, setting[quota], limit);
    }
    s->refusals++;
    trace_pvgpu_quota_refused(PvgpuQuota_str(quota), ctx_id, limit);
    if (event_allowed(s, quota, &suppressed)) {
        path = pvgpu_device_path(s);
        qapi_event_send_pvgpu_quota_exceeded(pvgpu_device_id(s), path, quota,
                                             has_ctx, ctx_id, limit,
                                             suppressed);
    }
}

/* virtio-gpu command @type as QAPI's PvgpuGpuCommand: its name, dashed */
static PvgpuGpuCommand gpu_command(uint32_t type)
{
    g_autofree char *name = g_ascii_strdown(pvgpu_cmd_name(type), -1);

    g_strdelimit(name, "_", '-');
    return qapi_enum_parse(&PvgpuGpuCommand_lookup, name, -1, &error_abort);
}

void pvgpu_context_error(PvgpuState *s, uint32_t ctx_id, uint32_t type)
{
    g_autofree char *path = NULL;
    uint32_t suppressed;

    if (event_allowed(s, PVGPU_QUOTA__MAX, &suppressed)) {
        path = pvgpu_device_path(s);
        qapi_event_send_pvgpu_context_error(pvgpu_device_id(s), path, ctx_id,
                                            gpu_command(type), suppressed);
    }
}

void pvgpu_3d_unavailable(PvgpuState *s, const char *reason)
{
    g_autofree char *path = pvgpu_device_path(s);

    g_free(s->virgl_unavailable);
    s->virgl_unavailable = g_strdup(reason);
    trace_pvgpu_3d_unavailable(reason);
    qapi_event_send_pvgpu_3d_unavailable(pvgpu_device_id(s), path, reason);
}

bool pvgpu_setting_check(PvgpuSetting which, uint64_t value, bool property,
                         Error **errp)
{
    const PvgpuSettingInfo *si = pvgpu_setting_info(which);
    g_autofree char *range = NULL;

    if (pvgpu_setting_valid(which, value)) {
        return true;
    }
    if (si->is_size && si->max == UINT64_MAX) {
        g_autofree char *min = size_to_str(si->min);

        range = g_strdup_printf("at least %s", min);
    } else if (si->max == UINT64_MAX || si->max == UINT32_MAX) {
        range = g_strdup_printf("at least %" PRIu64, si->min);
    } else {
        range = g_strdup_printf("a value from %" PRIu64 " to %" PRIu64,
                                si->min, si->max);
    }
    if (property) {
        error_setg(errp, "pvgpu: property '%s' expects %s, not %" PRIu64,
                   si->prop, range, value);
    } else {
        error_setg(errp, "Parameter '%s' expects %s", si->param, range);
    }
    return false;
}

/*
 * Run-time settings were stored (QMP, or qom-set of a property): the
 * scheduler and the limits take them
 */
static void pvgpu_settings_changed(PvgpuState *s)
{
    trace_pvgpu_set_scheduler(PvgpuSchedulerPolicy_str(s->sched_policy),
                              s->quantum_us, s->batch_quanta,
                              s->switch_budget, s->max_fps);
    pvgpu_exec_apply_scheduler(s);
}

/* A run-time setting a change may give, and where its value goes */
typedef struct SettingStore {
    PvgpuSetting which;
    bool has;
    uint64_t value;
    uint32_t *dest32;           /* one of the two */
    uint64_t *dest64;
} SettingStore;

/* Check every given value of @v, then store them all, or none */
static bool settings_store(const SettingStore *v, size_t n, Error **errp)
{
    for (size_t i = 0; i < n; i++) {
        if (v[i].has &&
            !pvgpu_setting_check(v[i].which, v[i].value, false, errp)) {
            return false;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i].has && v[i].dest32) {
            *v[i].dest32 = v[i].value;
        } else if (v[i].has) {
            *v[i].dest64 = v[i].value;
        }
    }
    return true;
}

bool pvgpu_set_scheduler(PvgpuState *s, const PvgpuSchedChange *c,
                         Error **errp)
{
    const SettingStore v[] = {
        { PVGPU_SETTING_QUANTUM_US, c->has_quantum_us, c->quantum_us,
          &s->quantum_us },
        { PVGPU_SETTING_BATCH_QUANTA, c->has_batch_quanta, c->batch_quanta,
          &s->batch_quanta },
        { PVGPU_SETTING_SWITCH_BUDGET, c->has_switch_budget,
          c->switch_budget, &s->switch_budget },
        { PVGPU_SETTING_MAX_FPS, c->has_max_fps, c->max_fps, &s->max_fps },
        { PVGPU_SETTING_SCHED_INFLIGHT, c->has_inflight, c->inflight,
          &s->max_inflight },
        { PVGPU_SETTING_SOLO_INFLIGHT, c->has_solo_inflight,
          c->solo_inflight, &s->solo_inflight },
    };

    if (!settings_store(v, ARRAY_SIZE(v), errp)) {
        return false;
    }
    if (c->has_policy) {
        s->sched_policy = c->policy;
    }
    pvgpu_settings_changed(s);
    return true;
}

bool pvgpu_set_context(PvgpuState *s, uint32_t ctx_id, bool has_weight,
                       uint32_t weight, bool has_cap, uint32_t cap,
                       bool has_priority, uint32_t priority, Error **errp)
{
    PvgpuContext *ctx = pvgpu_context_find(s, ctx_id);

    if (!ctx || !ctx->entity) {
        error_setg(errp, "Parameter 'ctx-id': device has no context %u",
                   ctx_id);
        return false;
    }
    if ((has_weight &&
         !pvgpu_setting_check(PVGPU_SETTING_WEIGHT, weight, false, errp)) ||
        (has_cap &&
         !pvgpu_setting_check(PVGPU_SETTING_CAP, cap, false, errp)) ||
        (has_priority &&
         !pvgpu_setting_check(PVGPU_SETTING_PRIORITY, priority, false,
                              errp))) {
        return false;
    }
    qemu_mutex_lock(&s->sched_lock);
    if (has_weight) {
        ctx->weight = weight;
        pvgpu_sched_entity_set_weight(ctx->entity, weight);
    }
    if (has_cap) {
        ctx->cap = cap;
        pvgpu_sched_entity_set_cap(s->sched, ctx->entity, cap, get_clock());
    }
    if (has_priority) {
        ctx->priority = priority;
        pvgpu_sched_entity_set_class(s->sched, ctx->entity, priority);
    }
    qemu_mutex_unlock(&s->sched_lock);
    trace_pvgpu_set_context(ctx_id, ctx->weight, ctx->cap, ctx->priority);
    return true;
}

bool pvgpu_set_limits(PvgpuState *s, const PvgpuLimitsChange *c,
                      Error **errp)
{
    const SettingStore v[] = {
        { PVGPU_SETTING_MAX_HOSTMEM, c->has_max_hostmem, c->max_hostmem,
          NULL, &s->max_hostmem },
        { PVGPU_SETTING_MAX_CONTEXTS, c->has_max_contexts, c->max_contexts,
          &s->max_contexts },
        { PVGPU_SETTING_MAX_RESOURCES, c->has_max_resources,
          c->max_resources, &s->max_resources },
        { PVGPU_SETTING_MAX_QUEUED, c->has_max_queued, c->max_queued,
          &s->max_queued },
    };

    if (!settings_store(v, ARRAY_SIZE(v), errp)) {
        return false;
    }
    pvgpu_settings_changed(s);
    return true;
}

void pvgpu_notify_config_event(PvgpuState *s, uint32_t event)
{
    s->events_read |= event;
    virtio_notify_config(VIRTIO_DEVICE(s));
}

/*
 * Requests a queue reset orphaned that may still execute.  Past this the
 * queues are left alone until some finish: a guest that keeps resetting
 * queues with work in flight must not make the device buffer without
 * bound (the class of CVE-2016-5403).
 */
#define PVGPU_MAX_ORPHANS 256

void pvgpu_request_free(PvgpuRequest *req)
{
    PvgpuState *s = req->s;

    if (req->elem) {
        virtqueue_detach_element(req->vq, req->elem, 0);
        g_free(req->elem);
    }
    if (req->in_fence_order) {
        /* only resets free a fenced request before it is answered */
        QTAILQ_REMOVE(&s->fence_order, req, fence_next);
    }
    if (req->live.le_prev) {
        QLIST_REMOVE(req, live);
        if (req->orphan && --s->orphans < PVGPU_MAX_ORPHANS / 2 &&
            s->throttled) {
            s->throttled = false;
            qemu_bh_schedule(s->resume_bh);
        }
    }
    pvgpu_deps_clear(&req->deps);
    g_free(req->answer);
    g_free(req->buf);
    g_free(req);
}

/* Write @resp into @req's buffers, give it back to the guest, free it. */
static void push_answer(PvgpuState *s, PvgpuRequest *req,
                        const uint8_t *resp, size_t resp_len)
{
    const PvgpuCmdHdr *hdr = &req->cmd.hdr;
    size_t written = 0;

    if (req->vq == s->ctrl_vq) {
        written = iov_from_buf(req->elem->in_sg, req->elem->in_num, 0, resp,
                               resp_len);
        if (written < resp_len) {
            qemu_log_mask(LOG_GUEST_ERROR,
                          "pvgpu: %s: response buffer holds %zu of %zu "
                          "bytes\n", pvgpu_cmd_name(hdr->type), written,
                          resp_len);
        }
        trace_pvgpu_resp(pvgpu_cmd_name(hdr->type), ldl_le_p(resp),
                         hdr->fence_id);
    }
    virtqueue_push(req->vq, req->elem, written);
    virtio_notify(VIRTIO_DEVICE(s), req->vq);
    g_free(req->elem);
    req->elem = NULL;
    pvgpu_request_free(req);
}

/*
 * Fence order.  Linux's virtio_gpu signals, with each fence the device
 * returns, every earlier fence of the same dma-fence context: one context
 * for all requests fenced without a ring, one per context and ring with
 * VIRTIO_GPU_FLAG_INFO_RING_IDX.  So a fenced request must not be answered
 * before the fenced requests that came before it on its timeline, even
 * when the scheduler ran it first or the device knew the answer at once.
 */
static uint64_t fence_timeline(const PvgpuRequest *req)
{
    const PvgpuCmdHdr *hdr = &req->cmd.hdr;

    if (!(hdr->flags & PVGPU_FLAG_INFO_RING_IDX)) {
        return 0;
    }
    return ((uint64_t)hdr->ctx_id << 8 | hdr->ring_idx) + 1;
}

/* Answer, in order, every fenced request nothing unanswered is ahead of */
static void fence_order_retire(PvgpuState *s)
{
    /* timelines with an unanswered request: at most one per request */
    g_autofree uint64_t *blocked = NULL;
    unsigned nblocked = 0, n = 0;
    PvgpuRequest *req, *next;

    QTAILQ_FOREACH(req, &s->fence_order, fence_next) {
        n++;
    }
    blocked = g_new(uint64_t, n);
    QTAILQ_FOREACH_SAFE(req, &s->fence_order, fence_next, next) {
        uint64_t t = fence_timeline(req);
        bool waits = false;

        for (unsigned i = 0; i < nblocked && !waits; i++) {
            waits = blocked[i] == t;
        }
        if (waits) {
            continue;
        }
        if (!req->answer) {
            blocked[nblocked++] = t;
            continue;
        }
        QTAILQ_REMOVE(&s->fence_order, req, fence_next);
        req->in_fence_order = false;
        push_answer(s, req, req->answer, req->answer_len);
    }
}

/*
 * Answer @req: its error, or @resp (a bare OK_NODATA when @resp is NULL).
 * The cursor queue carries no responses (spec 5.7.6.10).  A request whose
 * queue was reset meanwhile is not answered: its buffers are the guest's
 * again.
 */
void pvgpu_request_respond(PvgpuState *s, PvgpuRequest *req, uint32_t err,
                           const uint8_t *resp, size_t resp_len)
{
    const PvgpuCmdHdr *hdr = &req->cmd.hdr;
    uint8_t hdr_resp[PVGPU_HDR_SIZE];

    if (!req->elem) {
        trace_pvgpu_resp_dropped(pvgpu_cmd_name(hdr->type), hdr->fence_id);
        pvgpu_request_free(req);
        return;
    }
    if (req->vq == s->ctrl_vq && (err || !resp)) {
        resp_len = pvgpu_resp_encode_hdr(hdr_resp, hdr,
                                         err ?: PVGPU_RESP_OK_NODATA);
        resp = hdr_resp;
    }
    if (!req->in_fence_order) {
        push_answer(s, req, resp, resp_len);
        return;
    }
    req->answer = g_memdup2(resp, resp_len);
    req->answer_len = resp_len;
    if (QTAILQ_FIRST(&s->fence_order) != req) {
        trace_pvgpu_resp_ordered(pvgpu_cmd_name(hdr->type), hdr->fence_id);
    }
    fence_order_retire(s);
}

static void pvgpu_process_queue(PvgpuState *s, VirtQueue *vq,
                                PvgpuQueue queue)
{
    VirtQueueElement *elem;

    for (;;) {
        PvgpuRequest *req;
        PvgpuCmd *cmd;
        const char *why;
        uint32_t err;
        size_t len;

        if (s->orphans >= PVGPU_MAX_ORPHANS) {
            /* resume_bh pops again once some of them are done */
            s->throttled = true;
            trace_pvgpu_throttled(s->orphans);
            break;
        }
        elem = virtqueue_pop(vq, sizeof(VirtQueueElement));
        if (!elem) {
            break;
        }
        len = MIN(iov_size(elem->out_sg, elem->out_num),
                  PVGPU_MAX_REQUEST_SIZE);
        req = g_new0(PvgpuRequest, 1);
        cmd = &req->cmd;
        req->s = s;
        req->vq = vq;
        req->elem = elem;
        QLIST_INSERT_HEAD(&s->requests, req, live);
        req->buf = g_malloc(len ? len : 1);
        iov_to_buf(elem->out_sg, elem->out_num, 0, req->buf, len);
        err = pvgpu_cmd_decode(req->buf, len, queue, s->decode_caps, cmd,
                               &why);
        trace_pvgpu_cmd(pvgpu_cmd_name(cmd->hdr.type), cmd->hdr.type,
                        cmd->hdr.flags, cmd->hdr.fence_id, len);
        if (queue == PVGPU_QUEUE_CTRL &&
            (cmd->hdr.flags & PVGPU_FLAG_FENCE)) {
            QTAILQ_INSERT_TAIL(&s->fence_order, req, fence_next);
            req->in_fence_order = true;
        }
        if (err) {
            qemu_log_mask(LOG_GUEST_ERROR,
                          "pvgpu: malformed request type 0x%x (%zu bytes): "
                          "%s -> %s\n", cmd->hdr.type, len, why,
                          pvgpu_cmd_name(err));
            trace_pvgpu_cmd_error(pvgpu_cmd_name(cmd->hdr.type), err, why);
            pvgpu_request_respond(s, req, err, NULL, 0);
        } else if (queue == PVGPU_QUEUE_CURSOR) {
            pvgpu_exec_cursor(s, cmd);
            pvgpu_request_respond(s, req, 0, NULL, 0);
        } else {
            pvgpu_exec_submit(s, req);
        }
    }
}

static void pvgpu_handle_ctrl(VirtIODevice *vdev, VirtQueue *vq)
{
    pvgpu_process_queue(PVGPU(vdev), vq, PVGPU_QUEUE_CTRL);
}

static void pvgpu_handle_cursor(VirtIODevice *vdev, VirtQueue *vq)
{
    pvgpu_process_queue(PVGPU(vdev), vq, PVGPU_QUEUE_CURSOR);
}

static void pvgpu_resume_bh(void *opaque)
{
    PvgpuState *s = opaque;

    pvgpu_process_queue(s, s->ctrl_vq, PVGPU_QUEUE_CTRL);
    pvgpu_process_queue(s, s->cursor_vq, PVGPU_QUEUE_CURSOR);
}

/*
 * VIRTIO_F_RING_RESET (spec 2.6.1): the driver takes the queue's buffers
 * back.  Requests popped from it may still be queued or executing, and
 * the commands they carry still take effect (device state already
 * reflects them), but none of them may ever be answered into the new
 * ring: their elements are given back now.
 */
static void pvgpu_queue_reset(VirtIODevice *vdev, uint32_t queue_index)
{
    PvgpuState *s = PVGPU(vdev);
    VirtQueue *vq = virtio_get_queue(vdev, queue_index);
    PvgpuRequest *req;
    unsigned n = 0;

    QLIST_FOREACH(req, &s->requests, live) {
        if (req->vq != vq || !req->elem) {
            continue;
        }
        virtqueue_detach_element(vq, req->elem, 0);
        g_free(req->elem);
        req->elem = NULL;
        if (req->in_fence_order) {
            QTAILQ_REMOVE(&s->fence_order, req, fence_next);
            req->in_fence_order = false;
        }
        req->orphan = true;
        s->orphans++;
        n++;
    }
    trace_pvgpu_queue_reset(queue_index, n, s->orphans);
}

static unsigned num_capsets(PvgpuState *s)
{
    const PvgpuCapset *caps;

    return pvgpu_3d_available(s) ?
           pvgpu_render_capsets(s->virgl_renderer, &caps) : 0;
}

static void pvgpu_get_config(VirtIODevice *vdev, uint8_t *config)
{
    PvgpuState *s = PVGPU(vdev);

    stl_le_p(config, s->events_read);
    stl_le_p(config + 4, 0);                /* events_clear reads as 0 */
    stl_le_p(config + 8, s->max_outputs);
    stl_le_p(config + 12, num_capsets(s));
}

static void pvgpu_set_config(VirtIODevice *vdev, const uint8_t *config)
{
    PvgpuState *s = PVGPU(vdev);
    uint32_t clear = ldl_le_p(config + 4);

    /* spec 5.7.4: writing a bit to events_clear clears it in events_read */
    s->events_read &= ~clear;
    trace_pvgpu_events_clear(clear, s->events_read);
}

static uint64_t pvgpu_get_features(VirtIODevice *vdev, uint64_t features,
                                   Error **errp)
{
    PvgpuState *s = PVGPU(vdev);

    if (s->edid) {
        virtio_add_feature(&features, VIRTIO_GPU_F_EDID);
    }
    virtio_add_feature(&features, VIRTIO_GPU_F_RESOURCE_UUID);
    if (s->blob) {
        virtio_add_feature(&features, VIRTIO_GPU_F_RESOURCE_BLOB);
    }
    if (pvgpu_3d_available(s)) {
        virtio_add_feature(&features, VIRTIO_GPU_F_VIRGL);
        virtio_add_feature(&features, VIRTIO_GPU_F_CONTEXT_INIT);
    }
    return features;
}

static void pvgpu_set_features(VirtIODevice *vdev, uint64_t features)
{
    PvgpuState *s = PVGPU(vdev);
    unsigned caps = 0;

    if (virtio_has_feature(features, VIRTIO_GPU_F_RESOURCE_BLOB)) {
        caps |= PVGPU_DECODE_BLOB;
    }
    if (virtio_has_feature(features, VIRTIO_GPU_F_VIRGL)) {
        caps |= PVGPU_DECODE_3D;
        if (virtio_has_feature(features, VIRTIO_GPU_F_CONTEXT_INIT)) {
            caps |= PVGPU_DECODE_CONTEXT_INIT;
        }
    }
    trace_pvgpu_set_features(features, caps);
    pvgpu_exec_set_features(s, caps);
}

/*
 * After the renderer and the queues let go of theirs, what is left was
 * answered already but waits in the fence order behind a request a reset
 * dropped: it belongs to the old rings.
 */
static void requests_drop(PvgpuState *s)
{
    while (!QLIST_EMPTY(&s->requests)) {
        pvgpu_request_free(QLIST_FIRST(&s->requests));
    }
}

static void pvgpu_reset(VirtIODevice *vdev)
{
    PvgpuState *s = PVGPU(vdev);

    trace_pvgpu_reset(g_hash_table_size(s->resources));
    /* the renderer first: it lets go of jobs, resources and guest memory */
    pvgpu_exec_reset(s);
    requests_drop(s);
    /* then scanouts: 2D surfaces alias resource memory */
    pvgpu_scanouts_reset(s);
    pvgpu_resources_reset(s);
    s->events_read = 0;
}

static void pvgpu_realize(DeviceState *dev, Error **errp)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(dev);
    PvgpuState *s = PVGPU(dev);

    /* every property the settings table has a range for */
    for (PvgpuSetting w = 0; w < PVGPU_SETTING__MAX; w++) {
        const char *prop = pvgpu_setting_info(w)->prop;
        uint64_t value;

        if (!prop) {
            continue;
        }
        value = object_property_get_uint(OBJECT(dev), prop, &error_abort);
        if (!pvgpu_setting_check(w, value, true, errp)) {
            return;
        }
    }

    if (s->gl_scanout && s->virgl == ON_OFF_AUTO_OFF) {
        error_setg(errp, "pvgpu: gl-scanout needs virgl on or auto: only 3D "
                   "scanouts are handed to a GL display");
        return;
    }
    if (s->hostmem && (!s->blob || s->virgl == ON_OFF_AUTO_OFF)) {
        error_setg(errp, "pvgpu: hostmem needs blob=on and virgl on or "
                   "auto: only 3D blobs are mapped there");
        return;
    }

    if (qemu_chr_fe_backend_connected(&s->pool_chr)) {
        const char *name = s->pool_name ?: qemu_name;

        if (!name) {
            error_setg(errp, "pvgpu: pool needs the VM's name: give QEMU "
                       "-name or the device pool-name");
            return;
        }
        if (!pvgpu_pool_name_valid(name, PVGPU_POOL_NAME_LEN)) {
            error_setg(errp, "pvgpu: pool-name must be 1 to %d printable "
                       "characters", PVGPU_POOL_NAME_LEN - 1);
            return;
        }
        if (s->pool_reservation > 100) {
            error_setg(errp, "pvgpu: pool-reservation %u is not 0 to 100 "
                       "(percent)", s->pool_reservation);
            return;
        }
    } else if (s->pool_name || s->pool_reservation) {
        error_setg(errp, "pvgpu: pool-name and pool-reservation need pool");
        return;
    }

    if (!pvgpu_exec_init(s, errp)) {
        return;
    }
    if (qemu_chr_fe_backend_connected(&s->pool_chr)) {
        s->pool = pvgpu_pool_new(&s->pool_chr, s->pool_name ?: qemu_name,
                                 s->pool_reservation, &pvgpu_exec_pool_ops,
                                 s);
    }
    virtio_init(vdev, VIRTIO_ID_GPU, PVGPU_CONFIG_SIZE);
    /* queue sizes as the Linux driver expects them: it sizes its own */
    s->ctrl_vq = virtio_add_queue(vdev, 256, pvgpu_handle_ctrl);
    s->cursor_vq = virtio_add_queue(vdev, 16, pvgpu_handle_cursor);
    QLIST_INIT(&s->requests);
    QTAILQ_INIT(&s->fence_order);
    s->resume_bh = virtio_bh_new_guarded(dev, pvgpu_resume_bh, s);
    pvgpu_resources_init(s);
    pvgpu_scanouts_init(s, errp);
}

static void pvgpu_unrealize(DeviceState *dev)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(dev);
    PvgpuState *s = PVGPU(dev);

    pvgpu_exec_fini(s);
    if (s->pool) {
        pvgpu_pool_free(g_steal_pointer(&s->pool));
    }
    requests_drop(s);
    pvgpu_scanouts_reset(s);
    pvgpu_scanouts_fini(s);
    pvgpu_resources_fini(s);
    qemu_bh_delete(s->resume_bh);
    virtio_delete_queue(s->ctrl_vq);
    virtio_delete_queue(s->cursor_vq);
    virtio_cleanup(vdev);
}

static int pvgpu_pre_save(void *opaque)
{
    return pvgpu_exec_pre_save(opaque);
}

/*
 * After virtio's own state: the guest's features say which renderer the
 * resources are recreated on
 */
static int pvgpu_post_load(VirtIODevice *vdev)
{
    PvgpuState *s = PVGPU(vdev);
    int ret = pvgpu_resources_post_load(s);

    if (!ret) {
        ret = pvgpu_exec_post_load(s);
    }
    if (ret) {
        return ret;
    }
    pvgpu_scanouts_post_load(s);
    return 0;
}

static bool scanout_blob_needed(void *opaque)
{
    PvgpuScanout *so = opaque;

    return so->fb.width != 0;
}

static const VMStateDescription vmstate_pvgpu_scanout_blob = {
    .name = "pvgpu-scanout/blob",
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = scanout_blob_needed,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(fb.format, PvgpuScanout),
        VMSTATE_UINT32(fb.width, PvgpuScanout),
        VMSTATE_UINT32(fb.height, PvgpuScanout),
        VMSTATE_UINT32(fb.stride, PvgpuScanout),
        VMSTATE_UINT32(fb.offset, PvgpuScanout),
        VMSTATE_END_OF_LIST()
    },
};

static const VMStateDescription vmstate_pvgpu_scanout = {
    .name = "pvgpu-scanout",
    .version_id = 1,
    .minimum_version_id = 1,
    .subsections = (const VMStateDescription * const []) {
        &vmstate_pvgpu_scanout_blob,
        NULL
    },
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(resource_id, PvgpuScanout),
        VMSTATE_UINT32(r.x, PvgpuScanout),
        VMSTATE_UINT32(r.y, PvgpuScanout),
        VMSTATE_UINT32(r.width, PvgpuScanout),
        VMSTATE_UINT32(r.height, PvgpuScanout),
        VMSTATE_UINT32(cursor_resource_id, PvgpuScanout),
        VMSTATE_UINT32(cursor_x, PvgpuScanout),
        VMSTATE_UINT32(cursor_y, PvgpuScanout),
        VMSTATE_UINT32(cursor_hot_x, PvgpuScanout),
        VMSTATE_UINT32(cursor_hot_y, PvgpuScanout),
        VMSTATE_END_OF_LIST()
    },
};

static bool contexts_needed(void *opaque)
{
    PvgpuState *s = opaque;

    return g_hash_table_size(s->contexts) != 0;
}

/* a 3D guest's contexts without GL state (pvgpu-exec.c) */
static const VMStateDescription vmstate_pvgpu_contexts = {
    .name = "pvgpu-device/contexts",
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = contexts_needed,
    .fields = (const VMStateField[]) {
        {
            .name = "contexts",
            .info = &pvgpu_vmstate_contexts,
            .flags = VMS_SINGLE,
        },
        VMSTATE_END_OF_LIST()
    },
};

static const VMStateDescription vmstate_pvgpu_device = {
    .name = "pvgpu-device",
    /*
     * virtio loads a device's own state as version 1 whatever it says:
     * format changes need subsections or a new device
     */
    .version_id = 1,
    .minimum_version_id = 1,
    .pre_save = pvgpu_pre_save,
    .subsections = (const VMStateDescription * const []) {
        &vmstate_pvgpu_contexts,
        NULL
    },
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32_EQUAL(max_outputs, PvgpuState,
                             "max_outputs differs between source and "
                             "destination"),
        VMSTATE_UINT32(events_read, PvgpuState),
        {
            .name = "resources",
            .info = &pvgpu_vmstate_resources,
            .flags = VMS_SINGLE,
        },
        VMSTATE_STRUCT_VARRAY_UINT32(scanouts, PvgpuState, max_outputs, 1,
                                     vmstate_pvgpu_scanout, PvgpuScanout),
        VMSTATE_END_OF_LIST()
    },
};

static const VMStateDescription vmstate_pvgpu = {
    .name = "pvgpu",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_VIRTIO_DEVICE,
        VMSTATE_END_OF_LIST()
    },
};

/*
 * Properties that can also be changed at run time (qom-set): checked by
 * the same table (pvgpu_setting_check()) and taken by the same code
 * (pvgpu_settings_changed()) as QMP's pvgpu-set-scheduler and
 * pvgpu-set-limits.  Before realize a value is only stored; realize
 * checks it.
 */
static PvgpuSetting runtime_setting(const char *name)
{
    for (PvgpuSetting w = 0; w < PVGPU_SETTING__MAX; w++) {
        const char *prop = pvgpu_setting_info(w)->prop;

        if (prop && !strcmp(prop, name)) {
            return w;
        }
    }
    g_assert_not_reached();
}

static void runtime_get(Object *obj, Visitor *v, const char *name,
                        void *opaque, Error **errp)
{
    const Property *prop = opaque;
    void *field = object_field_prop_ptr(obj, prop);

    if (pvgpu_setting_info(runtime_setting(prop->name))->is_size) {
        visit_type_size(v, name, field, errp);
    } else {
        visit_type_uint32(v, name, field, errp);
    }
}

static void runtime_set(Object *obj, Visitor *v, const char *name,
                        void *opaque, Error **errp)
{
    const Property *prop = opaque;
    PvgpuSetting which = runtime_setting(prop->name);
    bool is_size = pvgpu_setting_info(which)->is_size;
    uint64_t value;
    uint32_t v32;

    if (is_size ? !visit_type_size(v, name, &value, errp)
                : !visit_type_uint32(v, name, &v32, errp)) {
        return;
    }
    if (!is_size) {
        value = v32;
    }
    if (DEVICE(obj)->realized &&
        !pvgpu_setting_check(which, value, true, errp)) {
        return;
    }
    if (is_size) {
        *(uint64_t *)object_field_prop_ptr(obj, prop) = value;
    } else {
        *(uint32_t *)object_field_prop_ptr(obj, prop) = value;
    }
    if (DEVICE(obj)->realized) {
        pvgpu_settings_changed(PVGPU(obj));
    }
}

static const PropertyInfo pvgpu_prop_runtime_uint32 = {
    .type = "uint32",
    .realized_set_allowed = true,
    .get = runtime_get,
    .set = runtime_set,
    .set_default_value = qdev_propinfo_set_default_value_uint,
};

static const PropertyInfo pvgpu_prop_runtime_size = {
    .type = "size",
    .realized_set_allowed = true,
    .get = runtime_get,
    .set = runtime_set,
    .set_default_value = qdev_propinfo_set_default_value_uint,
};

static void sched_policy_set(Object *obj, Visitor *v, const char *name,
                             void *opaque, Error **errp)
{
    int policy;

    if (!DEVICE(obj)->realized) {
        qdev_propinfo_set_enum(obj, v, name, opaque, errp);
    } else if (visit_type_enum(v, name, &policy, &PvgpuSchedulerPolicy_lookup,
                               errp)) {
        pvgpu_set_scheduler(PVGPU(obj), &(PvgpuSchedChange) {
                                .has_policy = true, .policy = policy }, errp);
    }
}

static const PropertyInfo pvgpu_prop_sched_policy = {
    .type = "PvgpuSchedulerPolicy",
    .description = "best-effort/equal-share/weighted",
    .enum_table = &PvgpuSchedulerPolicy_lookup,
    .realized_set_allowed = true,
    .get = qdev_propinfo_get_enum,
    .set = sched_policy_set,
    .set_default_value = qdev_propinfo_set_default_value_enum,
};

#define DEFINE_PROP_RUNTIME_UINT32(name, field, defval)                  \
    DEFINE_PROP_UNSIGNED(name, PvgpuState, field, defval,               \
                         pvgpu_prop_runtime_uint32, uint32_t)
#define DEFINE_PROP_RUNTIME_SIZE(name, field, defval)                    \
    DEFINE_PROP_UNSIGNED(name, PvgpuState, field, defval,               \
                         pvgpu_prop_runtime_size, uint64_t)

/*
 * Context switches may cost 1 % of the GPU's time: on a GPU where they
 * are cheap turns stay at sched-batch-quanta; where they are dear (a CPU
 * renderer whose caches a switch empties, docs/pvgpu-scheduler.rst) turns
 * get longer, and shares even out over longer windows
 */
#define PVGPU_DEFAULT_SWITCH_BUDGET 1

static const Property pvgpu_properties[] = {
    DEFINE_PROP_UINT32("max-outputs", PvgpuState, max_outputs, 1),
    DEFINE_PROP_UINT32("xres", PvgpuState, xres, 1280),
    DEFINE_PROP_UINT32("yres", PvgpuState, yres, 800),
    DEFINE_PROP_BOOL("edid", PvgpuState, edid, true),
    DEFINE_PROP_RUNTIME_SIZE("max-hostmem", max_hostmem, 256 * MiB),
    DEFINE_PROP_BOOL("blob", PvgpuState, blob, true),
    DEFINE_PROP_SIZE("hostmem", PvgpuState, hostmem, 0),
    DEFINE_PROP_ON_OFF_AUTO("virgl", PvgpuState, virgl, ON_OFF_AUTO_AUTO),
    DEFINE_PROP_STRING("render-node", PvgpuState, render_node),
    DEFINE_PROP_BOOL("gles", PvgpuState, gles, false),
    DEFINE_PROP_ON_OFF_AUTO("render-process", PvgpuState, render_process,
                            ON_OFF_AUTO_AUTO),
    DEFINE_PROP_STRING("render-helper", PvgpuState, render_helper),
    DEFINE_PROP_UINT32("render-timeout", PvgpuState, render_timeout, 10),
    DEFINE_PROP_BOOL("gl-scanout", PvgpuState, gl_scanout, false),
    DEFINE_PROP_SIGNED("sched-policy", PvgpuState, sched_policy,
                       PVGPU_SCHEDULER_POLICY_BEST_EFFORT,
                       pvgpu_prop_sched_policy, PvgpuSchedulerPolicy),
    DEFINE_PROP_RUNTIME_UINT32("sched-quantum-us", quantum_us,
                               PVGPU_SCHED_DEFAULT_QUANTUM_NS / 1000),
    DEFINE_PROP_RUNTIME_UINT32("sched-batch-quanta", batch_quanta,
                               PVGPU_SCHED_DEFAULT_BATCH_QUANTA),
    DEFINE_PROP_RUNTIME_UINT32("sched-switch-budget", switch_budget,
                               PVGPU_DEFAULT_SWITCH_BUDGET),
    DEFINE_PROP_RUNTIME_UINT32("max-fps", max_fps, 0),
    DEFINE_PROP_RUNTIME_UINT32("max-contexts", max_contexts, 64),
    DEFINE_PROP_RUNTIME_UINT32("max-resources", max_resources, 4096),
    DEFINE_PROP_RUNTIME_UINT32("max-queued", max_queued, 64),
    DEFINE_PROP_RUNTIME_UINT32("sched-inflight", max_inflight, 1),
    DEFINE_PROP_RUNTIME_UINT32("sched-solo-inflight", solo_inflight, 0),
    DEFINE_PROP_CHR("pool", PvgpuState, pool_chr),
    DEFINE_PROP_STRING("pool-name", PvgpuState, pool_name),
    DEFINE_PROP_UINT32("pool-reservation", PvgpuState, pool_reservation, 0),
};

/* What -device pvgpu-pci,help says of each property */
static const struct {
    const char *name;
    const char *description;
} pvgpu_property_descriptions[] = {
    { "max-outputs", "number of scanouts (displays), 1 to 16; each is a "
      "QEMU console" },
    { "xres", "width in pixels of the mode the first scanout offers (display "
      "info, EDID), 16 to 16384" },
    { "yres", "height in pixels of that mode, 16 to 16384" },
    { "edid", "offer EDID (VIRTIO_GPU_F_EDID)" },
    { "max-hostmem", "host memory all of the guest's resources may use; "
      "beyond it the guest gets ERR_OUT_OF_MEMORY (also at run time: "
      "qom-set, pvgpu-set-limits)" },
    { "blob", "offer blob resources (VIRTIO_GPU_F_RESOURCE_BLOB)" },
    { "hostmem", "size of the host-visible memory BAR for MAP_BLOB, a power "
      "of two of at least 64K; 0: none" },
    { "virgl", "3D through virglrenderer: on, off, or auto (2D if "
      "virglrenderer cannot start)" },
    { "render-node", "DRM render node to render on (default: EGL "
      "surfaceless: any GPU, or Mesa's software rasterizer)" },
    { "gles", "render with OpenGL ES instead of desktop OpenGL on the host" },
    { "render-process", "run virglrenderer in a process of its own "
      "(pvgpu-render), so that a crash in the host's GL stack does not end "
      "the VM: on, off, or auto (on when the guest's RAM is a shared memory "
      "backend, hostmem is 0 and the helper is there)" },
    { "render-helper", "the render process's program (default: "
      "pvgpu-render beside QEMU or in QEMU's helper directory)" },
    { "render-timeout", "seconds a render process may go without finishing "
      "any job before it is taken for hung and killed, 0 (never) to 3600; "
      "the guest's next reset starts another" },
    { "gl-scanout", "hand 3D scanouts to a GL display as dmabufs (egl-"
      "headless, gtk or spice with GL) instead of reading them back" },
    { "sched-policy", "how the guest's 3D contexts share GPU time: "
      "best-effort, equal-share or weighted (also at run time: qom-set, "
      "pvgpu-set-scheduler)" },
    { "sched-quantum-us", "GPU time a context may use per turn, in "
      "microseconds, 100 to 1000000 (also at run time)" },
    { "sched-batch-quanta", "length of a turn in quanta, 1 to 1000, while "
      "only contexts that always have work wait: longer turns switch "
      "contexts less often, shares even out over longer times (also at run "
      "time)" },
    { "sched-switch-budget", "percent of GPU time, 0 to 100, that context "
      "switches may cost while only contexts that always have work wait: "
      "turns are made longer than sched-batch-quanta (up to 8 times) "
      "when the switches measured cost more; 0: turns of "
      "sched-batch-quanta (also at run time)" },
    { "max-fps", "frame-rate limit of each scanout, 0 (none) to 1000 (also "
      "at run time)" },
    { "max-contexts", "3D contexts the guest may have (also at run time)" },
    { "max-resources", "resources the guest may have (also at run time)" },
    { "max-queued", "submissions one context may have waiting, 1 to 4096 "
      "(also at run time)" },
    { "sched-inflight", "submissions on the GPU at once, 1 to 16: 1 measures "
      "each one's GPU time exactly (also at run time)" },
    { "sched-solo-inflight", "submissions on the GPU at once, 0 to 16, while "
      "one context is the only one that has had work for 100 ms, if more "
      "than sched-inflight: the GPU does not idle while the next is "
      "prepared; 0: off (also at run time)" },
    { "pool", "socket chardev of the GPU pool (pvgpu-poold) to join" },
    { "pool-name", "this VM's name in the pool (default: QEMU's -name)" },
    { "pool-reservation", "percent of the GPU the VM asks the pool to "
      "reserve for it (the pool's own setting for the name wins)" },
};

/* Old spellings, kept as aliases (libvirt passes max_outputs) */
static const struct {
    const char *alias;
    const char *name;
} pvgpu_property_aliases[] = {
    { "max_outputs", "max-outputs" },
    { "max_hostmem", "max-hostmem" },
};

/* Add the old spellings to @obj: the device, or its PCI proxy @target's */
void pvgpu_add_property_aliases(Object *obj, Object *target)
{
    for (unsigned i = 0; i < ARRAY_SIZE(pvgpu_property_aliases); i++) {
        g_autofree char *desc = g_strdup_printf(
            "old spelling of %s", pvgpu_property_aliases[i].name);

        object_property_add_alias(obj, pvgpu_property_aliases[i].alias,
                                  target, pvgpu_property_aliases[i].name);
        object_property_set_description(obj,
                                        pvgpu_property_aliases[i].alias,
                                        desc);
    }
}

static void pvgpu_instance_init(Object *obj)
{
    pvgpu_add_property_aliases(obj, obj);
}

static void pvgpu_class_init(ObjectClass *klass, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    VirtioDeviceClass *vdc = VIRTIO_DEVICE_CLASS(klass);

    device_class_set_props(dc, pvgpu_properties);
    QEMU_BUILD_BUG_ON(ARRAY_SIZE(pvgpu_property_descriptions) !=
                      ARRAY_SIZE(pvgpu_properties));
    for (unsigned i = 0; i < ARRAY_SIZE(pvgpu_property_descriptions); i++) {
        object_class_property_set_description(
            klass, pvgpu_property_descriptions[i].name,
            pvgpu_property_descriptions[i].description);
    }
    dc->vmsd = &vmstate_pvgpu;
    set_bit(DEVICE_CATEGORY_DISPLAY, dc->categories);

    vdc->realize = pvgpu_realize;
    vdc->unrealize = pvgpu_unrealize;
    vdc->get_config = pvgpu_get_config;
    vdc->set_config = pvgpu_set_config;
    vdc->get_features = pvgpu_get_features;
    vdc->set_features = pvgpu_set_features;
    vdc->reset = pvgpu_reset;
    vdc->queue_reset = pvgpu_queue_reset;
    vdc->vmsd = &vmstate_pvgpu_device;
    vdc->post_load = pvgpu_post_load;
}

static const TypeInfo pvgpu_info = {
    .name = TYPE_PVGPU,
    .parent = TYPE_VIRTIO_DEVICE,
    .instance_size = sizeof(PvgpuState),
    .instance_init = pvgpu_instance_init,
    .class_init = pvgpu_class_init,
};

static void pvgpu_register_types(void)
{
    type_register_static(&pvgpu_info);
}

type_init(pvgpu_register_types)
