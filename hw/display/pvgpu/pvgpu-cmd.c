/*
 * pvgpu command decoding
 *
 * Pure C: this file deliberately includes no QEMU header (not even
 * qemu/osdep.h) so that tests/unit/ can build and fuzz it without QEMU.
 * All multi-byte fields are little-endian on the wire (virtio 1.x) and are
 * read byte by byte, so neither host endianness nor struct packing matters.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <string.h>

#include "hw/display/pvgpu-cmd.h"

static uint32_t ld32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 |
           (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t ld64(const uint8_t *p)
{
    return (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32;
}

static void st32(uint8_t *p, uint32_t v)
{
    p[0] = v;
    p[1] = v >> 8;
    p[2] = v >> 16;
    p[3] = v >> 24;
}

static void st64(uint8_t *p, uint64_t v)
{
    st32(p, v);
    st32(p + 4, v >> 32);
}

static PvgpuRect ld_rect(const uint8_t *p)
{
    return (PvgpuRect) {
        .x = ld32(p), .y = ld32(p + 4),
        .width = ld32(p + 8), .height = ld32(p + 12),
    };
}

static const struct {
    uint32_t type;
    const char *name;
    /* size of the fixed request, header included; 0 for responses */
    uint32_t size;
    PvgpuQueue queue;
    /* PVGPU_DECODE_* the command needs */
    unsigned caps;
} cmd_table[] = {
    { PVGPU_CMD_GET_DISPLAY_INFO, "GET_DISPLAY_INFO", 24, PVGPU_QUEUE_CTRL },
    { PVGPU_CMD_RESOURCE_CREATE_2D, "RESOURCE_CREATE_2D", 40,
      PVGPU_QUEUE_CTRL },
    { PVGPU_CMD_RESOURCE_UNREF, "RESOURCE_UNREF", 32, PVGPU_QUEUE_CTRL },
    { PVGPU_CMD_SET_SCANOUT, "SET_SCANOUT", 48, PVGPU_QUEUE_CTRL },
    { PVGPU_CMD_RESOURCE_FLUSH, "RESOURCE_FLUSH", 48, PVGPU_QUEUE_CTRL },
    { PVGPU_CMD_TRANSFER_TO_HOST_2D, "TRANSFER_TO_HOST_2D", 56,
      PVGPU_QUEUE_CTRL },
    { PVGPU_CMD_RESOURCE_ATTACH_BACKING, "RESOURCE_ATTACH_BACKING", 32,
      PVGPU_QUEUE_CTRL },
    { PVGPU_CMD_RESOURCE_DETACH_BACKING, "RESOURCE_DETACH_BACKING", 32,
      PVGPU_QUEUE_CTRL },
    { PVGPU_CMD_GET_CAPSET_INFO, "GET_CAPSET_INFO", 32, PVGPU_QUEUE_CTRL,
      PVGPU_DECODE_3D },
    { PVGPU_CMD_GET_CAPSET, "GET_CAPSET", 32, PVGPU_QUEUE_CTRL,
      PVGPU_DECODE_3D },
    { PVGPU_CMD_GET_EDID, "GET_EDID", 32, PVGPU_QUEUE_CTRL },
    { PVGPU_CMD_RESOURCE_ASSIGN_UUID, "RESOURCE_ASSIGN_UUID", 32,
      PVGPU_QUEUE_CTRL },
    { PVGPU_CMD_RESOURCE_CREATE_BLOB, "RESOURCE_CREATE_BLOB", 56,
      PVGPU_QUEUE_CTRL, PVGPU_DECODE_BLOB },
    { PVGPU_CMD_SET_SCANOUT_BLOB, "SET_SCANOUT_BLOB", 96, PVGPU_QUEUE_CTRL,
      PVGPU_DECODE_BLOB },
    { PVGPU_CMD_CTX_CREATE, "CTX_CREATE", 96, PVGPU_QUEUE_CTRL,
      PVGPU_DECODE_3D },
    { PVGPU_CMD_CTX_DESTROY, "CTX_DESTROY", 24, PVGPU_QUEUE_CTRL,
      PVGPU_DECODE_3D },
    { PVGPU_CMD_CTX_ATTACH_RESOURCE, "CTX_ATTACH_RESOURCE", 32,
      PVGPU_QUEUE_CTRL, PVGPU_DECODE_3D },
    { PVGPU_CMD_CTX_DETACH_RESOURCE, "CTX_DETACH_RESOURCE", 32,
      PVGPU_QUEUE_CTRL, PVGPU_DECODE_3D },
    { PVGPU_CMD_RESOURCE_CREATE_3D, "RESOURCE_CREATE_3D", 72,
      PVGPU_QUEUE_CTRL, PVGPU_DECODE_3D },
    { PVGPU_CMD_TRANSFER_TO_HOST_3D, "TRANSFER_TO_HOST_3D", 72,
      PVGPU_QUEUE_CTRL, PVGPU_DECODE_3D },
    { PVGPU_CMD_TRANSFER_FROM_HOST_3D, "TRANSFER_FROM_HOST_3D", 72,
      PVGPU_QUEUE_CTRL, PVGPU_DECODE_3D },
    { PVGPU_CMD_SUBMIT_3D, "SUBMIT_3D", 32, PVGPU_QUEUE_CTRL, PVGPU_DECODE_3D },
    { PVGPU_CMD_RESOURCE_MAP_BLOB, "RESOURCE_MAP_BLOB", 40, PVGPU_QUEUE_CTRL,
      PVGPU_DECODE_3D | PVGPU_DECODE_BLOB },
    { PVGPU_CMD_RESOURCE_UNMAP_BLOB, "RESOURCE_UNMAP_BLOB", 32,
      PVGPU_QUEUE_CTRL, PVGPU_DECODE_3D | PVGPU_DECODE_BLOB },
    { PVGPU_CMD_UPDATE_CURSOR, "UPDATE_CURSOR", 56, PVGPU_QUEUE_CURSOR },
    { PVGPU_CMD_MOVE_CURSOR, "MOVE_CURSOR", 56, PVGPU_QUEUE_CURSOR },
    { PVGPU_RESP_OK_NODATA, "OK_NODATA" },
    { PVGPU_RESP_OK_DISPLAY_INFO, "OK_DISPLAY_INFO" },
    { PVGPU_RESP_OK_CAPSET_INFO, "OK_CAPSET_INFO" },
    { PVGPU_RESP_OK_CAPSET, "OK_CAPSET" },
    { PVGPU_RESP_OK_EDID, "OK_EDID" },
    { PVGPU_RESP_OK_RESOURCE_UUID, "OK_RESOURCE_UUID" },
    { PVGPU_RESP_OK_MAP_INFO, "OK_MAP_INFO" },
    { PVGPU_RESP_ERR_UNSPEC, "ERR_UNSPEC" },
    { PVGPU_RESP_ERR_OUT_OF_MEMORY, "ERR_OUT_OF_MEMORY" },
    { PVGPU_RESP_ERR_INVALID_SCANOUT_ID, "ERR_INVALID_SCANOUT_ID" },
    { PVGPU_RESP_ERR_INVALID_RESOURCE_ID, "ERR_INVALID_RESOURCE_ID" },
    { PVGPU_RESP_ERR_INVALID_CONTEXT_ID, "ERR_INVALID_CONTEXT_ID" },
    { PVGPU_RESP_ERR_INVALID_PARAMETER, "ERR_INVALID_PARAMETER" },
};

