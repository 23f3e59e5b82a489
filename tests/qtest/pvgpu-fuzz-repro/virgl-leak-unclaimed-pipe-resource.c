/*
 * virglrenderer 0.10.4 (Debian 12) leaks the resource a context's
 * VIRGL_CCMD_PIPE_RESOURCE_CREATE makes when no RESOURCE_CREATE_BLOB
 * claims its blob_id: neither destroying the context nor
 * virgl_renderer_cleanup() frees it.  A guest can grow QEMU this way
 * (outside max_hostmem).  Found by the device fuzzer under LeakSanitizer
 * (384-byte calloc at libvirglrenderer.so.1+0x1dda1, the resource
 * record).  Not built by the project; by hand:
 *
 *   cc -g -fsanitize=address -o leak virgl-leak-unclaimed-pipe-resource.c \
 *       $(pkg-config --cflags --libs virglrenderer)
 *   LD_PRELOAD=$(gcc -print-file-name=libasan.so):/usr/lib/x86_64-linux-gnu/dri/swrast_dri.so \
 *       ASAN_OPTIONS=detect_leaks=1 ./leak
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <stdio.h>
#include <stdint.h>
#include <virgl/virglrenderer.h>

static void write_fence(void *cookie, uint32_t fence)
{
}

static struct virgl_renderer_callbacks cbs = {
    .version = 1,
    .write_fence = write_fence,
};

int main(void)
{
    static int cookie;
    /* PIPE_RESOURCE_CREATE: a 4 KiB persistent buffer for blob_id 7 */
    uint32_t dw[12] = {
        11u << 16 | 48, 0 /* PIPE_BUFFER */, 64 /* R8_UNORM */,
        1 << 4 /* VERTEX_BUFFER */, 4096, 1, 1, 1, 0, 0,
        1 << 1 | 1 << 2 /* MAP_PERSISTENT | MAP_COHERENT */, 7,
    };

    if (virgl_renderer_init(&cookie, VIRGL_RENDERER_USE_EGL |
                            VIRGL_RENDERER_USE_SURFACELESS, &cbs)) {
        return 1;
    }
    virgl_renderer_context_create(1, 4, "leak");
    printf("submit: %d\n", virgl_renderer_submit_cmd(dw, 1, 12));
    virgl_renderer_context_destroy(1);
    virgl_renderer_cleanup(&cookie);
    return 0;
}
