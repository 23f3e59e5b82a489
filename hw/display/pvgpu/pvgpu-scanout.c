/*
 * pvgpu scanouts: presentation through QEMU consoles
 *
 * Each scanout is a graphic console.  A 2D scanout's display surface
 * aliases the resource's host image, so RESOURCE_FLUSH only has to tell
 * the UI which rectangle changed, and screendump always sees what the
 * guest last transferred.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "hw/display/edid.h"
#include "ui/console.h"
#include "ui/qemu-pixman.h"
#include "hw/display/pvgpu.h"
#include "trace.h"

static void pvgpu_ui_info(void *opaque, uint32_t head, QemuUIInfo *info)
{
    PvgpuState *s = opaque;
    PvgpuScanout *so;

    if (head >= s->max_outputs) {
        return;
    }
    so = &s->scanouts[head];
    trace_pvgpu_ui_info(head, info->width, info->height);
    if (so->ui_width == info->width && so->ui_height == info->height &&
        so->ui_enabled == (info->width && info->height)) {
        return;
    }
    so->ui_width = info->width;
    so->ui_height = info->height;
    so->ui_enabled = info->width && info->height;
    /* spec 5.7.4: tell the driver to re-read the display configuration */
    pvgpu_notify_config_event(s, PVGPU_EVENT_DISPLAY);
}

static const GraphicHwOps pvgpu_hw_ops = {
    .ui_info = pvgpu_ui_info,
};

bool pvgpu_scanouts_init(PvgpuState *s, Error **errp)
{
    for (uint32_t i = 0; i < s->max_outputs; i++) {
        PvgpuScanout *so = &s->scanouts[i];

        so->ui_width = s->xres;
        so->ui_height = s->yres;
        /* like a physical card, only the first output starts connected */
        so->ui_enabled = i == 0;
        so->con = graphic_console_init(DEVICE(s), i, &pvgpu_hw_ops, s);
        dpy_gfx_replace_surface(so->con, NULL);
    }
    return true;
}

void pvgpu_scanouts_fini(PvgpuState *s)
{
    for (uint32_t i = 0; i < s->max_outputs; i++) {
        if (s->scanouts[i].con) {
            graphic_console_close(s->scanouts[i].con);
            s->scanouts[i].con = NULL;
        }
    }
}

static void scanout_disable(PvgpuState *s, uint32_t i)
{
    PvgpuScanout *so = &s->scanouts[i];
    PvgpuResource *old = so->resource_id ?
        pvgpu_resource_find(s, so->resource_id) : NULL;

    if (old) {
        old->scanout_bitmask &= ~(1u << i);
    }
    so->resource_id = 0;
    so->r = (PvgpuRect) { 0 };
    dpy_gfx_replace_surface(so->con, NULL);
}

static void scanout_show(PvgpuState *s, uint32_t i, PvgpuResource *res,
                         const PvgpuRect *r)
{
    PvgpuScanout *so = &s->scanouts[i];
    uint32_t stride = pixman_image_get_stride(res->image);
    uint8_t *data = (uint8_t *)pixman_image_get_data(res->image) +
                    (size_t)r->y * stride +
                    (size_t)r->x * pvgpu_format_bpp(res->format);
    DisplaySurface *surface;

    surface = qemu_create_displaysurface_from(
        r->width, r->height, pixman_image_get_format(res->image), stride,
        data);
    dpy_gfx_replace_surface(so->con, surface);
    so->resource_id = res->id;
    so->r = *r;
    res->scanout_bitmask |= 1u << i;
}

void pvgpu_scanout_set(PvgpuState *s, uint32_t scanout_id,
                       PvgpuResource *res, const PvgpuRect *r)
{
    PvgpuScanout *so = &s->scanouts[scanout_id];

    if (!res) {
        scanout_disable(s, scanout_id);
        return;
    }
    if (so->resource_id == res->id && so->r.x == r->x && so->r.y == r->y &&
        so->r.width == r->width && so->r.height == r->height) {
        /* a page flip to the same buffer: the surface is still right */
        dpy_gfx_update_full(so->con);
        return;
    }
    if (so->resource_id) {
        PvgpuResource *old = pvgpu_resource_find(s, so->resource_id);

        if (old) {
            old->scanout_bitmask &= ~(1u << scanout_id);
        }
    }
    scanout_show(s, scanout_id, res, r);
}

