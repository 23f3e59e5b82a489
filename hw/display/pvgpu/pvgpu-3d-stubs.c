/*
 * pvgpu built without virglrenderer: a 2D-only device
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "hw/display/pvgpu.h"

bool pvgpu_3d_available(PvgpuState *s)
{
    return false;
}

bool pvgpu_3d_init(PvgpuState *s, Error **errp)
{
    QTAILQ_INIT(&s->inflight);
    QTAILQ_INIT(&s->held);
    qemu_mutex_init(&s->sched_lock);
    if (s->virgl == ON_OFF_AUTO_ON) {
        error_setg(errp, "pvgpu: virgl=on, but QEMU was built without "
                   "virglrenderer");
        return false;
    }
    pvgpu_3d_unavailable(s, s->virgl == ON_OFF_AUTO_OFF ?
                         "disabled with virgl=off" :
                         "QEMU was built without virglrenderer");
    return true;
}

void pvgpu_3d_set_features(PvgpuState *s, unsigned decode_caps)
{
    /* the 3D features are never offered */
    s->decode_caps = decode_caps & PVGPU_DECODE_BLOB;
}

void pvgpu_3d_submit(PvgpuState *s, PvgpuRequest *req)
{
    g_assert_not_reached();
}

void pvgpu_3d_cursor_readback(PvgpuState *s, uint32_t scanout_id,
                              PvgpuResource *res)
{
    g_assert_not_reached();
}

void pvgpu_3d_reset(PvgpuState *s)
{
    s->decode_caps = 0;
}

void pvgpu_3d_fini(PvgpuState *s)
{
    g_free(g_steal_pointer(&s->virgl_unavailable));
    qemu_mutex_destroy(&s->sched_lock);
}

PvgpuContext *pvgpu_3d_context_find(PvgpuState *s, uint32_t ctx_id)
{
    return NULL;
}

void pvgpu_3d_apply_scheduler(PvgpuState *s)
{
}

void pvgpu_3d_resume(PvgpuState *s)
{
}

unsigned pvgpu_render_capsets(PvgpuRenderer *r, const PvgpuCapset **capsets)
{
    g_assert_not_reached();
}
