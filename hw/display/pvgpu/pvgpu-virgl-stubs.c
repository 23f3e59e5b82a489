/*
 * pvgpu built without virglrenderer: no 3D renderer, 2D guests only
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "hw/display/pvgpu-render.h"

PvgpuRenderer *pvgpu_virgl_new(const PvgpuRenderOpts *opts,
                               PvgpuRenderDoneFn *done, void *opaque,
                               Error **errp)
{
    error_setg(errp, "QEMU was built without virglrenderer");
    return NULL;
}

PvgpuRenderer *pvgpu_remote_new(const PvgpuRenderOpts *opts,
                                const char *helper, PvgpuRenderDoneFn *done,
                                void *opaque, Error **errp)
{
    error_setg(errp, "QEMU was built without virglrenderer");
    return NULL;
}

bool pvgpu_remote_possible(const char *helper, Error **errp)
{
    error_setg(errp, "QEMU was built without virglrenderer");
    return false;
}