void pvgpu_scanout_flush(PvgpuState *s, PvgpuResource *res,
                         const PvgpuRect *r)
{
    for (uint32_t i = 0; i < s->max_outputs; i++) {
        PvgpuScanout *so = &s->scanouts[i];
        PvgpuRect dirty;

        if (!(res->scanout_bitmask & (1u << i)) ||
            !pvgpu_rect_intersect(r, &so->r, &dirty)) {
            continue;
        }
        dpy_gfx_update(so->con, dirty.x - so->r.x, dirty.y - so->r.y,
                       dirty.width, dirty.height);
    }
}

void pvgpu_scanout_detach_resource(PvgpuState *s, PvgpuResource *res)
{
    for (uint32_t i = 0; i < s->max_outputs; i++) {
        PvgpuScanout *so = &s->scanouts[i];

        if (res->scanout_bitmask & (1u << i)) {
            scanout_disable(s, i);
        }
        if (so->cursor_resource_id == res->id) {
            /* the cursor image was copied; only forget the reference */
            so->cursor_resource_id = 0;
        }
    }
    res->scanout_bitmask = 0;
}

static void cursor_define(PvgpuScanout *so, pixman_image_t *src)
{
    int w = pixman_image_get_width(src), h = pixman_image_get_height(src);
    QEMUCursor *c = cursor_alloc(w, h);
    pixman_image_t *dst;

    if (!c) {
        return;
    }
    c->hot_x = so->cursor_hot_x;
    c->hot_y = so->cursor_hot_y;
    /* QEMUCursor holds native 0xAARRGGBB words */
    dst = pixman_image_create_bits(PIXMAN_a8r8g8b8, w, h, c->data, w * 4);
    pixman_image_composite(PIXMAN_OP_SRC, src, NULL, dst, 0, 0, 0, 0, 0, 0,
                           w, h);
    pixman_image_unref(dst);
    dpy_cursor_define(so->con, c);
    cursor_unref(c);
}

void pvgpu_scanout_cursor(PvgpuState *s, uint32_t scanout_id,
                          PvgpuResource *res, bool update)
{
    PvgpuScanout *so = &s->scanouts[scanout_id];

    if (update) {
        so->cursor_resource_id = res ? res->id : 0;
        if (res && res->image) {
            cursor_define(so, res->image);
        }
    }
    dpy_mouse_set(so->con, so->cursor_x, so->cursor_y,
                  so->cursor_resource_id != 0);
}

/* --- 3D: pixels arrive as readbacks from the render thread ------------- */

void pvgpu_scanout_set_3d(PvgpuState *s, uint32_t scanout_id,
                          PvgpuResource *res, const PvgpuRect *r)
{
    PvgpuScanout *so = &s->scanouts[scanout_id];
    DisplaySurface *surface = qemu_console_surface(so->con);

    if (so->resource_id && so->resource_id != res->id) {
        PvgpuResource *old = pvgpu_resource_find(s, so->resource_id);

        if (old) {
            old->scanout_bitmask &= ~(1u << scanout_id);
        }
    }
    so->resource_id = res->id;
    so->r = *r;
    res->scanout_bitmask |= 1u << scanout_id;
    /* a host-side copy the readbacks land in; the UI reads it */
    if (!surface || surface_width(surface) != r->width ||
        surface_height(surface) != r->height ||
        surface_is_placeholder(surface)) {
        dpy_gfx_replace_surface(so->con,
                                qemu_create_displaysurface(r->width,
                                                           r->height));
    }
}

static pixman_image_t *readback_image(const PvgpuReadback *rb)
{
    return pixman_image_create_bits(pvgpu_pixman_format(rb->format),
                                    rb->r.width, rb->r.height,
                                    (uint32_t *)rb->pixels, rb->r.width * 4);
}

