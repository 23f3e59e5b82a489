/*
 * pvgpu resources: the device's records of them
 *
 * The resource table (what exists, its size, guest backing, scanouts and
 * UUID), the host-memory limit, the checks of commands on resources that
 * need its records (pvgpu-cmd.c did the syntax checks), the commands no
 * renderer takes part in, and migration.  The pixels are the renderer's
 * (pvgpu-render.h); presentation is pvgpu-scanout.c's business.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/iov.h"
#include "qemu/log.h"
#include "qemu/uuid.h"
#include "system/dma.h"
#include "exec/memory.h"
#include "standard-headers/linux/virtio_gpu.h"
#include "migration/qemu-file-types.h"
#include "migration/vmstate.h"
#include "ui/qemu-pixman.h"
#include "hw/display/pvgpu.h"
#include "trace.h"

uint32_t pvgpu_cmd_fail(const PvgpuCmd *cmd, uint32_t err,
                        const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    qemu_log_mask(LOG_GUEST_ERROR, "pvgpu: %s: %s -> %s\n",
                  pvgpu_cmd_name(cmd->hdr.type), msg, pvgpu_cmd_name(err));
    trace_pvgpu_cmd_error(pvgpu_cmd_name(cmd->hdr.type), err, msg);
    return err;
}

PvgpuResource *pvgpu_resource_find(PvgpuState *s, uint32_t id)
{
    return g_hash_table_lookup(s->resources, GUINT_TO_POINTER(id));
}

PvgpuResource *pvgpu_resource_find_or_fail(PvgpuState *s,
                                           const PvgpuCmd *cmd, uint32_t id,
                                           uint32_t *err)
{
    PvgpuResource *res = pvgpu_resource_find(s, id);

    if (!res) {
        *err = pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_INVALID_RESOURCE_ID,
                              "resource %u does not exist", id);
    } else if (res->refused && cmd->hdr.type != PVGPU_CMD_RESOURCE_UNREF) {
        /* the guest only learns it from the creation's error response */
        *err = pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_INVALID_RESOURCE_ID,
                              "resource %u: the renderer refused to create "
                              "it, only RESOURCE_UNREF takes it", id);
        res = NULL;
    }
    return res;
}

/* --- guest backing ------------------------------------------------------- */

void pvgpu_iov_unmap(PvgpuState *s, struct iovec *iov, unsigned niov,
                     bool writable)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(s);

    /* a writable mapping marks the guest pages dirty for migration */
    for (unsigned i = 0; i < niov; i++) {
        dma_memory_unmap(vdev->dma_as, iov[i].iov_base, iov[i].iov_len,
                         writable ? DMA_DIRECTION_FROM_DEVICE
                                  : DMA_DIRECTION_TO_DEVICE,
                         writable ? iov[i].iov_len : 0);
    }
    g_free(iov);
}

static void backing_unmap(PvgpuState *s, PvgpuResource *res)
{
    pvgpu_iov_unmap(s, res->iov, res->niov, res->renderer_writes);
    res->iov = NULL;
    res->niov = 0;
    res->backing_size = 0;
}

void pvgpu_backing_free(PvgpuState *s, PvgpuResource *res)
{
    if (res->iov) {
        backing_unmap(s, res);
    }
    g_free(res->entries);
    res->entries = NULL;
    res->nr_entries = 0;
}

/*
 * Map the guest-physical entries of @res.  An entry may span memory
 * regions and so need several host mappings; everything must be RAM the
 * guest owns, or the whole attach fails.
 */
