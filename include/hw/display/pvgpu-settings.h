/*
 * pvgpu settings: the device's tunables and the values each accepts
 *
 * Owns validation.  Realize (the -device properties), the QMP commands
 * and qom-set check a value here, once, against one table, so that a
 * limit has one range wherever it is set.  Pure C: no QEMU headers
 * (tests/unit/test-pvgpu-settings.c); pvgpu.c turns a refusal into an
 * Error that names the property or QMP parameter.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_DISPLAY_PVGPU_SETTINGS_H
#define HW_DISPLAY_PVGPU_SETTINGS_H

#include <stdbool.h>
#include <stdint.h>

typedef enum PvgpuSetting {
    /* fixed at realize */
    PVGPU_SETTING_MAX_OUTPUTS,
    PVGPU_SETTING_XRES,
    PVGPU_SETTING_YRES,
    /* also at run time: QMP pvgpu-set-scheduler and pvgpu-set-limits */
    PVGPU_SETTING_QUANTUM_US,
    PVGPU_SETTING_BATCH_QUANTA,
    PVGPU_SETTING_SWITCH_BUDGET,
    PVGPU_SETTING_MAX_FPS,
    PVGPU_SETTING_MAX_HOSTMEM,
    PVGPU_SETTING_MAX_CONTEXTS,
    PVGPU_SETTING_MAX_RESOURCES,
    PVGPU_SETTING_MAX_QUEUED,
    PVGPU_SETTING_SCHED_INFLIGHT,
    PVGPU_SETTING_SOLO_INFLIGHT,
    PVGPU_SETTING_RENDER_TIMEOUT,
    /* per context: QMP pvgpu-set-context */
    PVGPU_SETTING_WEIGHT,
    PVGPU_SETTING_CAP,
    PVGPU_SETTING_PRIORITY,
    PVGPU_SETTING__MAX,
} PvgpuSetting;

typedef struct PvgpuSettingInfo {
    const char *param;          /* QMP parameter name, NULL if none */
    const char *prop;           /* -device property name, NULL if none */
    uint64_t min, max;          /* inclusive */
    bool is_size;               /* bytes: shown as a size */
} PvgpuSettingInfo;

const PvgpuSettingInfo *pvgpu_setting_info(PvgpuSetting which);

/* Is @value in @which's range? */
bool pvgpu_setting_valid(PvgpuSetting which, uint64_t value);

#endif /* HW_DISPLAY_PVGPU_SETTINGS_H */
