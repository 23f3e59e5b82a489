/*
 * Unit tests for pvgpu's settings table, without QEMU
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <glib.h>

#include "hw/display/pvgpu-cmd.h"
#include "hw/display/pvgpu-sched.h"
#include "hw/display/pvgpu-settings.h"

/* Every setting has a name to be set by, and a range that is not empty. */
static void test_table(void)
{
    for (PvgpuSetting i = 0; i < PVGPU_SETTING__MAX; i++) {
        const PvgpuSettingInfo *si = pvgpu_setting_info(i);

        g_assert(si->param || si->prop);
        g_assert_cmpuint(si->min, <=, si->max);
        g_assert(pvgpu_setting_valid(i, si->min));
        g_assert(pvgpu_setting_valid(i, si->max));
        if (si->min) {
            g_assert(!pvgpu_setting_valid(i, si->min - 1));
        }
        if (si->max < UINT64_MAX) {
            g_assert(!pvgpu_setting_valid(i, si->max + 1));
        }
    }
}

/* The ranges the device and its documentation promise */
static void test_ranges(void)
{
    g_assert(!pvgpu_setting_valid(PVGPU_SETTING_MAX_QUEUED, 0));
    g_assert(pvgpu_setting_valid(PVGPU_SETTING_MAX_QUEUED, 4096));
    g_assert(!pvgpu_setting_valid(PVGPU_SETTING_MAX_QUEUED, 4097));
    g_assert(!pvgpu_setting_valid(PVGPU_SETTING_MAX_HOSTMEM, 1024 * 1024 - 1));
    g_assert(pvgpu_setting_valid(PVGPU_SETTING_MAX_HOSTMEM, UINT64_MAX));
    g_assert(pvgpu_setting_valid(PVGPU_SETTING_MAX_FPS, 0));
    g_assert(!pvgpu_setting_valid(PVGPU_SETTING_MAX_FPS, 1001));
    g_assert(!pvgpu_setting_valid(PVGPU_SETTING_MAX_OUTPUTS, 0));
    g_assert(!pvgpu_setting_valid(PVGPU_SETTING_MAX_OUTPUTS,
                                  PVGPU_MAX_SCANOUTS + 1));
    g_assert(!pvgpu_setting_valid(PVGPU_SETTING_QUANTUM_US,
                                  PVGPU_SCHED_MIN_QUANTUM_NS / 1000 - 1));
    g_assert(!pvgpu_setting_valid(PVGPU_SETTING_WEIGHT, 0));
    g_assert(!pvgpu_setting_valid(PVGPU_SETTING_WEIGHT,
                                  PVGPU_SCHED_MAX_WEIGHT + 1));
    g_assert(pvgpu_setting_valid(PVGPU_SETTING_CAP, 100));
    g_assert(!pvgpu_setting_valid(PVGPU_SETTING_CAP, 101));
    g_assert(!pvgpu_setting_valid(PVGPU_SETTING_PRIORITY,
                                  PVGPU_SCHED_NR_CLASSES));
    g_assert(!pvgpu_setting_valid(PVGPU_SETTING_SCHED_INFLIGHT, 17));
    g_assert(!pvgpu_setting_valid(PVGPU_SETTING_BATCH_QUANTA, 0));
    g_assert(pvgpu_setting_valid(PVGPU_SETTING_BATCH_QUANTA, 1000));
    g_assert(!pvgpu_setting_valid(PVGPU_SETTING_BATCH_QUANTA, 1001));
    /* names as QMP and -device spell them */
    g_assert_cmpstr(pvgpu_setting_info(PVGPU_SETTING_QUANTUM_US)->param, ==,
                    "quantum-us");
    g_assert_cmpstr(pvgpu_setting_info(PVGPU_SETTING_QUANTUM_US)->prop, ==,
                    "sched-quantum-us");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/pvgpu-settings/table", test_table);
    g_test_add_func("/pvgpu-settings/ranges", test_ranges);
    return g_test_run();
}