static int cmd_index(uint32_t type)
{
    for (size_t i = 0; i < sizeof(cmd_table) / sizeof(cmd_table[0]); i++) {
        if (cmd_table[i].type == type) {
            return i;
        }
    }
    return -1;
}

const char *pvgpu_cmd_name(uint32_t type)
{
    int i = cmd_index(type);

    return i < 0 ? "UNKNOWN" : cmd_table[i].name;
}

unsigned pvgpu_format_bpp(uint32_t format)
{
    switch (format) {
    case PVGPU_FORMAT_B8G8R8A8_UNORM:
    case PVGPU_FORMAT_B8G8R8X8_UNORM:
    case PVGPU_FORMAT_A8R8G8B8_UNORM:
    case PVGPU_FORMAT_X8R8G8B8_UNORM:
    case PVGPU_FORMAT_R8G8B8A8_UNORM:
    case PVGPU_FORMAT_X8B8G8R8_UNORM:
    case PVGPU_FORMAT_A8B8G8R8_UNORM:
    case PVGPU_FORMAT_R8G8B8X8_UNORM:
        return 4;
    default:
        return 0;
    }
}

bool pvgpu_rect_inside(const PvgpuRect *r, uint32_t width, uint32_t height)
{
    return r->x <= width && r->width <= width - r->x &&
           r->y <= height && r->height <= height - r->y;
}

