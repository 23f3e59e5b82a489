/*
 * pvgpu-cursor: show a hardware cursor through the DRM legacy cursor ioctl
 *
 * Runs in the test guest.  Finds the CRTC driving the connected connector,
 * draws a known 64x64 opaque pattern into a dumb buffer and makes it the
 * CRTC's cursor with hot spot (5,7) (DRM_IOCTL_MODE_CURSOR2), moves it,
 * reports "PVGPU: cursor-set ..." and sleeps: the cursor goes away when
 * the DRM master's file is closed.  The host reads the cursor back over
 * VNC (RichCursor) and compares it with the same pattern.
 *
 * Needs only the DRM uapi headers (linux-libc-dev, or libdrm-dev's copy
 * on distributions whose linux-libc-dev leaves them out); no libdrm.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#if __has_include("drm/drm_mode.h")
#include <drm/drm.h>
#include <drm/drm_mode.h>
#else
#include <libdrm/drm.h>
#include <libdrm/drm_mode.h>
#endif

#define CURSOR_SIZE 64
#define HOT_X 5
#define HOT_Y 7
#define POS_X 200
#define POS_Y 150

/*
 * Opaque, and different at every pixel: red counts x, green counts y,
 * blue tells the 32x32 quadrant.  tests/guest/guest-test.py has the same
 * formula.
 */
static uint32_t pattern(uint32_t x, uint32_t y)
{
    uint32_t quadrant = x / 32 + 2 * (y / 32);

    return 0xff000000 | (x * 4) << 16 | (y * 4) << 8 | quadrant * 0x55;
}

static int xioctl(int fd, unsigned long req, void *arg, const char *what)
{
    int ret;

    do {
        ret = ioctl(fd, req, arg);
    } while (ret < 0 && (errno == EINTR || errno == EAGAIN));
    if (ret < 0) {
        fprintf(stderr, "pvgpu-cursor: %s: %s\n", what, strerror(errno));
    }
    return ret;
}

/* The CRTC showing the first connected connector, or 0. */
static uint32_t find_crtc(int fd)
{
    struct drm_mode_card_res res = { 0 };
    uint32_t *connectors = NULL, *crtcs = NULL, crtc_id = 0;

    if (xioctl(fd, DRM_IOCTL_MODE_GETRESOURCES, &res, "GETRESOURCES")) {
        return 0;
    }
    connectors = calloc(res.count_connectors + 1, sizeof(uint32_t));
    crtcs = calloc(res.count_crtcs + 1, sizeof(uint32_t));
    res.count_fbs = 0;
    res.count_encoders = 0;
    res.connector_id_ptr = (uintptr_t)connectors;
    res.crtc_id_ptr = (uintptr_t)crtcs;
    if (xioctl(fd, DRM_IOCTL_MODE_GETRESOURCES, &res, "GETRESOURCES")) {
        goto out;
    }

    for (uint32_t i = 0; i < res.count_connectors && !crtc_id; i++) {
        struct drm_mode_get_connector conn = {
            .connector_id = connectors[i],
        };
        struct drm_mode_get_encoder enc = { 0 };

        if (xioctl(fd, DRM_IOCTL_MODE_GETCONNECTOR, &conn, "GETCONNECTOR")) {
            continue;
        }
        printf("PVGPU: cursor-connector %u connection %u encoder %u\n",
               conn.connector_id, conn.connection, conn.encoder_id);
        if (conn.connection != 1 || !conn.encoder_id) {
            continue;
        }
        enc.encoder_id = conn.encoder_id;
        if (xioctl(fd, DRM_IOCTL_MODE_GETENCODER, &enc, "GETENCODER")) {
            continue;
        }
        crtc_id = enc.crtc_id;
    }
    /* no encoder bound (no one set a mode?): take an active CRTC */
    for (uint32_t i = 0; i < res.count_crtcs && !crtc_id; i++) {
        struct drm_mode_crtc crtc = { .crtc_id = crtcs[i] };

        if (!xioctl(fd, DRM_IOCTL_MODE_GETCRTC, &crtc, "GETCRTC") &&
            crtc.mode_valid) {
            crtc_id = crtc.crtc_id;
        }
    }
out:
    free(connectors);
    free(crtcs);
    return crtc_id;
}

int main(void)
{
    struct drm_mode_create_dumb create = {
        .width = CURSOR_SIZE, .height = CURSOR_SIZE, .bpp = 32,
    };
    struct drm_mode_map_dumb map = { 0 };
    struct drm_mode_cursor2 cursor = { 0 };
    struct drm_mode_crtc crtc = { 0 };
    uint8_t *pixels;
    uint32_t crtc_id;
    int fd;

    setvbuf(stdout, NULL, _IOLBF, 0);
    fd = open("/dev/dri/card0", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        perror("pvgpu-cursor: /dev/dri/card0");
        return 1;
    }
    /* the first opener is master already; this only says if it is not */
    if (ioctl(fd, DRM_IOCTL_SET_MASTER, 0) < 0) {
        fprintf(stderr, "pvgpu-cursor: SET_MASTER: %s\n", strerror(errno));
    }

    crtc_id = find_crtc(fd);
    if (!crtc_id) {
        fprintf(stderr, "pvgpu-cursor: no CRTC drives a connected output\n");
        return 1;
    }
    crtc.crtc_id = crtc_id;
    if (xioctl(fd, DRM_IOCTL_MODE_GETCRTC, &crtc, "GETCRTC")) {
        return 1;
    }

    if (xioctl(fd, DRM_IOCTL_MODE_CREATE_DUMB, &create, "CREATE_DUMB")) {
        return 1;
    }
    map.handle = create.handle;
    if (xioctl(fd, DRM_IOCTL_MODE_MAP_DUMB, &map, "MAP_DUMB")) {
        return 1;
    }
    pixels = mmap(NULL, create.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                  map.offset);
    if (pixels == MAP_FAILED) {
        perror("pvgpu-cursor: mmap");
        return 1;
    }
    for (uint32_t y = 0; y < CURSOR_SIZE; y++) {
        uint32_t *row = (uint32_t *)(pixels + (size_t)y * create.pitch);

        for (uint32_t x = 0; x < CURSOR_SIZE; x++) {
            row[x] = pattern(x, y);
        }
    }
    msync(pixels, create.size, MS_SYNC);

    /* the image and hot spot first, then a move on its own */
    cursor.flags = DRM_MODE_CURSOR_BO;
    cursor.crtc_id = crtc_id;
    cursor.width = CURSOR_SIZE;
    cursor.height = CURSOR_SIZE;
    cursor.handle = create.handle;
    cursor.hot_x = HOT_X;
    cursor.hot_y = HOT_Y;
    if (xioctl(fd, DRM_IOCTL_MODE_CURSOR2, &cursor, "CURSOR2 BO")) {
        return 1;
    }
    cursor.flags = DRM_MODE_CURSOR_MOVE;
    cursor.x = POS_X;
    cursor.y = POS_Y;
    if (xioctl(fd, DRM_IOCTL_MODE_CURSOR2, &cursor, "CURSOR2 MOVE")) {
        return 1;
    }
    printf("PVGPU: cursor-set crtc %u mode %ux%u bo %ux%u pitch %u "
           "hot %u,%u at %u,%u\n", crtc_id, crtc.mode.hdisplay,
           crtc.mode.vdisplay, CURSOR_SIZE, CURSOR_SIZE, create.pitch,
           HOT_X, HOT_Y, POS_X, POS_Y);

    /* closing the master's file would take the cursor down */
    for (;;) {
        pause();
    }
}
