/*
 * pvgpu command decoding
 *
 * Turns the bytes of a virtio-gpu request into a typed, validated
 * PvgpuCmd, and encodes responses.  Everything the guest controls is
 * checked here once: sizes, counts, overflowing arithmetic, enumerations.
 * Checks that need device state (does the resource exist, is the rectangle
 * inside it) use the helpers at the end of this header.
 *
 * Pure C on purpose: no QEMU headers, so the decoder is unit-tested and
 * fuzzed on its own (tests/unit/).
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_DISPLAY_PVGPU_CMD_H
#define HW_DISPLAY_PVGPU_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Command and response types, virtio spec 1.3 section 5.7.6.7. */
enum {
    PVGPU_CMD_GET_DISPLAY_INFO = 0x0100,
    PVGPU_CMD_RESOURCE_CREATE_2D,
    PVGPU_CMD_RESOURCE_UNREF,
    PVGPU_CMD_SET_SCANOUT,
    PVGPU_CMD_RESOURCE_FLUSH,
    PVGPU_CMD_TRANSFER_TO_HOST_2D,
    PVGPU_CMD_RESOURCE_ATTACH_BACKING,
    PVGPU_CMD_RESOURCE_DETACH_BACKING,
    PVGPU_CMD_GET_CAPSET_INFO,
    PVGPU_CMD_GET_CAPSET,
    PVGPU_CMD_GET_EDID,
    PVGPU_CMD_RESOURCE_ASSIGN_UUID,
    PVGPU_CMD_RESOURCE_CREATE_BLOB,
    PVGPU_CMD_SET_SCANOUT_BLOB,

    PVGPU_CMD_CTX_CREATE = 0x0200,
    PVGPU_CMD_CTX_DESTROY,
    PVGPU_CMD_CTX_ATTACH_RESOURCE,
    PVGPU_CMD_CTX_DETACH_RESOURCE,
    PVGPU_CMD_RESOURCE_CREATE_3D,
    PVGPU_CMD_TRANSFER_TO_HOST_3D,
    PVGPU_CMD_TRANSFER_FROM_HOST_3D,
    PVGPU_CMD_SUBMIT_3D,
    PVGPU_CMD_RESOURCE_MAP_BLOB,
    PVGPU_CMD_RESOURCE_UNMAP_BLOB,

    PVGPU_CMD_UPDATE_CURSOR = 0x0300,
    PVGPU_CMD_MOVE_CURSOR,

    PVGPU_RESP_OK_NODATA = 0x1100,
    PVGPU_RESP_OK_DISPLAY_INFO,
    PVGPU_RESP_OK_CAPSET_INFO,
    PVGPU_RESP_OK_CAPSET,
    PVGPU_RESP_OK_EDID,
    PVGPU_RESP_OK_RESOURCE_UUID,
    PVGPU_RESP_OK_MAP_INFO,

    PVGPU_RESP_ERR_UNSPEC = 0x1200,
    PVGPU_RESP_ERR_OUT_OF_MEMORY,
    PVGPU_RESP_ERR_INVALID_SCANOUT_ID,
    PVGPU_RESP_ERR_INVALID_RESOURCE_ID,
    PVGPU_RESP_ERR_INVALID_CONTEXT_ID,
    PVGPU_RESP_ERR_INVALID_PARAMETER,
};

/* virtio_gpu_ctrl_hdr.flags */
#define PVGPU_FLAG_FENCE            (1u << 0)
#define PVGPU_FLAG_INFO_RING_IDX    (1u << 1)

/* virtio_gpu_formats, spec 5.7.6.8 */
enum {
    PVGPU_FORMAT_B8G8R8A8_UNORM = 1,
    PVGPU_FORMAT_B8G8R8X8_UNORM = 2,
    PVGPU_FORMAT_A8R8G8B8_UNORM = 3,
    PVGPU_FORMAT_X8R8G8B8_UNORM = 4,
    PVGPU_FORMAT_R8G8B8A8_UNORM = 67,
    PVGPU_FORMAT_X8B8G8R8_UNORM = 68,
    PVGPU_FORMAT_A8B8G8R8_UNORM = 121,
    PVGPU_FORMAT_R8G8B8X8_UNORM = 134,
};

/* Wire sizes of the fixed parts of requests and responses. */
#define PVGPU_HDR_SIZE              24
#define PVGPU_MEM_ENTRY_SIZE        16
#define PVGPU_MAX_SCANOUTS          16
#define PVGPU_DISPLAY_INFO_SIZE     (PVGPU_HDR_SIZE + PVGPU_MAX_SCANOUTS * 24)
#define PVGPU_EDID_BLOB_SIZE        1024
#define PVGPU_EDID_RESP_SIZE        (PVGPU_HDR_SIZE + 8 + PVGPU_EDID_BLOB_SIZE)
#define PVGPU_UUID_RESP_SIZE        (PVGPU_HDR_SIZE + 16)
#define PVGPU_CAPSET_INFO_RESP_SIZE (PVGPU_HDR_SIZE + 16)
#define PVGPU_MAP_INFO_RESP_SIZE    (PVGPU_HDR_SIZE + 8)
#define PVGPU_MAX_RESP_SIZE         PVGPU_EDID_RESP_SIZE