bool pvgpu_rect_intersect(const PvgpuRect *a, const PvgpuRect *b,
                          PvgpuRect *out)
{
    uint64_t x0 = a->x > b->x ? a->x : b->x;
    uint64_t y0 = a->y > b->y ? a->y : b->y;
    uint64_t ax1 = (uint64_t)a->x + a->width, bx1 = (uint64_t)b->x + b->width;
    uint64_t ay1 = (uint64_t)a->y + a->height, by1 = (uint64_t)b->y + b->height;
    uint64_t x1 = ax1 < bx1 ? ax1 : bx1;
    uint64_t y1 = ay1 < by1 ? ay1 : by1;

    if (x1 <= x0 || y1 <= y0) {
        *out = (PvgpuRect) { 0 };
        return false;
    }
    *out = (PvgpuRect) {
        .x = x0, .y = y0, .width = x1 - x0, .height = y1 - y0,
    };
    return true;
}

bool pvgpu_box_inside(const PvgpuBox *b, uint32_t width, uint32_t height,
                      uint32_t depth)
{
    return b->x <= width && b->w <= width - b->x &&
           b->y <= height && b->h <= height - b->y &&
           b->z <= depth && b->d <= depth - b->z;
}

bool pvgpu_transfer_2d_fits(const PvgpuRect *r, uint64_t offset,
                            uint32_t stride, unsigned bpp,
                            uint64_t backing_size)
{
    uint64_t last_row, row_bytes, end;

    if (r->width == 0 || r->height == 0) {
        return offset <= backing_size;
    }
    /* 32-bit factors: neither product can overflow 64 bits */
    last_row = (uint64_t)stride * (r->height - 1);
    row_bytes = (uint64_t)r->width * bpp;
    if (__builtin_add_overflow(offset, last_row, &end) ||
        __builtin_add_overflow(end, row_bytes, &end)) {
        return false;
    }
    return end <= backing_size;
}

/*
 * A list of @n (bounded by PVGPU_MAX_BACKING_ENTRIES) virtio_gpu_mem_entry
 * at @e, @len bytes available.  Returns 0 and their total length, or an
 * error; the "request shorter" error is ERR_UNSPEC like every truncated
 * request.
 */
static uint32_t decode_entries(const uint8_t *e, size_t len, uint32_t n,
                               uint64_t *total, const char **why)
{
    *total = 0;
    /* n is bounded, so no overflow */
    if (len < (size_t)n * PVGPU_MEM_ENTRY_SIZE) {
        *why = "request shorter than its nr_entries";
        return PVGPU_RESP_ERR_UNSPEC;
    }
    for (uint32_t i = 0; i < n; i++, e += PVGPU_MEM_ENTRY_SIZE) {
        uint64_t addr = ld64(e), end;
        uint32_t length = ld32(e + 8);

        if (length == 0 || __builtin_add_overflow(addr, length, &end)) {
            *why = "backing entry empty or wrapping the address space";
            return PVGPU_RESP_ERR_INVALID_PARAMETER;
        }
        *total += length;
    }
    return 0;
}

