/*
 * pvgpu-fbdemo: draw a test pattern on the Linux framebuffer
 *
 * Runs in the demo/test guest.  Takes the console out of text mode so
 * fbcon leaves the screen alone, draws eight colour bars over the top two
 * thirds and a grey ramp below, and flushes the deferred-I/O mapping so
 * the driver sends the damage to the device.  The host checks the
 * colours in a screendump.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <fcntl.h>
#include <linux/fb.h>
#include <linux/kd.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

/* white, yellow, cyan, green, magenta, red, blue, black: 0xRRGGBB */
static const uint32_t bars[8] = {
    0xffffff, 0xffff00, 0x00ffff, 0x00ff00,
    0xff00ff, 0xff0000, 0x0000ff, 0x000000,
};

static uint32_t pack(const struct fb_var_screeninfo *v, uint32_t rgb)
{
    uint32_t r = rgb >> 16 & 0xff, g = rgb >> 8 & 0xff, b = rgb & 0xff;

    return (r >> (8 - v->red.length)) << v->red.offset |
           (g >> (8 - v->green.length)) << v->green.offset |
           (b >> (8 - v->blue.length)) << v->blue.offset;
}

int main(void)
{
    struct fb_var_screeninfo var;
    struct fb_fix_screeninfo fix;
    uint8_t *fb;
    int fd, tty;

    fd = open("/dev/fb0", O_RDWR);
    if (fd < 0 || ioctl(fd, FBIOGET_VSCREENINFO, &var) ||
        ioctl(fd, FBIOGET_FSCREENINFO, &fix)) {
        perror("pvgpu-fbdemo: /dev/fb0");
        return 1;
    }
    if (var.bits_per_pixel != 32) {
        fprintf(stderr, "pvgpu-fbdemo: %u bpp not supported\n",
                var.bits_per_pixel);
        return 1;
    }
    fb = mmap(NULL, fix.smem_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (fb == MAP_FAILED) {
        perror("pvgpu-fbdemo: mmap");
        return 1;
    }
    tty = open("/dev/tty0", O_RDWR);
    if (tty >= 0) {
        ioctl(tty, KDSETMODE, KD_GRAPHICS);
    }

    for (uint32_t y = 0; y < var.yres; y++) {
        uint32_t *row = (uint32_t *)(fb + (size_t)(y + var.yoffset) *
                                     fix.line_length) + var.xoffset;

        for (uint32_t x = 0; x < var.xres; x++) {
            uint32_t rgb;

            if (y < var.yres * 2 / 3) {
                rgb = bars[x * 8 / var.xres];
            } else {
                uint32_t l = x * 255 / (var.xres - 1);

                rgb = l << 16 | l << 8 | l;
            }
            row[x] = pack(&var, rgb);
        }
    }
    /* fbdev deferred I/O: msync flushes the damage to the device now */
    msync(fb, fix.smem_len, MS_SYNC);
    printf("PVGPU: demo-drawn %ux%u\n", var.xres, var.yres);
    fflush(stdout);
    return 0;
}