/* Capset ids, spec 5.7.6.7 (VIRTIO_GPU_CAPSET_*) */
#define PVGPU_CAPSET_VIRGL          1
#define PVGPU_CAPSET_VIRGL2         2

/* RESOURCE_CREATE_BLOB.blob_mem and .blob_flags, spec 5.7.6.8 */
#define PVGPU_BLOB_MEM_GUEST        1
#define PVGPU_BLOB_MEM_HOST3D       2
#define PVGPU_BLOB_MEM_HOST3D_GUEST 3
#define PVGPU_BLOB_FLAG_USE_MAPPABLE     (1u << 0)
#define PVGPU_BLOB_FLAG_USE_SHAREABLE    (1u << 1)
#define PVGPU_BLOB_FLAG_USE_CROSS_DEVICE (1u << 2)

/* RESOURCE_MAP_BLOB's map_info: the caching the guest must map with */
#define PVGPU_MAP_CACHE_MASK        0x0f

/* CTX_CREATE.context_init: the capset in the low byte, the rest reserved */
#define PVGPU_CONTEXT_INIT_CAPSET_ID_MASK 0xff
#define PVGPU_CTX_NAME_SIZE         64

/*
 * Limit on one SUBMIT_3D command stream.  Mesa's virgl driver flushes its
 * command buffer at 256 KiB; 4 MiB leaves room for other clients while
 * bounding the copy a guest can make the host do per request.
 */
#define PVGPU_MAX_SUBMIT_SIZE       (4u << 20)
/* pipe_texture_target: PIPE_BUFFER (0) .. PIPE_TEXTURE_CUBE_ARRAY (8) */
#define PVGPU_MAX_TEXTURE_TARGET    8
/*
 * The device's own resource id: no guest resource may take it.  The
 * renderer uses it for a moment to free what a context's command stream
 * created and never claimed (pvgpu-virgl.c).
 */
#define PVGPU_RESOURCE_ID_DEVICE    0xffffffffu

/*
 * Limit on the scatter list of one ATTACH_BACKING.  Linux builds it from
 * an sg_table of the resource's pages; 16384 entries cover a 64 MiB
 * resource made of scattered 4 KiB pages, far more than any 2D surface.
 */
#define PVGPU_MAX_BACKING_ENTRIES   16384
/* The largest request the decoder ever needs to see: a full SUBMIT_3D. */
#define PVGPU_MAX_REQUEST_SIZE      (PVGPU_HDR_SIZE + 8 + PVGPU_MAX_SUBMIT_SIZE)

/* Largest resource dimension accepted, as on real display engines. */
#define PVGPU_MAX_DIMENSION         16384

typedef struct PvgpuCmdHdr {
    uint32_t type;
    uint32_t flags;
    uint64_t fence_id;
    uint32_t ctx_id;
    uint8_t ring_idx;
} PvgpuCmdHdr;

typedef struct PvgpuRect {
    uint32_t x;
    uint32_t y;
    uint32_t width;
    uint32_t height;
} PvgpuRect;

typedef struct PvgpuBox {
    uint32_t x;
    uint32_t y;
    uint32_t z;
    uint32_t w;
    uint32_t h;
    uint32_t d;
} PvgpuBox;

typedef struct PvgpuMemEntry {
    uint64_t addr;
    uint32_t length;
} PvgpuMemEntry;

/*
 * What a 3D resource is (RESOURCE_CREATE_3D): virglrenderer's creation
 * parameters, as the guest gives them and as a renderer takes them
 * (pvgpu-render.h)
 */
typedef struct PvgpuResource3dInfo {
    uint32_t target;
    uint32_t format;
    uint32_t bind;
    uint32_t width;
    uint32_t height;
    uint32_t depth;
    uint32_t array_size;
    uint32_t last_level;
    uint32_t nr_samples;
    uint32_t flags;
} PvgpuResource3dInfo;