bool pvgpu_backing_map(PvgpuState *s, PvgpuResource *res)
{
    /* 3D resources are also written: TRANSFER_FROM_HOST_3D */
    DMADirection dir = res->renderer_writes ? DMA_DIRECTION_FROM_DEVICE
                                  : DMA_DIRECTION_TO_DEVICE;
    VirtIODevice *vdev = VIRTIO_DEVICE(s);
    g_autoptr(GArray) iov = g_array_new(false, false, sizeof(struct iovec));

    for (uint32_t i = 0; i < res->nr_entries; i++) {
        uint64_t addr = res->entries[i].addr;
        uint64_t left = res->entries[i].length;

        while (left) {
            dma_addr_t len = left;
            struct iovec v;

            ram_addr_t offset;

            v.iov_base = dma_memory_map(vdev->dma_as, addr, &len, dir,
                                        MEMTXATTRS_UNSPECIFIED);
            /*
             * Anything but RAM is mapped through QEMU's one bounce
             * buffer: a snapshot, not the guest's memory, and holding it
             * would block other devices' DMA.  Refuse it.
             */
            if (v.iov_base && !memory_region_from_host(v.iov_base, &offset)) {
                dma_memory_unmap(vdev->dma_as, v.iov_base, len, dir, 0);
                v.iov_base = NULL;
            }
            if (!v.iov_base || !len) {
                res->niov = iov->len;
                res->iov = (struct iovec *)g_array_free(g_steal_pointer(&iov),
                                                        false);
                backing_unmap(s, res);
                return false;
            }
            v.iov_len = len;
            g_array_append_val(iov, v);
            res->backing_size += len;
            addr += len;
            left -= len;
        }
    }
    res->niov = iov->len;
    res->iov = (struct iovec *)g_array_free(g_steal_pointer(&iov), false);
    return true;
}

/* --- resource lifetime --------------------------------------------------- */

/* May @cmd create resource @id: unused, and under max-resources? */
bool pvgpu_resource_admit(PvgpuState *s, const PvgpuCmd *cmd, uint32_t id,
                          uint32_t *err)
{
    uint64_t max = pvgpu_limit(s, PVGPU_SETTING_MAX_RESOURCES);

    if (pvgpu_resource_find(s, id)) {
        *err = pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_INVALID_RESOURCE_ID,
                              "resource %u already exists", id);
        return false;
    }
    if (g_hash_table_size(s->resources) >= max) {
        pvgpu_quota_refused(s, PVGPU_QUOTA_RESOURCES, false, 0, max);
        *err = pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_OUT_OF_MEMORY,
                              "max-resources %" PRIu64 " reached", max);
        return false;
    }
    return true;
}

bool pvgpu_hostmem_reserve(PvgpuState *s, uint64_t size)
{
    uint64_t max = pvgpu_limit(s, PVGPU_SETTING_MAX_HOSTMEM);

    /* max_hostmem may have been lowered below the usage */
    if (s->hostmem_used > max || size > max - s->hostmem_used) {
        pvgpu_quota_refused(s, PVGPU_QUOTA_HOSTMEM, false, 0, max);
        return false;
    }
    s->hostmem_used += size;
    return true;
}

void pvgpu_hostmem_restore(PvgpuState *s, uint64_t size)
{
    s->hostmem_used += size;
}

void pvgpu_hostmem_release(PvgpuState *s, uint64_t size)
{
    assert(size <= s->hostmem_used);
    s->hostmem_used -= size;
}

bool pvgpu_hostmem_charge(PvgpuState *s, const PvgpuCmd *cmd, uint32_t id,
                          uint64_t size, uint32_t *err)
{
    if (pvgpu_hostmem_reserve(s, size)) {
        return true;
    }
    *err = PVGPU_RESP_ERR_OUT_OF_MEMORY;
    if (cmd) {
        pvgpu_cmd_fail(cmd, *err, "resource %u needs %" PRIu64 " bytes, %"
                       PRIu64 " used of max_hostmem %" PRIu64, id, size,
                       s->hostmem_used,
                       pvgpu_limit(s, PVGPU_SETTING_MAX_HOSTMEM));
    }
    return false;
}

/* A 3D guest's renderer may write resources' guest memory (FROM_HOST) */
static bool renderer_writes_backing(PvgpuState *s)
{
    return s->decode_caps & PVGPU_DECODE_3D;
}

