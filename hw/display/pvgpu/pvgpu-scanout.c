/*
 * pvgpu scanouts: presentation through QEMU consoles
 *
 * Each scanout is a graphic console.  A 2D scanout's display surface
 * aliases the resource's host image, so RESOURCE_FLUSH only has to tell
 * the UI which rectangle changed, and screendump always sees what the
 * guest last transferred.  A blob scanout (SET_SCANOUT_BLOB) shows guest
 * memory: aliased when the visible rectangle is contiguous in the host
 * mapping, else through a shadow copy refreshed on RESOURCE_FLUSH.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/log.h"
#include "qapi/error.h"
#include "qemu/iov.h"
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

/*
 * gl-scanout: the consoles need a display that imports dmabufs (QEMU
 * refuses to start with another), which tells us when it is busy.
 */
static int pvgpu_get_flags(void *opaque)
{
    PvgpuState *s = opaque;

    return s->gl_scanout ? GRAPHIC_FLAGS_GL | GRAPHIC_FLAGS_DMABUF : 0;
}

static void pvgpu_gl_block(void *opaque, bool block)
{
    PvgpuState *s = opaque;

    if (block) {
        s->gl_blocked++;
    } else if (s->gl_blocked && !--s->gl_blocked) {
        pvgpu_exec_resume(s);
    }
}