static uint32_t decode_body(const uint8_t *p, size_t len, unsigned caps,
                            PvgpuCmd *cmd, const char **why)
{
    switch (cmd->hdr.type) {
    case PVGPU_CMD_GET_DISPLAY_INFO:
        return 0;

    case PVGPU_CMD_GET_EDID:
        cmd->u.get_edid.scanout_id = ld32(p);
        return 0;

    case PVGPU_CMD_RESOURCE_CREATE_2D:
        cmd->u.create_2d.resource_id = ld32(p);
        cmd->u.create_2d.format = ld32(p + 4);
        cmd->u.create_2d.width = ld32(p + 8);
        cmd->u.create_2d.height = ld32(p + 12);
        if (cmd->u.create_2d.resource_id == 0 ||
            cmd->u.create_2d.resource_id == PVGPU_RESOURCE_ID_DEVICE) {
            *why = "resource ids 0 and 0xffffffff are reserved";
            return PVGPU_RESP_ERR_INVALID_RESOURCE_ID;
        }
        if (!pvgpu_format_bpp(cmd->u.create_2d.format)) {
            *why = "unknown format";
            return PVGPU_RESP_ERR_INVALID_PARAMETER;
        }
        if (cmd->u.create_2d.width == 0 || cmd->u.create_2d.height == 0 ||
            cmd->u.create_2d.width > PVGPU_MAX_DIMENSION ||
            cmd->u.create_2d.height > PVGPU_MAX_DIMENSION) {
            *why = "width or height is 0 or too large";
            return PVGPU_RESP_ERR_INVALID_PARAMETER;
        }
        return 0;

    case PVGPU_CMD_RESOURCE_UNREF:
    case PVGPU_CMD_RESOURCE_DETACH_BACKING:
    case PVGPU_CMD_RESOURCE_ASSIGN_UUID:
        cmd->u.resource.resource_id = ld32(p);
        return 0;

    case PVGPU_CMD_SET_SCANOUT:
        cmd->u.set_scanout.r = ld_rect(p);
        cmd->u.set_scanout.scanout_id = ld32(p + 16);
        cmd->u.set_scanout.resource_id = ld32(p + 20);
        return 0;

    case PVGPU_CMD_RESOURCE_FLUSH:
        cmd->u.flush.r = ld_rect(p);
        cmd->u.flush.resource_id = ld32(p + 16);
        return 0;

    case PVGPU_CMD_TRANSFER_TO_HOST_2D:
        cmd->u.transfer_2d.r = ld_rect(p);
        cmd->u.transfer_2d.offset = ld64(p + 16);
        cmd->u.transfer_2d.resource_id = ld32(p + 24);
        return 0;

    case PVGPU_CMD_RESOURCE_ATTACH_BACKING: {
        uint32_t n = ld32(p + 4);

        cmd->u.attach_backing.resource_id = ld32(p);
        cmd->u.attach_backing.nr_entries = n;
        if (n == 0 || n > PVGPU_MAX_BACKING_ENTRIES) {
            *why = "nr_entries is 0 or above the limit";
            return PVGPU_RESP_ERR_INVALID_PARAMETER;
        }
        cmd->u.attach_backing.entries = p + 8;
        return decode_entries(p + 8, len - 8, n,
                              &cmd->u.attach_backing.total_length, why);
    }

    case PVGPU_CMD_RESOURCE_CREATE_BLOB: {
        typeof(cmd->u.create_blob) *c = &cmd->u.create_blob;
        uint32_t err;
        bool host3d;

        c->resource_id = ld32(p);
        c->blob_mem = ld32(p + 4);
        c->blob_flags = ld32(p + 8);
        c->nr_entries = ld32(p + 12);
        c->blob_id = ld64(p + 16);
        c->size = ld64(p + 24);
        c->entries = p + 32;
        if (c->resource_id == 0 || c->resource_id == PVGPU_RESOURCE_ID_DEVICE) {
            *why = "resource ids 0 and 0xffffffff are reserved";
            return PVGPU_RESP_ERR_INVALID_RESOURCE_ID;
        }
        if (c->blob_mem < PVGPU_BLOB_MEM_GUEST ||
            c->blob_mem > PVGPU_BLOB_MEM_HOST3D_GUEST ||
            (c->blob_mem != PVGPU_BLOB_MEM_GUEST &&
             !(caps & PVGPU_DECODE_3D))) {
            *why = "blob_mem unknown, or HOST3D without VIRTIO_GPU_F_VIRGL";
            return PVGPU_RESP_ERR_INVALID_PARAMETER;
        }
        if (c->blob_flags & ~(PVGPU_BLOB_FLAG_USE_MAPPABLE |
                              PVGPU_BLOB_FLAG_USE_SHAREABLE |
                              PVGPU_BLOB_FLAG_USE_CROSS_DEVICE)) {
            *why = "unknown blob_flags";
            return PVGPU_RESP_ERR_INVALID_PARAMETER;
        }
        if (c->size == 0) {
            *why = "blob size is 0";
            return PVGPU_RESP_ERR_INVALID_PARAMETER;
        }
        /* host memory has no guest pages; guest memory has some */
        host3d = c->blob_mem == PVGPU_BLOB_MEM_HOST3D;
        if (host3d ? c->nr_entries != 0
                   : c->nr_entries == 0 ||
                     c->nr_entries > PVGPU_MAX_BACKING_ENTRIES) {
            *why = "nr_entries does not suit blob_mem or is above the limit";
            return PVGPU_RESP_ERR_INVALID_PARAMETER;
        }
        if (host3d) {
            return 0;
        }
        err = decode_entries(p + 32, len - 32, c->nr_entries,
                             &c->total_length, why);
        if (err) {
            return err;
        }
        if (c->total_length < c->size) {
            *why = "guest entries smaller than the blob";
            return PVGPU_RESP_ERR_INVALID_PARAMETER;
        }
        return 0;
    }

    case PVGPU_CMD_SET_SCANOUT_BLOB: {
        typeof(cmd->u.set_scanout_blob) *c = &cmd->u.set_scanout_blob;
        unsigned bpp;

        c->r = ld_rect(p);
        c->scanout_id = ld32(p + 16);
        c->resource_id = ld32(p + 20);
        c->width = ld32(p + 24);
        c->height = ld32(p + 28);
        c->format = ld32(p + 32);
        c->stride = ld32(p + 40);
        c->offset = ld32(p + 56);
        if (c->resource_id == 0) {
            /* disables the scanout, like SET_SCANOUT with resource 0 */
            return 0;
        }
        bpp = pvgpu_format_bpp(c->format);
        if (!bpp) {
            *why = "unknown format";
            return PVGPU_RESP_ERR_INVALID_PARAMETER;
        }
        if (c->width == 0 || c->height == 0 ||
            c->width > PVGPU_MAX_DIMENSION ||
            c->height > PVGPU_MAX_DIMENSION ||
            c->stride < c->width * bpp || c->stride % bpp ||
            c->offset % bpp) {
            *why = "framebuffer size, stride or offset invalid";
            return PVGPU_RESP_ERR_INVALID_PARAMETER;
        }
        if (c->r.width == 0 || c->r.height == 0 ||
            !pvgpu_rect_inside(&c->r, c->width, c->height)) {
            *why = "rect empty or outside the framebuffer";
            return PVGPU_RESP_ERR_INVALID_PARAMETER;
        }
        return 0;
    }

    case PVGPU_CMD_RESOURCE_MAP_BLOB:
        cmd->u.map_blob.resource_id = ld32(p);
        cmd->u.map_blob.offset = ld64(p + 8);
        return 0;

    case PVGPU_CMD_RESOURCE_UNMAP_BLOB:
        cmd->u.resource.resource_id = ld32(p);
        return 0;

    case PVGPU_CMD_GET_CAPSET_INFO:
        cmd->u.get_capset_info.capset_index = ld32(p);
        return 0;

    case PVGPU_CMD_GET_CAPSET:
        cmd->u.get_capset.capset_id = ld32(p);
        cmd->u.get_capset.capset_version = ld32(p + 4);
        return 0;

    case PVGPU_CMD_CTX_CREATE: {
        uint32_t nlen = ld32(p);
        uint32_t init = ld32(p + 4);

        if (cmd->hdr.ctx_id == 0) {
            *why = "context 0 belongs to the device";
            return PVGPU_RESP_ERR_INVALID_CONTEXT_ID;
        }
        if (nlen > PVGPU_CTX_NAME_SIZE) {
            *why = "debug name longer than 64 bytes";
            return PVGPU_RESP_ERR_INVALID_PARAMETER;
        }
        if (init & ~PVGPU_CONTEXT_INIT_CAPSET_ID_MASK ||
            (init && !(caps & PVGPU_DECODE_CONTEXT_INIT))) {
            *why = "context_init reserved bits, or CONTEXT_INIT not negotiated";
            return PVGPU_RESP_ERR_INVALID_PARAMETER;
        }
        cmd->u.ctx_create.capset_id = init & PVGPU_CONTEXT_INIT_CAPSET_ID_MASK;
        cmd->u.ctx_create.nlen = nlen;
        memcpy(cmd->u.ctx_create.debug_name, p + 8, nlen);
        cmd->u.ctx_create.debug_name[nlen] = 0;
        return 0;
    }

    case PVGPU_CMD_CTX_DESTROY:
        if (cmd->hdr.ctx_id == 0) {
            *why = "context 0 belongs to the device";
            return PVGPU_RESP_ERR_INVALID_CONTEXT_ID;
        }
        return 0;

    case PVGPU_CMD_CTX_ATTACH_RESOURCE:
    case PVGPU_CMD_CTX_DETACH_RESOURCE:
        cmd->u.resource.resource_id = ld32(p);
        if (cmd->hdr.ctx_id == 0) {
            *why = "context 0 belongs to the device";
            return PVGPU_RESP_ERR_INVALID_CONTEXT_ID;
        }
        return 0;

    case PVGPU_CMD_RESOURCE_CREATE_3D: {
        PvgpuResource3dInfo *c = &cmd->u.create_3d.info;

        cmd->u.create_3d.resource_id = ld32(p);
        c->target = ld32(p + 4);
        c->format = ld32(p + 8);
        c->bind = ld32(p + 12);
        c->width = ld32(p + 16);
        c->height = ld32(p + 20);
        c->depth = ld32(p + 24);
        c->array_size = ld32(p + 28);
        c->last_level = ld32(p + 32);
        c->nr_samples = ld32(p + 36);
        c->flags = ld32(p + 40);
        if (cmd->u.create_3d.resource_id == 0 ||
            cmd->u.create_3d.resource_id == PVGPU_RESOURCE_ID_DEVICE) {
            *why = "resource ids 0 and 0xffffffff are reserved";
            return PVGPU_RESP_ERR_INVALID_RESOURCE_ID;
        }
        if (c->target > PVGPU_MAX_TEXTURE_TARGET || c->width == 0 ||
            c->height == 0 || c->depth == 0 || c->array_size == 0 ||
            c->last_level > 31 || c->nr_samples > 32) {
            *why = "target, size, levels or samples out of range";
            return PVGPU_RESP_ERR_INVALID_PARAMETER;
        }
        return 0;
    }

    case PVGPU_CMD_TRANSFER_TO_HOST_3D:
    case PVGPU_CMD_TRANSFER_FROM_HOST_3D: {
        typeof(cmd->u.transfer_3d) *t = &cmd->u.transfer_3d;

        t->box = (PvgpuBox) {
            .x = ld32(p), .y = ld32(p + 4), .z = ld32(p + 8),
            .w = ld32(p + 12), .h = ld32(p + 16), .d = ld32(p + 20),
        };
        t->offset = ld64(p + 24);
        t->resource_id = ld32(p + 32);
        t->level = ld32(p + 36);
        t->stride = ld32(p + 40);
        t->layer_stride = ld32(p + 44);
        /* the offset is checked against the backing by the renderer */
        if (!pvgpu_box_inside(&t->box, UINT32_MAX, UINT32_MAX, UINT32_MAX) ||
            t->level > 31) {
            *why = "box wraps around or level out of range";
            return PVGPU_RESP_ERR_INVALID_PARAMETER;
        }
        return 0;
    }

    case PVGPU_CMD_SUBMIT_3D: {
        uint32_t size = ld32(p);

        if (cmd->hdr.ctx_id == 0) {
            *why = "context 0 belongs to the device";
            return PVGPU_RESP_ERR_INVALID_CONTEXT_ID;
        }
        if (size > PVGPU_MAX_SUBMIT_SIZE || size % 4) {
            *why = "command stream too large or not whole dwords";
            return PVGPU_RESP_ERR_INVALID_PARAMETER;
        }
        if (len - 8 < size) {
            *why = "request shorter than its command stream";
            return PVGPU_RESP_ERR_UNSPEC;
        }
        cmd->u.submit_3d.size = size;
        cmd->u.submit_3d.data = p + 8;
        return 0;
    }

    case PVGPU_CMD_UPDATE_CURSOR:
    case PVGPU_CMD_MOVE_CURSOR:
        cmd->u.cursor.scanout_id = ld32(p);
        cmd->u.cursor.x = ld32(p + 4);
        cmd->u.cursor.y = ld32(p + 8);
        cmd->u.cursor.resource_id = ld32(p + 16);
        cmd->u.cursor.hot_x = ld32(p + 20);
        cmd->u.cursor.hot_y = ld32(p + 24);
        return 0;
    }
    *why = "command not supported by this device";
    return PVGPU_RESP_ERR_UNSPEC;
}