PvgpuResource *pvgpu_resource_new(PvgpuState *s, uint32_t id, uint32_t format,
                                  uint32_t width, uint32_t height,
                                  uint64_t hostmem)
{
    PvgpuResource *res = g_new0(PvgpuResource, 1);

    res->id = id;
    res->renderer_writes = renderer_writes_backing(s);
    res->format = format;
    res->width = width;
    res->height = height;
    res->hostmem = hostmem;
    res->serial = ++s->resource_serial;
    pvgpu_resource_insert(s, res);
    return res;
}

/*
 * A 3D resource or host-memory blob: only virglrenderer holds it (none
 * does, if it refused to create it)
 */
static bool resource_is_3d(const PvgpuResource *res)
{
    return !res->refused &&
           (res->blob_mem ? res->blob_mem != PVGPU_BLOB_MEM_GUEST
                          : !res->format);
}

void pvgpu_resource_refuse(PvgpuState *s, PvgpuResource *res)
{
    s->resources_3d -= resource_is_3d(res);
    res->refused = true;
}

void pvgpu_resource_insert(PvgpuState *s, PvgpuResource *res)
{
    g_hash_table_insert(s->resources, GUINT_TO_POINTER(res->id), res);
    s->resources_3d += resource_is_3d(res);
}

void pvgpu_resource_remove(PvgpuState *s, PvgpuResource *res)
{
    g_hash_table_remove(s->resources, GUINT_TO_POINTER(res->id));
    s->resources_3d -= resource_is_3d(res);
}

/*
 * Free @res, which is no longer in the resource table (requests that
 * still point at it are the command path's to tell first).
 */
void pvgpu_resource_free(PvgpuState *s, PvgpuResource *res)
{
    pvgpu_backing_free(s, res);
    pvgpu_hostmem_release(s, res->hostmem);
    g_free(res->migrated);
    g_free(res);
}

/*
 * Give @res the @n guest memory entries of @cmd (ATTACH_BACKING or
 * CREATE_BLOB) and map them; on failure it is left without backing.
 */
static bool backing_take(PvgpuState *s, const PvgpuCmd *cmd,
                         PvgpuResource *res, uint32_t n)
{
    res->nr_entries = n;
    res->entries = g_new(PvgpuMemEntry, n);
    for (uint32_t i = 0; i < n; i++) {
        res->entries[i] = pvgpu_cmd_mem_entry(cmd, i);
    }
    if (!pvgpu_backing_map(s, res)) {
        pvgpu_backing_free(s, res);
        return false;
    }
    return true;
}

/* ATTACH_BACKING's checks and guest mapping, for 2D and 3D resources */
uint32_t pvgpu_backing_attach(PvgpuState *s, const PvgpuCmd *cmd,
                              PvgpuResource **pres)
{
    const typeof(cmd->u.attach_backing) *c = &cmd->u.attach_backing;
    uint32_t err = 0;
    PvgpuResource *res = pvgpu_resource_find_or_fail(s, cmd, c->resource_id,
                                                     &err);

    if (!res) {
        return err;
    }
    if (res->entries) {
        return pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_UNSPEC,
                              "resource %u already has backing", res->id);
    }
    if (!backing_take(s, cmd, res, c->nr_entries)) {
        return pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_UNSPEC,
                              "resource %u: backing is not guest RAM",
                              res->id);
    }
    trace_pvgpu_resource_attach_backing(res->id, c->nr_entries,
                                        res->backing_size);
    *pres = res;
    return 0;
}

/* The resource @id of @cmd, which must have backing (DETACH, transfers) */
PvgpuResource *pvgpu_resource_with_backing(PvgpuState *s, const PvgpuCmd *cmd,
                                           uint32_t id, uint32_t *err)
{
    PvgpuResource *res = pvgpu_resource_find_or_fail(s, cmd, id, err);

    if (res && !res->iov) {
        *err = pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_UNSPEC,
                              "resource %u has no backing", res->id);
        return NULL;
    }
    return res;
}

