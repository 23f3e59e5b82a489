/*
 * pvgpu QMP commands
 *
 * Translates between device state and the QAPI types of qapi/pvgpu.json;
 * no policy lives here.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-pvgpu.h"
#include "hw/display/pvgpu.h"

static PvgpuInfo *pvgpu_info_get(PvgpuState *s)
{
    PvgpuInfo *info = g_new0(PvgpuInfo, 1);
    PvgpuScanoutInfoList **tail = &info->scanouts;

    info->qom_path = object_get_canonical_path(OBJECT(s));
    info->resources = g_hash_table_size(s->resources);
    info->hostmem_used = s->hostmem_used;
    info->max_hostmem = s->max_hostmem;
    for (uint32_t i = 0; i < s->max_outputs; i++) {
        PvgpuScanoutInfo *so = g_new0(PvgpuScanoutInfo, 1);

        so->scanout_id = i;
        so->enabled = s->scanouts[i].resource_id != 0;
        so->resource_id = s->scanouts[i].resource_id;
        so->width = s->scanouts[i].r.width;
        so->height = s->scanouts[i].r.height;
        QAPI_LIST_APPEND(tail, so);
    }
    return info;
}

static int pvgpu_collect(Object *obj, void *opaque)
{
    PvgpuInfoList ***tail = opaque;
    PvgpuState *s = (PvgpuState *)object_dynamic_cast(obj, TYPE_PVGPU);

    if (s && DEVICE(s)->realized) {
        QAPI_LIST_APPEND(*tail, pvgpu_info_get(s));
    }
    return 0;
}

PvgpuInfoList *qmp_query_pvgpu(Error **errp)
{
    PvgpuInfoList *head = NULL, **tail = &head;

    object_child_foreach_recursive(object_get_root(), pvgpu_collect, &tail);
    return head;
}