typedef struct PvgpuCmd {
    PvgpuCmdHdr hdr;
    union {
        struct {
            uint32_t scanout_id;
        } get_edid;
        struct {
            uint32_t resource_id;
            uint32_t format;
            uint32_t width;
            uint32_t height;
        } create_2d;
        /* RESOURCE_UNREF, RESOURCE_DETACH_BACKING, RESOURCE_ASSIGN_UUID */
        struct {
            uint32_t resource_id;
        } resource;
        struct {
            PvgpuRect r;
            uint32_t scanout_id;
            uint32_t resource_id;
        } set_scanout;
        struct {
            PvgpuRect r;
            uint32_t resource_id;
        } flush;
        struct {
            PvgpuRect r;
            uint64_t offset;
            uint32_t resource_id;
        } transfer_2d;
        struct {
            uint32_t resource_id;
            uint32_t nr_entries;
            /* nr_entries validated entries; read with pvgpu_cmd_mem_entry() */
            const uint8_t *entries;
            uint64_t total_length;
        } attach_backing;
        /*
         * RESOURCE_CREATE_BLOB.  The leading members are ATTACH_BACKING's:
         * pvgpu_cmd_mem_entry() reads the entries of either (HOST3D blobs
         * have none).
         */
        struct {
            uint32_t resource_id;
            uint32_t nr_entries;
            const uint8_t *entries;
            uint64_t total_length;
            uint32_t blob_mem;
            uint32_t blob_flags;
            uint64_t blob_id;
            uint64_t size;
        } create_blob;
        struct {
            PvgpuRect r;
            uint32_t scanout_id;
            uint32_t resource_id;
            uint32_t width;
            uint32_t height;
            uint32_t format;
            /* plane 0; the spec's formats have a single plane */
            uint32_t stride;
            uint32_t offset;
        } set_scanout_blob;
        struct {
            uint32_t resource_id;
            uint64_t offset;
        } map_blob;
        /* RESOURCE_UNMAP_BLOB uses .resource */
        struct {
            uint32_t capset_index;
        } get_capset_info;
        struct {
            uint32_t capset_id;
            uint32_t capset_version;
        } get_capset;
        struct {
            uint32_t capset_id;     /* from context_init; 0 = default */
            uint32_t nlen;
            char debug_name[PVGPU_CTX_NAME_SIZE + 1];   /* NUL-terminated */
        } ctx_create;
        /* CTX_ATTACH_RESOURCE and CTX_DETACH_RESOURCE use .resource */
        struct {
            uint32_t resource_id;
            PvgpuResource3dInfo info;
        } create_3d;
        /* TRANSFER_TO_HOST_3D and TRANSFER_FROM_HOST_3D */
        struct {
            PvgpuBox box;
            uint64_t offset;
            uint32_t resource_id;
            uint32_t level;
            uint32_t stride;
            uint32_t layer_stride;
        } transfer_3d;
        struct {
            uint32_t size;
            /* the command stream; points into the request buffer */
            const uint8_t *data;
        } submit_3d;
        /* UPDATE_CURSOR and MOVE_CURSOR */
        struct {
            uint32_t scanout_id;
            uint32_t x;
            uint32_t y;
            uint32_t resource_id;
            uint32_t hot_x;
            uint32_t hot_y;
        } cursor;
    } u;
} PvgpuCmd;

typedef enum PvgpuQueue {
    PVGPU_QUEUE_CTRL,
    PVGPU_QUEUE_CURSOR,
} PvgpuQueue;

/* What the device negotiated; commands of features not offered are refused */
#define PVGPU_DECODE_3D             (1u << 0)   /* VIRTIO_GPU_F_VIRGL */
#define PVGPU_DECODE_CONTEXT_INIT   (1u << 1)   /* VIRTIO_GPU_F_CONTEXT_INIT */
#define PVGPU_DECODE_BLOB           (1u << 2)   /* VIRTIO_GPU_F_RESOURCE_BLOB */

/*
 * Decode the request in @buf (@len bytes, as the guest supplied it) that
 * arrived on @queue, with the PVGPU_DECODE_* @caps the guest negotiated.
 * Returns 0 and fills @cmd on success; otherwise returns the
 * PVGPU_RESP_ERR_* the guest must receive and points @why at a static
 * description for the guest-error log.  @cmd->hdr is filled whenever @len
 * covers the header, so fences can be echoed on errors too.  The entries
 * of ATTACH_BACKING and the stream of SUBMIT_3D point into @buf.
 */
uint32_t pvgpu_cmd_decode(const void *buf, size_t len, PvgpuQueue queue,
                          unsigned caps, PvgpuCmd *cmd, const char **why);

/* Entry @i (< nr_entries) of a decoded ATTACH_BACKING or CREATE_BLOB. */
PvgpuMemEntry pvgpu_cmd_mem_entry(const PvgpuCmd *cmd, uint32_t i);

/* The spec's name of a command or response type, "UNKNOWN" otherwise. */
const char *pvgpu_cmd_name(uint32_t type);

/* Bytes per pixel of a 2D format, 0 if the format is not one of the spec's. */
unsigned pvgpu_format_bpp(uint32_t format);

