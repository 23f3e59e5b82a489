/*
 * Unit tests for pvgpu's command decoder, without QEMU
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <glib.h>
#include <string.h>

#include "hw/display/pvgpu-cmd.h"

/* Little-endian request builder */
typedef struct Req {
    uint8_t b[PVGPU_HDR_SIZE + 8 + 4 * PVGPU_MEM_ENTRY_SIZE];
    size_t len;
} Req;

static void put32(Req *r, size_t off, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        r->b[off + i] = v >> (8 * i);
    }
    r->len = MAX(r->len, off + 4);
}

static void put64(Req *r, size_t off, uint64_t v)
{
    put32(r, off, v);
    put32(r, off + 4, v >> 32);
}

static uint32_t get32(const uint8_t *p)
{
    return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static void req_init(Req *r, uint32_t type, size_t len)
{
    memset(r, 0, sizeof(*r));
    put32(r, 0, type);
    r->len = len;
}

static uint32_t decode_caps(const Req *r, unsigned caps, PvgpuCmd *cmd)
{
    const char *why = NULL;
    uint32_t err = pvgpu_cmd_decode(r->b, r->len, PVGPU_QUEUE_CTRL, caps, cmd,
                                    &why);

    /* every refusal names its reason for the guest-error log */
    g_assert(err ? why != NULL : why == NULL);
    return err;
}

static uint32_t decode(const Req *r, PvgpuCmd *cmd)
{
    return decode_caps(r, 0, cmd);
}

static uint32_t decode3d(const Req *r, PvgpuCmd *cmd)
{
    return decode_caps(r, PVGPU_DECODE_3D | PVGPU_DECODE_CONTEXT_INIT, cmd);
}

static void test_header(void)
{
    Req r;
    PvgpuCmd cmd;

    req_init(&r, PVGPU_CMD_GET_DISPLAY_INFO, PVGPU_HDR_SIZE);
    put32(&r, 4, PVGPU_FLAG_FENCE | PVGPU_FLAG_INFO_RING_IDX);
    put64(&r, 8, 0x1122334455667788ull);
    put32(&r, 16, 7);
    r.b[20] = 2;
    g_assert_cmpuint(decode(&r, &cmd), ==, 0);
    g_assert_cmphex(cmd.hdr.type, ==, PVGPU_CMD_GET_DISPLAY_INFO);
    g_assert_cmphex(cmd.hdr.flags, ==, 3);
    g_assert_cmphex(cmd.hdr.fence_id, ==, 0x1122334455667788ull);
    g_assert_cmpuint(cmd.hdr.ctx_id, ==, 7);
    g_assert_cmpuint(cmd.hdr.ring_idx, ==, 2);

    for (size_t len = 0; len < PVGPU_HDR_SIZE; len++) {
        r.len = len;
        g_assert_cmphex(decode(&r, &cmd), ==, PVGPU_RESP_ERR_UNSPEC);
    }
}

static void test_unknown_and_unsupported(void)
{
    static const uint32_t types[] = {
        0, 0x00ff, 0x010e, 0x1100, 0x1205, 0xffffffff,
        PVGPU_CMD_GET_CAPSET_INFO, PVGPU_CMD_CTX_CREATE, PVGPU_CMD_SUBMIT_3D,
        PVGPU_CMD_RESOURCE_CREATE_BLOB,
    };
    Req r;
    PvgpuCmd cmd;

    for (int i = 0; i < G_N_ELEMENTS(types); i++) {
        req_init(&r, types[i], sizeof(r.b));
        g_assert_cmphex(decode(&r, &cmd), ==, PVGPU_RESP_ERR_UNSPEC);
        /* the header is still decoded so the error can carry the fence */
        g_assert_cmphex(cmd.hdr.type, ==, types[i]);
    }
}

static void test_wrong_queue(void)
{
    Req r;
    PvgpuCmd cmd;
    const char *why;

    req_init(&r, PVGPU_CMD_MOVE_CURSOR, 56);
    g_assert_cmphex(pvgpu_cmd_decode(r.b, r.len, PVGPU_QUEUE_CTRL, 0, &cmd,
                                     &why), ==, PVGPU_RESP_ERR_UNSPEC);
    g_assert_cmphex(pvgpu_cmd_decode(r.b, r.len, PVGPU_QUEUE_CURSOR, 0, &cmd,
                                     &why), ==, 0);
    req_init(&r, PVGPU_CMD_GET_DISPLAY_INFO, 24);
    g_assert_cmphex(pvgpu_cmd_decode(r.b, r.len, PVGPU_QUEUE_CURSOR, 0, &cmd,
                                     &why), ==, PVGPU_RESP_ERR_UNSPEC);
}

static void test_short_bodies(void)
{
    static const struct {
        uint32_t type;
        size_t size;
    } sizes[] = {
        { PVGPU_CMD_RESOURCE_CREATE_2D, 40 }, { PVGPU_CMD_RESOURCE_UNREF, 32 },
        { PVGPU_CMD_SET_SCANOUT, 48 }, { PVGPU_CMD_RESOURCE_FLUSH, 48 },
        { PVGPU_CMD_TRANSFER_TO_HOST_2D, 56 },
        { PVGPU_CMD_RESOURCE_ATTACH_BACKING, 32 },
        { PVGPU_CMD_RESOURCE_DETACH_BACKING, 32 }, { PVGPU_CMD_GET_EDID, 32 },
        { PVGPU_CMD_RESOURCE_ASSIGN_UUID, 32 },
    };
    Req r;
    PvgpuCmd cmd;

    for (int i = 0; i < G_N_ELEMENTS(sizes); i++) {
        req_init(&r, sizes[i].type, sizes[i].size - 1);
        g_assert_cmphex(decode(&r, &cmd), ==, PVGPU_RESP_ERR_UNSPEC);
    }
}

static void test_create_2d(void)
{
    Req r;
    PvgpuCmd cmd;

    req_init(&r, PVGPU_CMD_RESOURCE_CREATE_2D, 40);
    put32(&r, 24, 5);
    put32(&r, 28, PVGPU_FORMAT_R8G8B8X8_UNORM);
    put32(&r, 32, 640);
    put32(&r, 36, 480);
    g_assert_cmpuint(decode(&r, &cmd), ==, 0);
    g_assert_cmpuint(cmd.u.create_2d.resource_id, ==, 5);
    g_assert_cmpuint(cmd.u.create_2d.format, ==, PVGPU_FORMAT_R8G8B8X8_UNORM);
    g_assert_cmpuint(cmd.u.create_2d.width, ==, 640);
    g_assert_cmpuint(cmd.u.create_2d.height, ==, 480);

    put32(&r, 24, 0);
    g_assert_cmphex(decode(&r, &cmd), ==, PVGPU_RESP_ERR_INVALID_RESOURCE_ID);
    put32(&r, 24, 5);
    put32(&r, 28, 0);
    g_assert_cmphex(decode(&r, &cmd), ==, PVGPU_RESP_ERR_INVALID_PARAMETER);
    put32(&r, 28, PVGPU_FORMAT_B8G8R8A8_UNORM);
    put32(&r, 32, 0);
    g_assert_cmphex(decode(&r, &cmd), ==, PVGPU_RESP_ERR_INVALID_PARAMETER);
    put32(&r, 32, PVGPU_MAX_DIMENSION + 1);
    g_assert_cmphex(decode(&r, &cmd), ==, PVGPU_RESP_ERR_INVALID_PARAMETER);
    put32(&r, 32, PVGPU_MAX_DIMENSION);
    put32(&r, 36, PVGPU_MAX_DIMENSION);
    g_assert_cmpuint(decode(&r, &cmd), ==, 0);
}

static void test_fields(void)
{
    Req r;
    PvgpuCmd cmd;

    req_init(&r, PVGPU_CMD_TRANSFER_TO_HOST_2D, 56);
    put32(&r, 24, 1);
    put32(&r, 28, 2);
    put32(&r, 32, 3);
    put32(&r, 36, 4);
    put64(&r, 40, 0xa0000000bull);
    put32(&r, 48, 9);
    g_assert_cmpuint(decode(&r, &cmd), ==, 0);
    g_assert_cmpuint(cmd.u.transfer_2d.r.x, ==, 1);
    g_assert_cmpuint(cmd.u.transfer_2d.r.y, ==, 2);
    g_assert_cmpuint(cmd.u.transfer_2d.r.width, ==, 3);
    g_assert_cmpuint(cmd.u.transfer_2d.r.height, ==, 4);
    g_assert_cmphex(cmd.u.transfer_2d.offset, ==, 0xa0000000bull);
    g_assert_cmpuint(cmd.u.transfer_2d.resource_id, ==, 9);

    req_init(&r, PVGPU_CMD_SET_SCANOUT, 48);
    put32(&r, 32, 800);
    put32(&r, 36, 600);
    put32(&r, 40, 3);
    put32(&r, 44, 12);
    g_assert_cmpuint(decode(&r, &cmd), ==, 0);
    g_assert_cmpuint(cmd.u.set_scanout.r.width, ==, 800);
    g_assert_cmpuint(cmd.u.set_scanout.scanout_id, ==, 3);
    g_assert_cmpuint(cmd.u.set_scanout.resource_id, ==, 12);

    req_init(&r, PVGPU_CMD_UPDATE_CURSOR, 56);
    put32(&r, 24, 1);
    put32(&r, 28, 100);
    put32(&r, 32, 200);
    put32(&r, 40, 6);
    put32(&r, 44, 7);
    put32(&r, 48, 8);
    {
        const char *why;

        g_assert_cmpuint(pvgpu_cmd_decode(r.b, r.len, PVGPU_QUEUE_CURSOR, 0,
                                          &cmd, &why), ==, 0);
    }
    g_assert_cmpuint(cmd.u.cursor.scanout_id, ==, 1);
    g_assert_cmpuint(cmd.u.cursor.x, ==, 100);
    g_assert_cmpuint(cmd.u.cursor.y, ==, 200);
    g_assert_cmpuint(cmd.u.cursor.resource_id, ==, 6);
    g_assert_cmpuint(cmd.u.cursor.hot_x, ==, 7);
    g_assert_cmpuint(cmd.u.cursor.hot_y, ==, 8);
}

static void test_attach_backing(void)
{
    Req r;
    PvgpuCmd cmd;
    PvgpuMemEntry e;

    req_init(&r, PVGPU_CMD_RESOURCE_ATTACH_BACKING, 32);
    put32(&r, 24, 3);
    put32(&r, 28, 2);
    put64(&r, 32, 0x10000);
    put32(&r, 40, 4096);
    put64(&r, 48, 0x2000);
    put32(&r, 56, 100);
    put32(&r, 60, 0);                       /* padding */
    g_assert_cmpuint(r.len, ==, 64);
    g_assert_cmpuint(decode(&r, &cmd), ==, 0);
    g_assert_cmpuint(cmd.u.attach_backing.nr_entries, ==, 2);
    g_assert_cmpuint(cmd.u.attach_backing.total_length, ==, 4196);
    e = pvgpu_cmd_mem_entry(&cmd, 1);
    g_assert_cmphex(e.addr, ==, 0x2000);
    g_assert_cmpuint(e.length, ==, 100);

    /* the count claims more entries than the request holds */
    r.len = 32 + 16 + 15;
    g_assert_cmphex(decode(&r, &cmd), ==, PVGPU_RESP_ERR_UNSPEC);
    r.len = 64;
    put32(&r, 28, 0);
    g_assert_cmphex(decode(&r, &cmd), ==, PVGPU_RESP_ERR_INVALID_PARAMETER);
    put32(&r, 28, PVGPU_MAX_BACKING_ENTRIES + 1);
    g_assert_cmphex(decode(&r, &cmd), ==, PVGPU_RESP_ERR_INVALID_PARAMETER);
    /* would need 2^32 * 16 bytes: no overflow in the size check */
    put32(&r, 28, 0xffffffff);
    g_assert_cmphex(decode(&r, &cmd), ==, PVGPU_RESP_ERR_INVALID_PARAMETER);
    put32(&r, 28, 2);
    put64(&r, 48, UINT64_MAX - 99);
    g_assert_cmphex(decode(&r, &cmd), ==, PVGPU_RESP_ERR_INVALID_PARAMETER);
    put64(&r, 48, UINT64_MAX - 100);
    g_assert_cmpuint(decode(&r, &cmd), ==, 0);
    put32(&r, 56, 0);
    g_assert_cmphex(decode(&r, &cmd), ==, PVGPU_RESP_ERR_INVALID_PARAMETER);
}

static void test_rects(void)
{
    PvgpuRect r = { 10, 20, 30, 40 }, out;
    PvgpuRect big = { 0, 0, 100, 100 };

    g_assert_true(pvgpu_rect_inside(&r, 40, 60));
    g_assert_false(pvgpu_rect_inside(&r, 39, 60));
    g_assert_false(pvgpu_rect_inside(&r, 40, 59));
    r = (PvgpuRect) { 0xffffffff, 0, 2, 1 };
    g_assert_false(pvgpu_rect_inside(&r, 0xffffffff, 1));
    r = (PvgpuRect) { 5, 0xfffffff0, 1, 0x20 };
    g_assert_false(pvgpu_rect_inside(&r, 100, 0xffffffff));
    r = (PvgpuRect) { 100, 100, 0, 0 };
    g_assert_true(pvgpu_rect_inside(&r, 100, 100));

    r = (PvgpuRect) { 90, 95, 20, 20 };
    g_assert_true(pvgpu_rect_intersect(&r, &big, &out));
    g_assert_cmpuint(out.x, ==, 90);
    g_assert_cmpuint(out.y, ==, 95);
    g_assert_cmpuint(out.width, ==, 10);
    g_assert_cmpuint(out.height, ==, 5);
    r = (PvgpuRect) { 0xfffffff0, 0, 0xffffffff, 10 };
    g_assert_false(pvgpu_rect_intersect(&r, &big, &out));
    g_assert_cmpuint(out.width, ==, 0);
}

static void test_transfer_fits(void)
{
    PvgpuRect r = { 0, 0, 64, 64 };

    g_assert_true(pvgpu_transfer_2d_fits(&r, 0, 256, 4, 64 * 256));
    g_assert_false(pvgpu_transfer_2d_fits(&r, 1, 256, 4, 64 * 256));
    g_assert_false(pvgpu_transfer_2d_fits(&r, 0, 256, 4, 64 * 256 - 1));
    /* last row only needs width * bpp bytes, not a whole stride */
    r = (PvgpuRect) { 8, 1, 8, 2 };
    g_assert_true(pvgpu_transfer_2d_fits(&r, 288, 256, 4, 288 + 256 + 32));
    g_assert_false(pvgpu_transfer_2d_fits(&r, 288, 256, 4, 288 + 256 + 31));
    r = (PvgpuRect) { 0, 0, 1, 1 };
    g_assert_false(pvgpu_transfer_2d_fits(&r, UINT64_MAX - 2, 4, 4,
                                          UINT64_MAX));
    r = (PvgpuRect) { 0, 0, 0xffffffff, 0xffffffff };
    g_assert_false(pvgpu_transfer_2d_fits(&r, UINT64_MAX / 2, 0xffffffff, 4,
                                          UINT64_MAX));
}

static void test_encode(void)
{
    uint8_t buf[PVGPU_MAX_RESP_SIZE];
    PvgpuCmdHdr req = {
        .type = PVGPU_CMD_RESOURCE_FLUSH,
        .flags = PVGPU_FLAG_FENCE | PVGPU_FLAG_INFO_RING_IDX | 0x80,
        .fence_id = 0x0102030405060708ull,
        .ctx_id = 4,
        .ring_idx = 1,
    };
    PvgpuDisplayOne modes[2] = {
        { { 0, 0, 1024, 768 }, true },
        { { 1024, 0, 800, 600 }, false },
    };
    uint8_t edid[128];

    memset(buf, 0xee, sizeof(buf));
    g_assert_cmpuint(pvgpu_resp_encode_hdr(buf, &req,
                                           PVGPU_RESP_ERR_INVALID_PARAMETER),
                     ==, 24);
    g_assert_cmphex(get32(buf), ==, PVGPU_RESP_ERR_INVALID_PARAMETER);
    /* unknown request flags are not echoed */
    g_assert_cmphex(get32(buf + 4), ==, 3);
    g_assert_cmphex(get32(buf + 8), ==, 0x05060708);
    g_assert_cmphex(get32(buf + 12), ==, 0x01020304);
    g_assert_cmpuint(get32(buf + 16), ==, 4);
    g_assert_cmpuint(buf[20], ==, 1);
    g_assert_cmpuint(buf[21] | buf[22] | buf[23], ==, 0);

    req.flags = 0;
    pvgpu_resp_encode_hdr(buf, &req, PVGPU_RESP_OK_NODATA);
    g_assert_cmphex(get32(buf + 4), ==, 0);
    g_assert_cmphex(get32(buf + 8) | get32(buf + 12), ==, 0);

    memset(buf, 0xee, sizeof(buf));
    g_assert_cmpuint(pvgpu_resp_encode_display_info(buf, &req, modes, 2), ==,
                     24 + 16 * 24);
    g_assert_cmpuint(get32(buf + 24 + 8), ==, 1024);
    g_assert_cmpuint(get32(buf + 24 + 16), ==, 1);
    g_assert_cmpuint(get32(buf + 48), ==, 1024);
    g_assert_cmpuint(get32(buf + 48 + 16), ==, 0);
    for (int i = 72; i < 24 + 16 * 24; i++) {
        g_assert_cmpuint(buf[i], ==, 0);
    }

    memset(edid, 0x5a, sizeof(edid));
    g_assert_cmpuint(pvgpu_resp_encode_edid(buf, &req, edid, sizeof(edid)),
                     ==, PVGPU_EDID_RESP_SIZE);
    g_assert_cmpuint(get32(buf + 24), ==, 128);
    g_assert_cmpuint(buf[32 + 127], ==, 0x5a);
    g_assert_cmpuint(buf[32 + 128], ==, 0);
}

static void test_names(void)
{
    g_assert_cmpstr(pvgpu_cmd_name(PVGPU_CMD_SUBMIT_3D), ==, "SUBMIT_3D");
    g_assert_cmpstr(pvgpu_cmd_name(PVGPU_RESP_ERR_UNSPEC), ==, "ERR_UNSPEC");
    g_assert_cmpstr(pvgpu_cmd_name(0x4242), ==, "UNKNOWN");
    g_assert_cmpuint(pvgpu_format_bpp(PVGPU_FORMAT_A8B8G8R8_UNORM), ==, 4);
    g_assert_cmpuint(pvgpu_format_bpp(5), ==, 0);
}

/*
 * Random requests: the decoder must never read past @len (checked by
 * AddressSanitizer: each request sits in its own exact-size allocation)
 * and every accepted ATTACH_BACKING must be consistent.
 */
static void test_random(void)
{
    static const uint32_t types[] = {
        PVGPU_CMD_GET_DISPLAY_INFO, PVGPU_CMD_RESOURCE_CREATE_2D,
        PVGPU_CMD_RESOURCE_UNREF, PVGPU_CMD_SET_SCANOUT,
        PVGPU_CMD_RESOURCE_FLUSH, PVGPU_CMD_TRANSFER_TO_HOST_2D,
        PVGPU_CMD_RESOURCE_ATTACH_BACKING, PVGPU_CMD_RESOURCE_DETACH_BACKING,
        PVGPU_CMD_GET_EDID, PVGPU_CMD_RESOURCE_ASSIGN_UUID,
        PVGPU_CMD_UPDATE_CURSOR, PVGPU_CMD_MOVE_CURSOR, 0x4242,
        PVGPU_CMD_GET_CAPSET_INFO, PVGPU_CMD_GET_CAPSET, PVGPU_CMD_CTX_CREATE,
        PVGPU_CMD_CTX_DESTROY, PVGPU_CMD_CTX_ATTACH_RESOURCE,
        PVGPU_CMD_RESOURCE_CREATE_3D, PVGPU_CMD_TRANSFER_TO_HOST_3D,
        PVGPU_CMD_TRANSFER_FROM_HOST_3D, PVGPU_CMD_SUBMIT_3D,
        PVGPU_CMD_RESOURCE_CREATE_BLOB, PVGPU_CMD_SET_SCANOUT_BLOB,
        PVGPU_CMD_RESOURCE_MAP_BLOB, PVGPU_CMD_RESOURCE_UNMAP_BLOB,
    };
    GRand *rand = g_rand_new_with_seed(0x9f0);
    unsigned accepted = 0;

    for (int n = 0; n < 200000; n++) {
        size_t len = g_rand_int_range(rand, 0, 120);
        uint8_t *b = g_malloc(len ? len : 1);
        PvgpuQueue q = g_rand_boolean(rand) ? PVGPU_QUEUE_CTRL
                                            : PVGPU_QUEUE_CURSOR;
        PvgpuCmd cmd;
        const char *why;
        uint32_t err;

        for (size_t i = 0; i < len; i++) {
            b[i] = g_rand_int(rand);
        }
        if (len >= 4) {
            uint32_t t = types[g_rand_int_range(rand, 0,
                                                G_N_ELEMENTS(types))];

            memcpy(b, &(uint8_t[4]){ t, t >> 8, t >> 16, t >> 24 }, 4);
        }
        if (len >= 32 && g_rand_boolean(rand)) {
            b[28] = g_rand_int_range(rand, 0, 6);   /* small nr_entries */
            b[29] = b[30] = b[31] = 0;
        }
        if (len >= 40 && g_rand_boolean(rand)) {
            /* CREATE_BLOB: a valid blob_mem and a small nr_entries */
            b[28] = g_rand_int_range(rand, 1, 4);
            b[29] = b[30] = b[31] = 0;
            b[32] = b[33] = b[34] = b[35] = 0;
            b[36] = g_rand_int_range(rand, 0, 6);
            b[37] = b[38] = b[39] = 0;
        }
        err = pvgpu_cmd_decode(b, len, q, g_rand_int_range(rand, 0, 8), &cmd,
                               &why);
        if (!err) {
            accepted++;
            if (cmd.hdr.type == PVGPU_CMD_SUBMIT_3D) {
                g_assert_cmpuint(32 + (size_t)cmd.u.submit_3d.size, <=, len);
                g_assert(cmd.u.submit_3d.data == b + 32);
            }
            if (cmd.hdr.type == PVGPU_CMD_CTX_CREATE) {
                g_assert_cmpuint(strlen(cmd.u.ctx_create.debug_name), <=,
                                 cmd.u.ctx_create.nlen);
            }
            if (cmd.hdr.type == PVGPU_CMD_RESOURCE_ATTACH_BACKING) {
                uint64_t total = 0;

                g_assert_cmpuint(32 + (size_t)16 *
                                 cmd.u.attach_backing.nr_entries, <=, len);
                for (uint32_t i = 0; i < cmd.u.attach_backing.nr_entries;
                     i++) {
                    total += pvgpu_cmd_mem_entry(&cmd, i).length;
                }
                g_assert_cmpuint(total, ==, cmd.u.attach_backing.total_length);
            }
            if (cmd.hdr.type == PVGPU_CMD_RESOURCE_CREATE_BLOB) {
                uint64_t total = 0;

                g_assert_cmpuint(56 + (size_t)16 *
                                 cmd.u.create_blob.nr_entries, <=, len);
                for (uint32_t i = 0; i < cmd.u.create_blob.nr_entries; i++) {
                    total += pvgpu_cmd_mem_entry(&cmd, i).length;
                }
                g_assert_cmpuint(total, ==, cmd.u.create_blob.total_length);
                g_assert_cmpuint(total, >=,
                                 cmd.u.create_blob.blob_mem ==
                                 PVGPU_BLOB_MEM_HOST3D ? 0
                                 : cmd.u.create_blob.size);
            }
            if (cmd.hdr.type == PVGPU_CMD_SET_SCANOUT_BLOB &&
                cmd.u.set_scanout_blob.resource_id) {
                const typeof(cmd.u.set_scanout_blob) *c =
                    &cmd.u.set_scanout_blob;

                g_assert(pvgpu_rect_inside(&c->r, c->width, c->height));
                g_assert_cmpuint(c->stride, >=,
                                 c->width * pvgpu_format_bpp(c->format));
            }
        }
        g_free(b);
    }
    /* the generator must reach the accepting paths too */
    g_assert_cmpuint(accepted, >, 1000);
    g_rand_free(rand);
}

static void test_3d_gated(void)
{
    static const uint32_t types[] = {
        PVGPU_CMD_GET_CAPSET_INFO, PVGPU_CMD_GET_CAPSET, PVGPU_CMD_CTX_CREATE,
        PVGPU_CMD_CTX_DESTROY, PVGPU_CMD_CTX_ATTACH_RESOURCE,
        PVGPU_CMD_CTX_DETACH_RESOURCE, PVGPU_CMD_RESOURCE_CREATE_3D,
        PVGPU_CMD_TRANSFER_TO_HOST_3D, PVGPU_CMD_TRANSFER_FROM_HOST_3D,
        PVGPU_CMD_SUBMIT_3D,
    };
    Req r;
    PvgpuCmd cmd;

    /* without VIRGL negotiated, every 3D command is refused */
    for (int i = 0; i < G_N_ELEMENTS(types); i++) {
        req_init(&r, types[i], sizeof(r.b));
        put32(&r, 16, 1);               /* ctx_id */
        g_assert_cmphex(decode(&r, &cmd), ==, PVGPU_RESP_ERR_UNSPEC);
    }
}

static uint32_t decode_blob(const Req *r, PvgpuCmd *cmd)
{
    return decode_caps(r, PVGPU_DECODE_3D | PVGPU_DECODE_BLOB, cmd);
}

static void test_create_blob(void)
{
    Req r;
    PvgpuCmd cmd;
    PvgpuMemEntry e;

    req_init(&r, PVGPU_CMD_RESOURCE_CREATE_BLOB, 56);
    put32(&r, 24, 9);                               /* resource_id */
    put32(&r, 28, PVGPU_BLOB_MEM_GUEST);
    put32(&r, 32, PVGPU_BLOB_FLAG_USE_SHAREABLE);
    put32(&r, 36, 2);                               /* nr_entries */
    put64(&r, 40, 0);                               /* blob_id */
    put64(&r, 48, 8192);                            /* size */
    put64(&r, 56, 0x100000);
    put32(&r, 64, 4096);
    put64(&r, 72, 0x300000);
    put32(&r, 80, 8192);
    g_assert_cmpuint(r.len, ==, 84);
    r.len = 88;

    /* only with VIRTIO_GPU_F_RESOURCE_BLOB */
    g_assert_cmphex(decode3d(&r, &cmd), ==, PVGPU_RESP_ERR_UNSPEC);
    g_assert_cmpuint(decode_caps(&r, PVGPU_DECODE_BLOB, &cmd), ==, 0);
    g_assert_cmpuint(cmd.u.create_blob.resource_id, ==, 9);
    g_assert_cmpuint(cmd.u.create_blob.blob_mem, ==, PVGPU_BLOB_MEM_GUEST);
    g_assert_cmpuint(cmd.u.create_blob.blob_flags, ==,
                     PVGPU_BLOB_FLAG_USE_SHAREABLE);
    g_assert_cmpuint(cmd.u.create_blob.size, ==, 8192);
    g_assert_cmpuint(cmd.u.create_blob.nr_entries, ==, 2);
    g_assert_cmpuint(cmd.u.create_blob.total_length, ==, 12288);
    e = pvgpu_cmd_mem_entry(&cmd, 1);
    g_assert_cmphex(e.addr, ==, 0x300000);
    g_assert_cmpuint(e.length, ==, 8192);

    /* the entries must cover the blob */
    put64(&r, 48, 12289);
    g_assert_cmphex(decode_blob(&r, &cmd), ==,
                    PVGPU_RESP_ERR_INVALID_PARAMETER);
    put64(&r, 48, 0);
    g_assert_cmphex(decode_blob(&r, &cmd), ==,
                    PVGPU_RESP_ERR_INVALID_PARAMETER);
    put64(&r, 48, 8192);
    /* truncated entry list */
    r.len = 87;
    g_assert_cmphex(decode_blob(&r, &cmd), ==, PVGPU_RESP_ERR_UNSPEC);
    r.len = 88;
    put32(&r, 36, 0);
    g_assert_cmphex(decode_blob(&r, &cmd), ==,
                    PVGPU_RESP_ERR_INVALID_PARAMETER);
    put32(&r, 36, 0xffffffff);
    g_assert_cmphex(decode_blob(&r, &cmd), ==,
                    PVGPU_RESP_ERR_INVALID_PARAMETER);
    put32(&r, 36, 2);
    put32(&r, 32, 1u << 3);                         /* unknown flag */
    g_assert_cmphex(decode_blob(&r, &cmd), ==,
                    PVGPU_RESP_ERR_INVALID_PARAMETER);
    put32(&r, 32, 0);
    put32(&r, 24, 0);
    g_assert_cmphex(decode_blob(&r, &cmd), ==,
                    PVGPU_RESP_ERR_INVALID_RESOURCE_ID);
    put32(&r, 24, 9);

    /* host memory: no entries, and only with 3D */
    put32(&r, 28, PVGPU_BLOB_MEM_HOST3D);
    g_assert_cmphex(decode_blob(&r, &cmd), ==,
                    PVGPU_RESP_ERR_INVALID_PARAMETER);
    put32(&r, 36, 0);
    put64(&r, 40, 77);
    put32(&r, 32, PVGPU_BLOB_FLAG_USE_MAPPABLE);
    g_assert_cmpuint(decode_blob(&r, &cmd), ==, 0);
    g_assert_cmpuint(cmd.u.create_blob.blob_id, ==, 77);
    g_assert_cmpuint(cmd.u.create_blob.nr_entries, ==, 0);
    g_assert_cmphex(decode_caps(&r, PVGPU_DECODE_BLOB, &cmd), ==,
                    PVGPU_RESP_ERR_INVALID_PARAMETER);
    put32(&r, 28, 0);
    g_assert_cmphex(decode_blob(&r, &cmd), ==,
                    PVGPU_RESP_ERR_INVALID_PARAMETER);
    put32(&r, 28, 4);
    g_assert_cmphex(decode_blob(&r, &cmd), ==,
                    PVGPU_RESP_ERR_INVALID_PARAMETER);
}

static void test_scanout_map_blob(void)
{
    Req r;
    PvgpuCmd cmd;

    req_init(&r, PVGPU_CMD_SET_SCANOUT_BLOB, 96);
    put32(&r, 32, 640);                             /* r.width */
    put32(&r, 36, 480);                             /* r.height */
    put32(&r, 40, 1);                               /* scanout_id */
    put32(&r, 44, 5);                               /* resource_id */
    put32(&r, 48, 640);
    put32(&r, 52, 480);
    put32(&r, 56, PVGPU_FORMAT_B8G8R8X8_UNORM);
    put32(&r, 64, 2560);                            /* strides[0] */
    put32(&r, 80, 4096);                            /* offsets[0] */
    r.len = 96;
    g_assert_cmphex(decode(&r, &cmd), ==, PVGPU_RESP_ERR_UNSPEC);
    g_assert_cmpuint(decode_caps(&r, PVGPU_DECODE_BLOB, &cmd), ==, 0);
    g_assert_cmpuint(cmd.u.set_scanout_blob.scanout_id, ==, 1);
    g_assert_cmpuint(cmd.u.set_scanout_blob.resource_id, ==, 5);
    g_assert_cmpuint(cmd.u.set_scanout_blob.stride, ==, 2560);
    g_assert_cmpuint(cmd.u.set_scanout_blob.offset, ==, 4096);
    g_assert_cmpuint(cmd.u.set_scanout_blob.r.height, ==, 480);
    r.len = 95;
    g_assert_cmphex(decode_blob(&r, &cmd), ==, PVGPU_RESP_ERR_UNSPEC);
    r.len = 96;

    put32(&r, 64, 2556);                            /* stride < row */
    g_assert_cmphex(decode_blob(&r, &cmd), ==,
                    PVGPU_RESP_ERR_INVALID_PARAMETER);
    put32(&r, 64, 2560);
    put32(&r, 36, 481);                             /* rect past the fb */
    g_assert_cmphex(decode_blob(&r, &cmd), ==,
                    PVGPU_RESP_ERR_INVALID_PARAMETER);
    put32(&r, 36, 480);
    put32(&r, 56, 99);                              /* unknown format */
    g_assert_cmphex(decode_blob(&r, &cmd), ==,
                    PVGPU_RESP_ERR_INVALID_PARAMETER);
    /* resource 0 disables the scanout: nothing else is looked at */
    put32(&r, 44, 0);
    g_assert_cmpuint(decode_blob(&r, &cmd), ==, 0);

    g_assert(pvgpu_fb_fits(640, 480, 4, 2560, 4096, 4096 + 2560 * 480));
    g_assert(!pvgpu_fb_fits(640, 480, 4, 2560, 4097, 4096 + 2560 * 480));
    g_assert(pvgpu_fb_fits(640, 480, 4, 4096, 0, 4096 * 479 + 2560));
    g_assert(!pvgpu_fb_fits(16384, 16384, 4, 0xffffffff, UINT64_MAX - 8,
                            UINT64_MAX));

    req_init(&r, PVGPU_CMD_RESOURCE_MAP_BLOB, 40);
    put32(&r, 24, 5);
    put64(&r, 32, 0x200000);
    g_assert_cmphex(decode_caps(&r, PVGPU_DECODE_BLOB, &cmd), ==,
                    PVGPU_RESP_ERR_UNSPEC);
    g_assert_cmpuint(decode_blob(&r, &cmd), ==, 0);
    g_assert_cmpuint(cmd.u.map_blob.resource_id, ==, 5);
    g_assert_cmphex(cmd.u.map_blob.offset, ==, 0x200000);
    req_init(&r, PVGPU_CMD_RESOURCE_UNMAP_BLOB, 32);
    put32(&r, 24, 5);
    g_assert_cmpuint(decode_blob(&r, &cmd), ==, 0);
    g_assert_cmpuint(cmd.u.resource.resource_id, ==, 5);
}

static void test_ctx_create(void)
{
    Req r;
    PvgpuCmd cmd;

    req_init(&r, PVGPU_CMD_CTX_CREATE, 96);
    put32(&r, 16, 5);
    put32(&r, 24, 4);
    put32(&r, 28, PVGPU_CAPSET_VIRGL2);
    memcpy(r.b + 32, "mesaXXXX", 8);
    g_assert_cmpuint(decode3d(&r, &cmd), ==, 0);
    g_assert_cmpuint(cmd.hdr.ctx_id, ==, 5);
    g_assert_cmpuint(cmd.u.ctx_create.capset_id, ==, PVGPU_CAPSET_VIRGL2);
    g_assert_cmpstr(cmd.u.ctx_create.debug_name, ==, "mesa");

    /* context_init needs CONTEXT_INIT negotiated */
    g_assert_cmphex(decode_caps(&r, PVGPU_DECODE_3D, &cmd), ==,
                    PVGPU_RESP_ERR_INVALID_PARAMETER);
    put32(&r, 28, 0x100 | PVGPU_CAPSET_VIRGL);
    g_assert_cmphex(decode3d(&r, &cmd), ==, PVGPU_RESP_ERR_INVALID_PARAMETER);
    put32(&r, 28, 0);
    put32(&r, 24, 65);
    g_assert_cmphex(decode3d(&r, &cmd), ==, PVGPU_RESP_ERR_INVALID_PARAMETER);
    put32(&r, 24, 64);
    g_assert_cmpuint(decode3d(&r, &cmd), ==, 0);
    g_assert_cmpuint(strlen(cmd.u.ctx_create.debug_name), <=, 64);
    put32(&r, 16, 0);
    g_assert_cmphex(decode3d(&r, &cmd), ==, PVGPU_RESP_ERR_INVALID_CONTEXT_ID);
}

static void test_submit_3d(void)
{
    Req r;
    PvgpuCmd cmd;

    req_init(&r, PVGPU_CMD_SUBMIT_3D, 32 + 16);
    put32(&r, 16, 2);
    put32(&r, 24, 16);
    g_assert_cmpuint(decode3d(&r, &cmd), ==, 0);
    g_assert_cmpuint(cmd.u.submit_3d.size, ==, 16);
    g_assert(cmd.u.submit_3d.data == r.b + 32);
    put32(&r, 24, 20);
    g_assert_cmphex(decode3d(&r, &cmd), ==, PVGPU_RESP_ERR_UNSPEC);
    put32(&r, 24, 6);
    g_assert_cmphex(decode3d(&r, &cmd), ==, PVGPU_RESP_ERR_INVALID_PARAMETER);
    put32(&r, 24, 0xfffffffc);
    g_assert_cmphex(decode3d(&r, &cmd), ==, PVGPU_RESP_ERR_INVALID_PARAMETER);
    put32(&r, 24, 0);
    put32(&r, 16, 0);
    g_assert_cmphex(decode3d(&r, &cmd), ==, PVGPU_RESP_ERR_INVALID_CONTEXT_ID);
}

static void test_create_transfer_3d(void)
{
    Req r;
    PvgpuCmd cmd;

    req_init(&r, PVGPU_CMD_RESOURCE_CREATE_3D, 72);
    put32(&r, 24, 7);
    put32(&r, 28, 2);           /* PIPE_TEXTURE_2D */
    put32(&r, 32, 1);
    put32(&r, 36, 2);
    put32(&r, 40, 64);
    put32(&r, 44, 32);
    put32(&r, 48, 1);
    put32(&r, 52, 1);
    g_assert_cmpuint(decode3d(&r, &cmd), ==, 0);
    g_assert_cmpuint(cmd.u.create_3d.info.width, ==, 64);
    g_assert_cmpuint(cmd.u.create_3d.info.height, ==, 32);
    put32(&r, 28, PVGPU_MAX_TEXTURE_TARGET + 1);
    g_assert_cmphex(decode3d(&r, &cmd), ==, PVGPU_RESP_ERR_INVALID_PARAMETER);
    put32(&r, 28, 2);
    put32(&r, 48, 0);
    g_assert_cmphex(decode3d(&r, &cmd), ==, PVGPU_RESP_ERR_INVALID_PARAMETER);

    req_init(&r, PVGPU_CMD_TRANSFER_FROM_HOST_3D, 72);
    put32(&r, 24, 0xfffffff0);
    put32(&r, 36, 0x20);
    put32(&r, 40, 1);
    put32(&r, 44, 1);
    g_assert_cmphex(decode3d(&r, &cmd), ==, PVGPU_RESP_ERR_INVALID_PARAMETER);
    put32(&r, 24, 4);
    put64(&r, 48, 128);
    put32(&r, 56, 7);
    put32(&r, 64, 256);
    g_assert_cmpuint(decode3d(&r, &cmd), ==, 0);
    g_assert_cmpuint(cmd.u.transfer_3d.box.x, ==, 4);
    g_assert_cmpuint(cmd.u.transfer_3d.box.w, ==, 0x20);
    g_assert_cmphex(cmd.u.transfer_3d.offset, ==, 128);
    g_assert_cmpuint(cmd.u.transfer_3d.resource_id, ==, 7);
    g_assert_cmpuint(cmd.u.transfer_3d.stride, ==, 256);
}

/* The device's own resource id is no guest's to create. */
static void test_reserved_id(void)
{
    Req r;
    PvgpuCmd cmd;

    req_init(&r, PVGPU_CMD_RESOURCE_CREATE_2D, 40);
    put32(&r, 24, PVGPU_RESOURCE_ID_DEVICE);
    put32(&r, 28, PVGPU_FORMAT_B8G8R8A8_UNORM);
    put32(&r, 32, 64);
    put32(&r, 36, 64);
    g_assert_cmphex(decode3d(&r, &cmd), ==, PVGPU_RESP_ERR_INVALID_RESOURCE_ID);
    put32(&r, 24, PVGPU_RESOURCE_ID_DEVICE - 1);
    g_assert_cmphex(decode3d(&r, &cmd), ==, 0);
}

typedef struct Scan {
    PvgpuPipeResource pr[4];
    unsigned n;
} Scan;

static void scan_cb(const PvgpuPipeResource *pr, void *opaque)
{
    Scan *sc = opaque;

    g_assert_cmpuint(sc->n, <, 4);
    sc->pr[sc->n++] = *pr;
}

static size_t pipe_create(uint32_t *d, uint32_t target, uint32_t w,
                          uint32_t h, uint32_t levels, uint32_t blob_id)
{
    uint32_t v[12] = {
        48 | 11 << 16, target, 1 /* format */, 2 /* bind */, w, h, 1, 1,
        levels, 0, 0, blob_id,
    };

    for (int i = 0; i < 12; i++) {
        d[i] = GUINT32_TO_LE(v[i]);
    }
    return 12;
}

/*
 * The virgl stream scanner finds every PIPE_RESOURCE_CREATE, skipping
 * other commands by their length, and stops where virglrenderer's
 * decoder stops.
 */
static void test_virgl_scan(void)
{
    uint32_t d[64];
    size_t n = 0;
    Scan sc = { 0 };

    /* a CLEAR (7) with 8 dwords, then a 2D texture and a buffer */
    d[n++] = GUINT32_TO_LE(7 | 8 << 16);
    memset(&d[n], 0xff, 8 * 4);
    n += 8;
    n += pipe_create(&d[n], 2, 256, 128, 0, 5);
    n += pipe_create(&d[n], 0, 4096, 1, 0, 6);
    g_assert_cmpuint(pvgpu_virgl_scan(d, n, scan_cb, &sc), ==, 2);
    g_assert_cmpuint(sc.n, ==, 2);
    g_assert_cmpuint(sc.pr[0].blob_id, ==, 5);
    g_assert_cmpuint(sc.pr[0].target, ==, 2);
    g_assert_cmpuint(sc.pr[0].bind, ==, 2);
    g_assert_cmpuint(sc.pr[0].size, ==, 256 * 128 * 4);
    g_assert_cmpuint(sc.pr[1].blob_id, ==, 6);
    g_assert_cmpuint(sc.pr[1].size, ==, 4096);

    /* a mip chain costs a third more */
    n = pipe_create(d, 2, 64, 64, 6, 1);
    sc.n = 0;
    g_assert_cmpuint(pvgpu_virgl_scan(d, n, scan_cb, &sc), ==, 1);
    g_assert_cmpuint(sc.pr[0].size, ==, 64 * 64 * 4 + 64 * 64 * 4 / 3);

    /* cut short: the create runs past the end and is not executed */
    g_assert_cmpuint(pvgpu_virgl_scan(d, n - 1, NULL, NULL), ==, 0);
    /* a wrong length is refused by the renderer: not counted */
    d[0] = GUINT32_TO_LE(48 | 10 << 16);
    g_assert_cmpuint(pvgpu_virgl_scan(d, n, NULL, NULL), ==, 0);
    /* an unknown command type ends the stream */
    d[0] = GUINT32_TO_LE(62);
    n = 1 + pipe_create(&d[1], 2, 64, 64, 0, 1);
    g_assert_cmpuint(pvgpu_virgl_scan(d, n, NULL, NULL), ==, 0);
    /* the object type in bits 8-15 does not change the command */
    d[0] = GUINT32_TO_LE(0);
    pipe_create(&d[1], 2, 64, 64, 0, 1);
    d[1] |= GUINT32_TO_LE(0x300);
    g_assert_cmpuint(pvgpu_virgl_scan(d, n, NULL, NULL), ==, 1);
    /* sizes saturate */
    n = pipe_create(d, 3, 0xffffffff, 0xffffffff, 0, 1);
    d[6] = GUINT32_TO_LE(0xffffffff);
    sc.n = 0;
    g_assert_cmpuint(pvgpu_virgl_scan(d, n, scan_cb, &sc), ==, 1);
    g_assert_cmpuint(sc.pr[0].size, ==, UINT64_MAX);
    /* empty */
    g_assert_cmpuint(pvgpu_virgl_scan(d, 0, NULL, NULL), ==, 0);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/pvgpu-cmd/header", test_header);
    g_test_add_func("/pvgpu-cmd/unknown", test_unknown_and_unsupported);
    g_test_add_func("/pvgpu-cmd/wrong-queue", test_wrong_queue);
    g_test_add_func("/pvgpu-cmd/short-bodies", test_short_bodies);
    g_test_add_func("/pvgpu-cmd/create-2d", test_create_2d);
    g_test_add_func("/pvgpu-cmd/fields", test_fields);
    g_test_add_func("/pvgpu-cmd/attach-backing", test_attach_backing);
    g_test_add_func("/pvgpu-cmd/rects", test_rects);
    g_test_add_func("/pvgpu-cmd/transfer-fits", test_transfer_fits);
    g_test_add_func("/pvgpu-cmd/encode", test_encode);
    g_test_add_func("/pvgpu-cmd/names", test_names);
    g_test_add_func("/pvgpu-cmd/3d-gated", test_3d_gated);
    g_test_add_func("/pvgpu-cmd/ctx-create", test_ctx_create);
    g_test_add_func("/pvgpu-cmd/submit-3d", test_submit_3d);
    g_test_add_func("/pvgpu-cmd/create-transfer-3d", test_create_transfer_3d);
    g_test_add_func("/pvgpu-cmd/create-blob", test_create_blob);
    g_test_add_func("/pvgpu-cmd/scanout-map-blob", test_scanout_map_blob);
    g_test_add_func("/pvgpu-cmd/reserved-id", test_reserved_id);
    g_test_add_func("/pvgpu-cmd/virgl-scan", test_virgl_scan);
    g_test_add_func("/pvgpu-cmd/random", test_random);
    return g_test_run();
}
