/*
 * pvgpu resources (pvgpu-resource.c)
 *
 * Owns the resource table (PvgpuState.resources, resource_serial,
 * resources_3d) and the host-memory accounting (hostmem_used): what
 * exists, its size, its guest backing (mapped once, only guest RAM) and
 * UUID, the checks commands on resources share, the commands no renderer
 * takes part in, and migration of 2D resources and guest-memory blobs (a
 * 3D guest's too).  The pixels are the renderer's (pvgpu-render.h); the
 * command path (pvgpu-exec.h) records and frees resources through this
 * API only.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_DISPLAY_PVGPU_RESOURCE_H
#define HW_DISPLAY_PVGPU_RESOURCE_H

#include "migration/vmstate.h"
#include "hw/display/pvgpu-cmd.h"

typedef struct PvgpuState PvgpuState;

struct PvgpuBlobMapping;
struct PvgpuRequest;

typedef struct PvgpuResource {
    uint32_t id;
    /* the renderer may write its guest backing (a 3D guest's) */
    bool renderer_writes;
    /* a 2D resource's pixels, loaded and not yet restored (migration) */
    uint8_t *migrated;
    /* tells this resource from a later one with the same id */
    uint64_t serial;
    /*
     * The renderer refused to create it (pvgpu_resource_refuse()): the
     * guest's id stays taken until its RESOURCE_UNREF, the only command it
     * still takes (pvgpu_resource_find_or_fail()), which the renderer need
     * not see
     */
    bool refused;
    uint32_t format;
    uint32_t width;
    uint32_t height;
    /* host memory charged against max_hostmem */
    uint64_t hostmem;

    /* guest backing: the guest-physical list and its host mapping */
    uint32_t nr_entries;
    PvgpuMemEntry *entries;
    struct iovec *iov;
    unsigned niov;
    uint64_t backing_size;

    /* scanouts showing this resource, and the cursor using it */
    uint32_t scanout_bitmask;
    /* contexts it is attached to (pvgpu-exec.c) */
    uint32_t nctx;

    bool has_uuid;
    uint8_t uuid[16];

    /* RESOURCE_CREATE_BLOB; blob_mem 0 for 2D and 3D resources */
    uint32_t blob_mem;
    uint32_t blob_flags;
    uint64_t blob_size;
    struct PvgpuBlobMapping *mapping;  /* MAP_BLOB, until UNMAP_BLOB */
    /* the last MAP_BLOB, while the renderer has not answered it */
    struct PvgpuRequest *map_req;
    uint64_t map_offset;        /* of the last MAP_BLOB */
} PvgpuResource;

uint32_t G_GNUC_PRINTF(3, 4) pvgpu_cmd_fail(const PvgpuCmd *cmd, uint32_t err,
                                            const char *fmt, ...);
/*
 * The resource @id that @cmd names, or NULL and @err (logged): none, or
 * one the renderer refused to create and @cmd is not its RESOURCE_UNREF
 */
PvgpuResource *pvgpu_resource_find_or_fail(PvgpuState *s,
                                           const PvgpuCmd *cmd, uint32_t id,
                                           uint32_t *err);
bool pvgpu_resource_admit(PvgpuState *s, const PvgpuCmd *cmd, uint32_t id,
                          uint32_t *err);
/*
 * Host memory accounting against max_hostmem.  The resource table owns
 * hostmem_used: whatever holds host memory for the guest (resources,
 * blob scanout shadows, stream-created resources) charges and releases
 * it through these, nowhere else.
 *
 * pvgpu_hostmem_reserve: charge @size if it fits under max_hostmem;
 * false (and a PVGPU_QUOTA_EXCEEDED event) if not.
 * pvgpu_hostmem_restore: charge @size unconditionally, for memory that
 * was held all along and is only handed back (max_hostmem may have been
 * lowered meanwhile).
 * pvgpu_hostmem_charge: pvgpu_hostmem_reserve for command @cmd (resource
 * @id), which fails with ERR_OUT_OF_MEMORY and a guest-error log line;
 * @cmd may be NULL (nothing logged).
 */
bool pvgpu_hostmem_reserve(PvgpuState *s, uint64_t size);
void pvgpu_hostmem_restore(PvgpuState *s, uint64_t size);
void pvgpu_hostmem_release(PvgpuState *s, uint64_t size);
bool pvgpu_hostmem_charge(PvgpuState *s, const PvgpuCmd *cmd, uint32_t id,
                          uint64_t size, uint32_t *err);
void pvgpu_resource_free(PvgpuState *s, PvgpuResource *res);
uint32_t pvgpu_backing_attach(PvgpuState *s, const PvgpuCmd *cmd,
                              PvgpuResource **pres);
PvgpuResource *pvgpu_resource_with_backing(PvgpuState *s, const PvgpuCmd *cmd,
                                           uint32_t id, uint32_t *err);
/* Checks of commands on resources (pvgpu-resource.c says what) */
PvgpuResource *pvgpu_check_transfer_2d(PvgpuState *s, const PvgpuCmd *cmd,
                                       uint32_t *err);
PvgpuResource *pvgpu_check_flush(PvgpuState *s, const PvgpuCmd *cmd,
                                 uint32_t *err);
bool pvgpu_backing_map(PvgpuState *s, PvgpuResource *res);
void pvgpu_backing_free(PvgpuState *s, PvgpuResource *res);
void pvgpu_iov_unmap(PvgpuState *s, struct iovec *iov, unsigned niov,
                     bool writable);
uint32_t pvgpu_set_scanout_blob(PvgpuState *s, const PvgpuCmd *cmd);
PvgpuResource *pvgpu_scanout_target(PvgpuState *s, const PvgpuCmd *cmd,
                                    uint32_t scanout_id, uint32_t resource_id,
                                    const PvgpuRect *r, uint32_t *err);
PvgpuResource *pvgpu_blob_new(PvgpuState *s, const PvgpuCmd *cmd,
                              uint32_t *err);
/*
 * The table: a resource goes in when its command is committed and out
 * when the guest unrefs it (then the caller frees it once nothing refers
 * to it any more, pvgpu_resource_free())
 */
void pvgpu_resource_insert(PvgpuState *s, PvgpuResource *res);
void pvgpu_resource_remove(PvgpuState *s, PvgpuResource *res);
/*
 * The renderer refused to create @res (in the table): from now on it is
 * refused (PvgpuResource.refused), and no 3D resource of the renderer's
 */
void pvgpu_resource_refuse(PvgpuState *s, PvgpuResource *res);
/* A renderer's resource @id, recorded and charged @hostmem (reserved) */
PvgpuResource *pvgpu_resource_new(PvgpuState *s, uint32_t id, uint32_t format,
                                  uint32_t width, uint32_t height,
                                  uint64_t hostmem);
/* Display info, EDID and UUIDs: the commands no renderer takes part in */
uint32_t pvgpu_info_exec(PvgpuState *s, const PvgpuCmd *cmd,
                         uint8_t *resp, size_t *resp_len);
void pvgpu_resources_init(PvgpuState *s);
void pvgpu_resources_reset(PvgpuState *s);
void pvgpu_resources_fini(PvgpuState *s);
PvgpuResource *pvgpu_resource_find(PvgpuState *s, uint32_t id);
extern const VMStateInfo pvgpu_vmstate_resources;
/*
 * Recreate the loaded resources on the guest's renderer; once the guest's
 * features, and so its renderer, are known (VirtioDeviceClass.post_load)
 */
int pvgpu_resources_post_load(PvgpuState *s);


#endif /* HW_DISPLAY_PVGPU_RESOURCE_H */