/* Does @r lie inside @res?  If not, @cmd fails (*err) and says why. */
static bool rect_in_resource(const PvgpuCmd *cmd, const PvgpuRect *r,
                             PvgpuResource *res, uint32_t *err)
{
    if (pvgpu_rect_inside(r, res->width, res->height)) {
        return true;
    }
    *err = pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_INVALID_PARAMETER,
                          "rect %ux%u+%u+%u outside resource %u (%ux%u)",
                          r->width, r->height, r->x, r->y, res->id,
                          res->width, res->height);
    return false;
}

/*
 * TRANSFER_TO_HOST_2D's checks, the same for every resource: it has
 * backing, and the rectangle lies inside the resource and, at the given
 * offset, inside the backing (2D resources are 4 bytes a pixel, rows
 * width * 4 apart).  A blob passes with nothing to check: the guest's
 * memory is the resource, and Linux still sends transfers for dumb
 * buffers that are blobs.  Returns the resource, or NULL with *err set.
 */
PvgpuResource *pvgpu_check_transfer_2d(PvgpuState *s, const PvgpuCmd *cmd,
                                       uint32_t *err)
{
    const typeof(cmd->u.transfer_2d) *c = &cmd->u.transfer_2d;
    PvgpuResource *res = pvgpu_resource_with_backing(s, cmd, c->resource_id,
                                                     err);
    unsigned bpp;

    if (!res || res->blob_mem) {
        return res;
    }
    bpp = pvgpu_format_bpp(res->format);
    if (!rect_in_resource(cmd, &c->r, res, err)) {
        return NULL;
    }
    if (!pvgpu_transfer_2d_fits(&c->r, c->offset, res->width * bpp, bpp,
                                res->backing_size)) {
        *err = pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_INVALID_PARAMETER,
                              "offset %" PRIu64 " + rect exceeds the %"
                              PRIu64 "-byte backing of resource %u",
                              c->offset, res->backing_size, res->id);
        return NULL;
    }
    trace_pvgpu_transfer_to_host_2d(res->id, c->r.x, c->r.y, c->r.width,
                                    c->r.height, c->offset);
    return res;
}

/*
 * RESOURCE_FLUSH's checks, the same for every resource: it exists, and
 * the rectangle lies inside it (a blob has no size of its own: its rect
 * is in the scanouts' framebuffers).  Returns the resource, or NULL with
 * *err set.
 */
PvgpuResource *pvgpu_check_flush(PvgpuState *s, const PvgpuCmd *cmd,
                                 uint32_t *err)
{
    const typeof(cmd->u.flush) *c = &cmd->u.flush;
    PvgpuResource *res = pvgpu_resource_find_or_fail(s, cmd, c->resource_id,
                                                     err);

    if (res && !res->blob_mem && !rect_in_resource(cmd, &c->r, res, err)) {
        return NULL;
    }
    if (res) {
        trace_pvgpu_resource_flush(res->id, c->r.x, c->r.y, c->r.width,
                                   c->r.height);
    }
    return res;
}

/*
 * What SET_SCANOUT and SET_SCANOUT_BLOB (@cmd) check first: the scanout
 * exists, and resource 0 disables it.  Returns the resource to show, or
 * NULL: *err set, or 0 when the scanout was disabled.  For SET_SCANOUT
 * the rectangle must lie inside the resource; a blob's framebuffer is
 * checked by the caller.
 */
PvgpuResource *pvgpu_scanout_target(PvgpuState *s, const PvgpuCmd *cmd,
                                    uint32_t scanout_id, uint32_t resource_id,
                                    const PvgpuRect *r, uint32_t *err)
{
    PvgpuResource *res;

    *err = 0;
    trace_pvgpu_set_scanout(scanout_id, resource_id, r->x, r->y, r->width,
                            r->height);
    if (scanout_id >= s->max_outputs) {
        *err = pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_INVALID_SCANOUT_ID,
                              "scanout %u, device has %u", scanout_id,
                              s->max_outputs);
        return NULL;
    }
    if (!resource_id) {
        pvgpu_scanout_disable(s, scanout_id);
        return NULL;
    }
    res = pvgpu_resource_find_or_fail(s, cmd, resource_id, err);
    if (res && cmd->hdr.type == PVGPU_CMD_SET_SCANOUT &&
        (r->width == 0 || r->height == 0 ||
         !pvgpu_rect_inside(r, res->width, res->height))) {
        *err = pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_INVALID_PARAMETER,
                              "rect %ux%u+%u+%u empty or outside resource %u "
                              "(%ux%u)", r->width, r->height, r->x, r->y,
                              res->id, res->width, res->height);
        return NULL;
    }
    return res;
}

