/*
 * pvgpu QMP commands
 *
 * Translates between device state and the QAPI types of qapi/pvgpu.json;
 * validation and policy live in the device.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-pvgpu.h"
#include "qemu/units.h"
#include "qemu/cutils.h"
#include "qemu/module.h"
#include "monitor/monitor.h"
#include "qapi/type-helpers.h"
#include "hw/display/pvgpu.h"

static PvgpuContextInfo *pvgpu_context_info(PvgpuState *s,
                                            PvgpuContext *ctx)
{
    PvgpuContextInfo *info = g_new0(PvgpuContextInfo, 1);
    PvgpuSchedStats st = { 0 };

    qemu_mutex_lock(&s->sched_lock);
    if (ctx->entity) {
        pvgpu_sched_entity_stats(ctx->entity, &st);
    }
    qemu_mutex_unlock(&s->sched_lock);
    info->ctx_id = ctx->id;
    info->capset = ctx->capset_id == PVGPU_CAPSET_VIRGL2 ?
                   PVGPU_CONTEXT_CAPSET_VIRGL2 : PVGPU_CONTEXT_CAPSET_VIRGL;
    info->weight = ctx->weight;
    info->cap = ctx->cap;
    info->priority = ctx->priority;
    info->gpu_time_ns = st.gpu_ns;
    info->submissions = st.completed;
    info->queued = st.queued;
    info->inflight = st.inflight;
    info->fence_latency_p50_ns = st.latency_p50_ns;
    info->fence_latency_p99_ns = st.latency_p99_ns;
    info->batch_time_p50_ns = st.batch_p50_ns;
    info->batch_time_p99_ns = st.batch_p99_ns;
    info->resources = g_hash_table_size(ctx->resources);
    info->errors = ctx->errors;
    return info;
}

static gint context_cmp(gconstpointer a, gconstpointer b)
{
    const PvgpuContext *x = a, *y = b;

    return x->id < y->id ? -1 : x->id > y->id;
}

static PvgpuInfo *pvgpu_info_get(PvgpuState *s)
{
    PvgpuInfo *info = g_new0(PvgpuInfo, 1);
    PvgpuScanoutInfoList **tail = &info->scanouts;
    PvgpuContextInfoList **ctail = &info->contexts;

    info->id = g_strdup(pvgpu_device_id(s));
    info->qom_path = pvgpu_device_path(s);
    info->virgl = pvgpu_3d_available(s);
    info->virgl_unavailable = g_strdup(s->virgl_unavailable);
    if (s->virgl_renderer) {
        int pid;
        unsigned restarts;

        if (pvgpu_render_process(s->virgl_renderer, &pid, &restarts)) {
            info->render_process = g_new0(PvgpuRenderProcess, 1);
            info->render_process->pid = pid;
            info->render_process->restarts = restarts;
        }
    }
    info->policy = s->sched_policy;
    info->quantum_us = s->quantum_us;
    info->batch_quanta = s->batch_quanta;
    info->switch_budget = s->switch_budget;
    qemu_mutex_lock(&s->sched_lock);
    if (s->sched) {
        info->context_switches = pvgpu_sched_switches(s->sched);
        info->switch_cost_ns = pvgpu_sched_switch_cost(s->sched);
        info->batch_turn_us = pvgpu_sched_batch_turn(s->sched) / 1000;
    } else {
        info->batch_turn_us = (uint64_t)s->quantum_us * s->batch_quanta;
    }
    qemu_mutex_unlock(&s->sched_lock);
    info->max_fps = s->max_fps;
    info->inflight = s->max_inflight;
    info->solo_inflight = s->solo_inflight;
    info->resources = g_hash_table_size(s->resources);
    info->max_resources = s->max_resources;
    info->hostmem_used = s->hostmem_used;
    info->max_hostmem = s->max_hostmem;
    info->max_contexts = s->max_contexts;
    info->max_queued = s->max_queued;
    info->refusals = s->refusals;
    info->migration_blocker = pvgpu_exec_migration_blocker(s);
    info->migratable = !info->migration_blocker;
    if (s->pool) {
        info->pool = pvgpu_pool_info(s->pool);
    }
    for (uint32_t i = 0; i < s->max_outputs; i++) {
        PvgpuScanoutInfo *so = g_new0(PvgpuScanoutInfo, 1);

        so->scanout_id = i;
        so->enabled = s->scanouts[i].resource_id != 0;
        so->resource_id = s->scanouts[i].resource_id;
        so->width = s->scanouts[i].r.width;
        so->height = s->scanouts[i].r.height;
        so->dmabuf = s->scanouts[i].dmabuf != NULL;
        QAPI_LIST_APPEND(tail, so);
    }
    if (s->contexts) {
        g_autoptr(GList) ctxs = g_list_sort(g_hash_table_get_values(
                                                s->contexts), context_cmp);

        for (GList *l = ctxs; l; l = l->next) {
            QAPI_LIST_APPEND(ctail, pvgpu_context_info(s, l->data));
        }
    }
    return info;
}

typedef struct PvgpuFind {
    const char *id;         /* NULL: collect all */
    PvgpuState *found;
    PvgpuInfoList **tail;
} PvgpuFind;