static const GraphicHwOps pvgpu_hw_ops = {
    .get_flags = pvgpu_get_flags,
    .ui_info = pvgpu_ui_info,
    .gl_block = pvgpu_gl_block,
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

/* Forget a blob framebuffer; the caller replaces the surface */
static void scanout_fb_release(PvgpuState *s, PvgpuScanout *so)
{
    if (so->shadow) {
        /* the surface may still point at the shadow: replace it first */
        pixman_image_unref(so->shadow);
        so->shadow = NULL;
        pvgpu_hostmem_release(s, so->shadow_hostmem);
        so->shadow_hostmem = 0;
    }
    so->fb = (PvgpuFramebuffer) { 0 };
}

static void dmabuf_free(PvgpuScanout *so, QemuDmaBuf *dmabuf)
{
    dpy_gl_release_dmabuf(so->con, dmabuf);
    qemu_dmabuf_close(dmabuf);
    qemu_dmabuf_free(dmabuf);
}

/* Forget the dmabufs of @resource_id (0: all) */
static void scanout_dmabuf_forget(PvgpuScanout *so, uint32_t resource_id)
{
    for (unsigned i = 0; i < PVGPU_DMABUF_CACHE; i++) {
        if (so->dmabuf_cache[i].dmabuf &&
            (!resource_id || so->dmabuf_cache[i].resource_id == resource_id)) {
            if (so->dmabuf == so->dmabuf_cache[i].dmabuf) {
                so->dmabuf = NULL;
            }
            dmabuf_free(so, so->dmabuf_cache[i].dmabuf);
            so->dmabuf_cache[i].dmabuf = NULL;
        }
    }
}

/* The surface no longer shows the renderer's image */
static void scanout_image_release(PvgpuScanout *so)
{
    if (so->image) {
        pixman_image_unref(so->image);
        so->image = NULL;
    }
}

void pvgpu_scanout_disable(PvgpuState *s, uint32_t i)
{
    PvgpuScanout *so = &s->scanouts[i];
    PvgpuResource *old = so->resource_id ?
        pvgpu_resource_find(s, so->resource_id) : NULL;

    if (old) {
        old->scanout_bitmask &= ~(1u << i);
    }
    so->resource_id = 0;
    so->r = (PvgpuRect) { 0 };
    scanout_dmabuf_forget(so, 0);
    dpy_gfx_replace_surface(so->con, NULL);
    scanout_fb_release(s, so);
    scanout_image_release(so);
}

/* Byte offset in the blob of pixel (x, y) of the scanout's framebuffer */
static uint64_t fb_pos(const PvgpuFramebuffer *fb, uint32_t x, uint32_t y)
{
    return fb->offset + (uint64_t)y * fb->stride +
           (uint64_t)x * pvgpu_format_bpp(fb->format);
}

/* Copy rows of @r (framebuffer coordinates) from guest memory to the shadow */
static void scanout_fb_copy(PvgpuScanout *so, PvgpuResource *res,
                            const PvgpuRect *r)
{
    unsigned bpp = pvgpu_format_bpp(so->fb.format);
    uint32_t stride = pixman_image_get_stride(so->shadow);
    uint8_t *bits = (uint8_t *)pixman_image_get_data(so->shadow);

    for (uint32_t y = r->y; y < r->y + r->height; y++) {
        iov_to_buf(res->iov, res->niov, fb_pos(&so->fb, r->x, y),
                   bits + (size_t)(y - so->r.y) * stride +
                   (size_t)(r->x - so->r.x) * bpp,
                   (size_t)r->width * bpp);
    }
}

/* The host address of @len bytes at @pos of @res, if contiguous there */
static void *blob_contiguous(PvgpuResource *res, uint64_t pos, uint64_t len)
{
    uint64_t at = 0;

    for (unsigned i = 0; i < res->niov; i++) {
        uint64_t n = res->iov[i].iov_len;

        if (pos >= at && pos - at < n) {
            return len <= n - (pos - at) ?
                   (uint8_t *)res->iov[i].iov_base + (pos - at) : NULL;
        }
        at += n;
    }
    return NULL;
}

/*
 * Show rect @r of framebuffer @fb in blob @res (checked to lie inside its
 * guest memory) on scanout @scanout_id.
 */
uint32_t pvgpu_scanout_set_blob(PvgpuState *s, uint32_t scanout_id,
                                PvgpuResource *res,
                                const PvgpuFramebuffer *fb,
                                const PvgpuRect *r)
{
    PvgpuScanout *so = &s->scanouts[scanout_id];
    pixman_format_code_t pformat = pvgpu_pixman_format(fb->format);
    unsigned bpp = pvgpu_format_bpp(fb->format);
    uint64_t first = fb_pos(fb, r->x, r->y);
    uint64_t len = fb_pos(fb, r->x + r->width, r->y + r->height - 1) - first;
    DisplaySurface *surface;
    void *data;

    if (so->resource_id) {
        pvgpu_scanout_disable(s, scanout_id);
    }
    so->fb = *fb;
    so->r = *r;
    data = blob_contiguous(res, first, len);
    if (data) {
        surface = qemu_create_displaysurface_from(r->width, r->height,
                                                  pformat, fb->stride, data);
    } else {
        uint64_t size = (uint64_t)r->width * r->height * bpp;
        bool charged = pvgpu_hostmem_reserve(s, size);

        so->shadow = charged ?
            pixman_image_create_bits(pformat, r->width, r->height, NULL,
                                     r->width * bpp) : NULL;
        if (!so->shadow) {
            if (charged) {
                pvgpu_hostmem_release(s, size);
            }
            so->fb = (PvgpuFramebuffer) { 0 };
            so->r = (PvgpuRect) { 0 };
            dpy_gfx_replace_surface(so->con, NULL);
            qemu_log_mask(LOG_GUEST_ERROR, "pvgpu: SET_SCANOUT_BLOB: a %ux%u "
                          "shadow of blob %u (%" PRIu64 " bytes) %s -> "
                          "ERR_OUT_OF_MEMORY\n", r->width, r->height,
                          res->id, size, charged ? "could not be allocated" :
                          "does not fit in max_hostmem");
            return PVGPU_RESP_ERR_OUT_OF_MEMORY;
        }
        so->shadow_hostmem = size;
        scanout_fb_copy(so, res, r);
        surface = qemu_create_displaysurface_pixman(so->shadow);
    }
    trace_pvgpu_scanout_blob(scanout_id, res->id, fb->width, fb->height,
                             fb->stride, fb->offset, !data);
    dpy_gfx_replace_surface(so->con, surface);
    so->resource_id = res->id;
    res->scanout_bitmask |= 1u << scanout_id;
    return 0;
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
        if (so->shadow) {
            scanout_fb_copy(so, res, &dirty);
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
            pvgpu_scanout_disable(s, i);
        }
        scanout_dmabuf_forget(so, res->id);
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

/* A cursor image in guest memory, copied as the guest left it. */
static void cursor_define_blob(PvgpuScanout *so, PvgpuResource *res)
{
    g_autofree uint32_t *pixels = g_malloc(PVGPU_CURSOR_BLOB_BYTES);
    pixman_image_t *src;

    iov_to_buf(res->iov, res->niov, 0, pixels, PVGPU_CURSOR_BLOB_BYTES);
    src = pixman_image_create_bits(
        pvgpu_pixman_format(PVGPU_FORMAT_B8G8R8A8_UNORM), PVGPU_CURSOR_SIZE,
        PVGPU_CURSOR_SIZE, pixels, PVGPU_CURSOR_SIZE * 4);
    cursor_define(so, src);
    pixman_image_unref(src);
}

void pvgpu_scanout_cursor(PvgpuState *s, uint32_t scanout_id,
                          PvgpuResource *res, bool update)
{
    PvgpuScanout *so = &s->scanouts[scanout_id];

    if (update) {
        so->cursor_resource_id = res ? res->id : 0;
        if (res && res->blob_mem == PVGPU_BLOB_MEM_GUEST) {
            cursor_define_blob(so, res);
        }
    }
    dpy_mouse_set(so->con, so->cursor_x, so->cursor_y,
                  so->cursor_resource_id != 0);
}

/* --- pixels arrive as readbacks from the renderer ------------------------ */

/*
 * Bind the renderer's resource @res to a scanout.  Returns true when a
 * dmabuf of it is already imported (a page flip): then no readback or
 * export is needed.
 */
bool pvgpu_scanout_set_3d(PvgpuState *s, uint32_t scanout_id,
                          PvgpuResource *res, const PvgpuRect *r)
{
    PvgpuScanout *so = &s->scanouts[scanout_id];
    DisplaySurface *surface;

    if (so->fb.width) {
        /* the surface shows guest memory or the blob's shadow */
        pvgpu_scanout_disable(s, scanout_id);
    }
    /* a surface on the renderer's image is rebuilt by the readback */
    surface = qemu_console_surface(so->con);
    if (so->resource_id && so->resource_id != res->id) {
        PvgpuResource *old = pvgpu_resource_find(s, so->resource_id);

        if (old) {
            old->scanout_bitmask &= ~(1u << scanout_id);
        }
    }
    so->resource_id = res->id;
    so->r = *r;
    res->scanout_bitmask |= 1u << scanout_id;
    /* what was shown stays cached for a flip back */
    so->dmabuf = NULL;
    if (pvgpu_scanout_wants_dmabuf(s, scanout_id)) {
        for (unsigned i = 0; i < PVGPU_DMABUF_CACHE; i++) {
            if (so->dmabuf_cache[i].dmabuf &&
                so->dmabuf_cache[i].resource_id == res->id &&
                !memcmp(&so->dmabuf_cache[i].r, r, sizeof(*r))) {
                so->dmabuf = so->dmabuf_cache[i].dmabuf;
                dpy_gl_scanout_dmabuf(so->con, so->dmabuf);
                return true;
            }
        }
    }
    /* a host-side copy the readbacks land in; the UI reads it */
    if (!so->image && (!surface || surface_width(surface) != r->width ||
        surface_height(surface) != r->height ||
        surface_is_placeholder(surface))) {
        dpy_gfx_replace_surface(so->con,
                                qemu_create_displaysurface(r->width,
                                                           r->height));
    }
    return false;
}

/* @rb's pixels as an image; the renderer's own one if it shares it */
static pixman_image_t *readback_image(const PvgpuReadback *rb)
{
    if (rb->image) {
        return pixman_image_ref(rb->image);
    }
    return pixman_image_create_bits(pvgpu_pixman_format(rb->format),
                                    rb->r.width, rb->r.height,
                                    (uint32_t *)rb->pixels, rb->r.width * 4);
}

bool pvgpu_scanout_wants_dmabuf(PvgpuState *s, uint32_t scanout_id)
{
    return s->gl_scanout && console_has_gl(s->scanouts[scanout_id].con);
}

/* SET_SCANOUT's readback came as a dmabuf: the GL display shows it */
static void scanout_present_dmabuf(PvgpuScanout *so, const PvgpuReadback *rb)
{
    int fd = dup(rb->dmabuf.fd);
    typeof(so->dmabuf_cache[0]) *slot = &so->dmabuf_cache[so->dmabuf_next];

    if (fd < 0) {
        return;
    }
    so->dmabuf_next = (so->dmabuf_next + 1) % PVGPU_DMABUF_CACHE;
    if (slot->dmabuf) {
        if (so->dmabuf == slot->dmabuf) {
            so->dmabuf = NULL;
        }
        dmabuf_free(so, slot->dmabuf);
    }
    slot->resource_id = rb->resource_id;
    slot->r = so->r;
    slot->dmabuf = qemu_dmabuf_new(so->r.width, so->r.height,
                                   rb->dmabuf.stride, so->r.x, so->r.y,
                                   rb->dmabuf.width, rb->dmabuf.height,
                                   rb->dmabuf.fourcc, 0, fd, false,
                                   rb->dmabuf.y0_top);
    so->dmabuf = slot->dmabuf;
    dpy_gl_scanout_dmabuf(so->con, so->dmabuf);
    dpy_gl_update(so->con, 0, 0, so->r.width, so->r.height);
}

/* A flush of a dmabuf scanout finished on the GPU */
void pvgpu_scanout_gl_update(PvgpuState *s, uint32_t scanout_id,
                             uint32_t resource_id, const PvgpuRect *r)
{
    PvgpuScanout *so = &s->scanouts[scanout_id];
    PvgpuRect dirty;

    if (so->dmabuf && so->resource_id == resource_id &&
        pvgpu_rect_intersect(r, &so->r, &dirty)) {
        dpy_gl_update(so->con, dirty.x - so->r.x, dirty.y - so->r.y,
                      dirty.width, dirty.height);
    }
}

/*
 * The renderer shares the resource's image: the surface shows it in
 * place, built anew when the image or the scanout's rectangle changed
 */
static void scanout_present_image(PvgpuScanout *so, const PvgpuReadback *rb)
{
    pixman_image_t *old = so->image;
    uint32_t stride = pixman_image_get_stride(rb->image);
    uint8_t *data;

    if (old == rb->image && !memcmp(&so->image_r, &so->r, sizeof(so->r))) {
        return;
    }
    data = (uint8_t *)pixman_image_get_data(rb->image) +
           (size_t)so->r.y * stride + (size_t)so->r.x * 4;
    so->image = pixman_image_ref(rb->image);
    so->image_r = so->r;
    dpy_gfx_replace_surface(so->con, qemu_create_displaysurface_from(
        so->r.width, so->r.height, pixman_image_get_format(rb->image),
        stride, data));
    if (old) {
        pixman_image_unref(old);
    }
}

void pvgpu_scanout_present(PvgpuState *s, const PvgpuReadback *rb)
{
    PvgpuScanout *so = &s->scanouts[rb->scanout_id];
    DisplaySurface *surface;
    PvgpuRect visible;
    pixman_image_t *src;

    if (rb->dmabuf.fd >= 0) {
        if (so->resource_id == rb->resource_id && console_has_gl(so->con)) {
            scanout_present_dmabuf(so, rb);
        }
        return;
    }
    if (rb->image && so->resource_id == rb->resource_id &&
        pvgpu_rect_inside(&so->r, pixman_image_get_width(rb->image),
                          pixman_image_get_height(rb->image))) {
        scanout_present_image(so, rb);
    }
    surface = qemu_console_surface(so->con);

    /* the scanout may have moved on while the readback was queued */
    if (so->resource_id != rb->resource_id || !surface ||
        !pvgpu_rect_intersect(&rb->r, &so->r, &visible) ||
        visible.width != rb->r.width || visible.height != rb->r.height ||
        surface_width(surface) != so->r.width ||
        surface_height(surface) != so->r.height) {
        return;
    }
    if (!rb->image) {
        src = readback_image(rb);
        pixman_image_composite(PIXMAN_OP_SRC, src, NULL, surface->image, 0, 0,
                               0, 0, rb->r.x - so->r.x, rb->r.y - so->r.y,
                               rb->r.width, rb->r.height);
        pixman_image_unref(src);
    }
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

        pvgpu_scanout_disable(s, i);
        so->cursor_resource_id = 0;
        so->cursor_x = so->cursor_y = 0;
        so->cursor_hot_x = so->cursor_hot_y = 0;
        dpy_mouse_set(so->con, 0, 0, false);
    }
}

/*
 * Present what a migrated 2D resource shows: a readback from the guest's
 * renderer, which holds the migrated pixels, of rectangle @r of @res on
 * scanout @i, or of its cursor
 */
static void scanout_restore(PvgpuState *s, uint32_t i, PvgpuResource *res,
                            const PvgpuRect *r, bool cursor)
{
    PvgpuRenderJob job = {
        .kind = PVGPU_JOB_READBACK,
        .nreadbacks = 1,
        .readbacks[0] = { .scanout_id = i, .resource_id = res->id, .r = *r },
    };

    if (pvgpu_render_run(s->renderer, &job) && job.readbacks[0].ok) {
        if (cursor) {
            pvgpu_cursor_present(s, i, &job.readbacks[0]);
        } else {
            pvgpu_scanout_present(s, &job.readbacks[0]);
        }
    }
    pvgpu_render_job_clear(&job);
}

void pvgpu_scanouts_post_load(PvgpuState *s)
{
    for (uint32_t i = 0; i < s->max_outputs; i++) {
        PvgpuScanout *so = &s->scanouts[i];
        PvgpuResource *res = so->resource_id ?
            pvgpu_resource_find(s, so->resource_id) : NULL;
        PvgpuRect r = so->r;

        PvgpuFramebuffer fb = so->fb;

        so->resource_id = 0;
        so->fb = (PvgpuFramebuffer) { 0 };
        if (res && fb.width && res->iov &&
            pvgpu_fb_fits(fb.width, fb.height, pvgpu_format_bpp(fb.format),
                          fb.stride, fb.offset, res->blob_size) &&
            pvgpu_rect_inside(&r, fb.width, fb.height)) {
            pvgpu_scanout_set_blob(s, i, res, &fb, &r);
        } else if (res && !fb.width && r.width && r.height &&
                   pvgpu_rect_inside(&r, res->width, res->height)) {
            pvgpu_scanout_set_3d(s, i, res, &r);
            scanout_restore(s, i, res, &r, false);
        } else {
            dpy_gfx_replace_surface(so->con, NULL);
        }
        res = so->cursor_resource_id ?
            pvgpu_resource_find(s, so->cursor_resource_id) : NULL;
        if (so->cursor_resource_id && !res) {
            so->cursor_resource_id = 0;
        }
        pvgpu_scanout_cursor(s, i, res, true);
        if (res && !res->blob_mem) {
            scanout_restore(s, i, res,
                            &(PvgpuRect) { 0, 0, res->width, res->height },
                            true);
        }
    }
}