uint32_t pvgpu_cmd_decode(const void *buf, size_t len, PvgpuQueue queue,
                          unsigned caps, PvgpuCmd *cmd, const char **why)
{
    const uint8_t *p = buf;
    int idx;

    memset(cmd, 0, sizeof(*cmd));
    *why = NULL;
    if (len < PVGPU_HDR_SIZE) {
        *why = "request shorter than virtio_gpu_ctrl_hdr";
        return PVGPU_RESP_ERR_UNSPEC;
    }
    cmd->hdr.type = ld32(p);
    cmd->hdr.flags = ld32(p + 4);
    cmd->hdr.fence_id = ld64(p + 8);
    cmd->hdr.ctx_id = ld32(p + 16);
    cmd->hdr.ring_idx = p[20];

    idx = cmd_index(cmd->hdr.type);
    if (idx < 0 || cmd_table[idx].size == 0 ||
        (cmd_table[idx].caps & ~caps)) {
        *why = idx < 0 ? "unknown command type"
                       : "command not supported or its feature not negotiated";
        return PVGPU_RESP_ERR_UNSPEC;
    }
    if (cmd_table[idx].queue != queue) {
        *why = "command sent on the wrong virtqueue";
        return PVGPU_RESP_ERR_UNSPEC;
    }
    if (len < cmd_table[idx].size) {
        *why = "request shorter than its command structure";
        return PVGPU_RESP_ERR_UNSPEC;
    }
    return decode_body(p + PVGPU_HDR_SIZE, len - PVGPU_HDR_SIZE, caps, cmd,
                       why);
}