static int pvgpu_find_cb(Object *obj, void *opaque)
{
    PvgpuFind *f = opaque;
    PvgpuState *s = (PvgpuState *)object_dynamic_cast(obj, TYPE_PVGPU);
    g_autofree char *path = NULL, *proxy_path = NULL;

    if (!s || !DEVICE(s)->realized) {
        return 0;
    }
    if (!f->id) {
        QAPI_LIST_APPEND(f->tail, pvgpu_info_get(s));
        return 0;
    }
    /* the id, or the QOM path of the PCI device or of its pvgpu device */
    path = object_get_canonical_path(obj);
    proxy_path = object_get_canonical_path(
        OBJECT(qdev_get_parent_bus(DEVICE(s))->parent));
    if (!g_strcmp0(pvgpu_device_id(s), f->id) || !strcmp(path, f->id) ||
        !strcmp(proxy_path, f->id)) {
        f->found = s;
        return 1;
    }
    return 0;
}

static PvgpuState *pvgpu_find(const char *id, Error **errp)
{
    PvgpuFind f = { .id = id };

    if (!*id ||
        !object_child_foreach_recursive(object_get_root(), pvgpu_find_cb,
                                        &f)) {
        error_setg(errp, "Parameter 'id': no pvgpu device '%s'", id);
        return NULL;
    }
    return f.found;
}

PvgpuInfoList *qmp_query_pvgpu(Error **errp)
{
    PvgpuInfoList *head = NULL;
    PvgpuFind f = { .tail = &head };

    object_child_foreach_recursive(object_get_root(), pvgpu_find_cb, &f);
    return head;
}

void qmp_pvgpu_set_scheduler(const char *id, bool has_policy,
                             PvgpuSchedulerPolicy policy, bool has_quantum_us,
                             uint32_t quantum_us, bool has_batch_quanta,
                             uint32_t batch_quanta, bool has_switch_budget,
                             uint32_t switch_budget, bool has_max_fps,
                             uint32_t max_fps, bool has_inflight,
                             uint32_t inflight, bool has_solo_inflight,
                             uint32_t solo_inflight, Error **errp)
{
    PvgpuState *s = pvgpu_find(id, errp);

    if (s) {
        PvgpuSchedChange c = {
            .has_policy = has_policy, .policy = policy,
            .has_quantum_us = has_quantum_us, .quantum_us = quantum_us,
            .has_batch_quanta = has_batch_quanta,
            .batch_quanta = batch_quanta,
            .has_switch_budget = has_switch_budget,
            .switch_budget = switch_budget,
            .has_max_fps = has_max_fps, .max_fps = max_fps,
            .has_inflight = has_inflight, .inflight = inflight,
            .has_solo_inflight = has_solo_inflight,
            .solo_inflight = solo_inflight,
        };

        pvgpu_set_scheduler(s, &c, errp);
    }
}

void qmp_pvgpu_set_context(const char *id, uint32_t ctx_id, bool has_weight,
                           uint32_t weight, bool has_cap, uint32_t cap,
                           bool has_priority, uint32_t priority, Error **errp)
{
    PvgpuState *s = pvgpu_find(id, errp);

    if (s) {
        pvgpu_set_context(s, ctx_id, has_weight, weight, has_cap, cap,
                          has_priority, priority, errp);
    }
}

void qmp_pvgpu_set_limits(const char *id, bool has_max_hostmem,
                          uint64_t max_hostmem, bool has_max_contexts,
                          uint32_t max_contexts, bool has_max_resources,
                          uint32_t max_resources, bool has_max_queued,
                          uint32_t max_queued, Error **errp)
{
    PvgpuState *s = pvgpu_find(id, errp);

    if (!s) {
        return;
    }
    pvgpu_set_limits(s, &(PvgpuLimitsChange) {
                         .has_max_hostmem = has_max_hostmem,
                         .max_hostmem = max_hostmem,
                         .has_max_contexts = has_max_contexts,
                         .max_contexts = max_contexts,
                         .has_max_resources = has_max_resources,
                         .max_resources = max_resources,
                         .has_max_queued = has_max_queued,
                         .max_queued = max_queued }, errp);
}

