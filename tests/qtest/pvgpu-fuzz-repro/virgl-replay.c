/*
 * Replay the control requests of a pvgpu fuzzer replay file straight
 * into virglrenderer, without QEMU or pvgpu: tells a virglrenderer/Mesa
 * bug from a pvgpu one.  Not built by the project; by hand:
 *
 *   cc -o virgl-replay virgl-replay.c $(pkg-config --cflags --libs virglrenderer)
 *   FENCES=1 ./virgl-replay segv-draw-after-ctx-destroy.txt
 *
 * FENCES=1 creates a fence after every command, as pvgpu's render thread
 * does for fenced ones.  With it, virglrenderer 0.10.4 on Mesa 22.3.6
 * llvmpipe (Debian 12) crashes in swrast_dri.so on the last SUBMIT_3D of
 * segv-draw-after-ctx-destroy.txt; without fences it does not.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/uio.h>
#include <virgl/virglrenderer.h>

static void write_fence(void *cookie, uint32_t fence) { }
static int get_drm_fd(void *cookie) { return -1; }
static struct virgl_renderer_callbacks cbs = { .version = 2, .write_fence = write_fence, .get_drm_fd = get_drm_fd };

int main(int argc, char **argv)
{
    FILE *fp = fopen(argv[1], "r");
    char line[200000];
    int flags = VIRGL_RENDERER_USE_EGL | VIRGL_RENDERER_THREAD_SYNC | VIRGL_RENDERER_USE_SURFACELESS; static int cookie;
    int n = 0;

    if (virgl_renderer_init(&cookie, flags, &cbs)) { fprintf(stderr, "init failed\n"); return 1; }
    while (fgets(line, sizeof(line), fp)) {
        char kind[16], hex[200000];
        uint8_t b[100000];
        size_t len;
        uint32_t *d = (uint32_t *)b, type, ctx;
        int ret = 0;

        if (sscanf(line, "%15s %199999s", kind, hex) != 2 || strcmp(kind, "ctrl")) continue;
        len = strlen(hex) / 2;
        for (size_t i = 0; i < len; i++) { unsigned v; sscanf(hex + 2 * i, "%2x", &v); b[i] = v; }
        type = d[0]; ctx = d[4];
        switch (type) {
        case 0x200: ret = (d[7] & 0xff) ? virgl_renderer_context_create_with_flags(ctx, d[7] & 0xff, d[6], (char *)&d[8]) : virgl_renderer_context_create(ctx, d[6], (char *)&d[8]); break;
        case 0x201: virgl_renderer_poll(); virgl_renderer_context_destroy(ctx); if (getenv("FORCE0")) virgl_renderer_force_ctx_0(); break;
        case 0x202: virgl_renderer_ctx_attach_resource(ctx, d[6]); break;
        case 0x203: virgl_renderer_ctx_detach_resource(ctx, d[6]); break;
        case 0x204: {
            struct virgl_renderer_resource_create_args a = {
                .handle = d[6], .target = d[7], .format = d[8], .bind = d[9], .width = d[10], .height = d[11],
                .depth = d[12], .array_size = d[13], .last_level = d[14], .nr_samples = d[15], .flags = d[16] };
            ret = virgl_renderer_resource_create(&a, NULL, 0);
            break;
        }
        case 0x106: {
            size_t sz = 0;
            for (uint32_t i = 0; i < d[7]; i++) sz += *(uint32_t *)(b + 32 + 16 * i + 8);
            struct iovec *iov = malloc(sizeof(*iov));
            iov->iov_base = calloc(1, sz); iov->iov_len = sz;
            ret = virgl_renderer_resource_attach_iov(d[6], iov, 1);
            break;
        }
        case 0x205: case 0x206: {
            struct { uint32_t x, y, z, w, h, d; } box = { d[6], d[7], d[8], d[9], d[10], d[11] };
            uint64_t off = *(uint64_t *)&d[12];
            if (type == 0x205)
                ret = virgl_renderer_transfer_write_iov(d[14], ctx, d[15], d[16], d[17], (struct virgl_box *)&box, off, NULL, 0);
            else
                ret = virgl_renderer_transfer_read_iov(d[14], ctx, d[15], d[16], d[17], (struct virgl_box *)&box, off, NULL, 0);
            break;
        }
        case 0x207: ret = virgl_renderer_submit_cmd(&d[8], ctx, d[6] / 4); break;
        default: fprintf(stderr, "skip 0x%x\n", type); continue;
        }
        fprintf(stderr, "%d: 0x%x ctx %u -> %d\n", ++n, type, ctx, ret);
        if (getenv("FENCES") && !ret) {
            static uint32_t seq;
            virgl_renderer_create_fence(++seq, type == 0x201 ? 0 : ctx);
        }
    }
    virgl_renderer_cleanup(&cookie);
    fprintf(stderr, "done\n");
    return 0;
}