PvgpuMemEntry pvgpu_cmd_mem_entry(const PvgpuCmd *cmd, uint32_t i)
{
    const uint8_t *e = (cmd->hdr.type == PVGPU_CMD_RESOURCE_CREATE_BLOB ?
                        cmd->u.create_blob.entries :
                        cmd->u.attach_backing.entries) +
                       (size_t)i * PVGPU_MEM_ENTRY_SIZE;

    return (PvgpuMemEntry) { .addr = ld64(e), .length = ld32(e + 8) };
}

size_t pvgpu_resp_encode_hdr(uint8_t *buf, const PvgpuCmdHdr *req,
                             uint32_t type)
{
    uint32_t flags = 0;

    memset(buf, 0, PVGPU_HDR_SIZE);
    st32(buf, type);
    if (req->flags & PVGPU_FLAG_FENCE) {
        flags = req->flags & (PVGPU_FLAG_FENCE | PVGPU_FLAG_INFO_RING_IDX);
        st64(buf + 8, req->fence_id);
        st32(buf + 16, req->ctx_id);
        if (flags & PVGPU_FLAG_INFO_RING_IDX) {
            buf[20] = req->ring_idx;
        }
    }
    st32(buf + 4, flags);
    return PVGPU_HDR_SIZE;
}

size_t pvgpu_resp_encode_display_info(uint8_t *buf, const PvgpuCmdHdr *req,
                                      const PvgpuDisplayOne *pmodes,
                                      unsigned count)
{
    uint8_t *p = buf + pvgpu_resp_encode_hdr(buf, req,
                                             PVGPU_RESP_OK_DISPLAY_INFO);

    memset(p, 0, PVGPU_DISPLAY_INFO_SIZE - PVGPU_HDR_SIZE);
    for (unsigned i = 0; i < count && i < PVGPU_MAX_SCANOUTS; i++, p += 24) {
        st32(p, pmodes[i].r.x);
        st32(p + 4, pmodes[i].r.y);
        st32(p + 8, pmodes[i].r.width);
        st32(p + 12, pmodes[i].r.height);
        st32(p + 16, pmodes[i].enabled);
    }
    return PVGPU_DISPLAY_INFO_SIZE;
}

