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
    unsigned caps = size ? data[0] & 7 : 0;
    uint8_t resp[PVGPU_MAX_RESP_SIZE];
    const char *why;
    PvgpuCmd cmd;

    if (pvgpu_cmd_decode(data, size, q, caps, &cmd, &why) != 0) {
        /* the header is decoded even for refused requests */
    } else if (cmd.hdr.type == PVGPU_CMD_RESOURCE_ATTACH_BACKING ||
               cmd.hdr.type == PVGPU_CMD_RESOURCE_CREATE_BLOB) {
        /* the two share their leading members (see pvgpu-cmd.h) */
        uint32_t n = cmd.hdr.type == PVGPU_CMD_RESOURCE_CREATE_BLOB ?
                     cmd.u.create_blob.nr_entries :
                     cmd.u.attach_backing.nr_entries;
        uint64_t want = cmd.hdr.type == PVGPU_CMD_RESOURCE_CREATE_BLOB ?
                        cmd.u.create_blob.total_length :
                        cmd.u.attach_backing.total_length;
        uint64_t total = 0;

        for (uint32_t i = 0; i < n; i++) {
            total += pvgpu_cmd_mem_entry(&cmd, i).length;
        }
        if (total != want) {
            abort();
        }
    } else if (cmd.hdr.type == PVGPU_CMD_SET_SCANOUT_BLOB &&
               cmd.u.set_scanout_blob.resource_id &&
               !pvgpu_rect_inside(&cmd.u.set_scanout_blob.r,
                                  cmd.u.set_scanout_blob.width,
                                  cmd.u.set_scanout_blob.height)) {
        abort();
    }
    pvgpu_resp_encode_hdr(resp, &cmd.hdr, PVGPU_RESP_OK_NODATA);
    return 0;
}