/* --- HMP: info pvgpu ------------------------------------------------------ */

static void hmp_device(GString *buf, const PvgpuInfo *d)
{
    g_autofree char *used = size_to_str(d->hostmem_used);
    g_autofree char *limit = size_to_str(d->max_hostmem);

    g_string_append_printf(buf, "pvgpu %s (%s): %s, %s\n",
                           d->id ?: "(no id)", d->qom_path,
                           d->virgl ? "3D (virglrenderer)" : "2D",
                           d->migratable ? "migratable" : "not migratable");
    if (d->virgl_unavailable) {
        g_string_append_printf(buf, "  no 3D: %s\n", d->virgl_unavailable);
    }
    if (d->render_process) {
        g_string_append_printf(buf, "  render process: pid %" PRId64
                               ", restarted %u times\n",
                               d->render_process->pid,
                               d->render_process->restarts);
    }
    if (d->migration_blocker) {
        g_string_append_printf(buf, "  %s\n", d->migration_blocker);
    }
    g_string_append_printf(buf, "  scheduling: %s, quantum %u us, batch "
                           "turns %u quanta (now %u us: switches cost %.2f "
                           "ms, budget %u %%), max-fps %u, inflight %u (one "
                           "context alone %u), context switches %" PRIu64
                           "\n", PvgpuSchedulerPolicy_str(d->policy),
                           d->quantum_us, d->batch_quanta, d->batch_turn_us,
                           d->switch_cost_ns / 1e6, d->switch_budget,
                           d->max_fps, d->inflight,
                           MAX(d->inflight, d->solo_inflight),
                           d->context_switches);
    g_string_append_printf(buf, "  memory %s of %s, resources %u of %u, "
                           "contexts %zu of %u, max-queued %u, refusals %"
                           PRIu64 "\n", used, limit, d->resources,
                           d->max_resources, QAPI_LIST_LENGTH(d->contexts),
                           d->max_contexts, d->max_queued, d->refusals);
    for (const PvgpuScanoutInfoList *l = d->scanouts; l; l = l->next) {
        if (l->value->enabled) {
            g_string_append_printf(buf, "  scanout %u: resource %u, %ux%u%s\n",
                                   l->value->scanout_id,
                                   l->value->resource_id, l->value->width,
                                   l->value->height,
                                   l->value->dmabuf ? ", dmabuf" : "");
        }
    }
    if (d->pool) {
        g_string_append_printf(buf, "  pool %s as %s: %s%s%s, share %.1f %%, "
                               "weight %.2f, %s\n", d->pool->chardev,
                               d->pool->name,
                               PvgpuPoolMemberState_str(d->pool->state),
                               d->pool->reason ? ": " : "",
                               d->pool->reason ?: "", d->pool->share,
                               d->pool->weight / 100.0,
                               d->pool->granted ? "granted" : "not granted");
    }
    if (!d->contexts) {
        return;
    }
    /* fence latency p50/p99, then the p99 of one submission's GPU time */
    g_string_append(buf, "   ctx capset weight cap prio  gpu-time-s "
                    "submissions queued inflight  p50-ms  p99-ms "
                    "batch-p99-ms res errors\n");
    for (const PvgpuContextInfoList *l = d->contexts; l; l = l->next) {
        const PvgpuContextInfo *c = l->value;

        g_string_append_printf(buf, "  %4u %-6s %6u %3u %4u %11.3f %11"
                               PRIu64 " %6u %8u %7.2f %7.2f %12.2f %3u %6"
                               PRIu64 "\n", c->ctx_id,
                               PvgpuContextCapset_str(c->capset), c->weight,
                               c->cap, c->priority, c->gpu_time_ns / 1e9,
                               c->submissions, c->queued, c->inflight,
                               c->fence_latency_p50_ns / 1e6,
                               c->fence_latency_p99_ns / 1e6,
                               c->batch_time_p99_ns / 1e6, c->resources,
                               c->errors);
    }
}

/* query-pvgpu, for people */
static HumanReadableText *pvgpu_hmp_info(Error **errp)
{
    g_autoptr(GString) buf = g_string_new("");
    PvgpuInfoList *list = qmp_query_pvgpu(errp);

    if (!list) {
        g_string_append(buf, "no pvgpu device\n");
    }
    for (PvgpuInfoList *l = list; l; l = l->next) {
        hmp_device(buf, l->value);
    }
    qapi_free_PvgpuInfoList(list);
    return human_readable_text_from_str(buf);
}

static void pvgpu_hmp_register(void)
{
    monitor_register_hmp_info_hrt("pvgpu", pvgpu_hmp_info);
}

type_init(pvgpu_hmp_register)
