/*
 * pvgpu scanouts (pvgpu-scanout.c)
 *
 * Owns the scanouts (PvgpuState.scanouts) as QEMU consoles: what each
 * shows (a resource's rectangle, a blob's framebuffer, or a dmabuf), the
 * cursor, EDID and display info.  Pixels of the renderer's resources
 * arrive as readbacks (PvgpuReadback); guest-memory blobs are shown from
 * guest memory.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_DISPLAY_PVGPU_SCANOUT_H
#define HW_DISPLAY_PVGPU_SCANOUT_H

#include "ui/console.h"
#include "ui/dmabuf.h"
#include "hw/display/pvgpu-render.h"
#include "hw/display/pvgpu-resource.h"

typedef struct PvgpuState PvgpuState;

/*
 * A cursor in a guest blob: the size Linux's virtio_gpu cursor plane uses
 * (64x64, DRM_FORMAT_ARGB8888 = B8G8R8A8_UNORM)
 */
#define PVGPU_CURSOR_SIZE 64
#define PVGPU_CURSOR_BLOB_BYTES (PVGPU_CURSOR_SIZE * PVGPU_CURSOR_SIZE * 4)

/* SET_SCANOUT_BLOB: a framebuffer inside a blob's guest memory */
typedef struct PvgpuFramebuffer {
    uint32_t format;
    uint32_t width;
    uint32_t height;
    uint32_t stride;
    uint32_t offset;
} PvgpuFramebuffer;

#define PVGPU_DMABUF_CACHE 3

typedef struct PvgpuScanout {
    QemuConsole *con;
    /* what the guest set with SET_SCANOUT; resource_id 0 = disabled */
    uint32_t resource_id;
    PvgpuRect r;
    /* what the UI asked for through ui_info */
    uint32_t ui_width;
    uint32_t ui_height;
    bool ui_enabled;
    /* cursor, in scanout coordinates */
    uint32_t cursor_resource_id;
    uint32_t cursor_x;
    uint32_t cursor_y;
    uint32_t cursor_hot_x;
    uint32_t cursor_hot_y;
    /* SET_SCANOUT_BLOB: the framebuffer shown (fb.width 0: not a blob) */
    PvgpuFramebuffer fb;
    /* a copy of the visible rect when it is not contiguous on the host */
    pixman_image_t *shadow;
    /*
     * the renderer's image of the resource shown, when it shares it (the
     * surface points into it), and the rectangle the surface was built for
     */
    pixman_image_t *image;
    PvgpuRect image_r;
    uint64_t shadow_hostmem;
    /*
     * gl-scanout: the 3D resource shown, as the GL display imports it, and
     * the last few shown (a guest flips between two or three buffers; the
     * display keeps its imported texture in the QemuDmaBuf)
     */
    QemuDmaBuf *dmabuf;
    struct {
        uint32_t resource_id;
        PvgpuRect r;
        QemuDmaBuf *dmabuf;
    } dmabuf_cache[PVGPU_DMABUF_CACHE];
    unsigned dmabuf_next;
} PvgpuScanout;

bool pvgpu_scanouts_init(PvgpuState *s, Error **errp);
void pvgpu_scanouts_fini(PvgpuState *s);
void pvgpu_scanouts_reset(PvgpuState *s);
void pvgpu_scanout_disable(PvgpuState *s, uint32_t scanout_id);
void pvgpu_scanout_flush(PvgpuState *s, PvgpuResource *res,
                         const PvgpuRect *r);
void pvgpu_scanout_detach_resource(PvgpuState *s, PvgpuResource *res);
void pvgpu_scanout_cursor(PvgpuState *s, uint32_t scanout_id,
                          PvgpuResource *res, bool update);
void pvgpu_scanouts_display_info(PvgpuState *s, PvgpuDisplayOne *pmodes);
size_t pvgpu_scanout_edid(PvgpuState *s, uint32_t scanout_id,
                          uint8_t *edid, size_t size);
void pvgpu_scanouts_post_load(PvgpuState *s);
uint32_t pvgpu_scanout_set_blob(PvgpuState *s, uint32_t scanout_id,
                                PvgpuResource *res,
                                const PvgpuFramebuffer *fb,
                                const PvgpuRect *r);
/* The renderer's resources: pixels come as readbacks */
bool pvgpu_scanout_set_3d(PvgpuState *s, uint32_t scanout_id,
                          PvgpuResource *res, const PvgpuRect *r);
void pvgpu_scanout_present(PvgpuState *s, const PvgpuReadback *rb);
bool pvgpu_scanout_wants_dmabuf(PvgpuState *s, uint32_t scanout_id);
void pvgpu_scanout_gl_update(PvgpuState *s, uint32_t scanout_id,
                             uint32_t resource_id, const PvgpuRect *r);
void pvgpu_cursor_present(PvgpuState *s, uint32_t scanout_id,
                          const PvgpuReadback *rb);


#endif /* HW_DISPLAY_PVGPU_SCANOUT_H */
