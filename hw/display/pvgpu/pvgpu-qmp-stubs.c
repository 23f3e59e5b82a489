/*
 * pvgpu QMP commands when the device is not built in: there is no pvgpu
 * device to report or configure.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-pvgpu.h"

PvgpuInfoList *qmp_query_pvgpu(Error **errp)
{
    return NULL;
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
    error_setg(errp, "Parameter 'id': no pvgpu device '%s'", id);
}

void qmp_pvgpu_set_context(const char *id, uint32_t ctx_id, bool has_weight,
                           uint32_t weight, bool has_cap, uint32_t cap,
                           bool has_priority, uint32_t priority, Error **errp)
{
    error_setg(errp, "Parameter 'id': no pvgpu device '%s'", id);
}

void qmp_pvgpu_set_limits(const char *id, bool has_max_hostmem,
                          uint64_t max_hostmem, bool has_max_contexts,
                          uint32_t max_contexts, bool has_max_resources,
                          uint32_t max_resources, bool has_max_queued,
                          uint32_t max_queued, Error **errp)
{
    error_setg(errp, "Parameter 'id': no pvgpu device '%s'", id);
}