void pvgpu_scanout_present(PvgpuState *s, const PvgpuReadback *rb)
{
    PvgpuScanout *so = &s->scanouts[rb->scanout_id];
    DisplaySurface *surface = qemu_console_surface(so->con);
    PvgpuRect visible;
    pixman_image_t *src;

    /* the scanout may have moved on while the readback was queued */
    if (so->resource_id != rb->resource_id || !surface ||
        !pvgpu_rect_intersect(&rb->r, &so->r, &visible) ||
        visible.width != rb->r.width || visible.height != rb->r.height ||
        surface_width(surface) != so->r.width ||
        surface_height(surface) != so->r.height) {
        return;
    }
    src = readback_image(rb);
    pixman_image_composite(PIXMAN_OP_SRC, src, NULL, surface->image, 0, 0, 0,
                           0, rb->r.x - so->r.x, rb->r.y - so->r.y,
                           rb->r.width, rb->r.height);
    pixman_image_unref(src);
    dpy_gfx_update(so->con, rb->r.x - so->r.x, rb->r.y - so->r.y,
                   rb->r.width, rb->r.height);
}

void pvgpu_cursor_present(PvgpuState *s, uint32_t scanout_id,
                          const PvgpuReadback *rb)
{
    PvgpuScanout *so = &s->scanouts[scanout_id];
    pixman_image_t *src;

    if (so->cursor_resource_id != rb->resource_id) {
        return;
    }
    src = readback_image(rb);
    cursor_define(so, src);
    pixman_image_unref(src);
    dpy_mouse_set(so->con, so->cursor_x, so->cursor_y, true);
}

void pvgpu_scanouts_display_info(PvgpuState *s, PvgpuDisplayOne *pmodes)
{
    memset(pmodes, 0, sizeof(*pmodes) * PVGPU_MAX_SCANOUTS);
    for (uint32_t i = 0; i < s->max_outputs; i++) {
        pmodes[i].enabled = s->scanouts[i].ui_enabled;
        pmodes[i].r.width = s->scanouts[i].ui_width;
        pmodes[i].r.height = s->scanouts[i].ui_height;
    }
}

size_t pvgpu_scanout_edid(PvgpuState *s, uint32_t scanout_id,
                          uint8_t *edid, size_t size)
{
    PvgpuScanout *so = &s->scanouts[scanout_id];
    g_autofree char *serial = g_strdup_printf("pvgpu-%u", scanout_id);
    qemu_edid_info info = {
        .name = "pvgpu",
        .serial = serial,
        .prefx = so->ui_width ? so->ui_width : s->xres,
        .prefy = so->ui_height ? so->ui_height : s->yres,
    };

    memset(edid, 0, size);
    qemu_edid_generate(edid, size, &info);
    return qemu_edid_size(edid);
}

void pvgpu_scanouts_reset(PvgpuState *s)
{
    for (uint32_t i = 0; i < s->max_outputs; i++) {
        PvgpuScanout *so = &s->scanouts[i];

        scanout_disable(s, i);
        so->cursor_resource_id = 0;
        so->cursor_x = so->cursor_y = 0;
        so->cursor_hot_x = so->cursor_hot_y = 0;
        dpy_mouse_set(so->con, 0, 0, false);
    }
}

void pvgpu_scanouts_post_load(PvgpuState *s)
{
    for (uint32_t i = 0; i < s->max_outputs; i++) {
        PvgpuScanout *so = &s->scanouts[i];
        PvgpuResource *res = so->resource_id ?
            pvgpu_resource_find(s, so->resource_id) : NULL;
        PvgpuRect r = so->r;

        so->resource_id = 0;
        if (res && r.width && r.height &&
            pvgpu_rect_inside(&r, res->width, res->height)) {
            scanout_show(s, i, res, &r);
        } else {
            dpy_gfx_replace_surface(so->con, NULL);
        }
        res = so->cursor_resource_id ?
            pvgpu_resource_find(s, so->cursor_resource_id) : NULL;
        if (so->cursor_resource_id && !res) {
            so->cursor_resource_id = 0;
        }
        pvgpu_scanout_cursor(s, i, res, true);
    }
}