size_t pvgpu_resp_encode_edid(uint8_t *buf, const PvgpuCmdHdr *req,
                              const uint8_t *edid, uint32_t size)
{
    uint8_t *p = buf + pvgpu_resp_encode_hdr(buf, req, PVGPU_RESP_OK_EDID);

    if (size > PVGPU_EDID_BLOB_SIZE) {
        size = PVGPU_EDID_BLOB_SIZE;
    }
    st32(p, size);
    st32(p + 4, 0);
    memset(p + 8, 0, PVGPU_EDID_BLOB_SIZE);
    memcpy(p + 8, edid, size);
    return PVGPU_EDID_RESP_SIZE;
}

size_t pvgpu_resp_encode_capset_info(uint8_t *buf, const PvgpuCmdHdr *req,
                                     uint32_t capset_id, uint32_t max_version,
                                     uint32_t max_size)
{
    uint8_t *p = buf + pvgpu_resp_encode_hdr(buf, req,
                                             PVGPU_RESP_OK_CAPSET_INFO);

    st32(p, capset_id);
    st32(p + 4, max_version);
    st32(p + 8, max_size);
    st32(p + 12, 0);
    return PVGPU_CAPSET_INFO_RESP_SIZE;
}

size_t pvgpu_resp_encode_uuid(uint8_t *buf, const PvgpuCmdHdr *req,
                              const uint8_t uuid[16])
{
    uint8_t *p = buf + pvgpu_resp_encode_hdr(buf, req,
                                             PVGPU_RESP_OK_RESOURCE_UUID);

    memcpy(p, uuid, 16);
    return PVGPU_UUID_RESP_SIZE;
}