static PvgpuResource *blob_new(uint32_t id, uint32_t blob_mem,
                               uint32_t blob_flags, uint64_t size)
{
    PvgpuResource *res = g_new0(PvgpuResource, 1);

    res->id = id;
    res->blob_mem = blob_mem;
    res->blob_flags = blob_flags;
    res->blob_size = size;
    return res;
}

/*
 * The blob CREATE_BLOB @cmd describes, its guest memory (if any) mapped;
 * not yet in the resource table.
 */
PvgpuResource *pvgpu_blob_new(PvgpuState *s, const PvgpuCmd *cmd,
                              uint32_t *err)
{
    const typeof(cmd->u.create_blob) *c = &cmd->u.create_blob;
    PvgpuResource *res = blob_new(c->resource_id, c->blob_mem, c->blob_flags,
                                  c->size);

    res->renderer_writes = renderer_writes_backing(s);
    res->serial = ++s->resource_serial;
    if (c->nr_entries && !backing_take(s, cmd, res, c->nr_entries)) {
        g_free(res);
        *err = pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_UNSPEC,
                              "blob %u: memory is not guest RAM",
                              c->resource_id);
        return NULL;
    }
    return res;
}

/* SET_SCANOUT_BLOB, 2D and 3D: a framebuffer in a blob's guest memory */
uint32_t pvgpu_set_scanout_blob(PvgpuState *s, const PvgpuCmd *cmd)
{
    const typeof(cmd->u.set_scanout_blob) *c = &cmd->u.set_scanout_blob;
    PvgpuFramebuffer fb = {
        .format = c->format, .width = c->width, .height = c->height,
        .stride = c->stride, .offset = c->offset,
    };
    uint32_t err;
    PvgpuResource *res = pvgpu_scanout_target(s, cmd, c->scanout_id,
                                              c->resource_id, &c->r, &err);

    if (!res) {
        return err;
    }
    /*
     * Host-only blobs (HOST3D) would need the renderer to export them;
     * virglrenderer 0.10 on a surfaceless EGL display cannot.
     */
    if (!res->blob_mem || !res->iov) {
        return pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_INVALID_PARAMETER,
                              "resource %u is not a blob in guest memory",
                              res->id);
    }
    if (!pvgpu_fb_fits(fb.width, fb.height, pvgpu_format_bpp(fb.format),
                       fb.stride, fb.offset, res->blob_size)) {
        return pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_INVALID_PARAMETER,
                              "%ux%u framebuffer, stride %u at offset %u, "
                              "exceeds blob %u of %" PRIu64 " bytes",
                              fb.width, fb.height, fb.stride, fb.offset,
                              res->id, res->blob_size);
    }
    return pvgpu_scanout_set_blob(s, c->scanout_id, res, &fb, &c->r);
}

static uint32_t cmd_assign_uuid(PvgpuState *s, const PvgpuCmd *cmd,
                                uint8_t *resp, size_t *resp_len)
{
    uint32_t err = 0;
    PvgpuResource *res = pvgpu_resource_find_or_fail(
        s, cmd, cmd->u.resource.resource_id, &err);

    if (!res) {
        return err;
    }
    if (!res->has_uuid) {
        QemuUUID uuid;

        qemu_uuid_generate(&uuid);
        memcpy(res->uuid, uuid.data, sizeof(res->uuid));
        res->has_uuid = true;
    }
    *resp_len = pvgpu_resp_encode_uuid(resp, &cmd->hdr, res->uuid);
    return 0;
}

