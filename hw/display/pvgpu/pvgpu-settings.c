/*
 * pvgpu settings: one table of ranges (see pvgpu-settings.h)
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <assert.h>
#include <stddef.h>

#include "hw/display/pvgpu-cmd.h"
#include "hw/display/pvgpu-sched.h"
#include "hw/display/pvgpu-settings.h"

#define MIB (1024 * 1024)

static const PvgpuSettingInfo settings[PVGPU_SETTING__MAX] = {
    [PVGPU_SETTING_MAX_OUTPUTS] = {
        NULL, "max-outputs", 1, PVGPU_MAX_SCANOUTS },
    [PVGPU_SETTING_XRES] = { NULL, "xres", 16, PVGPU_MAX_DIMENSION },
    [PVGPU_SETTING_YRES] = { NULL, "yres", 16, PVGPU_MAX_DIMENSION },
    [PVGPU_SETTING_QUANTUM_US] = {
        "quantum-us", "sched-quantum-us",
        PVGPU_SCHED_MIN_QUANTUM_NS / 1000, PVGPU_SCHED_MAX_QUANTUM_NS / 1000 },
    [PVGPU_SETTING_BATCH_QUANTA] = {
        "batch-quanta", "sched-batch-quanta", 1, PVGPU_SCHED_MAX_BATCH_QUANTA },
    [PVGPU_SETTING_SWITCH_BUDGET] = {
        "switch-budget", "sched-switch-budget", 0,
        PVGPU_SCHED_MAX_SWITCH_BUDGET },
    [PVGPU_SETTING_MAX_FPS] = { "max-fps", "max-fps", 0, 1000 },
    [PVGPU_SETTING_MAX_HOSTMEM] = {
        "max-hostmem", "max-hostmem", 1 * MIB, UINT64_MAX, true },
    [PVGPU_SETTING_MAX_CONTEXTS] = {
        "max-contexts", "max-contexts", 1, UINT32_MAX },
    [PVGPU_SETTING_MAX_RESOURCES] = {
        "max-resources", "max-resources", 1, UINT32_MAX },
    [PVGPU_SETTING_MAX_QUEUED] = { "max-queued", "max-queued", 1, 4096 },
    [PVGPU_SETTING_SCHED_INFLIGHT] = {
        "inflight", "sched-inflight", 1, 16 },
    [PVGPU_SETTING_SOLO_INFLIGHT] = {
        "solo-inflight", "sched-solo-inflight", 0, 16 },
    [PVGPU_SETTING_RENDER_TIMEOUT] = { NULL, "render-timeout", 0, 3600 },
    [PVGPU_SETTING_WEIGHT] = { "weight", NULL, 1, PVGPU_SCHED_MAX_WEIGHT },
    [PVGPU_SETTING_CAP] = { "cap", NULL, 0, 100 },
    [PVGPU_SETTING_PRIORITY] = {
        "priority", NULL, 0, PVGPU_SCHED_NR_CLASSES - 1 },
};

const PvgpuSettingInfo *pvgpu_setting_info(PvgpuSetting which)
{
    assert(which < PVGPU_SETTING__MAX);
    return &settings[which];
}

bool pvgpu_setting_valid(PvgpuSetting which, uint64_t value)
{
    const PvgpuSettingInfo *s = pvgpu_setting_info(which);

    return value >= s->min && value <= s->max;
}
