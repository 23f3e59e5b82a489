/*
 * libFuzzer entry point for pvgpu's command decoder
 *
 *   CC=clang meson setup _fuzz && ninja -C _fuzz fuzz-pvgpu-cmd
 *   _fuzz/fuzz-pvgpu-cmd -max_total_time=60
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <stdlib.h>

#include "hw/display/pvgpu-cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    PvgpuQueue q = size && (data[size - 1] & 1) ? PVGPU_QUEUE_CURSOR
                                                : PVGPU_QUEUE_CTRL;
    unsigned caps = size ? data[0] & 3 : 0;
    uint8_t resp[PVGPU_MAX_RESP_SIZE];
    const char *why;
    PvgpuCmd cmd;

    if (pvgpu_cmd_decode(data, size, q, caps, &cmd, &why) == 0 &&
        cmd.hdr.type == PVGPU_CMD_RESOURCE_ATTACH_BACKING) {
        uint64_t total = 0;

        for (uint32_t i = 0; i < cmd.u.attach_backing.nr_entries; i++) {
            total += pvgpu_cmd_mem_entry(&cmd, i).length;
        }
        if (total != cmd.u.attach_backing.total_length) {
            abort();
        }
    }
    pvgpu_resp_encode_hdr(resp, &cmd.hdr, PVGPU_RESP_OK_NODATA);
    return 0;
}