static uint32_t cmd_get_edid(PvgpuState *s, const PvgpuCmd *cmd,
                             uint8_t *resp, size_t *resp_len)
{
    uint8_t edid[PVGPU_EDID_BLOB_SIZE];
    size_t size;

    if (!virtio_vdev_has_feature(VIRTIO_DEVICE(s), VIRTIO_GPU_F_EDID)) {
        return pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_UNSPEC,
                              "VIRTIO_GPU_F_EDID not negotiated");
    }
    if (cmd->u.get_edid.scanout_id >= s->max_outputs) {
        return pvgpu_cmd_fail(cmd, PVGPU_RESP_ERR_INVALID_SCANOUT_ID,
                              "scanout %u, device has %u",
                        cmd->u.get_edid.scanout_id, s->max_outputs);
    }
    size = pvgpu_scanout_edid(s, cmd->u.get_edid.scanout_id, edid,
                              sizeof(edid));
    *resp_len = pvgpu_resp_encode_edid(resp, &cmd->hdr, edid, size);
    return 0;
}

uint32_t pvgpu_info_exec(PvgpuState *s, const PvgpuCmd *cmd,
                         uint8_t *resp, size_t *resp_len)
{
    *resp_len = 0;
    switch (cmd->hdr.type) {
    case PVGPU_CMD_GET_DISPLAY_INFO: {
        PvgpuDisplayOne pmodes[PVGPU_MAX_SCANOUTS];

        pvgpu_scanouts_display_info(s, pmodes);
        *resp_len = pvgpu_resp_encode_display_info(resp, &cmd->hdr, pmodes,
                                                   s->max_outputs);
        return 0;
    }
    case PVGPU_CMD_GET_EDID:
        return cmd_get_edid(s, cmd, resp, resp_len);
    case PVGPU_CMD_RESOURCE_ASSIGN_UUID:
        return cmd_assign_uuid(s, cmd, resp, resp_len);
    default:
        /* the command path (pvgpu-exec.c) takes every other command */
        g_assert_not_reached();
    }
}

/* --- device lifetime ----------------------------------------------------- */

void pvgpu_resources_init(PvgpuState *s)
{
    s->resources = g_hash_table_new(NULL, NULL);
}

void pvgpu_resources_reset(PvgpuState *s)
{
    GHashTableIter iter;
    gpointer value;

    g_hash_table_iter_init(&iter, s->resources);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        PvgpuResource *res = value;

        g_hash_table_iter_remove(&iter);
        s->resources_3d -= resource_is_3d(res);
        pvgpu_scanout_detach_resource(s, res);
        pvgpu_resource_free(s, res);
    }
    assert(s->resources_3d == 0);
    assert(s->hostmem_used == 0);
}

void pvgpu_resources_fini(PvgpuState *s)
{
    pvgpu_resources_reset(s);
    g_hash_table_destroy(s->resources);
    s->resources = NULL;
}

/* --- migration ----------------------------------------------------------- */

/*
 * Stream: count, then per resource its creation parameters, backing list,
 * UUID and, for a 2D resource, its pixels (width * height * 4 bytes, top
 * row first).  Both renderers' 2D resources move, read back from the
 * guest's renderer while the VM is stopped; nothing else of
 * virglrenderer's can (pvgpu_exec_pre_save() refuses to save it).  On
 * load everything is only recorded: the guest's features, and so its
 * renderer, are known only once the device's state is in
 * (pvgpu_resources_post_load()).
 */

/* A 2D resource's pixels into @f, read back from the guest's renderer */
static bool resource_put_pixels(QEMUFile *f, PvgpuState *s,
                                PvgpuResource *res)
{
    PvgpuRenderJob job = {
        .kind = PVGPU_JOB_READBACK,
        .nreadbacks = 1,
        .readbacks[0] = {
            .scanout_id = -1, .resource_id = res->id,
            .r = { .width = res->width, .height = res->height },
        },
    };
    PvgpuReadback *rb = &job.readbacks[0];
    size_t row = (size_t)res->width * 4;
    bool ok = pvgpu_render_run(s->renderer, &job) && rb->ok;

    if (ok && rb->image) {
        const uint8_t *bits = (uint8_t *)pixman_image_get_data(rb->image);
        size_t stride = pixman_image_get_stride(rb->image);

        for (uint32_t y = 0; y < res->height; y++) {
            qemu_put_buffer(f, bits + y * stride, row);
        }
    } else if (ok) {
        qemu_put_buffer(f, rb->pixels, row * res->height);
    }
    pvgpu_render_job_clear(&job);
    return ok;
}