/* Is @r, without overflow, inside a @width x @height surface? */
bool pvgpu_rect_inside(const PvgpuRect *r, uint32_t width, uint32_t height);

/* Intersection of @a and @b; false (and @out zero-sized) if empty. */
bool pvgpu_rect_intersect(const PvgpuRect *a, const PvgpuRect *b,
                          PvgpuRect *out);

/*
 * TRANSFER_TO_HOST_2D reads row i of @r from backing offset
 * offset + i * stride, width * bpp bytes long (spec 5.7.6.8).  Returns
 * true when every row lies inside @backing_size bytes, computed without
 * overflow.
 */
bool pvgpu_transfer_2d_fits(const PvgpuRect *r, uint64_t offset,
                            uint32_t stride, unsigned bpp,
                            uint64_t backing_size);

/*
 * Response encoding.  @buf must hold PVGPU_MAX_RESP_SIZE bytes; each
 * function returns the response's size.  The header echoes the request's
 * fence (spec 5.7.6.6: a fenced request's response carries its fence_id,
 * ctx_id and, with INFO_RING_IDX, ring_idx).
 */
size_t pvgpu_resp_encode_hdr(uint8_t *buf, const PvgpuCmdHdr *req,
                             uint32_t type);

typedef struct PvgpuDisplayOne {
    PvgpuRect r;
    bool enabled;
} PvgpuDisplayOne;

size_t pvgpu_resp_encode_display_info(uint8_t *buf, const PvgpuCmdHdr *req,
                                      const PvgpuDisplayOne *pmodes,
                                      unsigned count);
size_t pvgpu_resp_encode_edid(uint8_t *buf, const PvgpuCmdHdr *req,
                              const uint8_t *edid, uint32_t size);
size_t pvgpu_resp_encode_uuid(uint8_t *buf, const PvgpuCmdHdr *req,
                              const uint8_t uuid[16]);
size_t pvgpu_resp_encode_capset_info(uint8_t *buf, const PvgpuCmdHdr *req,
                                     uint32_t capset_id, uint32_t max_version,
                                     uint32_t max_size);
size_t pvgpu_resp_encode_map_info(uint8_t *buf, const PvgpuCmdHdr *req,
                                  uint32_t map_info);
/*
 * Does a @width x @height framebuffer of @bpp bytes per pixel, whose rows
 * start @stride bytes apart from @offset on, fit in @size bytes?
 * (SET_SCANOUT_BLOB; computed without overflow)
 */
bool pvgpu_fb_fits(uint32_t width, uint32_t height, unsigned bpp,
                   uint32_t stride, uint64_t offset, uint64_t size);
/* GET_CAPSET's response is the header followed by the capset's bytes */

/* Is @b, without overflow, inside a @width x @height x @depth volume? */
bool pvgpu_box_inside(const PvgpuBox *b, uint32_t width, uint32_t height,
                      uint32_t depth);


/*
 * Host memory charged for a 3D resource: texels at 4 bytes (the common
 * case; virglrenderer does not report its real allocation), times layers,
 * samples and a third more for a mip chain; a buffer's width is its size
 * in bytes.  Saturates at UINT64_MAX instead of overflowing.
 */
uint64_t pvgpu_resource_3d_size(uint32_t target, uint32_t width,
                                uint32_t height, uint32_t depth,
                                uint32_t array_size, uint32_t last_level,
                                uint32_t nr_samples);

/*
 * A resource that a context's virgl command stream creates itself
 * (VIRGL_CCMD_PIPE_RESOURCE_CREATE, Mesa's way with blobs): it belongs to
 * the guest only once a RESOURCE_CREATE_BLOB with blob_mem HOST3D claims
 * its blob_id, and until then the host holds it for the context.
 */
typedef struct PvgpuPipeResource {
    uint32_t blob_id;
    uint32_t target;
    uint32_t bind;
    uint64_t size;              /* pvgpu_resource_3d_size() */
} PvgpuPipeResource;

typedef void PvgpuPipeResourceFn(const PvgpuPipeResource *pr, void *opaque);

/*
 * Walk the virgl command stream of a SUBMIT_3D (@ndw dwords, little
 * endian) as virglrenderer's decoder walks it: a command's header dword
 * holds its type in bits 0-7 and its length in dwords, without the
 * header, in bits 16-31; a type the protocol does not know, or a command
 * running past the end, ends the stream.  Calls @fn, when not NULL, for
 * each well-formed PIPE_RESOURCE_CREATE and returns how many there were.
 * Counts a command even if the renderer later refuses it: an estimate
 * from above, which is what accounting needs.
 */
unsigned pvgpu_virgl_scan(const void *stream, size_t ndw,
                          PvgpuPipeResourceFn *fn, void *opaque);

#endif /* HW_DISPLAY_PVGPU_CMD_H */
