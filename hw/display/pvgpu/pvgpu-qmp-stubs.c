/*
 * pvgpu QMP commands when the device is not built in: there is no pvgpu
 * device to report.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/qapi-commands-pvgpu.h"

PvgpuInfoList *qmp_query_pvgpu(Error **errp)
{
    return NULL;
}