static int pvgpu_resources_put(QEMUFile *f, void *pv, size_t size,
                               const VMStateField *field, JSONWriter *vmdesc)
{
    PvgpuState *s = pv;
    GHashTableIter iter;
    gpointer value;
    uint32_t count = 0;

    if (s->resources_3d) {
        error_report("pvgpu: 3D resources cannot be migrated");
        return -EINVAL;
    }
    /*
     * Not those the renderer refused to create: nothing of them is left
     * to move (the guest's UNREF of one is answered with an error there)
     */
    g_hash_table_iter_init(&iter, s->resources);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        count += !((PvgpuResource *)value)->refused;
    }
    qemu_put_be32(f, count);
    g_hash_table_iter_init(&iter, s->resources);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        PvgpuResource *res = value;

        if (res->refused) {
            continue;
        }
        qemu_put_be32(f, res->id);
        qemu_put_be32(f, res->format);
        qemu_put_be32(f, res->width);
        qemu_put_be32(f, res->height);
        qemu_put_be32(f, res->blob_mem);
        qemu_put_be32(f, res->blob_flags);
        qemu_put_be64(f, res->blob_size);
        qemu_put_be32(f, res->nr_entries);
        for (uint32_t i = 0; i < res->nr_entries; i++) {
            qemu_put_be64(f, res->entries[i].addr);
            qemu_put_be32(f, res->entries[i].length);
        }
        qemu_put_byte(f, res->has_uuid);
        qemu_put_buffer(f, res->uuid, sizeof(res->uuid));
        if (!res->blob_mem && !resource_put_pixels(f, s, res)) {
            error_report("pvgpu: cannot read back resource %u", res->id);
            return -EIO;
        }
    }
    return 0;
}

/* Have the guest's renderer do @op for a resource being restored */
static bool resource_restore_op(PvgpuState *s, PvgpuResource *res,
                                PvgpuOpKind kind)
{
    PvgpuRenderJob job = {
        .kind = PVGPU_JOB_OP,
        .op = {
            .kind = kind, .resource_id = res->id,
            .iov = res->iov, .niov = res->niov,
        },
    };
    struct iovec pixels = {
        .iov_base = res->migrated,
        .iov_len = (size_t)res->width * res->height * 4,
    };

    if (kind == PVGPU_OP_RESOURCE_CREATE_2D) {
        job.op.u.create.format = res->format;
        job.op.u.create.width = res->width;
        job.op.u.create.height = res->height;
    } else if (kind == PVGPU_OP_RESOURCE_CREATE_BLOB) {
        job.op.u.blob.blob_mem = res->blob_mem;
        job.op.u.blob.blob_flags = res->blob_flags;
        job.op.u.blob.size = res->blob_size;
    } else if (kind == PVGPU_OP_TRANSFER_WRITE) {
        /* the migrated pixels, not the guest's backing */
        job.op.iov = &pixels;
        job.op.niov = 1;
        job.op.u.transfer.box = (PvgpuBox) {
            .w = res->width, .h = res->height, .d = 1,
        };
        job.op.u.transfer.stride = res->width * 4;
    }
    return pvgpu_render_run(s->renderer, &job);
}