size_t pvgpu_resp_encode_map_info(uint8_t *buf, const PvgpuCmdHdr *req,
                                  uint32_t map_info)
{
    uint8_t *p = buf + pvgpu_resp_encode_hdr(buf, req,
                                             PVGPU_RESP_OK_MAP_INFO);

    st32(p, map_info);
    st32(p + 4, 0);
    return PVGPU_MAP_INFO_RESP_SIZE;
}

bool pvgpu_fb_fits(uint32_t width, uint32_t height, unsigned bpp,
                   uint32_t stride, uint64_t offset, uint64_t size)
{
    uint64_t end = (uint64_t)stride * (height - 1) + (uint64_t)width * bpp;

    /* both products fit: each factor is below 2^32 */
    return width && height && !__builtin_add_overflow(offset, end, &end) &&
           end <= size;
}

uint64_t pvgpu_resource_3d_size(uint32_t target, uint32_t width,
                                uint32_t height, uint32_t depth,
                                uint32_t array_size, uint32_t last_level,
                                uint32_t nr_samples)
{
    uint64_t size = width;

    if (target == 0) {
        /* PIPE_BUFFER */
        return size;
    }
    if (__builtin_mul_overflow(size, height, &size) ||
        __builtin_mul_overflow(size, depth, &size) ||
        __builtin_mul_overflow(size, array_size, &size) ||
        __builtin_mul_overflow(size, nr_samples ? nr_samples : 1, &size) ||
        __builtin_mul_overflow(size, 4, &size)) {
        return UINT64_MAX;
    }
    return last_level ? size + size / 3 : size;
}

/* virgl_protocol.h: the first command number the protocol does not know */
#define VIRGL_CCMD_MAX                  62
#define VIRGL_CCMD_PIPE_RESOURCE_CREATE 48
#define VIRGL_PIPE_RESOURCE_CREATE_LEN  11

unsigned pvgpu_virgl_scan(const void *stream, size_t ndw,
                          PvgpuPipeResourceFn *fn, void *opaque)
{
    const uint8_t *p = stream;
    unsigned found = 0;
    size_t i = 0;

    while (i < ndw) {
        uint32_t hdr = ld32(p + i * 4);
        uint32_t type = hdr & 0xff, len = hdr >> 16;
        const uint8_t *a = p + (i + 1) * 4;

        if (type >= VIRGL_CCMD_MAX || len > ndw - i - 1) {
            break;
        }
        if (type == VIRGL_CCMD_PIPE_RESOURCE_CREATE &&
            len == VIRGL_PIPE_RESOURCE_CREATE_LEN) {
            /* target format bind width height depth array_size last_level
             * nr_samples flags blob_id */
            PvgpuPipeResource pr = {
                .target = ld32(a),
                .bind = ld32(a + 8),
                .blob_id = ld32(a + 40),
            };

            pr.size = pvgpu_resource_3d_size(pr.target, ld32(a + 12),
                                             ld32(a + 16), ld32(a + 20),
                                             ld32(a + 24), ld32(a + 28),
                                             ld32(a + 32));
            if (fn) {
                fn(&pr, opaque);
            }
            found++;
        }
        i += 1 + len;
    }
    return found;
}