static int pvgpu_resources_get(QEMUFile *f, void *pv, size_t size,
                               const VMStateField *field)
{
    PvgpuState *s = pv;
    uint32_t count = qemu_get_be32(f);

    for (uint32_t n = 0; n < count; n++) {
        uint32_t id = qemu_get_be32(f);
        uint32_t format = qemu_get_be32(f);
        uint32_t width = qemu_get_be32(f);
        uint32_t height = qemu_get_be32(f);
        uint32_t blob_mem = qemu_get_be32(f);
        uint32_t blob_flags = qemu_get_be32(f);
        uint64_t blob_size = qemu_get_be64(f);
        uint32_t nr_entries = qemu_get_be32(f);
        PvgpuResource *res;
        uint32_t err;

        if (!id || nr_entries > PVGPU_MAX_BACKING_ENTRIES ||
            pvgpu_resource_find(s, id) ||
            (blob_mem ? blob_mem != PVGPU_BLOB_MEM_GUEST || !nr_entries :
             pvgpu_format_bpp(format) != 4 || !width || !height ||
             width > PVGPU_MAX_DIMENSION || height > PVGPU_MAX_DIMENSION)) {
            error_report("pvgpu: invalid resource %u in migration stream",
                         id);
            return -EINVAL;
        }
        if (blob_mem) {
            res = blob_new(id, blob_mem, blob_flags, blob_size);
            res->serial = ++s->resource_serial;
            pvgpu_resource_insert(s, res);
        } else {
            uint64_t hostmem = (uint64_t)width * height * 4;

            if (!pvgpu_hostmem_charge(s, NULL, id, hostmem, &err)) {
                error_report("pvgpu: cannot restore resource %u: "
                             "max-hostmem", id);
                return -ENOMEM;
            }
            res = pvgpu_resource_new(s, id, format, width, height, hostmem);
            res->migrated = g_try_malloc(hostmem);
            if (!res->migrated) {
                error_report("pvgpu: cannot restore resource %u: out of "
                             "host memory", id);
                return -ENOMEM;
            }
        }
        res->nr_entries = nr_entries;
        res->entries = nr_entries ? g_new(PvgpuMemEntry, nr_entries) : NULL;
        for (uint32_t i = 0; i < nr_entries; i++) {
            res->entries[i].addr = qemu_get_be64(f);
            res->entries[i].length = qemu_get_be32(f);
        }
        res->has_uuid = qemu_get_byte(f);
        qemu_get_buffer(f, res->uuid, sizeof(res->uuid));
        if (res->migrated) {
            qemu_get_buffer(f, res->migrated, res->hostmem);
        }
    }
    return qemu_file_get_error(f);
}

const VMStateInfo pvgpu_vmstate_resources = {
    .name = "pvgpu-resources",
    .get = pvgpu_resources_get,
    .put = pvgpu_resources_put,
};

/* Recreate @res on the guest's renderer, with its pixels and backing */
static bool resource_restore(PvgpuState *s, PvgpuResource *res)
{
    bool ok;

    if (res->blob_mem) {
        return resource_restore_op(s, res, PVGPU_OP_RESOURCE_CREATE_BLOB);
    }
    ok = resource_restore_op(s, res, PVGPU_OP_RESOURCE_CREATE_2D) &&
         resource_restore_op(s, res, PVGPU_OP_TRANSFER_WRITE) &&
         (!res->iov || resource_restore_op(s, res, PVGPU_OP_BACKING_ATTACH));
    g_free(g_steal_pointer(&res->migrated));
    return ok;
}

int pvgpu_resources_post_load(PvgpuState *s)
{
    GHashTableIter iter;
    gpointer value;

    g_hash_table_iter_init(&iter, s->resources);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        PvgpuResource *res = value;

        /* a 3D guest's renderer may write it */
        res->renderer_writes = renderer_writes_backing(s);
        if (res->entries && !pvgpu_backing_map(s, res)) {
            error_report("pvgpu: backing of resource %u is not guest RAM",
                         res->id);
            return -EINVAL;
        }
        if (res->blob_mem && res->backing_size < res->blob_size) {
            error_report("pvgpu: blob %u larger than its guest memory",
                         res->id);
            return -EINVAL;
        }
        if (!resource_restore(s, res)) {
            error_report("pvgpu: cannot restore resource %u on %s", res->id,
                         pvgpu_render_describe(s->renderer));
            return -EINVAL;
        }
    }
    return 0;
}
