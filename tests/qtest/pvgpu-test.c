/*
 * pvgpu qtests: drive the device like a guest driver
 *
 * Requests are built from Linux's virtio_gpu.h structures, not from
 * pvgpu's own decoder, so the tests check the wire format independently.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <math.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include "libqtest-single.h"
#include "qemu/bswap.h"
#include "qemu/cutils.h"
#include "qemu/module.h"
#include "qemu/units.h"
#include "qemu/sockets.h"
#include "qobject/qdict.h"
#include "qobject/qlist.h"
#include "standard-headers/linux/virtio_config.h"
#include "standard-headers/linux/virtio_gpu.h"
#include "standard-headers/linux/virtio_pci.h"
#include "libqos/qgraph.h"
#include "libqos/pvgpu.h"
#include "libqos/virtio-pci.h"
#include "libqos/pci.h"
#include "libqos/pci-pc.h"
#include "libqos/malloc-pc.h"

#define FMT_XRGB VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM

/* --- request helpers ----------------------------------------------------- */

static void hdr_init(struct virtio_gpu_ctrl_hdr *hdr, uint32_t type)
{
    memset(hdr, 0, sizeof(*hdr));
    hdr->type = cpu_to_le32(type);
}

static void rect_set(struct virtio_gpu_rect *r, uint32_t x, uint32_t y,
                     uint32_t w, uint32_t h)
{
    r->x = cpu_to_le32(x);
    r->y = cpu_to_le32(y);
    r->width = cpu_to_le32(w);
    r->height = cpu_to_le32(h);
}

/* Send a request whose only response is a header; return its type. */
static uint32_t ctrl_nodata(QPvgpu *gpu, const void *req, size_t size)
{
    struct virtio_gpu_ctrl_hdr resp;
    uint32_t len = qpvgpu_ctrl(gpu, req, size, &resp, sizeof(resp));

    g_assert_cmpuint(len, ==, sizeof(resp));
    return le32_to_cpu(resp.type);
}

static uint32_t create_2d(QPvgpu *gpu, uint32_t id, uint32_t format,
                          uint32_t w, uint32_t h)
{
    struct virtio_gpu_resource_create_2d c;

    hdr_init(&c.hdr, VIRTIO_GPU_CMD_RESOURCE_CREATE_2D);
    c.resource_id = cpu_to_le32(id);
    c.format = cpu_to_le32(format);
    c.width = cpu_to_le32(w);
    c.height = cpu_to_le32(h);
    return ctrl_nodata(gpu, &c, sizeof(c));
}

static uint32_t resource_cmd(QPvgpu *gpu, uint32_t type, uint32_t id)
{
    struct virtio_gpu_resource_unref c;

    hdr_init(&c.hdr, type);
    c.resource_id = cpu_to_le32(id);
    c.padding = 0;
    return ctrl_nodata(gpu, &c, sizeof(c));
}

static uint32_t unref(QPvgpu *gpu, uint32_t id)
{
    return resource_cmd(gpu, VIRTIO_GPU_CMD_RESOURCE_UNREF, id);
}

/* ATTACH_BACKING with arbitrary entries; @nr_claimed may lie. */
static uint32_t attach_entries(QPvgpu *gpu, uint32_t id, uint32_t nr_claimed,
                               const struct virtio_gpu_mem_entry *e,
                               unsigned n)
{
    struct virtio_gpu_resource_attach_backing a;
    const void *parts[2] = { &a, e };
    size_t sizes[2] = { sizeof(a), n * sizeof(*e) };
    struct virtio_gpu_ctrl_hdr resp;

    hdr_init(&a.hdr, VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING);
    a.resource_id = cpu_to_le32(id);
    a.nr_entries = cpu_to_le32(nr_claimed);
    g_assert_cmpuint(qpvgpu_ctrl_sg(gpu, parts, sizes, n ? 2 : 1, &resp,
                                    sizeof(resp)), ==, sizeof(resp));
    return le32_to_cpu(resp.type);
}

/*
 * Back resource @id with @size bytes of guest memory in 4 KiB pieces,
 * listed in reverse address order so that the device must follow the
 * scatter list rather than assume contiguous memory.
 */
static uint64_t attach_backing(QPvgpu *gpu, uint32_t id, uint64_t size)
{
    unsigned n = DIV_ROUND_UP(size, 4096);
    uint64_t base = guest_alloc(gpu->alloc, (uint64_t)n * 4096);
    g_autofree struct virtio_gpu_mem_entry *e = g_new0(
        struct virtio_gpu_mem_entry, n);

    for (unsigned i = 0; i < n; i++) {
        e[i].addr = cpu_to_le64(base + (uint64_t)(n - 1 - i) * 4096);
        e[i].length = cpu_to_le32(MIN(4096, size - (uint64_t)i * 4096));
    }
    g_assert_cmphex(attach_entries(gpu, id, n, e, n), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    return base;
}

/* Write @size bytes at linear offset 0 of a backing made above. */
static void backing_write(uint64_t base, const void *data, uint64_t size)
{
    unsigned n = DIV_ROUND_UP(size, 4096);

    for (unsigned i = 0; i < n; i++) {
        memwrite(base + (uint64_t)(n - 1 - i) * 4096,
                 (const uint8_t *)data + (uint64_t)i * 4096,
                 MIN(4096, size - (uint64_t)i * 4096));
    }
}

static uint32_t transfer_2d(QPvgpu *gpu, uint32_t id, uint32_t x, uint32_t y,
                            uint32_t w, uint32_t h, uint64_t offset)
{
    struct virtio_gpu_transfer_to_host_2d t;

    hdr_init(&t.hdr, VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D);
    rect_set(&t.r, x, y, w, h);
    t.offset = cpu_to_le64(offset);
    t.resource_id = cpu_to_le32(id);
    t.padding = 0;
    return ctrl_nodata(gpu, &t, sizeof(t));
}

static uint32_t set_scanout(QPvgpu *gpu, uint32_t scanout, uint32_t id,
                            uint32_t x, uint32_t y, uint32_t w, uint32_t h)
{
    struct virtio_gpu_set_scanout s;

    hdr_init(&s.hdr, VIRTIO_GPU_CMD_SET_SCANOUT);
    rect_set(&s.r, x, y, w, h);
    s.scanout_id = cpu_to_le32(scanout);
    s.resource_id = cpu_to_le32(id);
    return ctrl_nodata(gpu, &s, sizeof(s));
}

static uint32_t flush(QPvgpu *gpu, uint32_t id, uint32_t x, uint32_t y,
                      uint32_t w, uint32_t h)
{
    struct virtio_gpu_resource_flush f;

    hdr_init(&f.hdr, VIRTIO_GPU_CMD_RESOURCE_FLUSH);
    rect_set(&f.r, x, y, w, h);
    f.resource_id = cpu_to_le32(id);
    f.padding = 0;
    return ctrl_nodata(gpu, &f, sizeof(f));
}

static QDict *query_pvgpu(void)
{
    QDict *rsp = qmp("{'execute': 'query-pvgpu'}");
    QList *list = qdict_get_qlist(rsp, "return");
    QDict *dev;

    g_assert_cmpuint(qlist_size(list), ==, 1);
    dev = qobject_to(QDict, qlist_peek(list));
    qobject_ref(dev);
    qobject_unref(rsp);
    return dev;
}

static void pvgpu_setup(QPvgpu *gpu, QGuestAllocator *alloc)
{
    uint64_t f = qpvgpu_init(gpu, alloc,
                             (1ull << VIRTIO_F_VERSION_1) |
                             (1ull << VIRTIO_GPU_F_EDID) |
                             (1ull << VIRTIO_GPU_F_RESOURCE_UUID));

    g_assert(f & (1ull << VIRTIO_F_VERSION_1));
}

/* --- tests --------------------------------------------------------------- */

/* data: true when the device was started with virgl=off */
static void test_config(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    uint64_t features = qvirtio_get_features(gpu->vdev);
    bool virgl = !data;

    g_assert(features & (1ull << VIRTIO_F_VERSION_1));
    g_assert(features & (1ull << VIRTIO_GPU_F_EDID));
    g_assert(features & (1ull << VIRTIO_GPU_F_RESOURCE_UUID));
    /* 3D as virglrenderer allows: EGL surfaceless works without a GPU */
    g_assert_cmpint(!!(features & (1ull << VIRTIO_GPU_F_VIRGL)), ==, virgl);
    g_assert_cmpint(!!(features & (1ull << VIRTIO_GPU_F_CONTEXT_INIT)), ==,
                    virgl);
    /* blob=on by default, in 2D and 3D */
    g_assert(features & (1ull << VIRTIO_GPU_F_RESOURCE_BLOB));
    pvgpu_setup(gpu, alloc);
    g_assert_cmpuint(qvirtio_config_readl(gpu->vdev, 8), ==, 1);
    g_assert_cmpuint(qvirtio_config_readl(gpu->vdev, 12), ==, virgl ? 2 : 0);
    g_assert_cmpuint(qvirtio_config_readl(gpu->vdev, 0), ==, 0);

    /* QMP says whether there is 3D, and if not, why */
    {
        QDict *info = query_pvgpu();

        g_assert(qdict_get_bool(info, "virgl") == virgl);
        if (virgl) {
            g_assert(!qdict_haskey(info, "virgl-unavailable"));
        } else {
            g_assert_cmpstr(qdict_get_str(info, "virgl-unavailable"), ==,
                            "disabled with virgl=off");
        }
        qobject_unref(info);
    }
}

static void test_display_info(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    struct virtio_gpu_ctrl_hdr req;
    struct virtio_gpu_resp_display_info info;
    uint32_t expect_outputs = data ? GPOINTER_TO_UINT(data) : 1;

    pvgpu_setup(gpu, alloc);
    g_assert_cmpuint(qvirtio_config_readl(gpu->vdev, 8), ==, expect_outputs);
    hdr_init(&req, VIRTIO_GPU_CMD_GET_DISPLAY_INFO);
    g_assert_cmpuint(qpvgpu_ctrl(gpu, &req, sizeof(req), &info, sizeof(info)),
                     ==, sizeof(info));
    g_assert_cmphex(le32_to_cpu(info.hdr.type), ==,
                    VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
    g_assert_cmpuint(le32_to_cpu(info.pmodes[0].enabled), ==, 1);
    g_assert_cmpuint(le32_to_cpu(info.pmodes[0].r.width), ==, 1280);
    g_assert_cmpuint(le32_to_cpu(info.pmodes[0].r.height), ==, 800);
    for (int i = 1; i < VIRTIO_GPU_MAX_SCANOUTS; i++) {
        g_assert_cmpuint(le32_to_cpu(info.pmodes[i].enabled), ==, 0);
        /* outputs beyond max_outputs do not exist at all */
        g_assert_cmpuint(le32_to_cpu(info.pmodes[i].r.width), ==,
                         i < expect_outputs ? 1280 : 0);
    }
}

static void test_edid(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    struct virtio_gpu_cmd_get_edid req = { 0 };
    struct virtio_gpu_resp_edid resp;
    static const uint8_t magic[8] = { 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                      0 };
    uint8_t sum = 0;

    pvgpu_setup(gpu, alloc);
    hdr_init(&req.hdr, VIRTIO_GPU_CMD_GET_EDID);
    g_assert_cmpuint(qpvgpu_ctrl(gpu, &req, sizeof(req), &resp, sizeof(resp)),
                     ==, sizeof(resp));
    g_assert_cmphex(le32_to_cpu(resp.hdr.type), ==, VIRTIO_GPU_RESP_OK_EDID);
    g_assert_cmpuint(le32_to_cpu(resp.size), >=, 128);
    g_assert_cmpmem(resp.edid, 8, magic, 8);
    for (int i = 0; i < 128; i++) {
        sum += resp.edid[i];
    }
    g_assert_cmpuint(sum, ==, 0);
    /* preferred mode in the first detailed timing: 1280x800 */
    g_assert_cmpuint(resp.edid[54 + 2] | (resp.edid[54 + 4] & 0xf0) << 4,
                     ==, 1280);
    g_assert_cmpuint(resp.edid[54 + 5] | (resp.edid[54 + 7] & 0xf0) << 4,
                     ==, 800);

    req.scanout = cpu_to_le32(1);
    g_assert_cmphex(ctrl_nodata(gpu, &req, sizeof(req)), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID);
}

static void test_create_unref(void *obj, void *data, QGuestAllocator *alloc)
{
    static const uint32_t formats[] = {
        VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM,
        VIRTIO_GPU_FORMAT_A8R8G8B8_UNORM, VIRTIO_GPU_FORMAT_X8R8G8B8_UNORM,
        VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM, VIRTIO_GPU_FORMAT_X8B8G8R8_UNORM,
        VIRTIO_GPU_FORMAT_A8B8G8R8_UNORM, VIRTIO_GPU_FORMAT_R8G8B8X8_UNORM,
    };
    QPvgpu *gpu = obj;
    QDict *info;

    pvgpu_setup(gpu, alloc);
    for (int i = 0; i < ARRAY_SIZE(formats); i++) {
        g_assert_cmphex(create_2d(gpu, 10 + i, formats[i], 64, 32), ==,
                        VIRTIO_GPU_RESP_OK_NODATA);
    }
    info = query_pvgpu();
    g_assert_cmpuint(qdict_get_int(info, "resources"), ==, ARRAY_SIZE(formats));
    g_assert_cmpuint(qdict_get_int(info, "hostmem-used"), ==,
                     ARRAY_SIZE(formats) * 64 * 32 * 4);
    qobject_unref(info);

    g_assert_cmphex(create_2d(gpu, 10, FMT_XRGB, 8, 8), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    g_assert_cmphex(create_2d(gpu, 0, FMT_XRGB, 8, 8), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    g_assert_cmphex(create_2d(gpu, 30, 5, 8, 8), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(create_2d(gpu, 30, FMT_XRGB, 0, 8), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(create_2d(gpu, 30, FMT_XRGB, 8, 0), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(create_2d(gpu, 30, FMT_XRGB, 0x40000000, 0x40000000),
                    ==, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);

    for (int i = 0; i < ARRAY_SIZE(formats); i++) {
        g_assert_cmphex(unref(gpu, 10 + i), ==, VIRTIO_GPU_RESP_OK_NODATA);
    }
    g_assert_cmphex(unref(gpu, 10), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    info = query_pvgpu();
    g_assert_cmpuint(qdict_get_int(info, "resources"), ==, 0);
    g_assert_cmpuint(qdict_get_int(info, "hostmem-used"), ==, 0);
    qobject_unref(info);
}

static void test_hostmem_limit(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;

    /* max_hostmem=4M: one 1024x768x4 (3 MiB) resource fits, two do not */
    pvgpu_setup(gpu, alloc);
    g_assert_cmphex(create_2d(gpu, 1, FMT_XRGB, 1024, 768), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(create_2d(gpu, 2, FMT_XRGB, 1024, 768), ==,
                    VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
    g_assert_cmphex(create_2d(gpu, 2, FMT_XRGB, 16384, 16384), ==,
                    VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
    g_assert_cmphex(unref(gpu, 1), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(create_2d(gpu, 2, FMT_XRGB, 1024, 768), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
}

static void test_backing(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    struct virtio_gpu_mem_entry e[2];
    uint64_t mem = guest_alloc(alloc, 8192);

    pvgpu_setup(gpu, alloc);
    g_assert_cmphex(create_2d(gpu, 1, FMT_XRGB, 32, 32), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);

    e[0].addr = cpu_to_le64(mem);
    e[0].length = cpu_to_le32(4096);
    e[0].padding = 0;
    e[1] = e[0];
    e[1].addr = cpu_to_le64(mem + 4096);

    g_assert_cmphex(attach_entries(gpu, 7, 2, e, 2), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    g_assert_cmphex(attach_entries(gpu, 1, 0, e, 0), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    /* a huge count: refused before anything is allocated for it */
    g_assert_cmphex(attach_entries(gpu, 1, 0x10000000, e, 2), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    /* more entries claimed than sent */
    g_assert_cmphex(attach_entries(gpu, 1, 3, e, 2), ==,
                    VIRTIO_GPU_RESP_ERR_UNSPEC);
    /* address + length wraps */
    e[1].addr = cpu_to_le64(UINT64_MAX - 100);
    g_assert_cmphex(attach_entries(gpu, 1, 2, e, 2), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    /* not guest RAM */
    e[1].addr = cpu_to_le64(1ull << 50);
    g_assert_cmphex(attach_entries(gpu, 1, 2, e, 2), ==,
                    VIRTIO_GPU_RESP_ERR_UNSPEC);
    e[1].addr = cpu_to_le64(mem + 4096);
    e[1].length = 0;
    g_assert_cmphex(attach_entries(gpu, 1, 2, e, 2), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    e[1].length = cpu_to_le32(4096);

    /* the failed attempts left no backing behind */
    g_assert_cmphex(resource_cmd(gpu, VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING,
                                 1), ==, VIRTIO_GPU_RESP_ERR_UNSPEC);
    g_assert_cmphex(attach_entries(gpu, 1, 2, e, 2), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(attach_entries(gpu, 1, 2, e, 2), ==,
                    VIRTIO_GPU_RESP_ERR_UNSPEC);
    g_assert_cmphex(resource_cmd(gpu, VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING,
                                 1), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(resource_cmd(gpu, VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING,
                                 1), ==, VIRTIO_GPU_RESP_ERR_UNSPEC);
    g_assert_cmphex(resource_cmd(gpu, VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING,
                                 9), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    /* unref with backing attached releases it */
    g_assert_cmphex(attach_entries(gpu, 1, 2, e, 2), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(unref(gpu, 1), ==, VIRTIO_GPU_RESP_OK_NODATA);
    guest_free(alloc, mem);
}

static void test_transfer_errors(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;

    pvgpu_setup(gpu, alloc);
    g_assert_cmphex(create_2d(gpu, 1, FMT_XRGB, 64, 64), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(transfer_2d(gpu, 1, 0, 0, 64, 64, 0), ==,
                    VIRTIO_GPU_RESP_ERR_UNSPEC);        /* no backing */
    attach_backing(gpu, 1, 64 * 64 * 4);
    g_assert_cmphex(transfer_2d(gpu, 1, 0, 0, 64, 64, 0), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(transfer_2d(gpu, 2, 0, 0, 64, 64, 0), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    g_assert_cmphex(transfer_2d(gpu, 1, 1, 0, 64, 64, 0), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(transfer_2d(gpu, 1, 0, 0, 64, 65, 0), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    /* x + width overflows 32 bits */
    g_assert_cmphex(transfer_2d(gpu, 1, 0xffffffff, 0, 2, 1, 0), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(transfer_2d(gpu, 1, 0, 0xfffffff0, 1, 0x20, 0), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    /* offset + rows past the backing, and offset overflowing 64 bits */
    g_assert_cmphex(transfer_2d(gpu, 1, 0, 0, 64, 64, 4), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(transfer_2d(gpu, 1, 0, 0, 64, 1, UINT64_MAX - 8), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(transfer_2d(gpu, 1, 0, 63, 64, 1, 63 * 256), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
}

static void test_scanout_flush_errors(void *obj, void *data,
                                      QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    QDict *info;
    QDict *so;

    pvgpu_setup(gpu, alloc);
    g_assert_cmphex(create_2d(gpu, 1, FMT_XRGB, 64, 64), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(set_scanout(gpu, 1, 1, 0, 0, 64, 64), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID);
    g_assert_cmphex(set_scanout(gpu, 0xffffffff, 1, 0, 0, 64, 64), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID);
    g_assert_cmphex(set_scanout(gpu, 0, 2, 0, 0, 64, 64), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    g_assert_cmphex(set_scanout(gpu, 0, 1, 32, 0, 64, 64), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(set_scanout(gpu, 0, 1, 0, 0, 0, 64), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(flush(gpu, 2, 0, 0, 64, 64), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    g_assert_cmphex(flush(gpu, 1, 0, 0, 65, 64), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(flush(gpu, 1, 0xffffffc0, 0, 0x80, 1), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);

    g_assert_cmphex(set_scanout(gpu, 0, 1, 16, 8, 32, 16), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(flush(gpu, 1, 0, 0, 64, 64), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    info = query_pvgpu();
    so = qobject_to(QDict, qlist_peek(qdict_get_qlist(info, "scanouts")));
    g_assert_true(qdict_get_bool(so, "enabled"));
    g_assert_cmpuint(qdict_get_int(so, "resource-id"), ==, 1);
    g_assert_cmpuint(qdict_get_int(so, "width"), ==, 32);
    g_assert_cmpuint(qdict_get_int(so, "height"), ==, 16);
    qobject_unref(info);

    /* unref of a scanned-out resource disables the scanout */
    g_assert_cmphex(unref(gpu, 1), ==, VIRTIO_GPU_RESP_OK_NODATA);
    info = query_pvgpu();
    so = qobject_to(QDict, qlist_peek(qdict_get_qlist(info, "scanouts")));
    g_assert_false(qdict_get_bool(so, "enabled"));
    qobject_unref(info);
    g_assert_cmphex(set_scanout(gpu, 0, 0, 0, 0, 0, 0), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
}

static void test_malformed(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    struct virtio_gpu_resource_create_2d c;
    struct virtio_gpu_ctrl_hdr hdr;
    struct virtio_gpu_update_cursor cur;

    pvgpu_setup(gpu, alloc);
    /* shorter than the header */
    hdr_init(&hdr, VIRTIO_GPU_CMD_GET_DISPLAY_INFO);
    g_assert_cmphex(ctrl_nodata(gpu, &hdr, 10), ==,
                    VIRTIO_GPU_RESP_ERR_UNSPEC);
    /* a valid header, a truncated body */
    hdr_init(&c.hdr, VIRTIO_GPU_CMD_RESOURCE_CREATE_2D);
    c.resource_id = cpu_to_le32(1);
    c.format = cpu_to_le32(FMT_XRGB);
    c.width = c.height = cpu_to_le32(8);
    g_assert_cmphex(ctrl_nodata(gpu, &c, sizeof(c) - 4), ==,
                    VIRTIO_GPU_RESP_ERR_UNSPEC);
    /* unknown command types, 3D commands without VIRGL, a response type */
    hdr_init(&hdr, 0x1234);
    g_assert_cmphex(ctrl_nodata(gpu, &hdr, sizeof(hdr)), ==,
                    VIRTIO_GPU_RESP_ERR_UNSPEC);
    hdr_init(&hdr, VIRTIO_GPU_CMD_CTX_CREATE);
    g_assert_cmphex(ctrl_nodata(gpu, &hdr, sizeof(hdr)), ==,
                    VIRTIO_GPU_RESP_ERR_UNSPEC);
    hdr_init(&hdr, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(ctrl_nodata(gpu, &hdr, sizeof(hdr)), ==,
                    VIRTIO_GPU_RESP_ERR_UNSPEC);
    /* a cursor command on the control queue */
    memset(&cur, 0, sizeof(cur));
    cur.hdr.type = cpu_to_le32(VIRTIO_GPU_CMD_MOVE_CURSOR);
    g_assert_cmphex(ctrl_nodata(gpu, &cur, sizeof(cur)), ==,
                    VIRTIO_GPU_RESP_ERR_UNSPEC);
    /* and a control command on the cursor queue: used, no response */
    qpvgpu_cursor(gpu, &c, sizeof(c));
    /* a response buffer too small is filled as far as it goes */
    {
        struct virtio_gpu_resp_display_info info;

        hdr_init(&hdr, VIRTIO_GPU_CMD_GET_DISPLAY_INFO);
        g_assert_cmpuint(qpvgpu_ctrl(gpu, &hdr, sizeof(hdr), &info, 30), ==,
                         30);
        g_assert_cmphex(le32_to_cpu(info.hdr.type), ==,
                        VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
    }
    /* the device still works */
    g_assert_cmphex(create_2d(gpu, 1, FMT_XRGB, 8, 8), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
}

static void test_fence(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    struct virtio_gpu_resource_create_2d c;
    struct virtio_gpu_ctrl_hdr resp;

    pvgpu_setup(gpu, alloc);
    hdr_init(&c.hdr, VIRTIO_GPU_CMD_RESOURCE_CREATE_2D);
    c.hdr.flags = cpu_to_le32(VIRTIO_GPU_FLAG_FENCE);
    c.hdr.fence_id = cpu_to_le64(0x123456789abcdefull);
    c.resource_id = cpu_to_le32(1);
    c.format = cpu_to_le32(FMT_XRGB);
    c.width = c.height = cpu_to_le32(8);
    qpvgpu_ctrl(gpu, &c, sizeof(c), &resp, sizeof(resp));
    g_assert_cmphex(le32_to_cpu(resp.type), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(le32_to_cpu(resp.flags), ==, VIRTIO_GPU_FLAG_FENCE);
    g_assert_cmphex(le64_to_cpu(resp.fence_id), ==, 0x123456789abcdefull);

    /* errors carry the fence too, and INFO_RING_IDX echoes the ring */
    c.hdr.flags = cpu_to_le32(VIRTIO_GPU_FLAG_FENCE |
                              VIRTIO_GPU_FLAG_INFO_RING_IDX);
    c.hdr.fence_id = cpu_to_le64(42);
    c.hdr.ring_idx = 3;
    qpvgpu_ctrl(gpu, &c, sizeof(c), &resp, sizeof(resp));
    g_assert_cmphex(le32_to_cpu(resp.type), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    g_assert_cmphex(le32_to_cpu(resp.flags), ==,
                    VIRTIO_GPU_FLAG_FENCE | VIRTIO_GPU_FLAG_INFO_RING_IDX);
    g_assert_cmphex(le64_to_cpu(resp.fence_id), ==, 42);
    g_assert_cmpuint(resp.ring_idx, ==, 3);

    /* an unfenced request gets no fence */
    c.hdr.flags = 0;
    c.resource_id = cpu_to_le32(2);
    qpvgpu_ctrl(gpu, &c, sizeof(c), &resp, sizeof(resp));
    g_assert_cmphex(le32_to_cpu(resp.flags), ==, 0);
    g_assert_cmphex(le64_to_cpu(resp.fence_id), ==, 0);
}

static void test_uuid(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    struct virtio_gpu_resource_assign_uuid req;
    struct virtio_gpu_resp_resource_uuid r1, r2;
    static const uint8_t zero[16];

    pvgpu_setup(gpu, alloc);
    g_assert_cmphex(create_2d(gpu, 5, FMT_XRGB, 8, 8), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    hdr_init(&req.hdr, VIRTIO_GPU_CMD_RESOURCE_ASSIGN_UUID);
    req.resource_id = cpu_to_le32(5);
    req.padding = 0;
    g_assert_cmpuint(qpvgpu_ctrl(gpu, &req, sizeof(req), &r1, sizeof(r1)),
                     ==, sizeof(r1));
    g_assert_cmphex(le32_to_cpu(r1.hdr.type), ==,
                    VIRTIO_GPU_RESP_OK_RESOURCE_UUID);
    g_assert_true(memcmp(r1.uuid, zero, 16) != 0);
    qpvgpu_ctrl(gpu, &req, sizeof(req), &r2, sizeof(r2));
    g_assert_cmpmem(r1.uuid, 16, r2.uuid, 16);
    req.resource_id = cpu_to_le32(6);
    g_assert_cmphex(ctrl_nodata(gpu, &req, sizeof(req)), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
}

/* --- pixels -------------------------------------------------------------- */

static uint32_t pattern(uint32_t x, uint32_t y)
{
    /* distinct R, G and B per pixel, so swaps and offsets show */
    return ((x * 7) & 0xff) << 16 | ((y * 5) & 0xff) << 8 | ((x ^ y) & 0xff);
}

/* A W x H B8G8R8X8 resource @id holding pattern(), through 2D commands. */
static uint64_t upload_pattern(QPvgpu *gpu, uint32_t id, uint32_t w,
                               uint32_t h)
{
    g_autofree uint32_t *img = g_new(uint32_t, w * h);
    uint64_t backing;

    for (uint32_t i = 0; i < w * h; i++) {
        /* B8G8R8X8 in memory is 0xXXRRGGBB as a little-endian word */
        img[i] = cpu_to_le32(pattern(i % w, i / w));
    }
    g_assert_cmphex(create_2d(gpu, id, FMT_XRGB, w, h), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    backing = attach_backing(gpu, id, w * h * 4);
    backing_write(backing, img, w * h * 4);
    g_assert_cmphex(transfer_2d(gpu, id, 0, 0, w, h, 0), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    return backing;
}

/* Read a P6 screendump; returns pixels as 0xRRGGBB. */
static uint32_t *screendump(int *w, int *h)
{
    g_autofree char *path = g_strdup_printf("%s/pvgpu-test-%d.ppm",
                                            g_get_tmp_dir(), getpid());
    g_autofree char *buf = NULL;
    gsize len;
    int maxval, off;
    uint32_t *pix;
    QDict *rsp;

    rsp = qmp("{'execute': 'screendump', 'arguments': "
              "{'filename': %s, 'device': 'pvgpu0'}}", path);
    g_assert(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
    g_assert(g_file_get_contents(path, &buf, &len, NULL));
    unlink(path);
    g_assert_cmpint(sscanf(buf, "P6 %d %d %d%n", w, h, &maxval, &off), ==, 3);
    g_assert_cmpint(maxval, ==, 255);
    off++;
    g_assert_cmpuint(len, >=, off + *w * *h * 3);
    pix = g_new(uint32_t, *w * *h);
    for (int i = 0; i < *w * *h; i++) {
        const uint8_t *p = (const uint8_t *)buf + off + i * 3;

        pix[i] = p[0] << 16 | p[1] << 8 | p[2];
    }
    return pix;
}

/* The screen is @w x @h and shows pattern() from (@x0, @y0) on */
static void check_screen_pattern(int w, int h, uint32_t x0, uint32_t y0)
{
    int sw, sh;
    g_autofree uint32_t *shot = screendump(&sw, &sh);

    g_assert_cmpint(sw, ==, w);
    g_assert_cmpint(sh, ==, h);
    for (int y = 0; y < sh; y++) {
        for (int x = 0; x < sw; x++) {
            g_assert_cmphex(shot[y * sw + x], ==, pattern(x + x0, y + y0));
        }
    }
}

static void test_pixels(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    const uint32_t W = 96, H = 64;
    g_autofree uint32_t *img = g_new(uint32_t, W * H);
    g_autofree uint32_t *shot = NULL;
    uint64_t backing;
    int sw, sh;

    pvgpu_setup(gpu, alloc);
    backing = upload_pattern(gpu, 1, W, H);
    g_assert_cmphex(set_scanout(gpu, 0, 1, 0, 0, W, H), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(flush(gpu, 1, 0, 0, W, H), ==, VIRTIO_GPU_RESP_OK_NODATA);

    check_screen_pattern(W, H, 0, 0);

    /*
     * Partial update: change a 10x5 block at (20,30) in guest memory and
     * transfer only that rectangle; the rest of the host copy must keep
     * the old pixels even though guest memory around it changed too.
     */
    for (uint32_t i = 0; i < W * H; i++) {
        img[i] = cpu_to_le32(0x00ff00ff);
    }
    backing_write(backing, img, W * H * 4);
    g_assert_cmphex(transfer_2d(gpu, 1, 20, 30, 10, 5, (30 * W + 20) * 4),
                    ==, VIRTIO_GPU_RESP_OK_NODATA);
    /* a sub-rectangle scanout: the screen shows (16,24)..(16+48,24+32) */
    g_assert_cmphex(set_scanout(gpu, 0, 1, 16, 24, 48, 32), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(flush(gpu, 1, 0, 0, W, H), ==, VIRTIO_GPU_RESP_OK_NODATA);
    shot = screendump(&sw, &sh);
    g_assert_cmpint(sw, ==, 48);
    g_assert_cmpint(sh, ==, 32);
    for (int y = 0; y < sh; y++) {
        for (int x = 0; x < sw; x++) {
            uint32_t rx = x + 16, ry = y + 24;
            bool updated = rx >= 20 && rx < 30 && ry >= 30 && ry < 35;

            g_assert_cmphex(shot[y * sw + x], ==,
                            updated ? 0xff00ff : pattern(rx, ry));
        }
    }
}

static void test_reset(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    QDict *info, *so;

    pvgpu_setup(gpu, alloc);
    g_assert_cmphex(create_2d(gpu, 1, FMT_XRGB, 64, 64), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    attach_backing(gpu, 1, 64 * 64 * 4);
    g_assert_cmphex(create_2d(gpu, 2, FMT_XRGB, 32, 32), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(set_scanout(gpu, 0, 1, 0, 0, 64, 64), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);

    /* device reset, as a driver unbind or a guest reboot does */
    qpvgpu_cleanup(gpu);
    qvirtio_reset(gpu->vdev);
    info = query_pvgpu();
    g_assert_cmpuint(qdict_get_int(info, "resources"), ==, 0);
    g_assert_cmpuint(qdict_get_int(info, "hostmem-used"), ==, 0);
    so = qobject_to(QDict, qlist_peek(qdict_get_qlist(info, "scanouts")));
    g_assert_false(qdict_get_bool(so, "enabled"));
    qobject_unref(info);

    /* the driver comes back and reuses the same ids */
    qvirtio_set_acknowledge(gpu->vdev);
    qvirtio_set_driver(gpu->vdev);
    pvgpu_setup(gpu, alloc);
    g_assert_cmphex(create_2d(gpu, 1, FMT_XRGB, 64, 64), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(unref(gpu, 2), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
}

static void test_cursor(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    struct virtio_gpu_update_cursor c;
    QDict *rsp;

    pvgpu_setup(gpu, alloc);
    g_assert_cmphex(create_2d(gpu, 9, VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM, 64,
                              64), ==, VIRTIO_GPU_RESP_OK_NODATA);
    attach_backing(gpu, 9, 64 * 64 * 4);
    g_assert_cmphex(transfer_2d(gpu, 9, 0, 0, 64, 64, 0), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    memset(&c, 0, sizeof(c));
    c.hdr.type = cpu_to_le32(VIRTIO_GPU_CMD_UPDATE_CURSOR);
    c.resource_id = cpu_to_le32(9);
    c.hot_x = cpu_to_le32(3);
    c.pos.x = cpu_to_le32(100);
    qpvgpu_cursor(gpu, &c, sizeof(c));
    c.hdr.type = cpu_to_le32(VIRTIO_GPU_CMD_MOVE_CURSOR);
    c.pos.y = cpu_to_le32(50);
    qpvgpu_cursor(gpu, &c, sizeof(c));
    /* bad scanout, missing resource, hotspot outside: logged, not fatal */
    c.pos.scanout_id = cpu_to_le32(5);
    qpvgpu_cursor(gpu, &c, sizeof(c));
    c.pos.scanout_id = 0;
    c.hdr.type = cpu_to_le32(VIRTIO_GPU_CMD_UPDATE_CURSOR);
    c.resource_id = cpu_to_le32(77);
    qpvgpu_cursor(gpu, &c, sizeof(c));
    c.resource_id = cpu_to_le32(9);
    c.hot_x = cpu_to_le32(64);
    qpvgpu_cursor(gpu, &c, sizeof(c));
    /* unref of the cursor's resource while in use */
    g_assert_cmphex(unref(gpu, 9), ==, VIRTIO_GPU_RESP_OK_NODATA);
    c.hdr.type = cpu_to_le32(VIRTIO_GPU_CMD_MOVE_CURSOR);
    qpvgpu_cursor(gpu, &c, sizeof(c));
    rsp = qmp("{'execute': 'query-status'}");
    g_assert(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
}

/* --- UI resize: the config-change event (spec 5.7.4) ------------------- */

static void sock_write_all(int fd, const void *buf, size_t len)
{
    g_assert_cmpint(qemu_send_full(fd, buf, len), ==, len);
}

static void sock_read_all(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;

    while (len) {
        ssize_t n = recv(fd, p, len, 0);

        g_assert_cmpint(n, >, 0);
        p += n;
        len -= n;
    }
}

/* Connect to the VNC server as a minimal RFB 3.8 client, up to ServerInit */
static int vnc_connect(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    uint8_t buf[64], ntypes, name[256];
    uint32_t namelen;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct timeval tv = { .tv_sec = 20 };

    g_assert_cmpint(fd, >=, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    g_strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
    g_assert_cmpint(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), ==,
                    0);
    sock_read_all(fd, buf, 12);
    g_assert(memcmp(buf, "RFB 003.008\n", 12) == 0);
    sock_write_all(fd, "RFB 003.008\n", 12);
    sock_read_all(fd, &ntypes, 1);
    g_assert_cmpuint(ntypes, >=, 1);
    sock_read_all(fd, buf, ntypes);
    sock_write_all(fd, "\x01", 1);              /* security: none */
    sock_read_all(fd, buf, 4);
    g_assert_cmpuint(ldl_be_p(buf), ==, 0);
    sock_write_all(fd, "\x01", 1);              /* ClientInit: shared */
    sock_read_all(fd, buf, 24);                 /* ServerInit */
    namelen = ldl_be_p(buf + 20);
    g_assert_cmpuint(namelen, <, sizeof(name));
    sock_read_all(fd, name, namelen);
    /* the pixel format stays the server's: 32 bits, 0x00RRGGBB */
    g_assert_cmpuint(buf[4], ==, 32);
    return fd;
}

/* Ask for a desktop size (ExtendedDesktopSize, as a viewer window does) */
static int vnc_request_size(const char *path, uint16_t w, uint16_t h)
{
    static const uint8_t set_encodings[8] = {
        2, 0, 0, 1, 0xff, 0xff, 0xfe, 0xcc,     /* -308 */
    };
    uint8_t set_size[24] = {
        251, 0, w >> 8, w & 0xff, h >> 8, h & 0xff, 1, 0,
        0, 0, 0, 0, 0, 0, 0, 0, w >> 8, w & 0xff, h >> 8, h & 0xff,
        0, 0, 0, 0,
    };
    int fd = vnc_connect(path);

    sock_write_all(fd, set_encodings, sizeof(set_encodings));
    sock_write_all(fd, set_size, sizeof(set_size));
    return fd;
}

static void *before_vnc(GString *cmd_line, void *arg)
{
    g_autofree char *path = g_strdup_printf("%s/pvgpu-vnc-%d.sock",
                                            g_get_tmp_dir(), getpid());

    g_string_append_printf(cmd_line, " -vnc unix:%s,display=pvgpu0", path);
    return arg;
}

static void test_ui_resize(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    QVirtioPCIDevice *pci = container_of(gpu->vdev, QVirtioPCIDevice, vdev);
    g_autofree char *path = g_strdup_printf("%s/pvgpu-vnc-%d.sock",
                                            g_get_tmp_dir(), getpid());
    struct virtio_gpu_ctrl_hdr req;
    struct virtio_gpu_resp_display_info info;
    int fd;

    pvgpu_setup(gpu, alloc);
    g_assert_cmpuint(qvirtio_config_readl(gpu->vdev, 0), ==, 0);

    fd = vnc_request_size(path, 1024, 640);
    /* the device raises a configuration change with EVENT_DISPLAY set */
    qvirtio_wait_config_isr(gpu->vdev, 10 * 1000 * 1000);
    g_assert_cmphex(qvirtio_config_readl(gpu->vdev, 0), ==,
                    VIRTIO_GPU_EVENT_DISPLAY);

    hdr_init(&req, VIRTIO_GPU_CMD_GET_DISPLAY_INFO);
    qpvgpu_ctrl(gpu, &req, sizeof(req), &info, sizeof(info));
    g_assert_cmpuint(le32_to_cpu(info.pmodes[0].enabled), ==, 1);
    g_assert_cmpuint(le32_to_cpu(info.pmodes[0].r.width), ==, 1024);
    g_assert_cmpuint(le32_to_cpu(info.pmodes[0].r.height), ==, 640);

    /* writing the bit to events_clear acknowledges the event */
    qpci_io_writel(pci->pdev, pci->bar, pci->device_cfg_offset + 4,
                   VIRTIO_GPU_EVENT_DISPLAY);
    g_assert_cmphex(qvirtio_config_readl(gpu->vdev, 0), ==, 0);
    /* events_clear itself always reads as zero */
    g_assert_cmphex(qvirtio_config_readl(gpu->vdev, 4), ==, 0);
    close(fd);
    unlink(path);
}

/* --- migration ----------------------------------------------------------- */

/* Migrate the running QEMU into a new one, which becomes global_qtest */
static QTestState *migrate_to_new(void)
{
    g_autofree char *file = g_strdup_printf("%s/pvgpu-mig-%d",
                                            g_get_tmp_dir(), getpid());
    g_autofree char *uri = g_strdup_printf("file:%s", file);
    QTestState *src = global_qtest, *dst;
    QDict *rsp;

    /* as libqos/pvgpu.c set up the source */
    if (getenv("PVGPU_QTEST_RENDER_PROCESS")) {
        dst = qtest_initf("-M pc -object memory-backend-memfd,id=pvgpu-ram,"
                          "size=128M,share=on -machine memory-backend="
                          "pvgpu-ram -device pvgpu-pci,addr=04.0,id=pvgpu0,"
                          "render-process=auto -incoming defer");
    } else {
        dst = qtest_initf("-M pc -device pvgpu-pci,addr=04.0,id=pvgpu0 "
                          "-incoming defer");
    }
    rsp = qtest_qmp(src, "{'execute': 'migrate', 'arguments': {'uri': %s}}",
                    uri);
    g_assert(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
    qtest_qmp_eventwait(src, "STOP");
    /* STOP comes before the last of the state is written: wait for all */
    for (;;) {
        const char *status;

        rsp = qtest_qmp(src, "{'execute': 'query-migrate'}");
        status = qdict_get_try_str(qdict_get_qdict(rsp, "return"), "status");
        g_assert(status && strcmp(status, "failed") != 0);
        if (!strcmp(status, "completed")) {
            qobject_unref(rsp);
            break;
        }
        qobject_unref(rsp);
        g_usleep(10 * 1000);
    }
    rsp = qtest_qmp(dst, "{'execute': 'migrate-incoming', "
                         "'arguments': {'uri': %s}}", uri);
    g_assert(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
    qtest_qmp_eventwait(dst, "RESUME");
    unlink(file);
    global_qtest = dst;
    /* the source stays stopped: the next test starts a QEMU of its own */
    qos_invalidate_command_line();
    return src;
}

static void test_migrate(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    const uint32_t W = 40, H = 30;
    QTestState *src, *dst;
    QDict *info;

    pvgpu_setup(gpu, alloc);
    upload_pattern(gpu, 3, W, H);
    g_assert_cmphex(set_scanout(gpu, 0, 3, 0, 0, W, H), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(create_2d(gpu, 4, FMT_XRGB, 16, 16), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);

    /* the destination shows the same frame and accounts the same state */
    src = migrate_to_new();
    dst = global_qtest;
    info = query_pvgpu();
    g_assert_cmpuint(qdict_get_int(info, "resources"), ==, 2);
    g_assert_cmpuint(qdict_get_int(info, "hostmem-used"), ==,
                     (W * H + 16 * 16) * 4);
    qobject_unref(info);
    check_screen_pattern(W, H, 0, 0);
    global_qtest = src;
    qtest_quit(dst);
}

/* --- 3D (virglrenderer) -------------------------------------------------- */

/* virgl command stream encoding (Mesa's virgl_protocol.h) */
#define VIRGL_CMD(cmd, obj, len)    ((len) << 16 | (obj) << 8 | (cmd))
#define VIRGL_CCMD_CREATE_OBJECT    1
#define VIRGL_CCMD_SET_FRAMEBUFFER_STATE 5
#define VIRGL_CCMD_CLEAR            7
#define VIRGL_OBJECT_SURFACE        8
#define PIPE_CLEAR_COLOR0           (1 << 2)
#define PIPE_TEXTURE_2D             2
#define VIRGL_BIND_RENDER_TARGET    (1 << 1)

static void pvgpu_setup_3d(QPvgpu *gpu, QGuestAllocator *alloc)
{
    uint64_t f = qpvgpu_init(gpu, alloc,
                             (1ull << VIRTIO_F_VERSION_1) |
                             (1ull << VIRTIO_GPU_F_EDID) |
                             (1ull << VIRTIO_GPU_F_VIRGL) |
                             (1ull << VIRTIO_GPU_F_CONTEXT_INIT));

    g_assert(f & (1ull << VIRTIO_GPU_F_VIRGL));
}

static uint32_t ctx_create(QPvgpu *gpu, uint32_t ctx, uint32_t capset)
{
    struct virtio_gpu_ctx_create c = { 0 };

    hdr_init(&c.hdr, VIRTIO_GPU_CMD_CTX_CREATE);
    c.hdr.ctx_id = cpu_to_le32(ctx);
    c.nlen = cpu_to_le32(5);
    c.context_init = cpu_to_le32(capset);
    memcpy(c.debug_name, "qtest", 5);
    return ctrl_nodata(gpu, &c, sizeof(c));
}

static uint32_t ctx_cmd(QPvgpu *gpu, uint32_t type, uint32_t ctx,
                        uint32_t res)
{
    struct virtio_gpu_ctx_resource c = { 0 };

    hdr_init(&c.hdr, type);
    c.hdr.ctx_id = cpu_to_le32(ctx);
    c.resource_id = cpu_to_le32(res);
    return ctrl_nodata(gpu, &c, type == VIRTIO_GPU_CMD_CTX_DESTROY ?
                       sizeof(c.hdr) : sizeof(c));
}

static uint32_t create_rt(QPvgpu *gpu, uint32_t id, uint32_t w, uint32_t h)
{
    struct virtio_gpu_resource_create_3d c = { 0 };

    hdr_init(&c.hdr, VIRTIO_GPU_CMD_RESOURCE_CREATE_3D);
    c.resource_id = cpu_to_le32(id);
    c.target = cpu_to_le32(PIPE_TEXTURE_2D);
    c.format = cpu_to_le32(FMT_XRGB);
    c.bind = cpu_to_le32(VIRGL_BIND_RENDER_TARGET);
    c.width = cpu_to_le32(w);
    c.height = cpu_to_le32(h);
    c.depth = c.array_size = cpu_to_le32(1);
    c.flags = cpu_to_le32(VIRTIO_GPU_RESOURCE_FLAG_Y_0_TOP);
    return ctrl_nodata(gpu, &c, sizeof(c));
}

/* A command stream clearing resource @res (w x h) to @rgba. */
static size_t clear_stream(uint32_t *dw, uint32_t res, const float rgba[4])
{
    size_t n = 0;

    dw[n++] = VIRGL_CMD(VIRGL_CCMD_CREATE_OBJECT, VIRGL_OBJECT_SURFACE, 5);
    dw[n++] = res;              /* surface handle: reuse the resource id */
    dw[n++] = res;
    dw[n++] = FMT_XRGB;
    dw[n++] = 0;                /* level */
    dw[n++] = 0;                /* first | last layer << 16 */
    dw[n++] = VIRGL_CMD(VIRGL_CCMD_SET_FRAMEBUFFER_STATE, 0, 3);
    dw[n++] = 1;                /* nr_cbufs */
    dw[n++] = 0;                /* no depth surface */
    dw[n++] = res;
    dw[n++] = VIRGL_CMD(VIRGL_CCMD_CLEAR, 0, 8);
    dw[n++] = PIPE_CLEAR_COLOR0;
    for (int i = 0; i < 4; i++) {
        memcpy(&dw[n++], &rgba[i], 4);
    }
    dw[n++] = 0;                /* depth, a double */
    dw[n++] = 0;
    dw[n++] = 0;                /* stencil */
    for (size_t i = 0; i < n; i++) {
        dw[i] = cpu_to_le32(dw[i]);
    }
    return n * 4;
}

static uint32_t submit_3d(QPvgpu *gpu, uint32_t ctx, const void *stream,
                          size_t size, uint32_t flags, uint64_t fence)
{
    struct virtio_gpu_cmd_submit c = { 0 };
    const void *parts[2] = { &c, stream };
    size_t sizes[2] = { sizeof(c), size };
    struct virtio_gpu_ctrl_hdr resp;

    hdr_init(&c.hdr, VIRTIO_GPU_CMD_SUBMIT_3D);
    c.hdr.ctx_id = cpu_to_le32(ctx);
    c.hdr.flags = cpu_to_le32(flags);
    c.hdr.fence_id = cpu_to_le64(fence);
    c.size = cpu_to_le32(size);
    qpvgpu_ctrl_sg(gpu, parts, sizes, 2, &resp, sizeof(resp));
    if (flags & VIRTIO_GPU_FLAG_FENCE) {
        g_assert_cmphex(le64_to_cpu(resp.fence_id), ==, fence);
    }
    return le32_to_cpu(resp.type);
}

static uint32_t transfer_3d(QPvgpu *gpu, uint32_t type, uint32_t ctx,
                            uint32_t res, uint32_t w, uint32_t h)
{
    struct virtio_gpu_transfer_host_3d t = { 0 };

    hdr_init(&t.hdr, type);
    t.hdr.ctx_id = cpu_to_le32(ctx);
    t.hdr.flags = cpu_to_le32(VIRTIO_GPU_FLAG_FENCE);
    t.hdr.fence_id = cpu_to_le64(1000);
    t.box.w = cpu_to_le32(w);
    t.box.h = cpu_to_le32(h);
    t.box.d = cpu_to_le32(1);
    t.resource_id = cpu_to_le32(res);
    t.stride = cpu_to_le32(w * 4);
    return ctrl_nodata(gpu, &t, sizeof(t));
}

/* Render target @res in context @ctx with w*h*4 bytes of backing. */
static uint64_t make_rt(QPvgpu *gpu, uint32_t ctx, uint32_t res, uint32_t w,
                        uint32_t h)
{
    uint64_t backing;

    g_assert_cmphex(create_rt(gpu, res, w, h), ==, VIRTIO_GPU_RESP_OK_NODATA);
    backing = attach_backing(gpu, res, w * h * 4);
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE, ctx, res),
                    ==, VIRTIO_GPU_RESP_OK_NODATA);
    return backing;
}

/* Read back @res through TRANSFER_FROM_HOST_3D; every pixel is @expect. */
static void check_rt(QPvgpu *gpu, uint32_t ctx, uint32_t res, uint64_t backing,
                     uint32_t w, uint32_t h, uint32_t expect)
{
    g_autofree uint32_t *px = g_new(uint32_t, w * h);

    qtest_memset(gpu->qts, backing, 0xa5, w * h * 4);
    g_assert_cmphex(transfer_3d(gpu, VIRTIO_GPU_CMD_TRANSFER_FROM_HOST_3D, ctx,
                                res, w, h), ==, VIRTIO_GPU_RESP_OK_NODATA);
    /* pages are listed in reverse order: read them back in list order */
    for (unsigned i = 0; i < DIV_ROUND_UP(w * h * 4, 4096); i++) {
        unsigned n = DIV_ROUND_UP(w * h * 4, 4096);

        memread(backing + (uint64_t)(n - 1 - i) * 4096,
                (uint8_t *)px + i * 4096, MIN(4096, w * h * 4 - i * 4096));
    }
    for (uint32_t i = 0; i < w * h; i++) {
        g_assert_cmphex(le32_to_cpu(px[i]) & 0xffffff, ==, expect);
    }
}

/*
 * Context @ctx (created here) clears a new 64x48 render target @res to
 * @rgba with fence @fence; read back, every pixel is @expect.
 */
static void clear_checked(QPvgpu *gpu, uint32_t ctx, uint32_t res,
                          const float rgba[4], uint32_t expect,
                          uint64_t fence)
{
    uint32_t dw[32];
    uint64_t backing;
    size_t n;

    g_assert_cmphex(ctx_create(gpu, ctx, VIRTIO_GPU_CAPSET_VIRGL2), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    backing = make_rt(gpu, ctx, res, 64, 48);
    n = clear_stream(dw, res, rgba);
    g_assert_cmphex(submit_3d(gpu, ctx, dw, n, VIRTIO_GPU_FLAG_FENCE, fence),
                    ==, VIRTIO_GPU_RESP_OK_NODATA);
    check_rt(gpu, ctx, res, backing, 64, 48, expect);
}

static void test_capsets(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    struct virtio_gpu_get_capset_info ci = { 0 };
    struct virtio_gpu_resp_capset_info info;
    struct virtio_gpu_get_capset gc = { 0 };
    uint32_t ids[2], sizes[2], vers[2];

    pvgpu_setup_3d(gpu, alloc);
    for (uint32_t i = 0; i < 2; i++) {
        hdr_init(&ci.hdr, VIRTIO_GPU_CMD_GET_CAPSET_INFO);
        ci.capset_index = cpu_to_le32(i);
        g_assert_cmpuint(qpvgpu_ctrl(gpu, &ci, sizeof(ci), &info,
                                     sizeof(info)), ==, sizeof(info));
        g_assert_cmphex(le32_to_cpu(info.hdr.type), ==,
                        VIRTIO_GPU_RESP_OK_CAPSET_INFO);
        ids[i] = le32_to_cpu(info.capset_id);
        vers[i] = le32_to_cpu(info.capset_max_version);
        sizes[i] = le32_to_cpu(info.capset_max_size);
        g_assert_cmpuint(sizes[i], >=, 64);
        /* no host bytes through the padding (CVE-2021-3545's class) */
        g_assert_cmphex(le32_to_cpu(info.padding), ==, 0);
    }
    g_assert_cmpuint(ids[0], ==, VIRTIO_GPU_CAPSET_VIRGL);
    g_assert_cmpuint(ids[1], ==, VIRTIO_GPU_CAPSET_VIRGL2);
    g_assert_cmpuint(sizes[1], >, sizes[0]);
    ci.capset_index = cpu_to_le32(2);
    g_assert_cmphex(ctrl_nodata(gpu, &ci, sizeof(ci)), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);

    for (uint32_t i = 0; i < 2; i++) {
        g_autofree uint8_t *resp = g_malloc0(24 + sizes[i]);

        hdr_init(&gc.hdr, VIRTIO_GPU_CMD_GET_CAPSET);
        gc.capset_id = cpu_to_le32(ids[i]);
        gc.capset_version = cpu_to_le32(vers[i]);
        g_assert_cmpuint(qpvgpu_ctrl(gpu, &gc, sizeof(gc), resp,
                                     24 + sizes[i]), ==, 24 + sizes[i]);
        g_assert_cmphex(ldl_le_p(resp), ==, VIRTIO_GPU_RESP_OK_CAPSET);
        /* virgl caps start with their max_version, never 0 */
        g_assert_cmpuint(ldl_le_p(resp + 24), >=, 1);
        /*
         * a response buffer shorter than the capset gets what fits, and
         * nothing is written past it (CVE-2021-3546's class)
         */
        g_assert_cmpuint(qpvgpu_ctrl(gpu, &gc, sizeof(gc), resp, 40), ==,
                         40);
    }
    gc.capset_id = cpu_to_le32(3);
    g_assert_cmphex(ctrl_nodata(gpu, &gc, sizeof(gc)), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    gc.capset_id = cpu_to_le32(VIRTIO_GPU_CAPSET_VIRGL2);
    gc.capset_version = cpu_to_le32(vers[1] + 1);
    g_assert_cmphex(ctrl_nodata(gpu, &gc, sizeof(gc)), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
}

static void test_clear_readback(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    static const float magenta[4] = { 1, 0, 1, 1 }, green[4] = { 0, 1, 0, 1 };
    uint32_t dw[32];
    uint64_t backing;
    size_t n;

    pvgpu_setup_3d(gpu, alloc);
    g_assert_cmphex(ctx_create(gpu, 1, VIRTIO_GPU_CAPSET_VIRGL2), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    backing = make_rt(gpu, 1, 10, 64, 48);

    n = clear_stream(dw, 10, magenta);
    g_assert_cmphex(submit_3d(gpu, 1, dw, n, VIRTIO_GPU_FLAG_FENCE, 7), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    check_rt(gpu, 1, 10, backing, 64, 48, 0xff00ff);

    /* a second frame: the surface object already exists, clear again */
    n = clear_stream(dw, 10, green) * 0;
    dw[n++] = cpu_to_le32(VIRGL_CMD(VIRGL_CCMD_CLEAR, 0, 8));
    dw[n++] = cpu_to_le32(PIPE_CLEAR_COLOR0);
    for (int i = 0; i < 4; i++) {
        memcpy(&dw[n], &green[i], 4);
        dw[n] = cpu_to_le32(dw[n]);
        n++;
    }
    dw[n++] = 0;
    dw[n++] = 0;
    dw[n++] = 0;
    g_assert_cmphex(submit_3d(gpu, 1, dw, n * 4, VIRTIO_GPU_FLAG_FENCE, 8),
                    ==, VIRTIO_GPU_RESP_OK_NODATA);
    check_rt(gpu, 1, 10, backing, 64, 48, 0x00ff00);

    /* and what the scanout shows is what the GPU rendered */
    g_assert_cmphex(set_scanout(gpu, 0, 10, 0, 0, 64, 48), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(flush(gpu, 10, 0, 0, 64, 48), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    {
        int sw, sh;
        g_autofree uint32_t *shot = screendump(&sw, &sh);

        g_assert_cmpint(sw, ==, 64);
        g_assert_cmpint(sh, ==, 48);
        for (int i = 0; i < sw * sh; i++) {
            g_assert_cmphex(shot[i], ==, 0x00ff00);
        }
    }
}

/* 2D commands on a 3D device: uploads and scanouts through the renderer */
/* Does query-pvgpu say the device can migrate (and if not, why)? */
static bool query_migratable(char **why)
{
    QDict *info = query_pvgpu();
    bool ok = qdict_get_bool(info, "migratable");

    g_assert(ok == !qdict_haskey(info, "migration-blocker"));
    if (why) {
        *why = g_strdup(qdict_get_try_str(info, "migration-blocker"));
    }
    qobject_unref(info);
    return ok;
}

/* migrate to a file; returns the QMP error's description, or NULL */
static char *migrate_refused(void)
{
    g_autofree char *uri = g_strdup_printf("file:%s/pvgpu-mig-refused-%d",
                                           g_get_tmp_dir(), getpid());
    QDict *rsp = qmp("{'execute': 'migrate', 'arguments': {'uri': %s}}",
                     uri);
    char *desc = NULL;

    if (qdict_haskey(rsp, "error")) {
        desc = g_strdup(qdict_get_str(qdict_get_qdict(rsp, "error"),
                                      "desc"));
    }
    qobject_unref(rsp);
    return desc;
}

/*
 * A 3D guest migrates while it has no 3D state: its 2D resources (the
 * console) are read back from virglrenderer and recreated on the
 * destination's, and so are its contexts that never ran a command stream
 * (Linux makes one for fbcon), with their attachments.  While a context
 * with GL state or a 3D resource exists, migration is refused with a
 * reason that names them, and query-pvgpu tells.
 */
static void test_migrate_3d(void *obj, void *data, QGuestAllocator *alloc)
{
    static const float magenta[4] = { 1, 0, 1, 1 };
    QPvgpu *gpu = obj;
    const uint32_t W = 40, H = 30;
    g_autofree char *why = NULL, *refused = NULL;
    QTestState *src, *dst;
    QDict *info, *ctx;
    QList *contexts;
    uint32_t dw[32];
    size_t n;

    pvgpu_setup_3d(gpu, alloc);
    upload_pattern(gpu, 3, W, H);
    g_assert_cmphex(set_scanout(gpu, 0, 3, 0, 0, W, H), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(flush(gpu, 3, 0, 0, W, H), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(ctx_create(gpu, 5, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE, 5, 3),
                    ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert(query_migratable(NULL));

    /* a context that drew holds GL state; so does its render target */
    g_assert_cmphex(ctx_create(gpu, 2, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    make_rt(gpu, 2, 10, 16, 16);
    n = clear_stream(dw, 10, magenta);
    g_assert_cmphex(submit_3d(gpu, 2, dw, n, VIRTIO_GPU_FLAG_FENCE, 1), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert(!query_migratable(&why));
    g_assert(strstr(why, "(1 3D context with GL state: ids 2; "
                         "1 3D resource)"));
    refused = migrate_refused();
    g_assert(refused && strstr(refused, "1 3D context with GL state"));
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_DESTROY, 2, 0), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_clear_pointer(&why, g_free);
    g_assert(!query_migratable(&why));
    g_assert(strstr(why, "(1 3D resource)"));
    g_assert_cmphex(unref(gpu, 10), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert(query_migratable(NULL));

    src = migrate_to_new();
    dst = global_qtest;
    info = query_pvgpu();
    g_assert_cmpuint(qdict_get_int(info, "resources"), ==, 1);
    g_assert_cmpuint(qdict_get_int(info, "hostmem-used"), ==, W * H * 4);
    g_assert(qdict_get_bool(info, "migratable"));
    contexts = qdict_get_qlist(info, "contexts");
    g_assert_cmpuint(qlist_size(contexts), ==, 1);
    ctx = qobject_to(QDict, qlist_peek(contexts));
    g_assert_cmpuint(qdict_get_int(ctx, "ctx-id"), ==, 5);
    g_assert_cmpuint(qdict_get_int(ctx, "resources"), ==, 1);
    qobject_unref(info);
    check_screen_pattern(W, H, 0, 0);
    global_qtest = src;
    qtest_quit(dst);
}

/* query-migrate's status */
static char *migrate_status(void)
{
    QDict *rsp = qmp("{'execute': 'query-migrate'}");
    char *status = g_strdup(qdict_get_try_str(qdict_get_qdict(rsp, "return"),
                                              "status"));

    qobject_unref(rsp);
    return status;
}

/*
 * A context that runs its first command stream while a migration is under
 * way (no blocker can be added then) makes that migration fail when the
 * VM stops; the source runs on, and the blocker is there afterwards.
 */
static void test_migrate_3d_racing(void *obj, void *data,
                                   QGuestAllocator *alloc)
{
    static const float magenta[4] = { 1, 0, 1, 1 };
    g_autofree char *uri = g_strdup_printf("file:%s/pvgpu-mig-race-%d",
                                           g_get_tmp_dir(), getpid());
    QPvgpu *gpu = obj;
    g_autofree char *why = NULL;
    uint32_t dw[32];
    size_t n;

    pvgpu_setup_3d(gpu, alloc);
    /* slow enough that the migration is still copying RAM below */
    qtest_qmp_assert_success(global_qtest,
                             "{'execute': 'migrate-set-parameters', "
                             "'arguments': {'max-bandwidth': 4096}}");
    qtest_qmp_assert_success(global_qtest, "{'execute': 'migrate', "
                             "'arguments': {'uri': %s}}", uri);
    for (;;) {
        g_autofree char *status = migrate_status();

        if (!strcmp(status, "active")) {
            break;
        }
        g_assert(strcmp(status, "failed") && strcmp(status, "completed"));
        g_usleep(10 * 1000);
    }
    g_assert_cmphex(ctx_create(gpu, 3, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    make_rt(gpu, 3, 30, 16, 16);
    n = clear_stream(dw, 30, magenta);
    g_assert_cmphex(submit_3d(gpu, 3, dw, n, VIRTIO_GPU_FLAG_FENCE, 1), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    /* let it finish: the VM stops, the device refuses to be saved */
    qtest_qmp_assert_success(global_qtest,
                             "{'execute': 'migrate-set-parameters', "
                             "'arguments': {'max-bandwidth': 4294967296, "
                             "'downtime-limit': 60000}}");
    for (;;) {
        g_autofree char *status = migrate_status();

        g_assert(strcmp(status, "completed"));
        if (!strcmp(status, "failed")) {
            break;
        }
        g_usleep(10 * 1000);
    }
    unlink(uri + strlen("file:"));
    /* the source runs on, its guest served, and now says why */
    qtest_qmp_assert_success(global_qtest, "{'execute': 'cont'}");
    g_assert_cmphex(submit_3d(gpu, 3, dw, n, VIRTIO_GPU_FLAG_FENCE, 2), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert(!query_migratable(&why));
    g_assert(strstr(why, "1 3D context with GL state: ids 3"));
    g_clear_pointer(&why, g_free);
    why = migrate_refused();
    g_assert(why && strstr(why, "1 3D context with GL state"));
    /* a QEMU that has tried to migrate is no one else's to reuse */
    qos_invalidate_command_line();
}

static void test_2d_on_virgl(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    const uint32_t W = 80, H = 60;
    g_autofree uint32_t *shot = NULL;

    pvgpu_setup_3d(gpu, alloc);
    upload_pattern(gpu, 1, W, H);
    g_assert_cmphex(transfer_2d(gpu, 1, 0, 0, W, H + 1, 0), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(set_scanout(gpu, 0, 1, 8, 4, 64, 48), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(flush(gpu, 1, 0, 0, W, H), ==, VIRTIO_GPU_RESP_OK_NODATA);
    check_screen_pattern(64, 48, 8, 4);
    g_assert_cmphex(unref(gpu, 1), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(unref(gpu, 1), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
}

/*
 * A bottom-up (not Y_0_TOP) resource, as Mesa makes for GL render
 * targets: transfers are in the guest's coordinates, so what the scanout
 * shows must be the rows in the order the guest wrote them.
 */
static void test_scanout_orientation(void *obj, void *data,
                                     QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    const uint32_t W = 64, H = 48;
    struct virtio_gpu_resource_create_3d c = { 0 };
    struct virtio_gpu_transfer_host_3d t = { 0 };
    g_autofree uint32_t *img = g_new(uint32_t, W * H);
    g_autofree uint32_t *shot = NULL;
    uint64_t backing;
    QDict *info, *so;

    pvgpu_setup_3d(gpu, alloc);
    hdr_init(&c.hdr, VIRTIO_GPU_CMD_RESOURCE_CREATE_3D);
    c.resource_id = cpu_to_le32(7);
    c.target = cpu_to_le32(PIPE_TEXTURE_2D);
    c.format = cpu_to_le32(FMT_XRGB);
    c.bind = cpu_to_le32(VIRGL_BIND_RENDER_TARGET);
    c.width = cpu_to_le32(W);
    c.height = cpu_to_le32(H);
    c.depth = c.array_size = cpu_to_le32(1);
    g_assert_cmphex(ctrl_nodata(gpu, &c, sizeof(c)), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    backing = attach_backing(gpu, 7, W * H * 4);
    for (uint32_t i = 0; i < W * H; i++) {
        img[i] = cpu_to_le32(pattern(i % W, i / W));
    }
    backing_write(backing, img, W * H * 4);
    hdr_init(&t.hdr, VIRTIO_GPU_CMD_TRANSFER_TO_HOST_3D);
    t.box.w = cpu_to_le32(W);
    t.box.h = cpu_to_le32(H);
    t.box.d = cpu_to_le32(1);
    t.resource_id = cpu_to_le32(7);
    t.stride = cpu_to_le32(W * 4);
    g_assert_cmphex(ctrl_nodata(gpu, &t, sizeof(t)), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(set_scanout(gpu, 0, 7, 0, 0, W, H), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(flush(gpu, 7, 0, 0, W, H), ==, VIRTIO_GPU_RESP_OK_NODATA);
    check_screen_pattern(W, H, 0, 0);
    /*
     * With gl-scanout=on (data) but no GL display (-display none), or a
     * renderer that cannot export, the pixels are read back all the same.
     */
    info = query_pvgpu();
    so = qobject_to(QDict, qlist_peek(qdict_get_qlist(info, "scanouts")));
    g_assert_false(qdict_get_bool(so, "dmabuf"));
    g_assert_cmpint(qdict_get_int(so, "resource-id"), ==, 7);
    qobject_unref(info);
}

/*
 * Fences on two rings, submitted in one batch: each response carries its
 * own fence and ring, and per ring they complete in submission order.
 */
static void test_fence_rings(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    static const float grey[4] = { 0.5, 0.5, 0.5, 1 };
    enum { N = 12 };
    uint32_t dw[32];
    size_t n;
    uint64_t req_addr[N], resp_addr[N], stream;
    uint32_t head[N];
    int order[N], done = 0;
    uint64_t last[2] = { 0, 0 };
    gint64 deadline;

    pvgpu_setup_3d(gpu, alloc);
    g_assert_cmphex(ctx_create(gpu, 2, VIRTIO_GPU_CAPSET_VIRGL2), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    make_rt(gpu, 2, 20, 256, 256);
    n = clear_stream(dw, 20, grey);
    stream = guest_alloc(alloc, n);
    memwrite(stream, dw, n);

    for (int i = 0; i < N; i++) {
        struct virtio_gpu_cmd_submit c = { 0 };

        hdr_init(&c.hdr, VIRTIO_GPU_CMD_SUBMIT_3D);
        c.hdr.ctx_id = cpu_to_le32(2);
        c.hdr.flags = cpu_to_le32(VIRTIO_GPU_FLAG_FENCE |
                                  VIRTIO_GPU_FLAG_INFO_RING_IDX);
        c.hdr.fence_id = cpu_to_le64(100 + i);
        c.hdr.ring_idx = i % 2;
        c.size = cpu_to_le32(n);
        req_addr[i] = guest_alloc(alloc, sizeof(c));
        resp_addr[i] = guest_alloc(alloc, 24);
        memwrite(req_addr[i], &c, sizeof(c));
        head[i] = qvirtqueue_add(gpu->qts, gpu->ctrl, req_addr[i], sizeof(c),
                                 false, true);
        qvirtqueue_add(gpu->qts, gpu->ctrl, stream, n, false, true);
        qvirtqueue_add(gpu->qts, gpu->ctrl, resp_addr[i], 24, true, false);
    }
    /* publish them all before the device looks (one notification) */
    for (int i = 0; i < N; i++) {
        qvirtqueue_kick(gpu->qts, gpu->vdev, gpu->ctrl, head[i]);
    }

    deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
    while (done < N) {
        uint32_t idx, len;

        g_assert(g_get_monotonic_time() < deadline);
        if (!qvirtqueue_get_buf(gpu->qts, gpu->ctrl, &idx, &len)) {
            qtest_clock_step(gpu->qts, 100);
            g_usleep(1000);
            continue;
        }
        for (int i = 0; i < N; i++) {
            if (head[i] == idx) {
                order[done++] = i;
            }
        }
    }
    for (int k = 0; k < N; k++) {
        int i = order[k];
        uint8_t r[24];

        memread(resp_addr[i], r, sizeof(r));
        g_assert_cmphex(ldl_le_p(r), ==, VIRTIO_GPU_RESP_OK_NODATA);
        g_assert_cmphex(ldl_le_p(r + 4), ==,
                        VIRTIO_GPU_FLAG_FENCE | VIRTIO_GPU_FLAG_INFO_RING_IDX);
        g_assert_cmpuint(ldq_le_p(r + 8), ==, 100 + i);
        g_assert_cmpuint(r[20], ==, i % 2);
        /* per ring: increasing fence ids */
        g_assert_cmpuint(ldq_le_p(r + 8), >, last[i % 2]);
        last[i % 2] = ldq_le_p(r + 8);
    }
}

static void test_ctx_rules(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    static const float red[4] = { 1, 0, 0, 1 }, blue[4] = { 0, 0, 1, 1 };
    uint32_t dw[32];
    uint64_t b1, b2;
    size_t n;

    pvgpu_setup_3d(gpu, alloc);
    g_assert_cmphex(ctx_create(gpu, 1, VIRTIO_GPU_CAPSET_VIRGL2), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(ctx_create(gpu, 1, VIRTIO_GPU_CAPSET_VIRGL2), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID);
    g_assert_cmphex(ctx_create(gpu, 3, 99), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(ctx_create(gpu, 2, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    b1 = make_rt(gpu, 1, 1, 32, 32);
    b2 = make_rt(gpu, 2, 2, 32, 32);

    /* a context only touches resources attached to it */
    g_assert_cmphex(transfer_3d(gpu, VIRTIO_GPU_CMD_TRANSFER_FROM_HOST_3D, 1,
                                2, 32, 32), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_DETACH_RESOURCE, 1, 2), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE, 9, 2), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID);
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE, 1, 99),
                    ==, VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    n = clear_stream(dw, 1, red);
    g_assert_cmphex(submit_3d(gpu, 9, dw, n, 0, 0), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID);
    /* virglrenderer refuses a surface on a resource the context lacks */
    g_assert_cmphex(ctx_create(gpu, 3, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    n = clear_stream(dw, 2, red);
    g_assert_cmphex(submit_3d(gpu, 3, dw, n, 0, 0), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);

    /* a malformed stream: an error for ctx 1 only, ctx 2 goes on */
    dw[0] = cpu_to_le32(VIRGL_CMD(0xfe, 0, 2));
    dw[1] = dw[2] = 0;
    g_assert_cmphex(submit_3d(gpu, 1, dw, 12, 0, 0), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    n = clear_stream(dw, 2, blue);
    g_assert_cmphex(submit_3d(gpu, 2, dw, n, VIRTIO_GPU_FLAG_FENCE, 3), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    check_rt(gpu, 2, 2, b2, 32, 32, 0x0000ff);
    /* and ctx 1 still renders what is valid */
    n = clear_stream(dw, 1, red);
    g_assert_cmphex(submit_3d(gpu, 1, dw, n, VIRTIO_GPU_FLAG_FENCE, 4), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    check_rt(gpu, 1, 1, b1, 32, 32, 0xff0000);
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_DESTROY, 2, 0), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);

    /* detach, then the context may no longer use it */
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_DETACH_RESOURCE, 1, 1), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(transfer_3d(gpu, VIRTIO_GPU_CMD_TRANSFER_FROM_HOST_3D, 1,
                                1, 32, 32), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    /* destroy: the id is free again, and its commands are refused */
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_DESTROY, 1, 0), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_DESTROY, 1, 0), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID);
    g_assert_cmphex(submit_3d(gpu, 1, dw, n, 0, 0), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID);
    g_assert_cmphex(ctx_create(gpu, 1, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
}

/*
 * Requests queued together, answered in whatever order the device likes.
 * With @hold, they are made available only by batch_publish(), all in one
 * notify, as a driver that queues several commands does.
 */
typedef struct Batch {
    QPvgpu *gpu;
    bool hold;
    unsigned n;
    uint32_t head[64];
    uint64_t resp[64];
} Batch;

/* room for the largest response the batches get (RESP_OK_MAP_INFO) */
#define BATCH_RESP_SIZE 32

static void batch_add(Batch *b, const void *req, size_t len, uint64_t stream,
                      size_t stream_len)
{
    uint64_t a = guest_alloc(b->gpu->alloc, len + BATCH_RESP_SIZE);

    g_assert_cmpuint(b->n, <, ARRAY_SIZE(b->head));
    memwrite(a, req, len);
    b->resp[b->n] = a + len;
    b->head[b->n] = qvirtqueue_add(b->gpu->qts, b->gpu->ctrl, a, len, false,
                                   true);
    if (stream_len) {
        qvirtqueue_add(b->gpu->qts, b->gpu->ctrl, stream, stream_len, false,
                       true);
    }
    qvirtqueue_add(b->gpu->qts, b->gpu->ctrl, a + len, BATCH_RESP_SIZE, true,
                   false);
    if (!b->hold) {
        qvirtqueue_kick(b->gpu->qts, b->gpu->vdev, b->gpu->ctrl,
                        b->head[b->n]);
    }
    b->n++;
}

/* Make every request of a held batch available, then notify once. */
static void batch_publish(Batch *b)
{
    QVirtQueue *vq = b->gpu->ctrl;
    uint16_t idx = qtest_readw(b->gpu->qts, vq->avail + 2);

    for (unsigned i = 0; i < b->n; i++) {
        qtest_writew(b->gpu->qts,
                     vq->avail + 4 + 2 * ((idx + i) % vq->size), b->head[i]);
    }
    qtest_writew(b->gpu->qts, vq->avail + 2, idx + b->n);
    b->gpu->vdev->bus->virtqueue_kick(b->gpu->vdev, vq);
}

/* Wait until every request of @b is answered; returns request i's type. */
static void batch_drain(Batch *b, uint32_t *types)
{
    gint64 deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
    unsigned done = 0;

    while (done < b->n) {
        uint32_t idx, len;

        g_assert(g_get_monotonic_time() < deadline);
        if (!qvirtqueue_get_buf(b->gpu->qts, b->gpu->ctrl, &idx, &len)) {
            qtest_clock_step(b->gpu->qts, 100);
            g_usleep(1000);
            continue;
        }
        done++;
    }
    for (unsigned i = 0; i < b->n; i++) {
        types[i] = qtest_readl(b->gpu->qts, b->resp[i]);
    }
}

/* A command on one resource (UNREF, DETACH_BACKING, ...) into @b */
static void batch_resource_cmd(Batch *b, uint32_t type, uint32_t id)
{
    struct virtio_gpu_resource_detach_backing d = { 0 };

    hdr_init(&d.hdr, type);
    d.resource_id = cpu_to_le32(id);
    batch_add(b, &d, sizeof(d), 0, 0);
}

static void batch_submits(Batch *b, uint32_t ctx, unsigned count,
                          uint64_t stream, size_t n)
{
    for (unsigned i = 0; i < count; i++) {
        struct virtio_gpu_cmd_submit s = { 0 };

        hdr_init(&s.hdr, VIRTIO_GPU_CMD_SUBMIT_3D);
        s.hdr.ctx_id = cpu_to_le32(ctx);
        s.hdr.flags = cpu_to_le32(VIRTIO_GPU_FLAG_FENCE);
        s.hdr.fence_id = cpu_to_le64(b->n + 1);
        s.size = cpu_to_le32(n);
        batch_add(b, &s, sizeof(s), stream, n);
    }
}

/*
 * Destroy a context while its work is still queued, and reset the device
 * with work in flight: the queued work finishes or is dropped, nothing
 * leaks or hangs, and the device is usable afterwards.
 */
static void test_destroy_busy(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    static const float c[4] = { 0.25, 0.5, 0.75, 1 }, red[4] = { 1, 0, 0, 1 };
    struct virtio_gpu_ctrl_hdr destroy;
    uint32_t dw[32], types[64];
    Batch b = { .gpu = gpu };
    uint64_t stream, rt;
    size_t n;
    QDict *info;

    pvgpu_setup_3d(gpu, alloc);
    g_assert_cmphex(ctx_create(gpu, 5, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    make_rt(gpu, 5, 30, 512, 512);
    n = clear_stream(dw, 30, c);
    stream = guest_alloc(alloc, n);
    memwrite(stream, dw, n);

    /* 20 frames, the context destroyed right behind them, one more frame */
    batch_submits(&b, 5, 20, stream, n);
    hdr_init(&destroy, VIRTIO_GPU_CMD_CTX_DESTROY);
    destroy.ctx_id = cpu_to_le32(5);
    batch_add(&b, &destroy, sizeof(destroy), 0, 0);
    batch_submits(&b, 5, 1, stream, n);
    batch_drain(&b, types);
    for (unsigned i = 0; i < 20; i++) {
        g_assert_cmphex(types[i], ==, VIRTIO_GPU_RESP_OK_NODATA);
    }
    g_assert_cmphex(types[20], ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(types[21], ==, VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID);

    /* reset with 20 frames in flight */
    g_assert_cmphex(ctx_create(gpu, 5, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE, 5, 30),
                    ==, VIRTIO_GPU_RESP_OK_NODATA);
    b.n = 0;
    batch_submits(&b, 5, 20, stream, n);
    qpvgpu_cleanup(gpu);
    qvirtio_reset(gpu->vdev);
    info = query_pvgpu();
    g_assert_cmpuint(qdict_get_int(info, "resources"), ==, 0);
    g_assert_cmpuint(qdict_get_int(info, "hostmem-used"), ==, 0);
    qobject_unref(info);

    qvirtio_set_acknowledge(gpu->vdev);
    qvirtio_set_driver(gpu->vdev);
    pvgpu_setup_3d(gpu, alloc);
    g_assert_cmphex(ctx_create(gpu, 5, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    rt = make_rt(gpu, 5, 30, 16, 16);
    n = clear_stream(dw, 30, red);
    g_assert_cmphex(submit_3d(gpu, 5, dw, n, VIRTIO_GPU_FLAG_FENCE, 1), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    check_rt(gpu, 5, 30, rt, 16, 16, 0xff0000);
}

/*
 * Hot-plug a 3D pvgpu, keep its render thread busy and unplug it with the
 * work in flight: the thread stops cleanly.  virglrenderer cannot start
 * twice in one process, so a second 3D device is then refused clearly,
 * and with virgl=auto one comes up as 2D.
 */
/* --- blobs --------------------------------------------------------------- */

#define VIRGL_CCMD_PIPE_RESOURCE_CREATE 48
#define PIPE_BUFFER                 0
#define VIRGL_FORMAT_R8_UNORM       64
#define VIRGL_BIND_VERTEX_BUFFER    (1 << 4)
#define VIRGL_RESOURCE_FLAG_MAP_PERSISTENT (1 << 1)
#define VIRGL_RESOURCE_FLAG_MAP_COHERENT   (1 << 2)

/* data: true to negotiate VIRGL too (blobs through the renderer) */
static void pvgpu_setup_blob(QPvgpu *gpu, QGuestAllocator *alloc, bool virgl)
{
    uint64_t f = qpvgpu_init(gpu, alloc,
                             (1ull << VIRTIO_F_VERSION_1) |
                             (1ull << VIRTIO_GPU_F_RESOURCE_BLOB) |
                             (virgl ? (1ull << VIRTIO_GPU_F_VIRGL) |
                                      (1ull << VIRTIO_GPU_F_CONTEXT_INIT)
                                    : 0));

    g_assert(f & (1ull << VIRTIO_GPU_F_RESOURCE_BLOB));
    g_assert(!!(f & (1ull << VIRTIO_GPU_F_VIRGL)) == virgl);
}

static uint32_t create_blob(QPvgpu *gpu, uint32_t ctx, uint32_t id,
                            uint32_t mem, uint32_t flags, uint64_t blob_id,
                            uint64_t size,
                            const struct virtio_gpu_mem_entry *e, unsigned n)
{
    struct virtio_gpu_resource_create_blob c = { 0 };
    const void *parts[2] = { &c, e };
    size_t sizes[2] = { sizeof(c), n * sizeof(*e) };
    struct virtio_gpu_ctrl_hdr resp;

    hdr_init(&c.hdr, VIRTIO_GPU_CMD_RESOURCE_CREATE_BLOB);
    c.hdr.ctx_id = cpu_to_le32(ctx);
    c.resource_id = cpu_to_le32(id);
    c.blob_mem = cpu_to_le32(mem);
    c.blob_flags = cpu_to_le32(flags);
    c.nr_entries = cpu_to_le32(n);
    c.blob_id = cpu_to_le64(blob_id);
    c.size = cpu_to_le64(size);
    g_assert_cmpuint(qpvgpu_ctrl_sg(gpu, parts, sizes, n ? 2 : 1, &resp,
                                    sizeof(resp)), ==, sizeof(resp));
    return le32_to_cpu(resp.type);
}

/*
 * A guest blob @id of @size bytes: scattered 4 KiB pages in reverse order
 * when @scatter, else one contiguous entry.  Returns the memory's base.
 */
static uint64_t guest_blob(QPvgpu *gpu, uint32_t id, uint64_t size,
                           bool scatter)
{
    unsigned n = scatter ? DIV_ROUND_UP(size, 4096) : 1;
    uint64_t base = guest_alloc(gpu->alloc, ROUND_UP(size, 4096));
    g_autofree struct virtio_gpu_mem_entry *e = g_new0(
        struct virtio_gpu_mem_entry, n);

    for (unsigned i = 0; i < n; i++) {
        e[i].addr = cpu_to_le64(scatter ? base + (uint64_t)(n - 1 - i) * 4096
                                        : base);
        e[i].length = cpu_to_le32(scatter ? MIN(4096, size - i * 4096ull)
                                          : size);
    }
    g_assert_cmphex(create_blob(gpu, 0, id, VIRTIO_GPU_BLOB_MEM_GUEST,
                                VIRTIO_GPU_BLOB_FLAG_USE_SHAREABLE, 0, size,
                                e, n), ==, VIRTIO_GPU_RESP_OK_NODATA);
    return base;
}

/* Write @len bytes at blob offset @off of a blob made by guest_blob() */
static void blob_write(uint64_t base, bool scatter, uint64_t size,
                       uint64_t off, const void *data, uint64_t len)
{
    unsigned n = DIV_ROUND_UP(size, 4096);

    while (len) {
        uint64_t page = off / 4096, in = off % 4096;
        uint64_t chunk = MIN(len, 4096 - in);
        uint64_t addr = scatter ? base + (n - 1 - page) * 4096 + in
                                : base + off;

        memwrite(addr, data, chunk);
        data = (const uint8_t *)data + chunk;
        off += chunk;
        len -= chunk;
    }
}

static uint32_t set_scanout_blob(QPvgpu *gpu, uint32_t scanout, uint32_t id,
                                 uint32_t fb_w, uint32_t fb_h,
                                 uint32_t stride, uint32_t offset,
                                 uint32_t x, uint32_t y, uint32_t w,
                                 uint32_t h)
{
    struct virtio_gpu_set_scanout_blob c = { 0 };

    hdr_init(&c.hdr, VIRTIO_GPU_CMD_SET_SCANOUT_BLOB);
    rect_set(&c.r, x, y, w, h);
    c.scanout_id = cpu_to_le32(scanout);
    c.resource_id = cpu_to_le32(id);
    c.width = cpu_to_le32(fb_w);
    c.height = cpu_to_le32(fb_h);
    c.format = cpu_to_le32(FMT_XRGB);
    c.strides[0] = cpu_to_le32(stride);
    c.offsets[0] = cpu_to_le32(offset);
    return ctrl_nodata(gpu, &c, sizeof(c));
}

/*
 * SET_SCANOUT_BLOB shows guest memory: scattered (through a shadow copy,
 * refreshed by RESOURCE_FLUSH) and contiguous (aliased); with an offset,
 * a padded stride and a sub-rectangle; and every refusal.
 */
static void test_blob_scanout(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    bool virgl = data != NULL;
    const uint32_t W = 96, H = 64, STRIDE = W * 4 + 64, OFF = 4096;
    const uint64_t SIZE = OFF + (uint64_t)STRIDE * H;
    g_autofree uint32_t *row = g_new(uint32_t, W);
    struct virtio_gpu_mem_entry e = { 0 };
    struct virtio_gpu_resource_map_blob m = { 0 };
    QDict *info, *so;

    pvgpu_setup_blob(gpu, alloc, virgl);
    for (int scatter = 1; scatter >= 0; scatter--) {
        uint32_t id = 10 + scatter;
        uint64_t base = guest_blob(gpu, id, SIZE, scatter);
        g_autofree uint32_t *shot = NULL;
        int sw, sh;

        for (uint32_t y = 0; y < H; y++) {
            for (uint32_t x = 0; x < W; x++) {
                row[x] = cpu_to_le32(pattern(x, y));
            }
            blob_write(base, scatter, SIZE, OFF + (uint64_t)y * STRIDE, row,
                       W * 4);
        }
        /* a 64x40 window at (8,16) of the 96x64 framebuffer */
        g_assert_cmphex(set_scanout_blob(gpu, 0, id, W, H, STRIDE, OFF,
                                         8, 16, 64, 40), ==,
                        VIRTIO_GPU_RESP_OK_NODATA);
        /* Linux sends transfers for blob dumb buffers: harmless */
        g_assert_cmphex(transfer_2d(gpu, id, 0, 0, W, H, 0), ==,
                        VIRTIO_GPU_RESP_OK_NODATA);
        g_assert_cmphex(flush(gpu, id, 0, 0, W, H), ==,
                        VIRTIO_GPU_RESP_OK_NODATA);
        check_screen_pattern(64, 40, 8, 16);

        /*
         * Rewrite row 20 entirely but flush only x 10..19 of it: a shadow
         * copy shows just the flushed part, an alias all of it.
         */
        for (uint32_t x = 0; x < W; x++) {
            row[x] = cpu_to_le32(0x00ff00ff);
        }
        blob_write(base, scatter, SIZE, OFF + 20ull * STRIDE, row, W * 4);
        g_assert_cmphex(flush(gpu, id, 10, 20, 10, 1), ==,
                        VIRTIO_GPU_RESP_OK_NODATA);
        shot = screendump(&sw, &sh);
        for (int x = 0; x < sw; x++) {
            bool flushed = x + 8 >= 10 && x + 8 < 20;

            g_assert_cmphex(shot[(20 - 16) * sw + x], ==,
                            flushed || !scatter ? 0xff00ff
                                                : pattern(x + 8, 20));
        }
        info = query_pvgpu();
        so = qobject_to(QDict, qlist_peek(qdict_get_qlist(info, "scanouts")));
        g_assert_cmpint(qdict_get_int(so, "resource-id"), ==, id);
        qobject_unref(info);
    }

    /* the framebuffer must lie inside the blob */
    g_assert_cmphex(set_scanout_blob(gpu, 0, 10, W, H, STRIDE, OFF + 128,
                                     0, 0, W, H), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(set_scanout_blob(gpu, 0, 10, W, H + 1, STRIDE, OFF,
                                     0, 0, W, H), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(set_scanout_blob(gpu, 0, 10, W, H, W * 4 - 4, 0,
                                     0, 0, W, H), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(set_scanout_blob(gpu, 1, 10, W, H, STRIDE, OFF,
                                     0, 0, W, H), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID);
    g_assert_cmphex(set_scanout_blob(gpu, 0, 99, W, H, STRIDE, OFF,
                                     0, 0, W, H), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    /* only blobs: a 2D resource has no guest-memory layout to show */
    g_assert_cmphex(create_2d(gpu, 12, FMT_XRGB, W, H), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(set_scanout_blob(gpu, 0, 12, W, H, W * 4, 0, 0, 0, W, H),
                    ==, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    /* blob creation refusals */
    g_assert_cmphex(create_blob(gpu, 0, 10, VIRTIO_GPU_BLOB_MEM_GUEST, 0, 0,
                                4096, &e, 0), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    e.addr = cpu_to_le64(guest_alloc(alloc, 4096));
    e.length = cpu_to_le32(4096);
    g_assert_cmphex(create_blob(gpu, 0, 10, VIRTIO_GPU_BLOB_MEM_GUEST, 0, 0,
                                4096, &e, 1), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    g_assert_cmphex(create_blob(gpu, 0, 13, VIRTIO_GPU_BLOB_MEM_GUEST, 0, 0,
                                4097, &e, 1), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    /* not RAM: the device refuses rather than bounce-buffering it */
    e.addr = cpu_to_le64(0xfee00000);
    g_assert_cmphex(create_blob(gpu, 0, 13, VIRTIO_GPU_BLOB_MEM_GUEST, 0, 0,
                                4096, &e, 1), ==, VIRTIO_GPU_RESP_ERR_UNSPEC);
    if (!virgl) {
        /* host memory needs the renderer; so does mapping */
        g_assert_cmphex(create_blob(gpu, 0, 13, VIRTIO_GPU_BLOB_MEM_HOST3D,
                                    VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE, 1,
                                    4096, NULL, 0), ==,
                        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
        hdr_init(&m.hdr, VIRTIO_GPU_CMD_RESOURCE_MAP_BLOB);
        m.resource_id = cpu_to_le32(10);
        g_assert_cmphex(ctrl_nodata(gpu, &m, sizeof(m)), ==,
                        VIRTIO_GPU_RESP_ERR_UNSPEC);
    }

    /* unref of the blob on screen disables the scanout */
    g_assert_cmphex(unref(gpu, 10), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(set_scanout_blob(gpu, 0, 11, W, H, STRIDE, OFF,
                                     0, 0, W, H), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(unref(gpu, 11), ==, VIRTIO_GPU_RESP_OK_NODATA);
    info = query_pvgpu();
    so = qobject_to(QDict, qlist_peek(qdict_get_qlist(info, "scanouts")));
    g_assert_cmpint(qdict_get_int(so, "resource-id"), ==, 0);
    qobject_unref(info);
    g_assert_cmphex(unref(gpu, 12), ==, VIRTIO_GPU_RESP_OK_NODATA);
}

/*
 * A scanout of a scattered guest blob migrates: the destination re-maps
 * the blob's pages and shows what guest memory holds (the shadow copy is
 * rebuilt, and charged, there).
 */
static void test_migrate_blob(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    const uint32_t W = 40, H = 30, STRIDE = W * 4 + 32, OFF = 8192;
    const uint64_t SIZE = OFF + (uint64_t)STRIDE * H;
    g_autofree uint32_t *row = g_new(uint32_t, W);
    QTestState *src, *dst;
    uint64_t base;
    QDict *info;

    pvgpu_setup_blob(gpu, alloc, false);
    base = guest_blob(gpu, 5, SIZE, true);
    for (uint32_t y = 0; y < H; y++) {
        for (uint32_t x = 0; x < W; x++) {
            row[x] = cpu_to_le32(pattern(x, y));
        }
        blob_write(base, true, SIZE, OFF + (uint64_t)y * STRIDE, row, W * 4);
    }
    g_assert_cmphex(set_scanout_blob(gpu, 0, 5, W, H, STRIDE, OFF,
                                     0, 0, W, H), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);

    src = migrate_to_new();
    dst = global_qtest;
    info = query_pvgpu();
    g_assert_cmpuint(qdict_get_int(info, "resources"), ==, 1);
    g_assert_cmpuint(qdict_get_int(info, "hostmem-used"), ==, W * H * 4);
    qobject_unref(info);
    check_screen_pattern(W, H, 0, 0);
    global_qtest = src;
    qtest_quit(dst);
}

static uint32_t map_blob(QPvgpu *gpu, uint32_t id, uint64_t offset,
                         uint32_t *map_info)
{
    struct virtio_gpu_resource_map_blob m = { 0 };
    struct virtio_gpu_resp_map_info resp = { 0 };

    hdr_init(&m.hdr, VIRTIO_GPU_CMD_RESOURCE_MAP_BLOB);
    m.resource_id = cpu_to_le32(id);
    m.offset = cpu_to_le64(offset);
    qpvgpu_ctrl(gpu, &m, sizeof(m), &resp, sizeof(resp));
    if (map_info) {
        *map_info = le32_to_cpu(resp.map_info);
    }
    return le32_to_cpu(resp.hdr.type);
}

/* A host-memory buffer @id of @size bytes, made by context @ctx's stream */
static uint32_t host_blob(QPvgpu *gpu, uint32_t ctx, uint32_t id,
                          uint32_t blob_id, uint32_t size, uint32_t flags)
{
    uint32_t dw[12] = {
        VIRGL_CMD(VIRGL_CCMD_PIPE_RESOURCE_CREATE, 0, 11),
        PIPE_BUFFER, VIRGL_FORMAT_R8_UNORM, VIRGL_BIND_VERTEX_BUFFER,
        size, 1, 1, 1, 0, 0,
        VIRGL_RESOURCE_FLAG_MAP_PERSISTENT | VIRGL_RESOURCE_FLAG_MAP_COHERENT,
        blob_id,
    };

    for (int i = 0; i < 12; i++) {
        dw[i] = cpu_to_le32(dw[i]);
    }
    g_assert_cmphex(submit_3d(gpu, ctx, dw, sizeof(dw), 0, 0), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    return create_blob(gpu, ctx, id, VIRTIO_GPU_BLOB_MEM_HOST3D, flags,
                       blob_id, size, NULL, 0);
}

/*
 * Host-visible blobs: the guest sees the renderer's memory in the hostmem
 * BAR where it mapped it, the same bytes wherever it maps them, and
 * nothing once unmapped.
 */
static void test_blob_map(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    QPvgpuPCI *pci = container_of(gpu, QPvgpuPCI, gpu);
    QPCIDevice *pdev = pci->pci_vdev.pdev;
    const uint32_t SIZE = 16384;
    g_autofree uint8_t *buf = g_malloc(SIZE);
    g_autofree uint8_t *back = g_malloc(SIZE);
    uint32_t map_info = 0xdead;
    uint64_t bar_size;
    QPCIBar bar;

    pvgpu_setup_blob(gpu, alloc, true);
    bar = qpci_iomap(pdev, 4, &bar_size);
    g_assert_cmpuint(bar_size, ==, 1 * MiB);
    g_assert_cmphex(ctx_create(gpu, 1, 2), ==, VIRTIO_GPU_RESP_OK_NODATA);

    /* host memory belongs to a context */
    g_assert_cmphex(create_blob(gpu, 9, 20, VIRTIO_GPU_BLOB_MEM_HOST3D,
                                VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE, 1, SIZE,
                                NULL, 0), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID);
    /*
     * A blob_id the context never made: the renderer refuses.  The id
     * stays taken until the guest unrefs it, and nothing else takes it.
     */
    g_assert_cmphex(create_blob(gpu, 1, 20, VIRTIO_GPU_BLOB_MEM_HOST3D,
                                VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE, 4242, SIZE,
                                NULL, 0), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(host_blob(gpu, 1, 20, 1, SIZE,
                              VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    g_assert_cmphex(map_blob(gpu, 20, 0, NULL), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE, 1, 20),
                    ==, VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    g_assert_cmphex(resource_cmd(gpu, VIRTIO_GPU_CMD_RESOURCE_UNREF, 20),
                    ==, VIRTIO_GPU_RESP_OK_NODATA);
    /*
     * the id is free again, and the stream resource host_blob() made for
     * the create refused above is still the context's to claim
     */
    g_assert_cmphex(create_blob(gpu, 1, 20, VIRTIO_GPU_BLOB_MEM_HOST3D,
                                VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE, 1, SIZE,
                                NULL, 0), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(resource_cmd(gpu, VIRTIO_GPU_CMD_RESOURCE_UNREF, 20),
                    ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(host_blob(gpu, 1, 20, 1, SIZE,
                              VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE, 1, 20),
                    ==, VIRTIO_GPU_RESP_OK_NODATA);

    /* bad offsets */
    g_assert_cmphex(map_blob(gpu, 20, 100, NULL), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(map_blob(gpu, 20, 1 * MiB - 4096, NULL), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(map_blob(gpu, 21, 0, NULL), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);

    g_assert_cmphex(map_blob(gpu, 20, 64 * KiB, &map_info), ==,
                    VIRTIO_GPU_RESP_OK_MAP_INFO);
    g_assert_cmphex(map_info & ~VIRTIO_GPU_MAP_CACHE_MASK, ==, 0);
    g_assert_cmphex(map_info, !=, VIRTIO_GPU_MAP_CACHE_NONE);
    g_assert_cmphex(map_blob(gpu, 20, 128 * KiB, NULL), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    for (uint32_t i = 0; i < SIZE; i++) {
        buf[i] = i * 7 + 3;
    }
    qpci_memwrite(pdev, bar, 64 * KiB, buf, SIZE);
    qpci_memread(pdev, bar, 64 * KiB, back, SIZE);
    g_assert(memcmp(buf, back, SIZE) == 0);

    /* a second blob may not overlap the first */
    g_assert_cmphex(host_blob(gpu, 1, 21, 2, SIZE,
                              VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(map_blob(gpu, 21, 64 * KiB + SIZE - 4096, NULL), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(map_blob(gpu, 21, 64 * KiB + SIZE, NULL), ==,
                    VIRTIO_GPU_RESP_OK_MAP_INFO);
    /* not mappable, or guest memory: refused */
    g_assert_cmphex(host_blob(gpu, 1, 22, 3, SIZE, 0), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(map_blob(gpu, 22, 512 * KiB, NULL), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    guest_blob(gpu, 23, 4096, false);
    g_assert_cmphex(map_blob(gpu, 23, 512 * KiB, NULL), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);

    /* unmapped, the bytes stay in the renderer's memory */
    g_assert_cmphex(resource_cmd(gpu, VIRTIO_GPU_CMD_RESOURCE_UNMAP_BLOB, 20),
                    ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(resource_cmd(gpu, VIRTIO_GPU_CMD_RESOURCE_UNMAP_BLOB, 20),
                    ==, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    qpci_memread(pdev, bar, 64 * KiB, back, SIZE);
    g_assert(memcmp(buf, back, SIZE) != 0);
    g_assert_cmphex(map_blob(gpu, 20, 768 * KiB, NULL), ==,
                    VIRTIO_GPU_RESP_OK_MAP_INFO);
    qpci_memread(pdev, bar, 768 * KiB, back, SIZE);
    g_assert(memcmp(buf, back, SIZE) == 0);

    /* unref while mapped takes it out of the BAR too */
    g_assert_cmphex(unref(gpu, 20), ==, VIRTIO_GPU_RESP_OK_NODATA);
    qpci_memread(pdev, bar, 768 * KiB, back, SIZE);
    g_assert(memcmp(buf, back, SIZE) != 0);
    g_assert_cmphex(unref(gpu, 22), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(unref(gpu, 23), ==, VIRTIO_GPU_RESP_OK_NODATA);

    /*
     * A reset with blob 21 mapped: its region leaves the BAR at once, the
     * renderer lets go of its memory once the region is released, and
     * only then does the driver's next command run (re-using the ids
     * proves the old resource is gone by then).
     */
    qpci_memwrite(pdev, bar, 64 * KiB + SIZE, buf, SIZE);
    qpvgpu_cleanup(gpu);
    qvirtio_reset(gpu->vdev);
    qpci_memread(pdev, bar, 64 * KiB + SIZE, back, SIZE);
    g_assert(memcmp(buf, back, SIZE) != 0);
    qvirtio_set_acknowledge(gpu->vdev);
    qvirtio_set_driver(gpu->vdev);
    pvgpu_setup_blob(gpu, alloc, true);
    g_assert_cmphex(ctx_create(gpu, 1, 2), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(host_blob(gpu, 1, 21, 2, SIZE,
                              VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(map_blob(gpu, 21, 64 * KiB + SIZE, NULL), ==,
                    VIRTIO_GPU_RESP_OK_MAP_INFO);
    qpci_memread(pdev, bar, 64 * KiB + SIZE, back, SIZE);
    g_assert(memcmp(buf, back, SIZE) != 0);
    qpci_iounmap(pdev, bar);
}

/*
 * A context destroyed right behind its fenced work: every fence still
 * signals.  (virglrenderer drops the fences made while a context was
 * current when it is destroyed first; the device must wait for them.)
 */
static void test_destroy_pending_fence(void *obj, void *data,
                                       QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    static const float c[4] = { 0.5, 0.25, 0.125, 1 };
    struct virtio_gpu_ctrl_hdr destroy;
    uint32_t dw[32], types[4];
    uint64_t stream;
    size_t n;

    pvgpu_setup_3d(gpu, alloc);
    g_assert_cmphex(ctx_create(gpu, 40, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    make_rt(gpu, 40, 31, 1024, 1024);
    n = clear_stream(dw, 31, c);
    stream = guest_alloc(alloc, n);
    memwrite(stream, dw, n);
    for (uint32_t ctx = 40; ctx < 60; ctx++) {
        Batch b = { .gpu = gpu };

        if (ctx > 40) {
            g_assert_cmphex(ctx_create(gpu, ctx, 0), ==,
                            VIRTIO_GPU_RESP_OK_NODATA);
            g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE,
                                    ctx, 31), ==, VIRTIO_GPU_RESP_OK_NODATA);
        }
        batch_submits(&b, ctx, 2, stream, n);
        hdr_init(&destroy, VIRTIO_GPU_CMD_CTX_DESTROY);
        destroy.ctx_id = cpu_to_le32(ctx);
        batch_add(&b, &destroy, sizeof(destroy), 0, 0);
        batch_drain(&b, types);
        for (unsigned i = 0; i < 3; i++) {
            g_assert_cmphex(types[i], ==, VIRTIO_GPU_RESP_OK_NODATA);
        }
    }
}

/* --- resets and ordering with work in flight ----------------------------- */

/* A stream that keeps the GPU busy: @clears clears of a 1024x1024 @res. */
static size_t busy_stream(uint32_t *dw, uint32_t res, unsigned clears)
{
    static const float rgba[2][4] = { { 1, 0, 0, 1 }, { 0, 0, 1, 1 } };
    size_t n = clear_stream(dw, res, rgba[0]) / 4;
    size_t one = 9;         /* the CLEAR command at the end of it */

    for (unsigned i = 1; i < clears; i++) {
        memcpy(&dw[n], &dw[n - one], one * 4);
        for (int c = 0; c < 4; c++) {
            memcpy(&dw[n + 2 + c], &rgba[i & 1][c], 4);
            dw[n + 2 + c] = cpu_to_le32(dw[n + 2 + c]);
        }
        n += one;
    }
    return n * 4;
}

/* A busy context 1 with render target 1 and a stream of @bytes for it */
static uint64_t busy_context(QPvgpu *gpu, QGuestAllocator *alloc,
                             size_t *bytes)
{
    uint32_t dw[10 + 9 * 64];
    uint64_t stream;

    g_assert_cmphex(ctx_create(gpu, 1, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    make_rt(gpu, 1, 1, 1024, 1024);
    *bytes = busy_stream(dw, 1, 64);
    g_assert_cmpuint(*bytes, <=, sizeof(dw));
    stream = guest_alloc(alloc, *bytes);
    memwrite(stream, dw, *bytes);
    return stream;
}

/*
 * A device reset while commands still wait behind a context's work, as on
 * driver unbind, kexec or reboot: an UNREF and a DETACH_BACKING that never
 * reached the renderer still release their resource, its host memory and
 * the guest memory it mapped.  (This aborted QEMU: host memory stayed
 * charged.)  @data: the UNREF asks for a fence.
 */
static void test_reset_queued(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    Batch b = { .gpu = gpu, .hold = true };
    struct virtio_gpu_resource_create_2d c = { 0 };
    struct virtio_gpu_resource_unref u = { 0 };
    struct virtio_gpu_resource_detach_backing d = { 0 };
    uint64_t stream;
    size_t n;
    QDict *info;

    pvgpu_setup_3d(gpu, alloc);
    stream = busy_context(gpu, alloc, &n);
    g_assert_cmphex(create_2d(gpu, 2, FMT_XRGB, 64, 64), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    attach_backing(gpu, 2, 64 * 64 * 4);

    batch_submits(&b, 1, 1, stream, n);
    hdr_init(&c.hdr, VIRTIO_GPU_CMD_RESOURCE_CREATE_2D);
    c.resource_id = cpu_to_le32(9);
    c.format = cpu_to_le32(FMT_XRGB);
    c.width = c.height = cpu_to_le32(256);
    batch_add(&b, &c, sizeof(c), 0, 0);
    batch_submits(&b, 1, 1, stream, n);
    hdr_init(&u.hdr, VIRTIO_GPU_CMD_RESOURCE_UNREF);
    if (data) {
        u.hdr.flags = cpu_to_le32(VIRTIO_GPU_FLAG_FENCE);
        u.hdr.fence_id = cpu_to_le64(77);
    }
    u.resource_id = cpu_to_le32(9);
    batch_add(&b, &u, sizeof(u), 0, 0);
    hdr_init(&d.hdr, VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING);
    d.resource_id = cpu_to_le32(2);
    batch_add(&b, &d, sizeof(d), 0, 0);
    u.resource_id = cpu_to_le32(2);
    batch_add(&b, &u, sizeof(u), 0, 0);
    batch_publish(&b);

    /* the driver goes away before the queue drained */
    qvirtio_reset(gpu->vdev);
    qpvgpu_cleanup(gpu);
    info = query_pvgpu();
    g_assert_cmpuint(qdict_get_int(info, "resources"), ==, 0);
    g_assert_cmpuint(qdict_get_int(info, "hostmem-used"), ==, 0);
    g_assert_cmpuint(qlist_size(qdict_get_qlist(info, "contexts")), ==, 0);
    qobject_unref(info);

    /* and comes back, reusing every id */
    qvirtio_set_acknowledge(gpu->vdev);
    qvirtio_set_driver(gpu->vdev);
    pvgpu_setup_3d(gpu, alloc);
    g_assert_cmphex(create_2d(gpu, 9, FMT_XRGB, 64, 64), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(create_2d(gpu, 2, FMT_XRGB, 64, 64), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    busy_context(gpu, alloc, &n);
}

/* The frame-rate limit, through QMP */
static void set_max_fps(int fps)
{
    QDict *rsp = qmp("{'execute': 'pvgpu-set-scheduler', 'arguments': "
                     "{'id': 'pvgpu0', 'max-fps': %d}}", fps);

    g_assert(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
}

/*
 * Resource 2 on scanout 0 at one frame a second, its first frame shown:
 * the next RESOURCE_FLUSH (@fl) waits a second, and every command queued
 * behind it that touches resource 2 or scanout 0 waits with it.
 */
static void hold_behind_flushes(QPvgpu *gpu,
                                struct virtio_gpu_resource_flush *fl)
{
    g_assert_cmphex(create_2d(gpu, 2, FMT_XRGB, 64, 64), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(set_scanout(gpu, 0, 2, 0, 0, 64, 64), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    set_max_fps(1);
    g_assert_cmphex(flush(gpu, 2, 0, 0, 64, 64), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    memset(fl, 0, sizeof(*fl));
    hdr_init(&fl->hdr, VIRTIO_GPU_CMD_RESOURCE_FLUSH);
    fl->resource_id = cpu_to_le32(2);
    fl->r.width = fl->r.height = cpu_to_le32(64);
}

/*
 * Stopping the VM (migration, savevm, stop) answers every request a 2D
 * guest queued, even a flush the frame-rate limiter holds for another
 * second: a request popped but not answered would be lost with the saved
 * state.
 */
static void test_stop_answers(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    Batch b = { .gpu = gpu, .hold = true };
    struct virtio_gpu_resource_flush fl;
    uint32_t type;
    uint16_t used;
    QDict *rsp;

    pvgpu_setup(gpu, alloc);
    rsp = qmp("{'execute': 'query-status'}");
    g_assert(qdict_get_bool(qdict_get_qdict(rsp, "return"), "running"));
    qobject_unref(rsp);
    hold_behind_flushes(gpu, &fl);
    fl.hdr.flags = cpu_to_le32(VIRTIO_GPU_FLAG_FENCE);
    fl.hdr.fence_id = cpu_to_le64(7);
    used = qtest_readw(gpu->qts, gpu->ctrl->used + 2);
    batch_add(&b, &fl, sizeof(fl), 0, 0);
    batch_publish(&b);
    qobject_unref(qmp("{'execute': 'stop'}"));
    /* answered by the time the VM stopped, not a second later */
    g_assert_cmpuint(qtest_readw(gpu->qts, gpu->ctrl->used + 2), ==,
                     (uint16_t)(used + 1));
    qobject_unref(qmp("{'execute': 'cont'}"));
    batch_drain(&b, &type);
    g_assert_cmphex(type, ==, VIRTIO_GPU_RESP_OK_NODATA);
    set_max_fps(0);
}

/*
 * A queue reset (VIRTIO_F_RING_RESET) while requests popped from the queue
 * still wait (here behind a flush the frame-rate limiter holds) or
 * execute: they take effect, but are never answered into the new ring,
 * which only sees the requests made available in it.
 */
static void test_queue_reset(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    Batch b = { .gpu = gpu, .hold = true };
    static const float c[4] = { 0, 1, 0, 1 };
    struct virtio_gpu_resource_flush fl = { 0 };
    struct virtio_gpu_ctrl_hdr req;
    struct virtio_gpu_resp_display_info info;
    uint32_t dw[32];
    uint64_t stream, f;
    size_t n, sn;

    f = qpvgpu_init(gpu, alloc, (1ull << VIRTIO_F_VERSION_1) |
                    (1ull << VIRTIO_F_RING_RESET) |
                    (1ull << VIRTIO_GPU_F_VIRGL));
    g_assert(f & (1ull << VIRTIO_F_RING_RESET));
    stream = busy_context(gpu, alloc, &n);
    sn = clear_stream(dw, 1, c);
    hold_behind_flushes(gpu, &fl);
    /* the context's work waits for the flush of a resource it has */
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE, 1, 2),
                    ==, VIRTIO_GPU_RESP_OK_NODATA);
    batch_add(&b, &fl, sizeof(fl), 0, 0);
    batch_submits(&b, 1, 4, stream, n);
    batch_publish(&b);
    qpvgpu_queue_reset(gpu, 0);
    set_max_fps(0);

    /* the context's next submission completes after all of those */
    hdr_init(&req, VIRTIO_GPU_CMD_GET_DISPLAY_INFO);
    qpvgpu_ctrl(gpu, &req, sizeof(req), &info, sizeof(info));
    g_assert_cmphex(le32_to_cpu(info.hdr.type), ==,
                    VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
    g_assert_cmphex(submit_3d(gpu, 1, dw, sn, VIRTIO_GPU_FLAG_FENCE, 500),
                    ==, VIRTIO_GPU_RESP_OK_NODATA);
    /* and nothing else ever lands in the new ring */
    g_usleep(200 * 1000);
    qtest_clock_step(gpu->qts, 100);
    g_assert_cmpuint(qtest_readw(gpu->qts, gpu->ctrl->used + 2), ==, 2);
}

/*
 * Commands see the effects of every command queued before them, even
 * those the renderer has not executed yet: MAP_BLOB then UNMAP_BLOB in one
 * notify unmaps, a MAP_BLOB after that maps again (elsewhere), and an
 * UNREF right after a MAP_BLOB waits for the map rather than failing it.
 */
static void test_blob_map_queued(void *obj, void *data,
                                 QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    Batch b = { .gpu = gpu, .hold = true };
    struct virtio_gpu_resource_map_blob m = { 0 };
    struct virtio_gpu_resource_unmap_blob um = { 0 };
    struct virtio_gpu_resource_unref u = { 0 };
    static const uint32_t expect[] = {
        VIRTIO_GPU_RESP_OK_MAP_INFO, VIRTIO_GPU_RESP_OK_NODATA,
        VIRTIO_GPU_RESP_OK_MAP_INFO, VIRTIO_GPU_RESP_OK_NODATA,
        VIRTIO_GPU_RESP_OK_MAP_INFO, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
        VIRTIO_GPU_RESP_OK_MAP_INFO, VIRTIO_GPU_RESP_OK_NODATA,
    };
    uint32_t types[ARRAY_SIZE(expect)];
    QDict *info;

    pvgpu_setup_blob(gpu, alloc, true);
    g_assert_cmphex(ctx_create(gpu, 1, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    for (uint32_t id = 5; id <= 6; id++) {
        g_assert_cmphex(host_blob(gpu, 1, id, id, 4096,
                                  VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE), ==,
                        VIRTIO_GPU_RESP_OK_NODATA);
    }

    hdr_init(&m.hdr, VIRTIO_GPU_CMD_RESOURCE_MAP_BLOB);
    hdr_init(&um.hdr, VIRTIO_GPU_CMD_RESOURCE_UNMAP_BLOB);
    hdr_init(&u.hdr, VIRTIO_GPU_CMD_RESOURCE_UNREF);
    m.resource_id = um.resource_id = cpu_to_le32(5);
    batch_add(&b, &m, sizeof(m), 0, 0);
    batch_add(&b, &um, sizeof(um), 0, 0);
    m.offset = cpu_to_le64(64 * KiB);
    batch_add(&b, &m, sizeof(m), 0, 0);
    batch_add(&b, &um, sizeof(um), 0, 0);
    /* mapped again where the first map was; the second one overlaps it */
    m.offset = 0;
    batch_add(&b, &m, sizeof(m), 0, 0);
    m.resource_id = cpu_to_le32(6);
    batch_add(&b, &m, sizeof(m), 0, 0);
    m.offset = cpu_to_le64(128 * KiB);
    batch_add(&b, &m, sizeof(m), 0, 0);
    u.resource_id = cpu_to_le32(6);
    batch_add(&b, &u, sizeof(u), 0, 0);
    batch_publish(&b);
    batch_drain(&b, types);
    for (unsigned i = 0; i < ARRAY_SIZE(expect); i++) {
        g_assert_cmphex(types[i], ==, expect[i]);
    }

    /* blob 5 is mapped at 0, blob 6 is gone */
    g_assert_cmphex(map_blob(gpu, 5, 256 * KiB, NULL), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(resource_cmd(gpu, VIRTIO_GPU_CMD_RESOURCE_UNMAP_BLOB, 5),
                    ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(resource_cmd(gpu, VIRTIO_GPU_CMD_RESOURCE_UNMAP_BLOB, 5),
                    ==, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    info = query_pvgpu();
    g_assert_cmpuint(qdict_get_int(info, "resources"), ==, 1);
    qobject_unref(info);

    /*
     * A host blob the renderer refuses (no PIPE_RESOURCE_CREATE made its
     * blob_id) with maps and an unmap queued behind it: they were
     * committed before the refusal was known, and the renderer refuses
     * the maps; the unmap is answered as if it had come after the failed
     * map.  (Under ASan this was a use-after-free of the refused blob
     * when a refused creation was undone.)
     */
    {
        Batch r = { .gpu = gpu, .hold = true };
        struct virtio_gpu_resource_create_blob cb = { 0 };
        static const uint32_t refused[] = {
            VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
            VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
            VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
            VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
        };
        uint32_t rtypes[ARRAY_SIZE(refused)];

        hdr_init(&cb.hdr, VIRTIO_GPU_CMD_RESOURCE_CREATE_BLOB);
        cb.hdr.ctx_id = cpu_to_le32(1);
        cb.resource_id = cpu_to_le32(7);
        cb.blob_mem = cpu_to_le32(VIRTIO_GPU_BLOB_MEM_HOST3D);
        cb.blob_flags = cpu_to_le32(VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE);
        cb.blob_id = cpu_to_le64(99);
        cb.size = cpu_to_le64(4096);
        batch_add(&r, &cb, sizeof(cb), 0, 0);
        m.resource_id = um.resource_id = cpu_to_le32(7);
        m.offset = cpu_to_le64(512 * KiB);
        batch_add(&r, &m, sizeof(m), 0, 0);
        batch_add(&r, &um, sizeof(um), 0, 0);
        m.offset = cpu_to_le64(576 * KiB);
        batch_add(&r, &m, sizeof(m), 0, 0);
        batch_publish(&r);
        batch_drain(&r, rtypes);
        for (unsigned i = 0; i < ARRAY_SIZE(refused); i++) {
            g_assert_cmphex(rtypes[i], ==, refused[i]);
        }
        /* its id stays taken, by a record nothing but UNREF takes */
        info = query_pvgpu();
        g_assert_cmpuint(qdict_get_int(info, "resources"), ==, 2);
        qobject_unref(info);
        g_assert_cmphex(map_blob(gpu, 7, 0, NULL), ==,
                        VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
        g_assert_cmphex(resource_cmd(gpu, VIRTIO_GPU_CMD_RESOURCE_UNREF, 7),
                        ==, VIRTIO_GPU_RESP_OK_NODATA);
        info = query_pvgpu();
        g_assert_cmpuint(qdict_get_int(info, "resources"), ==, 1);
        qobject_unref(info);
    }
}

/*
 * Linux attaches a resource to its context once per GEM handle, and
 * drmModeGetFB makes a second handle: two attaches, two detaches, and the
 * resource stays usable until the last one.
 */
static void test_ctx_attach_count(void *obj, void *data,
                                  QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;

    pvgpu_setup_3d(gpu, alloc);
    g_assert_cmphex(ctx_create(gpu, 1, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    make_rt(gpu, 1, 3, 32, 32);
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE, 1, 3), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_DETACH_RESOURCE, 1, 3), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(transfer_3d(gpu, VIRTIO_GPU_CMD_TRANSFER_FROM_HOST_3D, 1,
                                3, 32, 32), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_DETACH_RESOURCE, 1, 3), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(transfer_3d(gpu, VIRTIO_GPU_CMD_TRANSFER_FROM_HOST_3D, 1,
                                3, 32, 32), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    /* more detaches than attaches: the driver lost count */
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_DETACH_RESOURCE, 1, 3), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    /* attached again, the renderer lets the context use it again */
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE, 1, 3), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(transfer_3d(gpu, VIRTIO_GPU_CMD_TRANSFER_FROM_HOST_3D, 1,
                                3, 32, 32), ==, VIRTIO_GPU_RESP_OK_NODATA);
}

/*
 * Read the server's messages until a cursor (RichCursor pseudo-encoding)
 * arrives; its hotspot, size and pixels, in the server's 32-bit format.
 */
static uint32_t *vnc_read_cursor(int fd, uint16_t *hot_x, uint16_t *hot_y,
                                 uint16_t *w, uint16_t *h)
{
    gint64 deadline = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;
    uint8_t msg[16];

    for (;;) {
        g_assert(g_get_monotonic_time() < deadline);
        sock_read_all(fd, msg, 1);
        if (msg[0] == 2) {                      /* Bell */
            continue;
        }
        if (msg[0] == 3) {                      /* ServerCutText */
            g_autofree char *text = NULL;

            sock_read_all(fd, msg, 7);
            text = g_malloc(ldl_be_p(msg + 3) + 1);
            sock_read_all(fd, text, ldl_be_p(msg + 3));
            continue;
        }
        g_assert_cmpuint(msg[0], ==, 0);        /* FramebufferUpdate */
        sock_read_all(fd, msg, 3);
        for (unsigned r = lduw_be_p(msg + 1); r; r--) {
            uint16_t rw, rh;
            int32_t enc;
            size_t px;

            sock_read_all(fd, msg, 12);
            rw = lduw_be_p(msg + 4);
            rh = lduw_be_p(msg + 6);
            enc = (int32_t)ldl_be_p(msg + 8);
            px = (size_t)rw * rh * 4;
            if (enc == -239) {                  /* RichCursor */
                uint32_t *pixels = g_malloc(px);
                g_autofree uint8_t *mask = g_malloc((rw + 7) / 8 * rh);

                sock_read_all(fd, pixels, px);
                sock_read_all(fd, mask, (rw + 7) / 8 * rh);
                *hot_x = lduw_be_p(msg);
                *hot_y = lduw_be_p(msg + 2);
                *w = rw;
                *h = rh;
                return pixels;
            }
            g_assert_cmpint(enc, ==, 0);        /* Raw */
            while (px) {
                uint8_t skip[4096];
                size_t k = MIN(px, sizeof(skip));

                sock_read_all(fd, skip, k);
                px -= k;
            }
        }
    }
}

/*
 * Linux makes its cursor a guest blob when the device offers blobs: no
 * width or height, 64x64 BGRA in guest memory.  It is shown like a 2D
 * one, with and without 3D; a VNC client sees it.
 */
static void test_cursor_blob(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    g_autofree char *path = g_strdup_printf("%s/pvgpu-vnc-%d.sock",
                                            g_get_tmp_dir(), getpid());
    static const uint8_t set_encodings[12] = {
        2, 0, 0, 2, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x11,   /* raw, -239 */
    };
    static const uint8_t update_request[10] = {
        3, 0, 0, 0, 0, 0, 0x10, 0, 0x10, 0,
    };
    g_autofree uint32_t *img = g_new(uint32_t, 64 * 64);
    g_autofree uint32_t *shown = NULL;
    struct virtio_gpu_update_cursor c = { 0 };
    uint16_t hx, hy, w, h;
    uint64_t base;
    int fd;

    pvgpu_setup_blob(gpu, alloc, data != NULL);
    for (unsigned i = 0; i < 64 * 64; i++) {
        img[i] = cpu_to_le32(0xff000000 | pattern(i % 64, i / 64));
    }
    /* a 4-page blob scattered over guest memory, the image across pages */
    base = guest_blob(gpu, 9, 64 * 64 * 4, true);
    blob_write(base, true, 64 * 64 * 4, 0, img, 64 * 64 * 4);

    fd = vnc_connect(path);
    sock_write_all(fd, set_encodings, sizeof(set_encodings));
    sock_write_all(fd, update_request, sizeof(update_request));

    hdr_init(&c.hdr, VIRTIO_GPU_CMD_UPDATE_CURSOR);
    c.resource_id = cpu_to_le32(9);
    c.hot_x = cpu_to_le32(5);
    c.hot_y = cpu_to_le32(7);
    c.pos.x = cpu_to_le32(100);
    c.pos.y = cpu_to_le32(50);
    qpvgpu_cursor(gpu, &c, sizeof(c));

    shown = vnc_read_cursor(fd, &hx, &hy, &w, &h);
    g_assert_cmpuint(w, ==, 64);
    g_assert_cmpuint(h, ==, 64);
    g_assert_cmpuint(hx, ==, 5);
    g_assert_cmpuint(hy, ==, 7);
    for (unsigned i = 0; i < 64 * 64; i++) {
        g_assert_cmphex(le32_to_cpu(shown[i]) & 0xffffff, ==,
                        pattern(i % 64, i / 64) & 0xffffff);
    }
    close(fd);
    unlink(path);

    /* too small to hold a cursor: refused (logged), QEMU unharmed */
    guest_blob(gpu, 10, 4096, false);
    c.resource_id = cpu_to_le32(10);
    qpvgpu_cursor(gpu, &c, sizeof(c));
    g_assert_cmphex(unref(gpu, 10), ==, VIRTIO_GPU_RESP_OK_NODATA);
}

/*
 * Fence order: Linux signals, with each fence it gets back, every earlier
 * fence of the same timeline (all fences without a ring share one).  The
 * scheduler runs a light context's submission before a heavy context's
 * earlier ones, but the answers still come in fence order.
 */
static void test_fence_order(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    Batch b = { .gpu = gpu, .hold = true };
    static const float c[4] = { 0, 0, 1, 1 };
    uint32_t dw[32], prev = 0;
    uint64_t stream, small;
    size_t n, sn;
    QDict *rsp;

    pvgpu_setup_3d(gpu, alloc);
    rsp = qmp("{'execute': 'pvgpu-set-scheduler', 'arguments': "
              "{'id': 'pvgpu0', 'policy': 'equal-share', "
              "'quantum-us': 100}}");
    g_assert(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
    stream = busy_context(gpu, alloc, &n);
    g_assert_cmphex(ctx_create(gpu, 2, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    make_rt(gpu, 2, 2, 64, 64);
    sn = clear_stream(dw, 2, c);
    small = guest_alloc(alloc, sn);
    memwrite(small, dw, sn);

    /* fences 1-3 for the heavy context, 4 for the light one */
    batch_submits(&b, 1, 3, stream, n);
    batch_submits(&b, 2, 1, small, sn);
    batch_publish(&b);
    for (unsigned done = 0; done < b.n;) {
        gint64 deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
        uint32_t idx, len, fence = 0;

        while (!qvirtqueue_get_buf(gpu->qts, gpu->ctrl, &idx, &len)) {
            g_assert(g_get_monotonic_time() < deadline);
            qtest_clock_step(gpu->qts, 100);
            g_usleep(1000);
        }
        for (unsigned i = 0; i < b.n; i++) {
            if (b.head[i] == idx) {
                fence = i + 1;
            }
        }
        g_assert_cmpuint(qtest_readl(gpu->qts, b.resp[fence - 1]), ==,
                         VIRTIO_GPU_RESP_OK_NODATA);
        g_assert_cmpuint(fence, >, prev);
        prev = fence;
        done++;
    }
}

/*
 * Requests never waited for (the class of CVE-2016-5403): a guest that
 * resets a queue over and over while its requests are held (here by the
 * frame-rate limiter) must not make QEMU keep an unbounded number of
 * them.  With 256 orphaned requests the device stops popping, and starts
 * again once they drain.
 */
static void test_orphan_bound(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    struct virtio_gpu_resource_flush fl = { 0 };
    struct virtio_gpu_ctrl_hdr req;
    uint32_t types[1];
    Batch last = { .gpu = gpu, .hold = true };

    g_assert(qpvgpu_init(gpu, alloc, (1ull << VIRTIO_F_VERSION_1) |
                         (1ull << VIRTIO_F_RING_RESET) |
                         (1ull << VIRTIO_GPU_F_VIRGL)) &
             (1ull << VIRTIO_F_RING_RESET));
    hold_behind_flushes(gpu, &fl);
    /*
     * 256 orphans after four rounds.  The limiter lets one flush go per
     * second: once it has, 255 are left and the fifth round is taken off
     * the ring too (the count only rises at the queue's next reset), so
     * the bound is 256 plus one ring, and the last request waits for as
     * long as 64 more flushes take, whatever the host's speed
     */
    for (int round = 0; round < 5; round++) {
        Batch b = { .gpu = gpu, .hold = true };

        if (round == 4) {
            g_usleep(1200 * 1000);
        }

        for (int i = 0; i < 64; i++) {
            batch_add(&b, &fl, sizeof(fl), 0, 0);
        }
        batch_publish(&b);
        qpvgpu_queue_reset(gpu, 0);
    }
    /* 256 orphans or more: not even this is taken off the ring */
    hdr_init(&req, VIRTIO_GPU_CMD_GET_DISPLAY_INFO);
    batch_add(&last, &req, sizeof(req), 0, 0);
    batch_publish(&last);
    g_usleep(300 * 1000);
    qtest_clock_step(gpu->qts, 100);
    g_assert_cmpuint(qtest_readw(gpu->qts, gpu->ctrl->used + 2), ==, 0);

    /* once they are done, it is */
    set_max_fps(0);
    batch_drain(&last, types);
    g_assert_cmphex(types[0], ==, VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
}

/*
 * DMA re-entrancy (the class of CVE-2024-3446): a fenced request whose
 * response buffer is the device's own virtio registers.  The answer comes
 * from the render thread's completion; its write must not reach the
 * registers (here it would write 0 to device_status: a reset from inside
 * the completion), and the device carries on.
 */
static void test_dma_reentrancy(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    QVirtioPCIDevice *pci = container_of(gpu->vdev, QVirtioPCIDevice, vdev);
    static const float c[4] = { 1, 1, 0, 1 };
    struct virtio_gpu_cmd_submit sub = { 0 };
    struct virtio_gpu_ctrl_hdr req;
    struct virtio_gpu_resp_display_info info;
    uint64_t regs = pci->bar.addr + pci->common_cfg_offset;
    uint32_t dw[32], head, len;
    uint64_t a, stream;
    uint8_t status;
    size_t n;

    pvgpu_setup_3d(gpu, alloc);
    g_assert_cmphex(ctx_create(gpu, 1, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    make_rt(gpu, 1, 1, 64, 64);
    n = clear_stream(dw, 1, c);
    stream = guest_alloc(alloc, n);
    memwrite(stream, dw, n);
    status = qpci_io_readb(pci->pdev, pci->bar, pci->common_cfg_offset +
                           offsetof(struct virtio_pci_common_cfg,
                                    device_status));
    g_assert_cmphex(status & VIRTIO_CONFIG_S_DRIVER_OK, ==,
                    VIRTIO_CONFIG_S_DRIVER_OK);

    hdr_init(&sub.hdr, VIRTIO_GPU_CMD_SUBMIT_3D);
    sub.hdr.ctx_id = cpu_to_le32(1);
    sub.hdr.flags = cpu_to_le32(VIRTIO_GPU_FLAG_FENCE);
    sub.hdr.fence_id = cpu_to_le64(9);
    sub.size = cpu_to_le32(n);
    a = guest_alloc(alloc, sizeof(sub));
    memwrite(a, &sub, sizeof(sub));
    head = qvirtqueue_add(gpu->qts, gpu->ctrl, a, sizeof(sub), false, true);
    qvirtqueue_add(gpu->qts, gpu->ctrl, stream, n, false, true);
    qvirtqueue_add(gpu->qts, gpu->ctrl, regs, 24, true, false);
    qvirtqueue_kick(gpu->qts, gpu->vdev, gpu->ctrl, head);
    qvirtio_wait_used_elem(gpu->qts, gpu->vdev, gpu->ctrl, head, &len,
                           30 * 1000 * 1000);

    /* no reset happened, and the device still answers */
    status = qpci_io_readb(pci->pdev, pci->bar, pci->common_cfg_offset +
                           offsetof(struct virtio_pci_common_cfg,
                                    device_status));
    g_assert_cmphex(status & VIRTIO_CONFIG_S_DRIVER_OK, ==,
                    VIRTIO_CONFIG_S_DRIVER_OK);
    hdr_init(&req, VIRTIO_GPU_CMD_GET_DISPLAY_INFO);
    qpvgpu_ctrl(gpu, &req, sizeof(req), &info, sizeof(info));
    g_assert_cmphex(le32_to_cpu(info.hdr.type), ==,
                    VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
    g_assert_cmphex(submit_3d(gpu, 1, dw, n, VIRTIO_GPU_FLAG_FENCE, 10), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
}

/* Drive the pvgpu-pci hot-plugged at @slot as @gpu, with 3D and blobs */
static QVirtioPCIDevice *hotplug_gpu(QTestState *qts, QPCIBus *bus,
                                     QGuestAllocator *alloc, int slot,
                                     QPvgpu *gpu)
{
    QVirtioPCIDevice *dev;

    dev = virtio_pci_new(bus, &(QPCIAddress) { .devfn = QPCI_DEVFN(slot, 0) });
    g_assert_nonnull(dev);
    qvirtio_pci_device_enable(dev);
    qvirtio_start_device(&dev->vdev);
    *gpu = (QPvgpu) { .vdev = &dev->vdev, .qts = qts };
    pvgpu_setup_blob(gpu, alloc, true);
    return dev;
}

/*
 * Hot-unplug with render work in flight and a host blob mapped; then a
 * new device gets 3D again once the guest has let go of the old one's
 * memory (virglrenderer serves one device at a time).
 */
static void test_hotplug(void)
{
    QTestState *qts = qtest_init("-M pc");
    QTestState *saved = global_qtest;
    static const float c[4] = { 0.1, 0.2, 0.3, 1 };
    static const float green[4] = { 0, 1, 0, 1 };
    QGuestAllocator alloc;
    QVirtioPCIDevice *dev;
    QPvgpu gpu;
    Batch b = { .gpu = &gpu };
    uint32_t dw[32];
    uint64_t stream, backing;
    gint64 deadline;
    QPCIBus *bus;
    QDict *rsp;
    size_t n;

    global_qtest = qts;
    pc_alloc_init(&alloc, qts, ALLOC_NO_FLAGS);
    bus = qpci_new_pc(qts, &alloc);
    qtest_qmp_device_add(qts, "pvgpu-pci", "hot0",
                         "{'addr': '0x5', 'virgl': 'on', 'hostmem': 1048576}");
    dev = hotplug_gpu(qts, bus, &alloc, 5, &gpu);
    g_assert_cmphex(ctx_create(&gpu, 1, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    /* a host blob shown in the BAR: its memory must outlive the device */
    qpci_iomap(dev->pdev, 4, NULL);
    g_assert_cmphex(host_blob(&gpu, 1, 9, 1, 16384,
                              VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(map_blob(&gpu, 9, 0, NULL), ==,
                    VIRTIO_GPU_RESP_OK_MAP_INFO);
    make_rt(&gpu, 1, 1, 512, 512);
    n = clear_stream(dw, 1, c);
    stream = guest_alloc(&alloc, n);
    memwrite(stream, dw, n);
    batch_submits(&b, 1, 30, stream, n);

    qpci_unplug_acpi_device_test(qts, "hot0", 0x5);
    rsp = qtest_qmp(qts, "{'execute': 'query-pvgpu'}");
    g_assert_cmpuint(qlist_size(qdict_get_qlist(rsp, "return")), ==, 0);
    qobject_unref(rsp);
    g_free(dev);

    /* 3D again, once the old mapping's region is released */
    deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    for (;;) {
        rsp = qtest_qmp(qts, "{'execute': 'device_add', 'arguments': {"
                             "'driver': 'pvgpu-pci', 'id': 'hot1', "
                             "'addr': '0x6', 'virgl': 'on'}}");
        if (qdict_haskey(rsp, "return")) {
            qobject_unref(rsp);
            break;
        }
        g_assert(strstr(qdict_get_str(qdict_get_qdict(rsp, "error"), "desc"),
                        "virglrenderer"));
        qobject_unref(rsp);
        g_assert(g_get_monotonic_time() < deadline);
        g_usleep(20 * 1000);
    }
    dev = hotplug_gpu(qts, bus, &alloc, 6, &gpu);
    g_assert_cmphex(ctx_create(&gpu, 1, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    backing = make_rt(&gpu, 1, 1, 64, 64);
    n = clear_stream(dw, 1, green);
    g_assert_cmphex(submit_3d(&gpu, 1, dw, n, 0, 0), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    check_rt(&gpu, 1, 1, backing, 64, 64, 0x00ff00);

    /* one 3D device at a time; a 2D one beside it is fine */
    rsp = qtest_qmp(qts, "{'execute': 'device_add', 'arguments': {"
                         "'driver': 'pvgpu-pci', 'id': 'hot2', "
                         "'virgl': 'on'}}");
    g_assert(qdict_haskey(rsp, "error"));
    g_assert(strstr(qdict_get_str(qdict_get_qdict(rsp, "error"), "desc"),
                    "virglrenderer"));
    qobject_unref(rsp);
    /* virgl=auto falls back to 2D, and says why */
    qtest_qmp_device_add(qts, "pvgpu-pci", "hot3", "{'addr': '0x7'}");
    rsp = qtest_qmp_eventwait_ref(qts, "PVGPU_3D_UNAVAILABLE");
    {
        QDict *data = qdict_get_qdict(rsp, "data");

        g_assert_cmpstr(qdict_get_str(data, "id"), ==, "hot3");
        g_assert_cmpstr(qdict_get_str(data, "path"), ==,
                        "/machine/peripheral/hot3");
        g_assert(strstr(qdict_get_str(data, "reason"),
                        "virglrenderer is in use"));
    }
    qobject_unref(rsp);
    rsp = qtest_qmp(qts, "{'execute': 'query-pvgpu'}");
    g_assert_cmpuint(qlist_size(qdict_get_qlist(rsp, "return")), ==, 2);
    for (const QListEntry *e = qlist_first(qdict_get_qlist(rsp, "return")); e;
         e = qlist_next(e)) {
        QDict *d = qobject_to(QDict, qlist_entry_obj(e));
        bool is3d = !g_str_equal(qdict_get_str(d, "id"), "hot3");

        g_assert(qdict_get_bool(d, "virgl") == is3d);
        g_assert(qdict_haskey(d, "virgl-unavailable") == !is3d);
        if (!is3d) {
            g_assert(strstr(qdict_get_str(d, "virgl-unavailable"),
                            "virglrenderer is in use"));
        }
    }
    qobject_unref(rsp);

    g_free(dev);
    qpci_free_pc(bus);
    alloc_destroy(&alloc);
    global_qtest = saved;
    qtest_quit(qts);
}

/* --- QMP: scheduling, limits, statistics, events ------------------------ */

static QDict *qmp_ok(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static QDict *qmp_ok(const char *fmt, ...)
{
    va_list ap;
    QDict *rsp;

    va_start(ap, fmt);
    rsp = qtest_vqmp(global_qtest, fmt, ap);
    va_end(ap);
    g_assert(qdict_haskey(rsp, "return"));
    return rsp;
}

/* The command fails, and its error names @arg. */
static void qmp_fails(const char *arg, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);
static void qmp_fails(const char *arg, const char *fmt, ...)
{
    va_list ap;
    QDict *rsp;
    const char *desc;

    va_start(ap, fmt);
    rsp = qtest_vqmp(global_qtest, fmt, ap);
    va_end(ap);
    g_assert(qdict_haskey(rsp, "error"));
    desc = qdict_get_str(qdict_get_qdict(rsp, "error"), "desc");
    if (!strstr(desc, arg)) {
        g_error("error '%s' does not name '%s'", desc, arg);
    }
    qobject_unref(rsp);
}

static QDict *context_info(QDict *info, uint32_t ctx)
{
    QListEntry *e;

    QLIST_FOREACH_ENTRY(qdict_get_qlist(info, "contexts"), e) {
        QDict *c = qobject_to(QDict, qlist_entry_obj(e));

        if (qdict_get_int(c, "ctx-id") == ctx) {
            return c;
        }
    }
    return NULL;
}

/*
 * The run-time settings are also properties that qom-set changes after
 * realize, through QMP's checks; the old spellings max_outputs and
 * max_hostmem are aliases; every pvgpu command takes the id or the QOM
 * path of the PCI device or of its pvgpu device.
 */
static void test_qom_set(void *obj, void *data, QGuestAllocator *alloc)
{
    static const char *const ids[] = {
        "pvgpu0", "/machine/peripheral/pvgpu0",
        "/machine/peripheral/pvgpu0/virtio-backend",
    };
    QDict *info, *rsp;

    qobject_unref(qmp_ok("{'execute': 'qom-set', 'arguments': "
                         "{'path': '/machine/peripheral/pvgpu0', "
                         "'property': 'max-fps', 'value': 30}}"));
    qobject_unref(qmp_ok("{'execute': 'qom-set', 'arguments': "
                         "{'path': '/machine/peripheral/pvgpu0', "
                         "'property': 'sched-policy', 'value': 'weighted'}}"));
    qobject_unref(qmp_ok("{'execute': 'qom-set', 'arguments': "
                         "{'path': '/machine/peripheral/pvgpu0', "
                         "'property': 'sched-inflight', 'value': 4}}"));
    qobject_unref(qmp_ok("{'execute': 'qom-set', 'arguments': "
                         "{'path': '/machine/peripheral/pvgpu0', "
                         "'property': 'sched-batch-quanta', 'value': 3}}"));
    qobject_unref(qmp_ok("{'execute': 'qom-set', 'arguments': "
                         "{'path': '/machine/peripheral/pvgpu0', "
                         "'property': 'sched-solo-inflight', 'value': 0}}"));
    qobject_unref(qmp_ok("{'execute': 'qom-set', 'arguments': "
                         "{'path': '/machine/peripheral/pvgpu0', "
                         "'property': 'sched-switch-budget', 'value': 7}}"));
    qobject_unref(qmp_ok("{'execute': 'qom-set', 'arguments': "
                         "{'path': '/machine/peripheral/pvgpu0/virtio-backend',"
                         " 'property': 'max_hostmem', 'value': 16777216}}"));
    /* out of range: refused with the range, nothing changed */
    qmp_fails("property 'max-fps' expects a value from 0 to 1000, not 5000",
              "{'execute': 'qom-set', 'arguments': "
              "{'path': '/machine/peripheral/pvgpu0', "
              "'property': 'max-fps', 'value': 5000}}");
    qmp_fails("property 'max-hostmem' expects at least 1 MiB",
              "{'execute': 'qom-set', 'arguments': "
              "{'path': '/machine/peripheral/pvgpu0', "
              "'property': 'max-hostmem', 'value': 4096}}");
    /* what cannot change while the guest runs stays refused */
    qmp_fails("after it was realized", "{'execute': 'qom-set', 'arguments': "
              "{'path': '/machine/peripheral/pvgpu0', 'property': 'xres', "
              "'value': 640}}");
    info = query_pvgpu();
    g_assert_cmpuint(qdict_get_int(info, "max-fps"), ==, 30);
    g_assert_cmpstr(qdict_get_str(info, "policy"), ==, "weighted");
    g_assert_cmpuint(qdict_get_int(info, "inflight"), ==, 4);
    g_assert_cmpuint(qdict_get_int(info, "batch-quanta"), ==, 3);
    g_assert_cmpuint(qdict_get_int(info, "solo-inflight"), ==, 0);
    g_assert_cmpuint(qdict_get_int(info, "switch-budget"), ==, 7);
    g_assert_cmpuint(qdict_get_int(info, "max-hostmem"), ==, 16 * 1024 * 1024);
    qobject_unref(info);
    rsp = qmp_ok("{'execute': 'qom-get', 'arguments': "
                 "{'path': '/machine/peripheral/pvgpu0', "
                 "'property': 'max-hostmem'}}");
    g_assert_cmpuint(qdict_get_int(rsp, "return"), ==, 16 * 1024 * 1024);
    qobject_unref(rsp);

    for (unsigned i = 0; i < ARRAY_SIZE(ids); i++) {
        qobject_unref(qmp_ok("{'execute': 'pvgpu-set-scheduler', "
                             "'arguments': {'id': %s, 'max-fps': %u}}",
                             ids[i], 40 + i));
        qobject_unref(qmp_ok("{'execute': 'pvgpu-set-limits', "
                             "'arguments': {'id': %s, 'max-queued': %u}}",
                             ids[i], 10 + i));
        info = query_pvgpu();
        g_assert_cmpuint(qdict_get_int(info, "max-fps"), ==, 40 + i);
        g_assert_cmpuint(qdict_get_int(info, "max-queued"), ==, 10 + i);
        qobject_unref(info);
    }
    qmp_fails("'id'", "{'execute': 'pvgpu-set-scheduler', 'arguments': "
              "{'id': '/machine/peripheral', 'max-fps': 1}}");
    qmp_fails("'inflight'", "{'execute': 'pvgpu-set-scheduler', "
              "'arguments': {'id': 'pvgpu0', 'inflight': 17}}");
    /* the settings changed are the QEMU's: the next test gets a fresh one */
    qos_invalidate_command_line();
}

static void test_qmp_scheduler(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    static const float c[4] = { 0.5, 0.5, 0.5, 1 };
    uint32_t dw[32];
    QDict *info, *ctx;
    size_t n;

    pvgpu_setup_3d(gpu, alloc);
    info = query_pvgpu();
    g_assert_cmpstr(qdict_get_str(info, "id"), ==, "pvgpu0");
    g_assert_true(qdict_get_bool(info, "virgl"));
    g_assert_cmpstr(qdict_get_str(info, "policy"), ==, "best-effort");
    g_assert_cmpuint(qdict_get_int(info, "quantum-us"), ==, 2000);
    g_assert_cmpuint(qdict_get_int(info, "batch-quanta"), ==, 16);
    g_assert_cmpuint(qdict_get_int(info, "switch-budget"), ==, 1);
    /* nothing measured: batch turns of 16 quanta */
    g_assert_cmpuint(qdict_get_int(info, "switch-cost-ns"), ==, 0);
    g_assert_cmpuint(qdict_get_int(info, "batch-turn-us"), ==, 32000);
    g_assert_cmpuint(qdict_get_int(info, "context-switches"), ==, 0);
    g_assert_cmpuint(qdict_get_int(info, "max-fps"), ==, 0);
    g_assert_cmpuint(qdict_get_int(info, "inflight"), ==, 1);
    g_assert_cmpuint(qdict_get_int(info, "solo-inflight"), ==, 0);
    qobject_unref(info);

    qobject_unref(qmp_ok("{'execute': 'pvgpu-set-scheduler', 'arguments': "
                         "{'id': 'pvgpu0', 'policy': 'weighted', "
                         "'quantum-us': 5000, 'batch-quanta': 64, "
                         "'max-fps': 120, 'solo-inflight': 3, "
                         "'switch-budget': 0}}"));
    /* bad arguments change nothing and name themselves */
    qmp_fails("'id'", "{'execute': 'pvgpu-set-scheduler', 'arguments': "
              "{'id': 'nope', 'policy': 'equal-share'}}");
    qmp_fails("'quantum-us'", "{'execute': 'pvgpu-set-scheduler', "
              "'arguments': {'id': 'pvgpu0', 'policy': 'equal-share', "
              "'quantum-us': 5}}");
    qmp_fails("'max-fps'", "{'execute': 'pvgpu-set-scheduler', "
              "'arguments': {'id': 'pvgpu0', 'max-fps': 100000}}");
    qmp_fails("'batch-quanta'", "{'execute': 'pvgpu-set-scheduler', "
              "'arguments': {'id': 'pvgpu0', 'batch-quanta': 0}}");
    qmp_fails("'batch-quanta'", "{'execute': 'pvgpu-set-scheduler', "
              "'arguments': {'id': 'pvgpu0', 'batch-quanta': 1001}}");
    qmp_fails("'solo-inflight'", "{'execute': 'pvgpu-set-scheduler', "
              "'arguments': {'id': 'pvgpu0', 'solo-inflight': 17}}");
    qmp_fails("'switch-budget'", "{'execute': 'pvgpu-set-scheduler', "
              "'arguments': {'id': 'pvgpu0', 'switch-budget': 101}}");
    qmp_fails("policy", "{'execute': 'pvgpu-set-scheduler', 'arguments': "
              "{'id': 'pvgpu0', 'policy': 'fastest'}}");
    info = query_pvgpu();
    g_assert_cmpstr(qdict_get_str(info, "policy"), ==, "weighted");
    g_assert_cmpuint(qdict_get_int(info, "quantum-us"), ==, 5000);
    g_assert_cmpuint(qdict_get_int(info, "batch-quanta"), ==, 64);
    g_assert_cmpuint(qdict_get_int(info, "max-fps"), ==, 120);
    g_assert_cmpuint(qdict_get_int(info, "solo-inflight"), ==, 3);
    g_assert_cmpuint(qdict_get_int(info, "switch-budget"), ==, 0);
    g_assert_cmpuint(qdict_get_int(info, "batch-turn-us"), ==, 320000);
    qobject_unref(info);

    /* per-context settings and statistics */
    g_assert_cmphex(ctx_create(gpu, 4, VIRTIO_GPU_CAPSET_VIRGL2), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    make_rt(gpu, 4, 40, 128, 128);
    n = clear_stream(dw, 40, c);
    for (int i = 0; i < 5; i++) {
        g_assert_cmphex(submit_3d(gpu, 4, dw, n, VIRTIO_GPU_FLAG_FENCE, i + 1),
                        ==, VIRTIO_GPU_RESP_OK_NODATA);
    }
    qobject_unref(qmp_ok("{'execute': 'pvgpu-set-context', 'arguments': "
                         "{'id': 'pvgpu0', 'ctx-id': 4, 'weight': 400, "
                         "'cap': 50, 'priority': 2}}"));
    qmp_fails("'weight'", "{'execute': 'pvgpu-set-context', 'arguments': "
              "{'id': 'pvgpu0', 'ctx-id': 4, 'weight': 0, 'cap': 10}}");
    qmp_fails("'cap'", "{'execute': 'pvgpu-set-context', 'arguments': "
              "{'id': 'pvgpu0', 'ctx-id': 4, 'cap': 101}}");
    qmp_fails("'priority'", "{'execute': 'pvgpu-set-context', 'arguments': "
              "{'id': 'pvgpu0', 'ctx-id': 4, 'priority': 4}}");
    qmp_fails("'ctx-id'", "{'execute': 'pvgpu-set-context', 'arguments': "
              "{'id': 'pvgpu0', 'ctx-id': 99, 'weight': 5}}");
    info = query_pvgpu();
    ctx = context_info(info, 4);
    g_assert_nonnull(ctx);
    g_assert_cmpstr(qdict_get_str(ctx, "capset"), ==, "virgl2");
    g_assert_cmpuint(qdict_get_int(ctx, "weight"), ==, 400);
    g_assert_cmpuint(qdict_get_int(ctx, "cap"), ==, 50);
    g_assert_cmpuint(qdict_get_int(ctx, "priority"), ==, 2);
    g_assert_cmpuint(qdict_get_int(ctx, "submissions"), ==, 5);
    g_assert_cmpuint(qdict_get_int(ctx, "gpu-time-ns"), >, 0);
    g_assert_cmpuint(qdict_get_int(ctx, "fence-latency-p50-ns"), >, 0);
    g_assert_cmpuint(qdict_get_int(ctx, "fence-latency-p99-ns"), >=,
                     qdict_get_int(ctx, "fence-latency-p50-ns"));
    /* one submission's GPU time: part of the total, and of its latency */
    g_assert_cmpuint(qdict_get_int(ctx, "batch-time-p50-ns"), >, 0);
    g_assert_cmpuint(qdict_get_int(ctx, "batch-time-p99-ns"), >=,
                     qdict_get_int(ctx, "batch-time-p50-ns"));
    g_assert_cmpuint(qdict_get_int(ctx, "batch-time-p99-ns"), <=,
                     qdict_get_int(ctx, "gpu-time-ns") * 33 / 32);
    g_assert_cmpuint(qdict_get_int(ctx, "batch-time-p99-ns"), <=,
                     qdict_get_int(ctx, "fence-latency-p99-ns"));
    g_assert_cmpuint(qdict_get_int(ctx, "queued"), ==, 0);
    g_assert_cmpuint(qdict_get_int(ctx, "resources"), ==, 1);
    g_assert_cmpuint(qdict_get_int(ctx, "errors"), ==, 0);
    qobject_unref(info);

    /* the same for people: HMP info pvgpu */
    {
        g_autofree char *hmp = qtest_hmp(global_qtest, "info pvgpu");

        if (!strstr(hmp, "pvgpu pvgpu0 (/machine/peripheral/pvgpu0): 3D "
                         "(virglrenderer), not migratable") ||
            !strstr(hmp, "scheduling: weighted, quantum 5000 us, batch "
                         "turns 64 quanta (now 320000 us: switches cost ") ||
            !strstr(hmp, " ms, budget 0 %), max-fps 120, inflight 1 (one "
                         "context alone 3), context switches ") ||
            !g_regex_match_simple("\\n +4 virgl2 +400 +50 +2 +[0-9.]+ +5 +0 "
                                  "+0 +[0-9.]+ +[0-9.]+ +[0-9.]+ +1 +0\\r?\\n",
                                  hmp, 0,
                                  0)) {
            g_error("unexpected info pvgpu:\n%s", hmp);
        }
    }

    /* a renderer error: counted and reported */
    dw[0] = cpu_to_le32(VIRGL_CMD(0xfe, 0, 2));
    dw[1] = dw[2] = 0;
    g_assert_cmphex(submit_3d(gpu, 4, dw, 12, 0, 0), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    {
        QDict *ev = qtest_qmp_eventwait_ref(global_qtest,
                                            "PVGPU_CONTEXT_ERROR");
        QDict *d = qdict_get_qdict(ev, "data");

        g_assert_cmpstr(qdict_get_str(d, "id"), ==, "pvgpu0");
        g_assert_cmpuint(qdict_get_int(d, "ctx-id"), ==, 4);
        g_assert_cmpstr(qdict_get_str(d, "path"), ==,
                        "/machine/peripheral/pvgpu0");
        g_assert_cmpstr(qdict_get_str(d, "command"), ==, "submit-3d");
        qobject_unref(ev);
    }
    info = query_pvgpu();
    g_assert_cmpuint(qdict_get_int(context_info(info, 4), "errors"), ==, 1);
    qobject_unref(info);

    /* destroyed contexts leave the list */
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_DESTROY, 4, 0), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    info = query_pvgpu();
    g_assert_null(context_info(info, 4));
    qobject_unref(info);
}

static void expect_quota_event(const char *quota, bool has_ctx, uint32_t ctx,
                               uint64_t limit, uint32_t suppressed)
{
    QDict *ev = qtest_qmp_eventwait_ref(global_qtest, "PVGPU_QUOTA_EXCEEDED");
    QDict *d = qdict_get_qdict(ev, "data");

    g_assert_cmpstr(qdict_get_str(d, "quota"), ==, quota);
    g_assert_cmpstr(qdict_get_str(d, "id"), ==, "pvgpu0");
    g_assert_cmpstr(qdict_get_str(d, "path"), ==, "/machine/peripheral/pvgpu0");
    g_assert_cmpint(qdict_haskey(d, "ctx-id"), ==, has_ctx);
    if (has_ctx) {
        g_assert_cmpuint(qdict_get_int(d, "ctx-id"), ==, ctx);
    }
    g_assert_cmpuint(qdict_get_int(d, "limit"), ==, limit);
    g_assert_cmpuint(qdict_get_int(d, "suppressed"), ==, suppressed);
    qobject_unref(ev);
}

static void test_quotas(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    static const float c[4] = { 0.5, 0.5, 0.5, 1 };
    uint32_t dw[32], types[64];
    Batch b = { .gpu = gpu };
    unsigned refused = 0;
    uint64_t stream;
    QDict *info;
    size_t n;

    pvgpu_setup_3d(gpu, alloc);
    qmp_fails("'max-hostmem'", "{'execute': 'pvgpu-set-limits', "
              "'arguments': {'id': 'pvgpu0', 'max-hostmem': 100}}");
    qmp_fails("'max-queued'", "{'execute': 'pvgpu-set-limits', "
              "'arguments': {'id': 'pvgpu0', 'max-queued': 0}}");
    qmp_fails("'max-contexts'", "{'execute': 'pvgpu-set-limits', "
              "'arguments': {'id': 'pvgpu0', 'max-contexts': 0}}");
    qobject_unref(qmp_ok("{'execute': 'pvgpu-set-limits', 'arguments': "
                         "{'id': 'pvgpu0', 'max-contexts': 2, "
                         "'max-resources': 3, 'max-hostmem': 1572864, "
                         "'max-queued': 1}}"));
    info = query_pvgpu();
    g_assert_cmpuint(qdict_get_int(info, "max-contexts"), ==, 2);
    g_assert_cmpuint(qdict_get_int(info, "max-resources"), ==, 3);
    g_assert_cmpuint(qdict_get_int(info, "max-hostmem"), ==, 1572864);
    g_assert_cmpuint(qdict_get_int(info, "max-queued"), ==, 1);
    qobject_unref(info);

    /* contexts: the third is refused, twice within a second: one event */
    g_assert_cmphex(ctx_create(gpu, 1, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(ctx_create(gpu, 2, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(ctx_create(gpu, 3, 0), ==,
                    VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
    expect_quota_event("contexts", false, 0, 2, 0);
    g_assert_cmphex(ctx_create(gpu, 3, 0), ==,
                    VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
    g_assert_null(qtest_qmp_event_ref(global_qtest, "PVGPU_QUOTA_EXCEEDED"));
    g_usleep(1100 * 1000);
    g_assert_cmphex(ctx_create(gpu, 3, 0), ==,
                    VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
    expect_quota_event("contexts", false, 0, 2, 1);

    /* host memory: 1.5 MiB holds one 512x512 target, not a second */
    make_rt(gpu, 1, 1, 512, 512);
    g_assert_cmphex(create_rt(gpu, 2, 512, 512), ==,
                    VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
    expect_quota_event("hostmem", false, 0, 1572864, 0);
    /* resources: three at most */
    g_assert_cmphex(create_rt(gpu, 2, 16, 16), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(create_2d(gpu, 3, FMT_XRGB, 16, 16), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(create_2d(gpu, 4, FMT_XRGB, 16, 16), ==,
                    VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
    expect_quota_event("resources", false, 0, 3, 0);

    /*
     * Queued work: with a 1 % cap the context soon has to wait for the
     * GPU, so its submissions pile up: one may wait, more are refused.
     */
    qobject_unref(qmp_ok("{'execute': 'pvgpu-set-context', 'arguments': "
                         "{'id': 'pvgpu0', 'ctx-id': 1, 'cap': 1}}"));
    n = clear_stream(dw, 1, c);
    stream = guest_alloc(alloc, n);
    memwrite(stream, dw, n);
    batch_submits(&b, 1, 12, stream, n);
    batch_drain(&b, types);
    for (unsigned i = 0; i < b.n; i++) {
        g_assert(types[i] == VIRTIO_GPU_RESP_OK_NODATA ||
                 types[i] == VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
        refused += types[i] == VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
    }
    g_assert_cmpuint(refused, >=, 1);
    /* at least one dispatched and one waiting */
    g_assert_cmpuint(refused, <=, 12 - 2);
    expect_quota_event("queued", true, 1, 1, 0);

    info = query_pvgpu();
    g_assert_cmpuint(qdict_get_int(info, "refusals"), ==, 5 + refused);
    qobject_unref(info);
}

static void test_fps_limit(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    gint64 start;

    pvgpu_setup_3d(gpu, alloc);
    g_assert_cmphex(create_2d(gpu, 1, FMT_XRGB, 64, 64), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(set_scanout(gpu, 0, 1, 0, 0, 64, 64), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    qobject_unref(qmp_ok("{'execute': 'pvgpu-set-scheduler', 'arguments': "
                         "{'id': 'pvgpu0', 'max-fps': 10}}"));
    /* five frames at 10 fps cannot complete in less than 0.4 s */
    start = g_get_monotonic_time();
    for (int i = 0; i < 5; i++) {
        g_assert_cmphex(flush(gpu, 1, 0, 0, 64, 64), ==,
                        VIRTIO_GPU_RESP_OK_NODATA);
    }
    g_assert_cmpint(g_get_monotonic_time() - start, >=, 400 * 1000);
    /* lifting the limit at run time */
    qobject_unref(qmp_ok("{'execute': 'pvgpu-set-scheduler', 'arguments': "
                         "{'id': 'pvgpu0', 'max-fps': 0}}"));
    g_assert_cmphex(flush(gpu, 1, 0, 0, 64, 64), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
}

/* --- fairness benchmark (PVGPU_BENCH=1, scripts/bench-fairness.sh) ------ */

/* the device's default sched-batch-quanta */
#define DEFAULT_BATCH 16

/*
 * Contexts that keep @depth submissions outstanding, refilled as they
 * complete, so each always has work queued.  Descriptor slots are reused:
 * slot k owns descriptors 3k..3k+2 (request, stream, response).
 */
typedef struct Load {
    uint32_t ctx;
    uint64_t stream;
    size_t len;
    unsigned depth;
    unsigned first_slot;
    unsigned outstanding;
    uint64_t completed;
    uint32_t flush_res;         /* RESOURCE_FLUSHes of it, not SUBMIT_3D */
    GArray *latency_us;         /* if set: post to answer, as the guest sees */
} Load;

/*
 * Lower every thread of @qts's QEMU but its main loop to nice 10.  The
 * benchmarks' harness plays guest drivers over qtest, each step a round
 * trip to a main loop; with every core busy rendering it fell behind
 * (bench-pool: polled each VM only every 9 ms or so without the pool,
 * and found busy VMs with nothing queued at 8 % of its polls), and then
 * it measured itself.  A guest's driver writes its rings itself:
 * rendering below the main loop and the harness gives the same, queues
 * that stay full.  Threads the render thread starts later (a
 * renderer's) inherit it.
 */
static void renice_render(QTestState *qts)
{
    pid_t pid = qtest_pid(qts);
    g_autofree char *path = g_strdup_printf("/proc/%d/task", (int)pid);
    GDir *dir = g_dir_open(path, 0, NULL);
    const char *name;

    g_assert(dir);
    while ((name = g_dir_read_name(dir))) {
        pid_t tid = atoi(name);

        if (tid != pid) {
            setpriority(PRIO_PROCESS, tid, 10);
        }
    }
    g_dir_close(dir);
}

typedef struct Bench {
    QPvgpu *gpu;
    QGuestAllocator *alloc;
    Load *loads[8];
    unsigned nloads;
    int slot_load[128];         /* slot -> load index, -1 free */
    uint64_t slot_addr[128];
    gint64 slot_posted[128];
    unsigned next_slot;
    /* bench_run()'s polls, and those that found a load with nothing out */
    unsigned polls, dry;
} Bench;

/*
 * Each load owns @depth slots; a slot's request and descriptors are
 * written once, so posting it again is a single avail-ring entry: the
 * harness must keep up with the GPU or it, not the scheduler, decides.
 */
static void bench_post(Bench *b, unsigned l)
{
    Load *load = b->loads[l];
    unsigned k;

    for (k = load->first_slot; b->slot_load[k] >= 0; k++) {
        g_assert_cmpuint(k, <, load->first_slot + load->depth);
    }
    if (!b->slot_addr[k] && load->flush_res) {
        struct virtio_gpu_resource_flush f = { 0 };

        b->slot_addr[k] = guest_alloc(b->alloc, sizeof(f) + 24);
        hdr_init(&f.hdr, VIRTIO_GPU_CMD_RESOURCE_FLUSH);
        f.resource_id = cpu_to_le32(load->flush_res);
        f.r.width = f.r.height = cpu_to_le32(64);
        memwrite(b->slot_addr[k], &f, sizeof(f));
        b->gpu->ctrl->free_head = 3 * k;
        qvirtqueue_add(b->gpu->qts, b->gpu->ctrl, b->slot_addr[k], sizeof(f),
                       false, true);
        qvirtqueue_add(b->gpu->qts, b->gpu->ctrl, b->slot_addr[k] + sizeof(f),
                       24, true, false);
    } else if (!b->slot_addr[k]) {
        struct virtio_gpu_cmd_submit c = { 0 };

        b->slot_addr[k] = guest_alloc(b->alloc, sizeof(c) + 24);
        hdr_init(&c.hdr, VIRTIO_GPU_CMD_SUBMIT_3D);
        c.hdr.ctx_id = cpu_to_le32(load->ctx);
        c.size = cpu_to_le32(load->len);
        memwrite(b->slot_addr[k], &c, sizeof(c));
        b->gpu->ctrl->free_head = 3 * k;
        qvirtqueue_add(b->gpu->qts, b->gpu->ctrl, b->slot_addr[k], sizeof(c),
                       false, true);
        qvirtqueue_add(b->gpu->qts, b->gpu->ctrl, load->stream, load->len,
                       false, true);
        qvirtqueue_add(b->gpu->qts, b->gpu->ctrl, b->slot_addr[k] + sizeof(c),
                       24, true, false);
    }
    qvirtqueue_kick(b->gpu->qts, b->gpu->vdev, b->gpu->ctrl, 3 * k);
    b->slot_load[k] = l;
    b->slot_posted[k] = g_get_monotonic_time();
    load->outstanding++;
}

static void bench_top_up(Bench *b)
{
    for (unsigned l = 0; l < b->nloads; l++) {
        while (b->loads[l]->outstanding < b->loads[l]->depth) {
            bench_post(b, l);
        }
    }
}

/* Take one answer off the ring, if there is one */
static bool bench_reap(Bench *b)
{
    uint32_t idx, len;
    int l;

    if (!qvirtqueue_get_buf(b->gpu->qts, b->gpu->ctrl, &idx, &len)) {
        return false;
    }
    l = b->slot_load[idx / 3];
    g_assert_cmpint(l, >=, 0);
    b->slot_load[idx / 3] = -1;
    b->loads[l]->outstanding--;
    b->loads[l]->completed++;
    if (b->loads[l]->latency_us) {
        gint64 us = g_get_monotonic_time() - b->slot_posted[idx / 3];

        g_array_append_val(b->loads[l]->latency_us, us);
    }
    return true;
}

static bool bench_idle(Bench *b)
{
    for (unsigned l = 0; l < b->nloads; l++) {
        if (b->loads[l]->outstanding) {
            return false;
        }
    }
    return true;
}

/* Keep every load topped up for @usecs, calling @sample every 50 ms. */
static void bench_run(Bench *b, gint64 usecs,
                      void (*sample)(Bench *b, gint64 t, void *opaque),
                      void *opaque)
{
    gint64 start = g_get_monotonic_time(), next = start;

    for (;;) {
        gint64 now = g_get_monotonic_time();

        if (now - start < usecs) {
            b->polls++;
            for (unsigned l = 0; l < b->nloads; l++) {
                if (!b->loads[l]->outstanding) {
                    b->dry++;
                    break;
                }
            }
            bench_top_up(b);
        }
        if (sample && now >= next && now - start <= usecs) {
            sample(b, now - start, opaque);
            next += 50 * 1000;
        }
        if (bench_reap(b)) {
            continue;
        }
        if (now - start >= usecs && bench_idle(b)) {
            return;
        }
        g_usleep(200);
    }
}

/*
 * A context whose every submission renders @clears clears of @size x @size
 * targets.  It alternates between two targets: Mesa's llvmpipe would fold
 * back-to-back clears of one framebuffer into one.
 */
static Load *bench_load(Bench *b, uint32_t ctx, uint32_t size,
                        unsigned clears, unsigned depth)
{
    static const float c[4] = { 0.3, 0.6, 0.9, 1 };
    Load *load = g_new0(Load, 1);
    uint32_t *dw = g_new(uint32_t, 32 + clears * 13);
    uint32_t clear[9];
    size_t n;

    g_assert_cmphex(ctx_create(b->gpu, ctx, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    for (uint32_t res = ctx; res <= ctx + 1000; res += 1000) {
        g_assert_cmphex(create_rt(b->gpu, res, size, size), ==,
                        VIRTIO_GPU_RESP_OK_NODATA);
        g_assert_cmphex(ctx_cmd(b->gpu, VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE,
                                ctx, res), ==, VIRTIO_GPU_RESP_OK_NODATA);
        /* surface object @res on resource @res, bound and cleared once */
        n = clear_stream(dw, res, c);
        g_assert_cmphex(submit_3d(b->gpu, ctx, dw, n, VIRTIO_GPU_FLAG_FENCE,
                                  1), ==, VIRTIO_GPU_RESP_OK_NODATA);
    }
    /* the CLEAR is clear_stream()'s last 9 dwords */
    memcpy(clear, &dw[n / 4 - 9], sizeof(clear));
    n = 0;
    for (unsigned i = 0; i < clears; i++) {
        dw[n++] = cpu_to_le32(VIRGL_CMD(VIRGL_CCMD_SET_FRAMEBUFFER_STATE, 0,
                                        3));
        dw[n++] = cpu_to_le32(1);
        dw[n++] = 0;
        dw[n++] = cpu_to_le32(i % 2 ? ctx + 1000 : ctx);
        memcpy(&dw[n], clear, sizeof(clear));
        n += 9;
    }
    load->ctx = ctx;
    load->len = n * 4;
    load->stream = guest_alloc(b->alloc, load->len);
    memwrite(load->stream, dw, load->len);
    load->depth = depth;
    load->first_slot = b->next_slot;
    b->next_slot += depth;
    g_assert_cmpuint(b->next_slot, <=, ARRAY_SIZE(b->slot_load));
    g_free(dw);
    b->loads[b->nloads++] = load;
    return load;
}

/* Destroy the contexts of @b's loads, which have nothing posted, and them */
static void bench_destroy_loads(Bench *b)
{
    for (unsigned i = 0; i < b->nloads; i++) {
        g_assert_cmphex(ctx_cmd(b->gpu, VIRTIO_GPU_CMD_CTX_DESTROY,
                                b->loads[i]->ctx, 0), ==,
                        VIRTIO_GPU_RESP_OK_NODATA);
        g_free(b->loads[i]);
    }
    b->nloads = 0;
}

/*
 * Keep @b's loads topped up for @usecs, then until all are answered; the
 * most submissions the device had on the GPU at once, over its contexts,
 * as query-pvgpu showed them between answers.  With @busy_ctx, only in
 * the answers where that context had work queued, of which there must be
 * some.
 */
static unsigned max_inflight_seen(Bench *b, gint64 usecs, uint32_t busy_ctx)
{
    gint64 start = g_get_monotonic_time();
    unsigned seen = 0, counted = 0;

    for (;;) {
        gint64 now = g_get_monotonic_time();
        QDict *info = query_pvgpu();
        QDict *busy = busy_ctx ? context_info(info, busy_ctx) : NULL;
        QListEntry *e;
        unsigned sum = 0;

        QLIST_FOREACH_ENTRY(qdict_get_qlist(info, "contexts"), e) {
            sum += qdict_get_int(qobject_to(QDict, qlist_entry_obj(e)),
                                 "inflight");
        }
        if (!busy_ctx || (busy && qdict_get_int(busy, "queued"))) {
            seen = MAX(seen, sum);
            counted++;
        }
        qobject_unref(info);
        if (now - start < usecs) {
            bench_top_up(b);
        }
        while (bench_reap(b)) {
            continue;
        }
        if (now - start >= usecs && bench_idle(b)) {
            g_assert_cmpuint(counted, >, 0);
            return seen;
        }
        g_assert_cmpint(now - start, <, usecs + 30 * G_USEC_PER_SEC);
    }
}

/*
 * sched-solo-inflight=2 with sched-inflight 1: a context that
 * is the only one with work gets two submissions on the GPU at once;
 * with the setting 0, or while another context keeps getting work, one
 */
static void test_solo_inflight(void *obj, void *data, QGuestAllocator *alloc)
{
    Bench b = { .gpu = obj, .alloc = alloc };

    memset(b.slot_load, -1, sizeof(b.slot_load));
    pvgpu_setup_3d(b.gpu, alloc);
    qobject_unref(qmp("{'execute': 'pvgpu-set-scheduler', 'arguments': "
                      "{'id': 'pvgpu0', 'inflight': 1, 'solo-inflight': 2}}"));

    /* submissions of about 10 ms on llvmpipe, four queued */
    bench_load(&b, 1, 1024, 40, 4);
    g_assert_cmpuint(max_inflight_seen(&b, G_USEC_PER_SEC / 4, 0), ==, 2);

    qobject_unref(qmp("{'execute': 'pvgpu-set-scheduler', 'arguments': "
                      "{'id': 'pvgpu0', 'solo-inflight': 0}}"));
    g_assert_cmpuint(max_inflight_seen(&b, G_USEC_PER_SEC / 4, 0), ==, 1);

    /*
     * a second context that keeps getting work, posted before the first:
     * one at a time again, counted while it has work queued (a harness
     * stalled for 100 ms on a loaded host would let the first run solo
     * between the second's submissions, and what is on the GPU stays)
     */
    qobject_unref(qmp("{'execute': 'pvgpu-set-scheduler', 'arguments': "
                      "{'id': 'pvgpu0', 'solo-inflight': 2}}"));
    bench_load(&b, 2, 1024, 40, 4);
    {
        Load *first = b.loads[0];

        /* nothing is posted: the slots' load indexes are free to move */
        b.loads[0] = b.loads[1];
        b.loads[1] = first;
    }
    g_assert_cmpuint(max_inflight_seen(&b, G_USEC_PER_SEC / 4, 2), ==, 1);

    bench_destroy_loads(&b);
    /* the settings are the QEMU's: the next test gets a fresh one */
    qos_invalidate_command_line();
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static gint cmp_gint64(gconstpointer a, gconstpointer b)
{
    gint64 x = *(const gint64 *)a, y = *(const gint64 *)b;

    return x < y ? -1 : x > y;
}

/* The 99th percentile of what @load's latency_us recorded, in ms */
static double load_p99_ms(Load *load)
{
    GArray *a = load->latency_us;

    if (!a->len) {
        return 0;
    }
    g_array_sort(a, cmp_gint64);
    return g_array_index(a, gint64, MIN(a->len - 1, a->len * 99 / 100)) /
           1000.0;
}

static uint64_t ctx_stat(uint32_t ctx, const char *key)
{
    QDict *info = query_pvgpu();
    QDict *c = context_info(info, ctx);
    uint64_t v = c ? qdict_get_int(c, key) : 0;

    qobject_unref(info);
    return v;
}

/* utime + stime of a /proc stat file, in ms; 0 if unreadable */
static double proc_cpu_ms(const char *path)
{
    g_autofree char *text = NULL;
    g_auto(GStrv) f = NULL;
    const char *end;

    if (!g_file_get_contents(path, &text, NULL, NULL)) {
        return 0;
    }
    end = strrchr(text, ')');
    if (!end) {
        return 0;
    }
    /* after the command's ")": field 3 (state) on; utime 14, stime 15 */
    f = g_strsplit(end + 2, " ", 0);
    if (g_strv_length(f) < 13) {
        return 0;
    }
    return (g_ascii_strtod(f[11], NULL) + g_ascii_strtod(f[12], NULL)) *
           1000.0 / sysconf(_SC_CLK_TCK);
}

/*
 * CPU time, in ms, QEMU's process has used outside its main thread: the
 * render thread and the renderer's (llvmpipe renders on threads of
 * QEMU's process); the main loop, busy with the harness's qtest
 * commands, is left out.  Time the host's hypervisor gave to others
 * (steal) does not count, which wall-clock time does.
 */
static double render_cpu_ms(void)
{
    int pid = qtest_pid(global_qtest);
    g_autofree char *all = g_strdup_printf("/proc/%d/stat", pid);
    g_autofree char *loop = g_strdup_printf("/proc/%d/task/%d/stat", pid,
                                            pid);

    return proc_cpu_ms(all) - proc_cpu_ms(loop);
}

static uint64_t dev_stat(const char *key)
{
    QDict *info = query_pvgpu();
    uint64_t v = qdict_get_int(info, key);

    qobject_unref(info);
    return v;
}

/*
 * The batch turn query-pvgpu reports, from the switch cost, budget,
 * quantum and batch quanta it reports beside it: the scheduler's rule
 * (pvgpu_sched_batch_turn())
 */
static uint64_t expected_batch_turn_us(QDict *info)
{
    uint64_t quantum_ns = qdict_get_int(info, "quantum-us") * 1000;
    uint64_t len = quantum_ns * qdict_get_int(info, "batch-quanta");
    uint64_t cost = qdict_get_int(info, "switch-cost-ns");
    uint64_t budget = qdict_get_int(info, "switch-budget"), want;
    /* 8 times the batch quanta, at most sched-batch-quanta's 1000 */
    uint64_t most = quantum_ns * MIN(8 * qdict_get_int(info, "batch-quanta"),
                                     1000);

    if (!budget || !cost) {
        return len / 1000;
    }
    want = cost * 100 / budget;
    if (want <= len) {
        return len / 1000;
    }
    return MIN(want, most) / 1000;
}

/*
 * Two contexts that always have work, on render targets of 4 MiB: the
 * device measures what a switch between them costs and, with the default
 * switch budget of 1 %, reports the batch turn that follows from it
 * (longer than 16 quanta when a switch costs more than 320 us, as on a
 * CPU renderer); with the budget 0, turns of sched-batch-quanta again.
 */
static void test_switch_budget(void *obj, void *data, QGuestAllocator *alloc)
{
    Bench b = { .gpu = obj, .alloc = alloc };
    QDict *info;
    uint64_t cost, switches;

    memset(b.slot_load, -1, sizeof(b.slot_load));
    pvgpu_setup_3d(b.gpu, alloc);
    qobject_unref(qmp("{'execute': 'pvgpu-set-scheduler', 'arguments': "
                      "{'id': 'pvgpu0', 'policy': 'equal-share'}}"));
    bench_load(&b, 1, 1024, 12, 4);
    bench_load(&b, 2, 1024, 12, 4);
    bench_run(&b, 3 * G_USEC_PER_SEC / 2, NULL, NULL);

    info = query_pvgpu();
    cost = qdict_get_int(info, "switch-cost-ns");
    switches = qdict_get_int(info, "context-switches");
    g_test_message("two busy contexts: %" PRIu64 " switches, each costs "
                   "%.2f ms: batch turns of %" PRIu64 " us", switches,
                   cost / 1e6, qdict_get_int(info, "batch-turn-us"));
    g_assert_cmpuint(switches, >, 2);
    g_assert_cmpuint(qdict_get_int(info, "switch-budget"), ==, 1);
    g_assert_cmpuint(qdict_get_int(info, "batch-turn-us"), ==,
                     expected_batch_turn_us(info));
    qobject_unref(info);

    qobject_unref(qmp("{'execute': 'pvgpu-set-scheduler', 'arguments': "
                      "{'id': 'pvgpu0', 'switch-budget': 0}}"));
    info = query_pvgpu();
    g_assert_cmpuint(qdict_get_int(info, "batch-turn-us"), ==, 32000);
    g_assert_cmpuint(qdict_get_int(info, "switch-cost-ns"), ==, cost);
    qobject_unref(info);

    bench_destroy_loads(&b);
    qos_invalidate_command_line();
}

typedef struct Shares {
    double target[3];
    uint64_t base[3];
    gint64 converged;           /* last time a sample was off target */
    double last[3];
} Shares;

static void sample_shares(Bench *b, gint64 t, void *opaque)
{
    Shares *sh = opaque;
    uint64_t g[3], sum = 0;

    for (int i = 0; i < 3; i++) {
        g[i] = ctx_stat(b->loads[i]->ctx, "gpu-time-ns") - sh->base[i];
        sum += g[i];
    }
    for (int i = 0; i < 3 && sum; i++) {
        sh->last[i] = 100.0 * g[i] / sum;
        if (fabs(sh->last[i] - 100 * sh->target[i]) > 2) {
            sh->converged = t;
        }
    }
}

/*
 * A cost in percent: the median and range of @rounds sorted per-round
 * figures, and @all, the figure over all rounds together
 */
static char *cost_text(const double *sorted, int rounds, double all)
{
    return g_strdup_printf("median %.2f%% (rounds %.2f%% to %.2f%%, all "
                           "rounds %.2f%%)", sorted[rounds / 2], sorted[0],
                           sorted[rounds - 1], all);
}

/* How much more CPU time per submission arm @m took than arm @base, % */
static double cpu_cost(const double *cpu_ms, const uint64_t *total, int m,
                       int base)
{
    double per = cpu_ms[m] / MAX(total[m], 1);
    double per_base = cpu_ms[base] / MAX(total[base], 1);

    return per_base > 0 ? 100.0 * (per / per_base - 1.0) : 0;
}

static void bench_set(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static void bench_set(const char *fmt, ...)
{
    va_list ap;
    QDict *rsp;

    va_start(ap, fmt);
    rsp = qtest_vqmp(global_qtest, fmt, ap);
    va_end(ap);
    g_assert(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
}

/*
 * The three loads, always busy, at weights 1:2:4 for @secs seconds with
 * turns of 16 quanta while only they wait, made longer by switch budget
 * @budget: their shares of the GPU time and from when they stay within
 * 2 points of the targets
 */
static void bench_shares(Bench *b, int quantum_us, int budget, int secs)
{
    Shares sh = { .target = { 1 / 7.0, 2 / 7.0, 4 / 7.0 } };

    bench_set("{'execute': 'pvgpu-set-scheduler', 'arguments': "
              "{'id': 'pvgpu0', 'policy': 'weighted', 'quantum-us': %d, "
              "'batch-quanta': %d, 'switch-budget': %d}}", quantum_us,
              DEFAULT_BATCH, budget);
    /* warm up (shader compiles, allocations), then measure from zero */
    bench_run(b, G_USEC_PER_SEC / 2, NULL, NULL);
    for (int i = 0; i < 3; i++) {
        sh.base[i] = ctx_stat(i + 1, "gpu-time-ns");
        b->loads[i]->completed = 0;
    }
    bench_run(b, secs * G_USEC_PER_SEC, sample_shares, &sh);
    g_test_message("BENCH weights 1:2:4 (quantum %d us, switch budget %d "
                   "%%: batch turns of %.1f ms, a switch measured at %.2f "
                   "ms) over %d s: shares %.1f%% %.1f%% %.1f%% (targets "
                   "14.3 28.6 57.1), within 2 points of the targets from "
                   "%.0f ms on", quantum_us, budget,
                   dev_stat("batch-turn-us") / 1e3,
                   dev_stat("switch-cost-ns") / 1e6, secs, sh.last[0],
                   sh.last[1], sh.last[2], sh.converged / 1000.0);
    for (int i = 0; i < 3; i++) {
        g_test_message("BENCH   ctx %d weight %" PRIu64 ": %" PRIu64
                       " submissions, %.1f ms GPU", i + 1,
                       ctx_stat(i + 1, "weight"), b->loads[i]->completed,
                       (ctx_stat(i + 1, "gpu-time-ns") - sh.base[i]) / 1e6);
    }
}

/*
 * The @k-th arm of round @r out of @n arms, @n odd: a Williams design,
 * whose 2 @n rounds put every arm in every place twice and right after
 * every other arm twice, so that neither drift of the host's speed nor
 * what an arm leaves behind for the next (queues, caches) favours one.
 * Round 0 is 0, 1, n-1, 2, n-2, ...; round i adds i to each (mod @n);
 * rounds n to 2n-1 are rounds 0 to n-1 backwards.
 */
static int williams_arm(int n, int r, int k)
{
    int first;

    if ((r / n) & 1) {
        k = n - 1 - k;
    }
    first = !k ? 0 : (k & 1) ? (k + 1) / 2 : n - k / 2;
    return (first + r) % n;
}

/*
 * The cost of scheduling, in interleaved rounds so that drift of
 * the host's speed cancels out: each round runs the same load for a
 * second unscheduled (one context keeps the GPU for a second at a
 * time, as a FIFO would), a second weighted with the device's defaults
 * (batch turns as long as the switch budget of 1 % needs), a second
 * round robin (best effort) likewise, and a second weighted with batch
 * turns of 16 quanta whatever switches cost (switch-budget 0, the
 * device's behaviour before it had a budget), in the orders of
 * williams_arm().  Round robin switches contexts about as often as
 * weighted does: what weighted loses against it is the price of the
 * policy's bookkeeping.  Another second
 * unscheduled measures the bench's own noise: costs within it are not
 * told apart from none.  @what names the loads in the output.
 */
/* Largest minus smallest share of wall-clock time the GPU was busy */
static double busy_spread(const uint64_t *gpu, const gint64 *wall, int n)
{
    double lo = 100, hi = 0;

    for (int m = 0; m < n; m++) {
        double busy = gpu[m] / 10.0 / MAX(wall[m], 1);

        lo = MIN(lo, busy);
        hi = MAX(hi, busy);
    }
    return hi - lo;
}

static void bench_cost(Bench *b, int quantum_us, const char *what)
{
    enum { UNSCHED, WEIGHTED, RR, NOISE, SHORT, ARMS };
    static const char *const policy[ARMS] = {
        "best-effort", "weighted", "best-effort", "best-effort",
        "weighted",
    };
    const int quantum[ARMS] = {
        1000000, quantum_us, quantum_us, 1000000, quantum_us,
    };
    /* the device's default switch budget, and none */
    const int budget[ARMS] = { 1, 1, 1, 1, 0 };
    /* a multiple of 2 ARMS rounds balances the order (williams_arm()) */
    int rounds = getenv("PVGPU_BENCH_ROUNDS") ?
                 MAX(atoi(getenv("PVGPU_BENCH_ROUNDS")), 1) : 2 * ARMS;
    g_autofree double *cost = g_new(double, ARMS * rounds);
    uint64_t total[ARMS] = { 0 }, gpu[ARMS] = { 0 };
    /* per context: its GPU time and submissions in each arm */
    uint64_t ctx_gpu[ARMS][3] = { { 0 } }, ctx_done[ARMS][3] = { { 0 } };
    uint64_t switches[ARMS] = { 0 };
    double per_sub[ARMS], cpu_ms[ARMS] = { 0 }, mix[ARMS];
    char *costs[ARMS];
    gint64 wall[ARMS] = { 0 };

    b->polls = b->dry = 0;
    for (int r = 0; r < rounds; r++) {
        double rate[ARMS];

        for (int k = 0; k < ARMS; k++) {
            int m = williams_arm(ARMS, r, k);
            uint64_t gpu_before = 0, sw_before, done, ctx_before[3];
            gint64 t0;

            bench_set("{'execute': 'pvgpu-set-scheduler', 'arguments': "
                      "{'id': 'pvgpu0', 'policy': %s, 'quantum-us': %d, "
                      "'batch-quanta': %d, 'switch-budget': %d}}",
                      policy[m], quantum[m], DEFAULT_BATCH, budget[m]);
            for (int i = 0; i < 3; i++) {
                b->loads[i]->completed = 0;
                ctx_before[i] = ctx_stat(b->loads[i]->ctx, "gpu-time-ns");
                gpu_before += ctx_before[i];
            }
            sw_before = dev_stat("context-switches");
            cpu_ms[m] -= render_cpu_ms();
            t0 = g_get_monotonic_time();
            bench_run(b, G_USEC_PER_SEC, NULL, NULL);
            t0 = g_get_monotonic_time() - t0;
            cpu_ms[m] += render_cpu_ms();
            wall[m] += t0;
            done = b->loads[0]->completed + b->loads[1]->completed +
                   b->loads[2]->completed;
            total[m] += done;
            /* per second of the segment, its drain included */
            rate[m] = (double)done * G_USEC_PER_SEC / MAX(t0, 1);
            for (int i = 0; i < 3; i++) {
                uint64_t g = ctx_stat(b->loads[i]->ctx, "gpu-time-ns");

                gpu[m] += g;
                ctx_gpu[m][i] += g - ctx_before[i];
                ctx_done[m][i] += b->loads[i]->completed;
            }
            gpu[m] -= gpu_before;
            switches[m] += dev_stat("context-switches") - sw_before;
        }
        for (int m = 0; m < ARMS; m++) {
            cost[m * rounds + r] = 100.0 * (1.0 - rate[m] / rate[UNSCHED]);
        }
    }
    for (int m = 0; m < ARMS; m++) {
        qsort(&cost[m * rounds], rounds, sizeof(double), cmp_double);
        per_sub[m] = gpu[m] / 1e6 / MAX(total[m], 1);
        /*
         * Each context's GPU time per submission against its own with
         * the GPU to itself (unscheduled), weighted by its part of the
         * arm's submissions: the contexts' targets lie differently in
         * memory and do not render equally fast, and the unscheduled
         * arms run whichever context has the GPU for the second, the
         * others all three in their shares
         */
        mix[m] = 0;
        for (int i = 0; i < 3; i++) {
            double own = (double)ctx_gpu[m][i] / MAX(ctx_done[m][i], 1);
            double alone = (double)ctx_gpu[UNSCHED][i] /
                           MAX(ctx_done[UNSCHED][i], 1);

            mix[m] += (double)ctx_done[m][i] / MAX(total[m], 1) *
                      (alone > 0 ? own / alone : 1);
        }
        mix[m] = 100.0 * (mix[m] - 1);
    }
    for (int m = 0; m < ARMS; m++) {
        double all = 100.0 * (1.0 - (double)total[m] / MAX(wall[m], 1) *
                              wall[UNSCHED] / MAX(total[UNSCHED], 1));

        costs[m] = cost_text(&cost[m * rounds], rounds, all);
    }
    g_test_message("BENCH %s: throughput over %d interleaved rounds: "
                   "weighted %.1f submissions/s, unscheduled %.1f/s, "
                   "round robin %.1f/s, weighted with turns of %d quanta "
                   "(switch-budget 0) %.1f/s", what, rounds,
                   total[WEIGHTED] * 1e6 / MAX(wall[WEIGHTED], 1),
                   total[UNSCHED] * 1e6 / MAX(wall[UNSCHED], 1),
                   total[RR] * 1e6 / MAX(wall[RR], 1), DEFAULT_BATCH,
                   total[SHORT] * 1e6 / MAX(wall[SHORT], 1));
    /*
     * Where the throughput goes: GPU time the renderer measured per
     * submission (switching contexts costs GPU time), and the share
     * of the wall-clock time the GPU was busy (dispatch gaps)
     */
    g_test_message("BENCH GPU time per submission: unscheduled %.3f ms, "
                   "weighted %.3f ms, round robin %.3f ms, short turns "
                   "%.3f ms; GPU busy %.1f%%, %.1f%%, %.1f%%, %.1f%%",
                   per_sub[UNSCHED], per_sub[WEIGHTED], per_sub[RR],
                   per_sub[SHORT],
                   gpu[UNSCHED] / 10.0 / MAX(wall[UNSCHED], 1),
                   gpu[WEIGHTED] / 10.0 / MAX(wall[WEIGHTED], 1),
                   gpu[RR] / 10.0 / MAX(wall[RR], 1),
                   gpu[SHORT] / 10.0 / MAX(wall[SHORT], 1));
    /* what one switch costs: the extra GPU time over the switches */
    g_test_message("BENCH context switches per second: unscheduled "
                   "%.1f, weighted %.1f, round robin %.1f, short turns "
                   "%.1f; extra GPU time per switch (vs unscheduled): "
                   "weighted %.2f ms, short turns %.2f ms; the device "
                   "measured %.2f ms, batch turns of %.1f ms",
                   switches[UNSCHED] * 1e6 / MAX(wall[UNSCHED], 1),
                   switches[WEIGHTED] * 1e6 / MAX(wall[WEIGHTED], 1),
                   switches[RR] * 1e6 / MAX(wall[RR], 1),
                   switches[SHORT] * 1e6 / MAX(wall[SHORT], 1),
                   (per_sub[WEIGHTED] - per_sub[UNSCHED]) *
                   total[WEIGHTED] / MAX(switches[WEIGHTED], 1),
                   (per_sub[SHORT] - per_sub[UNSCHED]) * total[SHORT] /
                   MAX(switches[SHORT], 1),
                   dev_stat("switch-cost-ns") / 1e6,
                   dev_stat("batch-turn-us") / 1e3);
    g_test_message("BENCH cost of scheduling (weighted vs unscheduled) "
                   "%s; round robin vs unscheduled %s", costs[WEIGHTED],
                   costs[RR]);
    g_test_message("BENCH cost of scheduling with turns of %d quanta "
                   "(switch-budget 0; weighted vs unscheduled) %s",
                   DEFAULT_BATCH, costs[SHORT]);
    /*
     * The same in CPU time per submission of QEMU's threads but the
     * main loop: on a CPU renderer that is the rendering's cost, and the
     * host's steal, which moves every wall-clock figure above, does not
     * count in it
     */
    g_test_message("BENCH render CPU time per submission: unscheduled %.3f "
                   "ms, weighted %.3f ms (cost %.2f%%), round robin %.3f ms "
                   "(%.2f%%), turns of %d quanta %.3f ms (%.2f%%), "
                   "unscheduled again %.3f ms (%.2f%%)",
                   cpu_ms[UNSCHED] / MAX(total[UNSCHED], 1),
                   cpu_ms[WEIGHTED] / MAX(total[WEIGHTED], 1),
                   cpu_cost(cpu_ms, total, WEIGHTED, UNSCHED),
                   cpu_ms[RR] / MAX(total[RR], 1),
                   cpu_cost(cpu_ms, total, RR, UNSCHED), DEFAULT_BATCH,
                   cpu_ms[SHORT] / MAX(total[SHORT], 1),
                   cpu_cost(cpu_ms, total, SHORT, UNSCHED),
                   cpu_ms[NOISE] / MAX(total[NOISE], 1),
                   cpu_cost(cpu_ms, total, NOISE, UNSCHED));
    g_test_message("BENCH noise: unscheduled against unscheduled %s",
                   costs[NOISE]);
    g_test_message("BENCH GPU time per submission of each context against "
                   "its own unscheduled (%.3f, %.3f, %.3f ms), in the "
                   "arm's mix of contexts: weighted %+.2f%%, round robin "
                   "%+.2f%%, turns of %d quanta %+.2f%%, unscheduled "
                   "again %+.2f%%; GPU busy within %.1f points in all "
                   "arms", ctx_gpu[UNSCHED][0] / 1e6 /
                   MAX(ctx_done[UNSCHED][0], 1),
                   ctx_gpu[UNSCHED][1] / 1e6 / MAX(ctx_done[UNSCHED][1], 1),
                   ctx_gpu[UNSCHED][2] / 1e6 / MAX(ctx_done[UNSCHED][2], 1),
                   mix[WEIGHTED], mix[RR], DEFAULT_BATCH, mix[SHORT],
                   mix[NOISE], busy_spread(gpu, wall, ARMS));
    /* a harness that falls behind starves contexts, not the GPU */
    g_test_message("BENCH the harness found a context with nothing queued "
                   "at %.2f%% of its polls", 100.0 * b->dry /
                   MAX(b->polls, 1));
    for (int m = 0; m < ARMS; m++) {
        g_free(costs[m]);
    }
    /* the defaults again, whichever arm ran last */
    bench_set("{'execute': 'pvgpu-set-scheduler', 'arguments': "
              "{'id': 'pvgpu0', 'policy': 'weighted', 'quantum-us': %d, "
              "'batch-quanta': %d, 'switch-budget': 1}}", quantum_us,
              DEFAULT_BATCH);
}

static void bench_fairness(void *obj, void *data, QGuestAllocator *alloc)
{
    Bench b = { .gpu = obj, .alloc = alloc };
    int quantum_us = getenv("PVGPU_BENCH_QUANTUM_US") ?
                     atoi(getenv("PVGPU_BENCH_QUANTUM_US")) : 2000;
    uint64_t solo_p99, shared_p99, rr_p99, held_p99, aggr_p99;
    double batch_ms, batch_p99_ms;
    double solo_guest_p99;
    Load *victim, *aggressor, *held, *flushes, *alone;

    memset(b.slot_load, -1, sizeof(b.slot_load));
    pvgpu_setup_3d(b.gpu, alloc);
    renice_render(global_qtest);

    /*
     * 1. weights 1:2:4, all saturated with the same work, with the
     * default switch budget (turns as long as the switches measured need)
     * and with none (turns of 16 quanta)
     */
    for (int i = 0; i < 3; i++) {
        bench_load(&b, i + 1, 1024, 12, 16);
        bench_set("{'execute': 'pvgpu-set-context', 'arguments': "
                  "{'id': 'pvgpu0', 'ctx-id': %d, 'weight': %d}}",
                  i + 1, 100 << i);
    }
    /* the renderer's threads for the new contexts too */
    renice_render(global_qtest);
    /* turns of up to 256 ms even out over longer times than 32 ms ones */
    bench_shares(&b, quantum_us, 1, 16);
    bench_shares(&b, quantum_us, 0, 4);

    /*
     * 2. The cost of scheduling: with these loads, whose render targets
     * (two of 4 MiB each) a context switch evicts from a CPU renderer's
     * caches, and with loads of the same length on targets of 256 KiB,
     * which all stay in them: there a switch costs next to nothing, and
     * what is left is the scheduler's own cost
     */
    bench_cost(&b, quantum_us, "targets of 4 MiB");
    bench_destroy_loads(&b);
    for (int i = 0; i < 3; i++) {
        bench_load(&b, 21 + i, 256, 30, 16);
    }
    bench_run(&b, G_USEC_PER_SEC / 2, NULL, NULL);
    bench_cost(&b, quantum_us, "targets of 256 KiB");
    bench_destroy_loads(&b);

    /*
     * 2b. one context alone, with two submissions on the GPU at once
     * (sched-solo-inflight=2) and with one (0, the default), in alternating
     * rounds of a second
     */
    {
        double rate[2] = { 0 };
        gint64 wall[2] = { 0 };
        Load *one = bench_load(&b, 25, 1024, 12, 16);

        bench_run(&b, G_USEC_PER_SEC / 2, NULL, NULL);
        for (int r = 0; r < 10; r++) {
            int solo = (r & 1) ? 0 : 2;
            gint64 t0;

            bench_set("{'execute': 'pvgpu-set-scheduler', 'arguments': "
                      "{'id': 'pvgpu0', 'solo-inflight': %d}}", solo);
            one->completed = 0;
            t0 = g_get_monotonic_time();
            bench_run(&b, G_USEC_PER_SEC, NULL, NULL);
            wall[!solo] += g_get_monotonic_time() - t0;
            rate[!solo] += one->completed;
        }
        rate[0] *= 1e6 / MAX(wall[0], 1);
        rate[1] *= 1e6 / MAX(wall[1], 1);
        g_test_message("BENCH one context alone (targets of 4 MiB), 5 "
                       "rounds each: two on the GPU at once "
                       "(sched-solo-inflight=2) %.1f submissions/s, one "
                       "(=0) %.1f/s: %+.1f%%", rate[0], rate[1],
                       100.0 * (rate[0] / MAX(rate[1], 1e-9) - 1));
        /* back to the default */
        bench_set("{'execute': 'pvgpu-set-scheduler', 'arguments': "
                  "{'id': 'pvgpu0', 'solo-inflight': 0}}");
        g_assert_cmphex(ctx_cmd(b.gpu, VIRTIO_GPU_CMD_CTX_DESTROY, 25, 0),
                        ==, VIRTIO_GPU_RESP_OK_NODATA);
        g_free(one);
        b.nloads = 0;
    }

    /* 3. a light victim alone, then beside a greedy aggressor */
    bench_set("{'execute': 'pvgpu-set-scheduler', 'arguments': "
              "{'id': 'pvgpu0', 'policy': 'equal-share', "
              "'quantum-us': 2000}}");
    /*
     * The aggressor's batches alone, one at a time: their fence p99 is
     * the longest batch a victim may have to wait for, bar 1 %
     */
    alone = bench_load(&b, 17, 1024, 12, 1);
    bench_run(&b, 2 * G_USEC_PER_SEC, NULL, NULL);
    aggr_p99 = ctx_stat(17, "fence-latency-p99-ns");
    g_assert_cmphex(ctx_cmd(b.gpu, VIRTIO_GPU_CMD_CTX_DESTROY, 17, 0), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_free(alone);
    b.nloads = 0;
    victim = bench_load(&b, 10, 256, 1, 1);
    victim->latency_us = g_array_new(false, false, sizeof(gint64));
    bench_run(&b, 2 * G_USEC_PER_SEC, NULL, NULL);
    solo_p99 = ctx_stat(10, "fence-latency-p99-ns");
    solo_guest_p99 = load_p99_ms(victim);
    g_array_free(victim->latency_us, true);
    victim->latency_us = NULL;
    b.nloads = 0;
    victim = bench_load(&b, 11, 256, 1, 1);
    victim->latency_us = g_array_new(false, false, sizeof(gint64));
    aggressor = bench_load(&b, 12, 1024, 12, 8);
    bench_run(&b, 3 * G_USEC_PER_SEC, NULL, NULL);
    shared_p99 = ctx_stat(11, "fence-latency-p99-ns");
    batch_ms = ctx_stat(12, "gpu-time-ns") / 1e6 /
               MAX(ctx_stat(12, "submissions"), 1);
    /*
     * The GPU runs a batch to its end: the victim's latency adds the rest
     * of the batch it found running, so the bound takes the batch time
     * at the percentile it bounds, as the renderer measured it in the same
     * run; the mean is printed beside it
     */
    batch_p99_ms = ctx_stat(12, "batch-time-p99-ns") / 1e6;
    g_test_message("BENCH victim p99 solo %.2f ms, with aggressor "
                   "(equal-share) %.2f ms = %.1fx; aggressor GPU time per "
                   "batch p99 %.2f ms, mean %.2f ms; bound 1.1 x (solo p99 "
                   "+ batch p99) = %.2f ms (with the mean %.2f ms)",
                   solo_p99 / 1e6, shared_p99 / 1e6,
                   (double)shared_p99 / solo_p99, batch_p99_ms, batch_ms,
                   1.1 * (solo_p99 / 1e6 + batch_p99_ms),
                   1.1 * (solo_p99 / 1e6 + batch_ms));
    g_test_message("BENCH   the aggressor's batches alone, one at a time: "
                   "fence p99 %.2f ms; bound 1.1 x (victim solo p99 + that) "
                   "= %.2f ms", aggr_p99 / 1e6,
                   1.1 * (solo_p99 + aggr_p99) / 1e6);
    g_test_message("BENCH   as the guest sees it (posted to answered): "
                   "p99 solo %.2f ms, with aggressor %.2f ms",
                   solo_guest_p99, load_p99_ms(victim));
    g_array_free(victim->latency_us, true);
    victim->latency_us = NULL;
    bench_set("{'execute': 'pvgpu-set-scheduler', 'arguments': "
              "{'id': 'pvgpu0', 'policy': 'best-effort'}}");
    b.nloads = 0;
    victim = bench_load(&b, 13, 256, 1, 1);
    b.loads[b.nloads++] = aggressor;
    for (unsigned k = aggressor->first_slot;
         k < aggressor->first_slot + aggressor->depth; k++) {
        b.slot_load[k] = -1;
    }
    bench_run(&b, 3 * G_USEC_PER_SEC, NULL, NULL);
    rr_p99 = ctx_stat(13, "fence-latency-p99-ns");
    g_test_message("BENCH victim p99 with aggressor (best-effort) %.2f ms "
                   "= %.1fx solo; victim %" PRIu64 " submissions",
                   rr_p99 / 1e6, (double)rr_p99 / solo_p99,
                   victim->completed);

    /*
     * 4. A light victim next to a context whose frames the frame-rate
     * limiter holds: that context (15) shows resource 800 on scanout 0 and
     * flushes it as fast as it can at max-fps 10, its submissions waiting
     * behind its held flushes.  The victim shares nothing with it.
     */
    bench_set("{'execute': 'pvgpu-set-scheduler', 'arguments': "
              "{'id': 'pvgpu0', 'policy': 'equal-share'}}");
    b.nloads = 0;
    victim = bench_load(&b, 14, 256, 1, 1);
    victim->latency_us = g_array_new(false, false, sizeof(gint64));
    held = bench_load(&b, 15, 256, 1, 2);
    g_assert_cmphex(create_2d(b.gpu, 800, FMT_XRGB, 64, 64), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(set_scanout(b.gpu, 0, 800, 0, 0, 64, 64), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(ctx_cmd(b.gpu, VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE, 15,
                            800), ==, VIRTIO_GPU_RESP_OK_NODATA);
    flushes = bench_load(&b, 16, 16, 1, 1);
    flushes->flush_res = 800;
    bench_set("{'execute': 'pvgpu-set-scheduler', 'arguments': "
              "{'id': 'pvgpu0', 'max-fps': 10}}");
    bench_run(&b, 3 * G_USEC_PER_SEC, NULL, NULL);
    held_p99 = ctx_stat(14, "fence-latency-p99-ns");
    g_test_message("BENCH victim p99 next to a context held by the "
                   "frame-rate limiter (max-fps 10: %.1f flushes/s, %.1f of "
                   "its submissions/s) %.2f ms = %.1fx solo; posted to "
                   "answered, as the guest sees it: %.2f ms (solo %.2f ms)",
                   flushes->completed / 3.0, held->completed / 3.0,
                   held_p99 / 1e6, (double)held_p99 / solo_p99,
                   load_p99_ms(victim), solo_guest_p99);
    g_array_free(victim->latency_us, true);
    bench_set("{'execute': 'pvgpu-set-scheduler', 'arguments': "
              "{'id': 'pvgpu0', 'max-fps': 0}}");
}

/* --- soak test (PVGPU_SOAK_SECONDS, scripts/soak.sh) -------------------- */

/*
 * Everything at once for PVGPU_SOAK_SECONDS: eight contexts rendering
 * (bench_load()'s clears, then an inline write and a copy between their
 * targets), a 2D scanout transferred and flushed at 60 Hz, and QMP read
 * and reconfigured every 100 ms.  Every request is fenced and must be
 * answered OK within SOAK_FENCE_US; rendered pixels are read back and the
 * screen dumped now and then, and checked; QEMU's resident memory must
 * stay flat after a warm-up, see soak_rss_report().  The figures are
 * printed as "SOAK" lines.
 */
#define SOAK_CTXS           8
#define SOAK_DEPTH          4       /* submissions outstanding per context */
#define SOAK_RT             256     /* render targets are SOAK_RT squared */
#define SOAK_CLEARS         4
#define SOAK_BLOCK          8       /* the inline-written, copied square */
#define SOAK_2D_RES         500
#define SOAK_2D_W           640
#define SOAK_2D_H           480
#define SOAK_SLOTS          (SOAK_CTXS * SOAK_DEPTH + 3)
#define SOAK_FENCE_US       (10 * G_USEC_PER_SEC)
#define SOAK_RSS_LIMIT_KB   4096    /* fitted growth after warm-up */
#define VIRGL_CCMD_RESOURCE_INLINE_WRITE 9
#define VIRGL_CCMD_RESOURCE_COPY_REGION 17

typedef enum SoakKind {
    SOAK_SUBMIT, SOAK_TRANSFER, SOAK_FLUSH, SOAK_READBACK, SOAK_KINDS
} SoakKind;

static const char *const soak_kind[SOAK_KINDS] = {
    "SUBMIT_3D", "TRANSFER_TO_HOST_2D", "RESOURCE_FLUSH",
    "TRANSFER_FROM_HOST_3D",
};

/*
 * A request posted again and again, each time with a new fence.  Slot k
 * owns descriptors 3k..3k+2 (request, stream, response), written once as
 * in bench_post(); the submissions of load l are its slots first_slot on,
 * then come the 2D transfer, the flush and the readback.
 */
typedef struct SoakSlot {
    SoakKind kind;
    Load *load;
    uint8_t req[80];
    size_t len;
    uint64_t addr;              /* guest copy; the 24-byte response after */
    bool chained;
    uint64_t fence;             /* 0 while the slot is free */
    gint64 posted;
} SoakSlot;

enum { SOAK_SLOT_TRANSFER = SOAK_CTXS * SOAK_DEPTH, SOAK_SLOT_FLUSH,
       SOAK_SLOT_READBACK };

typedef struct SoakRss {
    gint64 t;
    long kb;
} SoakRss;

typedef struct Soak {
    Bench b;
    SoakSlot slot[SOAK_SLOTS];
    uint64_t rt_backing[SOAK_CTXS];
    uint64_t fence;             /* the last one issued */
    unsigned outstanding;
    uint64_t issued[SOAK_KINDS], answered[SOAK_KINDS];
    gint64 max_latency[SOAK_KINDS];
    gint64 slowest_at[SOAK_KINDS];  /* since the start */
    gint64 start;
    gint64 drain_from;          /* when the load stopped */
    unsigned drain_n;
    gint64 qmp_slowest[4];      /* query, scheduler, context, limits */
    gint64 pause;               /* the longest gap between polls */
    uint64_t readbacks, screens, queries, reconfigs, leaked_kb;
    QDict *info;                /* the last query-pvgpu */
    GArray *rss;                /* SoakRss */
    unsigned errors;
} Soak;

static void soak_fail(Soak *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void soak_fail(Soak *s, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (s->errors++ < 10) {
        g_test_message("SOAK ERROR %s", msg);
    }
}

static long soak_rss_kb(Soak *s)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/status",
                                            (int)qtest_pid(s->b.gpu->qts));
    g_autofree char *text = NULL;
    const char *p;
    long kb;

    if (!g_file_get_contents(path, &text, NULL, NULL)) {
        return -1;
    }
    p = strstr(text, "VmRSS:");
    return p && sscanf(p, "VmRSS: %ld", &kb) == 1 ? kb : -1;
}

/* Microseconds in which some task waited for a CPU (PSI); 0 without PSI */
static uint64_t soak_cpu_pressure_us(void)
{
    g_autofree char *text = NULL;
    const char *p;
    uint64_t us;

    if (!g_file_get_contents("/proc/pressure/cpu", &text, NULL, NULL)) {
        return 0;
    }
    p = strstr(text, "total=");
    return p && sscanf(p, "total=%" SCNu64, &us) == 1 ? us : 0;
}

/* The colour context @ctx writes, as a B8G8R8X8 word */
static uint32_t soak_block(uint32_t ctx)
{
    return (0x1c * ctx) << 16 | (0x11 * ctx) << 8 | (0xff - 0x10 * ctx);
}

/*
 * Append to @load's stream: a square of its colour written inline into its
 * second target, then copied into its first.  Both squares are centred
 * vertically, so they are where the readback expects them whichever way
 * up virglrenderer keeps the targets.
 */
static void soak_stream(Soak *s, Load *load)
{
    uint32_t y = SOAK_RT / 2 - SOAK_BLOCK / 2;
    size_t n = load->len / 4, old = n;
    g_autofree uint32_t *dw = g_new(uint32_t, n + 12 + 14 +
                                    SOAK_BLOCK * SOAK_BLOCK);

    memread(load->stream, dw, load->len);
    dw[n++] = VIRGL_CMD(VIRGL_CCMD_RESOURCE_INLINE_WRITE, 0,
                        11 + SOAK_BLOCK * SOAK_BLOCK);
    dw[n++] = load->ctx + 1000;
    dw[n++] = 0;                /* level */
    dw[n++] = 0;                /* usage */
    dw[n++] = SOAK_BLOCK * 4;   /* stride */
    dw[n++] = 0;                /* layer stride */
    dw[n++] = 0;                /* box x, y, z, w, h, d */
    dw[n++] = y;
    dw[n++] = 0;
    dw[n++] = SOAK_BLOCK;
    dw[n++] = SOAK_BLOCK;
    dw[n++] = 1;
    for (int i = 0; i < SOAK_BLOCK * SOAK_BLOCK; i++) {
        dw[n++] = soak_block(load->ctx);
    }
    dw[n++] = VIRGL_CMD(VIRGL_CCMD_RESOURCE_COPY_REGION, 0, 13);
    dw[n++] = load->ctx;        /* destination, level, x, y, z */
    dw[n++] = 0;
    dw[n++] = 16;
    dw[n++] = y;
    dw[n++] = 0;
    dw[n++] = load->ctx + 1000; /* source, level, x, y, z, w, h, d */
    dw[n++] = 0;
    dw[n++] = 0;
    dw[n++] = y;
    dw[n++] = 0;
    dw[n++] = SOAK_BLOCK;
    dw[n++] = SOAK_BLOCK;
    dw[n++] = 1;
    for (size_t i = old; i < n; i++) {
        dw[i] = cpu_to_le32(dw[i]);
    }
    guest_free(s->b.alloc, load->stream);
    load->len = n * 4;
    load->stream = guest_alloc(s->b.alloc, load->len);
    memwrite(load->stream, dw, load->len);
}

static void soak_post(Soak *s, unsigned k)
{
    SoakSlot *sl = &s->slot[k];
    QPvgpu *gpu = s->b.gpu;
    struct virtio_gpu_ctrl_hdr *hdr = (void *)sl->req;
    uint8_t buf[sizeof(sl->req) + 24] = { 0 };

    g_assert(!sl->fence);
    sl->fence = ++s->fence;
    hdr->flags = cpu_to_le32(VIRTIO_GPU_FLAG_FENCE);
    hdr->fence_id = cpu_to_le64(sl->fence);
    memcpy(buf, sl->req, sl->len);
    if (!sl->addr) {
        sl->addr = guest_alloc(s->b.alloc, sl->len + 24);
    }
    /* with a zeroed response, so that an old one cannot pass */
    memwrite(sl->addr, buf, sl->len + 24);
    if (!sl->chained) {
        gpu->ctrl->free_head = 3 * k;
        qvirtqueue_add(gpu->qts, gpu->ctrl, sl->addr, sl->len, false, true);
        if (sl->kind == SOAK_SUBMIT) {
            qvirtqueue_add(gpu->qts, gpu->ctrl, sl->load->stream,
                           sl->load->len, false, true);
        }
        qvirtqueue_add(gpu->qts, gpu->ctrl, sl->addr + sl->len, 24, true,
                       false);
        sl->chained = true;
    }
    qvirtqueue_kick(gpu->qts, gpu->vdev, gpu->ctrl, 3 * k);
    sl->posted = g_get_monotonic_time();
    s->outstanding++;
    s->issued[sl->kind]++;
    if (sl->kind == SOAK_SUBMIT) {
        sl->load->outstanding++;
    }
}

/*
 * Rows SOAK_RT / 2 - 8 to SOAK_RT / 2 + 8, columns 0 to 31, of @load's
 * first target: bench_load()'s clear colour around the copied square.
 */
static void soak_check_readback(Soak *s, Load *load)
{
    static const float clear[3] = { 0.3, 0.6, 0.9 };
    unsigned pages = DIV_ROUND_UP(SOAK_RT * SOAK_RT * 4, 4096);
    uint32_t px[16 * 32];

    /* offset 0 is in the backing's first page, listed last */
    memread(s->rt_backing[load->ctx - 1] + (uint64_t)(pages - 1) * 4096, px,
            sizeof(px));
    for (int y = 0; y < 16; y++) {
        for (int x = 0; x < 32; x++) {
            uint32_t v = le32_to_cpu(px[y * 32 + x]) & 0xffffff;
            bool ok = true;

            if (x >= 16 && x < 16 + SOAK_BLOCK && y >= 8 - SOAK_BLOCK / 2 &&
                y < 8 + SOAK_BLOCK / 2) {
                ok = v == soak_block(load->ctx);
            } else {
                for (int c = 0; c < 3; c++) {
                    int got = v >> (16 - 8 * c) & 0xff;

                    ok &= fabs(got - clear[c] * 255) <= 1;
                }
            }
            if (!ok) {
                soak_fail(s, "ctx %u: pixel (%d, %d) of the readback is "
                          "0x%06x", load->ctx, x, y, v);
                return;
            }
        }
    }
    s->readbacks++;
}

/* The screen shows upload_pattern()'s pattern */
static void soak_check_screen(Soak *s)
{
    int w, h;
    g_autofree uint32_t *shot = screendump(&w, &h);

    if (w != SOAK_2D_W || h != SOAK_2D_H) {
        soak_fail(s, "the screen is %dx%d", w, h);
        return;
    }
    for (int i = 0; i < w * h; i++) {
        if (shot[i] != pattern(i % w, i / w)) {
            soak_fail(s, "screen pixel (%d, %d) is 0x%06x", i % w, i / w,
                      shot[i]);
            return;
        }
    }
    s->screens++;
}

static void soak_answered(Soak *s, uint32_t idx)
{
    unsigned k = idx / 3;
    gint64 now = g_get_monotonic_time();
    struct virtio_gpu_ctrl_hdr resp;
    SoakSlot *sl;

    if (idx % 3 || k >= SOAK_SLOTS || !s->slot[k].fence) {
        soak_fail(s, "descriptor %u used, but not posted", idx);
        return;
    }
    sl = &s->slot[k];
    memread(sl->addr + sl->len, &resp, sizeof(resp));
    if (le32_to_cpu(resp.type) != VIRTIO_GPU_RESP_OK_NODATA ||
        !(le32_to_cpu(resp.flags) & VIRTIO_GPU_FLAG_FENCE) ||
        le64_to_cpu(resp.fence_id) != sl->fence) {
        soak_fail(s, "fence %" PRIu64 " (%s, ctx %u) answered with type "
                  "0x%x, flags 0x%x, fence %" PRIu64, sl->fence,
                  soak_kind[sl->kind], sl->load ? sl->load->ctx : 0,
                  le32_to_cpu(resp.type), le32_to_cpu(resp.flags),
                  (uint64_t)le64_to_cpu(resp.fence_id));
    } else if (sl->kind == SOAK_READBACK) {
        soak_check_readback(s, sl->load);
    }
    s->answered[sl->kind]++;
    if (now - sl->posted > s->max_latency[sl->kind]) {
        s->max_latency[sl->kind] = now - sl->posted;
        s->slowest_at[sl->kind] = sl->posted - s->start;
    }
    if (sl->kind == SOAK_SUBMIT) {
        sl->load->outstanding--;
        sl->load->completed++;
    }
    sl->fence = 0;
    s->outstanding--;
}

/* True, with an error, when a fence is older than SOAK_FENCE_US */
static bool soak_overdue(Soak *s, gint64 now)
{
    for (unsigned k = 0; k < SOAK_SLOTS; k++) {
        SoakSlot *sl = &s->slot[k];

        if (sl->fence && now - sl->posted > SOAK_FENCE_US) {
            soak_fail(s, "fence %" PRIu64 " (%s, ctx %u) unanswered after "
                      "%" PRId64 " s", sl->fence, soak_kind[sl->kind],
                      sl->load ? sl->load->ctx : 0,
                      (now - sl->posted) / G_USEC_PER_SEC);
            return true;
        }
    }
    return false;
}

static void soak_set(Soak *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void soak_set(Soak *s, const char *fmt, ...)
{
    va_list ap;
    QDict *rsp;

    va_start(ap, fmt);
    rsp = qtest_vqmp(s->b.gpu->qts, fmt, ap);
    va_end(ap);
    if (!qdict_haskey(rsp, "return")) {
        soak_fail(s, "QMP refused: %s",
                  qdict_get_try_str(qdict_get_qdict(rsp, "error"), "desc"));
    }
    qobject_unref(rsp);
}

/* Every other tick query-pvgpu, in between one of three reconfigurations */
static void soak_qmp(Soak *s, unsigned tick)
{
    static const char *const policy[] = {
        "weighted", "equal-share", "best-effort",
    };
    static const unsigned quantum[] = { 2000, 500, 4000, 1000 };
    static const unsigned fps[] = { 0, 60, 0, 30, 120 };
    static const unsigned cap[] = { 0, 0, 50, 0, 25 };
    static const unsigned queued[] = { 64, 8, 16 };
    unsigned r = tick / 2, turn = r / 3;
    gint64 t = g_get_monotonic_time();
    QListEntry *e;
    unsigned n = 0;

    if (tick % 2) {
        s->reconfigs++;
        switch (r % 3) {
        case 0:
            soak_set(s, "{'execute': 'pvgpu-set-scheduler', 'arguments': "
                     "{'id': 'pvgpu0', 'policy': %s, 'quantum-us': %u, "
                     "'max-fps': %u}}", policy[turn % 3],
                     quantum[turn % 4], fps[turn % 5]);
            break;
        case 1:
            soak_set(s, "{'execute': 'pvgpu-set-context', 'arguments': "
                     "{'id': 'pvgpu0', 'ctx-id': %u, 'weight': %u, "
                     "'cap': %u, 'priority': %u}}", turn % SOAK_CTXS + 1,
                     100 + turn * 37 % 200, cap[turn % 5],
                     turn / SOAK_CTXS % 4);
            break;
        default:
            soak_set(s, "{'execute': 'pvgpu-set-limits', 'arguments': "
                     "{'id': 'pvgpu0', 'max-queued': %u, "
                     "'max-contexts': %u, 'max-resources': %u, "
                     "'max-hostmem': %u}}", queued[turn % 3],
                     turn % 2 ? 16 : 64, turn % 2 ? 64 : 4096,
                     turn % 2 ? 64 << 20 : 256 << 20);
            break;
        }
        t = g_get_monotonic_time() - t;
        s->qmp_slowest[1 + r % 3] = MAX(s->qmp_slowest[1 + r % 3], t);
        return;
    }
    qobject_unref(s->info);
    s->info = query_pvgpu();
    t = g_get_monotonic_time() - t;
    s->qmp_slowest[0] = MAX(s->qmp_slowest[0], t);
    s->queries++;
    if (qdict_get_int(s->info, "refusals")) {
        soak_fail(s, "query-pvgpu: %" PRId64 " refusals",
                  qdict_get_int(s->info, "refusals"));
    }
    QLIST_FOREACH_ENTRY(qdict_get_qlist(s->info, "contexts"), e) {
        QDict *c = qobject_to(QDict, qlist_entry_obj(e));

        n++;
        if (qdict_get_int(c, "errors")) {
            soak_fail(s, "query-pvgpu: ctx %" PRId64 " has %" PRId64
                      " errors", qdict_get_int(c, "ctx-id"),
                      qdict_get_int(c, "errors"));
        }
    }
    if (n != SOAK_CTXS) {
        soak_fail(s, "query-pvgpu lists %u contexts", n);
    }
}

static void soak_run(Soak *s, gint64 usecs)
{
    gint64 start = s->start = g_get_monotonic_time(), next_qmp = start;
    gint64 next_frame = start, next_check = start + G_USEC_PER_SEC;
    gint64 next_rss = start, rss_every = CLAMP(usecs / 60, G_USEC_PER_SEC,
                                               5 * G_USEC_PER_SEC);
    const char *leak = getenv("PVGPU_SOAK_LEAK_KB");
    unsigned tick = 0, check = 0;
    gint64 last = start;

    for (;;) {
        gint64 now = g_get_monotonic_time();
        bool running = now - start < usecs && !s->errors;
        uint32_t idx, len;

        s->pause = MAX(s->pause, now - last);
        last = now;
        if (!running && !s->drain_from) {
            s->drain_from = now;
            s->drain_n = s->outstanding;
        }
        for (unsigned l = 0; running && l < s->b.nloads; l++) {
            Load *load = s->b.loads[l];

            for (unsigned k = load->first_slot;
                 k < load->first_slot + load->depth &&
                 load->outstanding < load->depth; k++) {
                if (!s->slot[k].fence) {
                    soak_post(s, k);
                }
            }
        }
        if (running && now >= next_frame &&
            !s->slot[SOAK_SLOT_TRANSFER].fence &&
            !s->slot[SOAK_SLOT_FLUSH].fence) {
            soak_post(s, SOAK_SLOT_TRANSFER);
            soak_post(s, SOAK_SLOT_FLUSH);
            next_frame = MAX(next_frame + G_USEC_PER_SEC / 60, now);
        }
        if (running && now >= next_check) {
            /* each second a readback, every tenth a screendump instead */
            SoakSlot *rb = &s->slot[SOAK_SLOT_READBACK];
            Load *load = s->b.loads[check % s->b.nloads];

            if (check % 10 == 9) {
                soak_check_screen(s);
            } else if (!rb->fence && load->completed) {
                struct virtio_gpu_transfer_host_3d *t = (void *)rb->req;

                rb->load = load;
                t->hdr.ctx_id = cpu_to_le32(load->ctx);
                t->resource_id = cpu_to_le32(load->ctx);
                soak_post(s, SOAK_SLOT_READBACK);
            }
            if (leak) {
                g_autofree char *id = g_strdup_printf("soak-leak%u", check);

                soak_set(s, "{'execute': 'object-add', 'arguments': "
                         "{'qom-type': 'memory-backend-ram', 'id': %s, "
                         "'size': %u, 'prealloc': true}}", id,
                         atoi(leak) * 1024);
                s->leaked_kb += atoi(leak);
            }
            check++;
            next_check += G_USEC_PER_SEC;
        }
        if (running && now >= next_qmp) {
            soak_qmp(s, tick++);
            next_qmp += G_USEC_PER_SEC / 10;
        }
        if (running && now >= next_rss) {
            SoakRss r = { now - start, soak_rss_kb(s) };

            g_array_append_val(s->rss, r);
            next_rss += rss_every;
        }
        if (qvirtqueue_get_buf(s->b.gpu->qts, s->b.gpu->ctrl, &idx, &len)) {
            soak_answered(s, idx);
            continue;
        }
        if (soak_overdue(s, now) || (!running && !s->outstanding)) {
            g_test_message("SOAK drain: the last of %u fences outstanding "
                           "when the load stopped answered after %.1f ms",
                           s->drain_n, (now - s->drain_from) / 1000.0);
            return;
        }
        g_usleep(200);
    }
}

/*
 * RSS after the warm-up (the first fifth, at least the 15 s in which
 * virglrenderer and Mesa fill their caches): first, last, largest and the
 * least-squares slope.  Returns the growth that slope makes over the
 * sampled time, in kB.
 */
static double soak_rss_report(Soak *s, gint64 usecs)
{
    gint64 warm = MAX(usecs / 5, 15 * G_USEC_PER_SEC);
    double n = 0, st = 0, sr = 0, stt = 0, str = 0, slope, span;
    long first = -1, last = -1, max = -1;
    gint64 t0 = -1, t1 = 0;
    g_autoptr(GString) series = g_string_new("");

    for (unsigned i = 0; i < s->rss->len; i += MAX(s->rss->len / 12, 1)) {
        SoakRss *r = &g_array_index(s->rss, SoakRss, i);

        g_string_append_printf(series, " %" PRId64 "s:%ld",
                               r->t / G_USEC_PER_SEC, r->kb);
    }
    g_test_message("SOAK rss kB over time:%s", series->str);
    for (unsigned i = 0; i < s->rss->len; i++) {
        SoakRss *r = &g_array_index(s->rss, SoakRss, i);
        double t = r->t / 60e6;

        if (r->t < warm) {
            continue;
        }
        if (t0 < 0) {
            t0 = r->t;
            first = r->kb;
        }
        t1 = r->t;
        last = r->kb;
        max = MAX(max, r->kb);
        n++;
        st += t;
        sr += r->kb;
        stt += t * t;
        str += t * r->kb;
    }
    if (n < 3) {
        g_test_message("SOAK rss: too few samples after the warm-up");
        return 0;
    }
    slope = (n * str - st * sr) / (n * stt - st * st);
    span = (t1 - t0) / 60e6;
    g_test_message("SOAK rss kB: at start %ld, after warm-up (from %.0f s, "
                   "%.0f samples) first %ld last %ld max %ld; slope %.1f "
                   "kB/min, fitted growth %.0f kB over %.1f min",
                   g_array_index(s->rss, SoakRss, 0).kb, t0 / 1e6, n,
                   first, last, max, slope, slope * span, span);
    return slope * span;
}

static void soak_load(void *obj, void *data, QGuestAllocator *alloc)
{
    g_autofree Soak *s = g_new0(Soak, 1);
    QPvgpu *gpu = obj;
    gint64 secs = atoi(getenv("PVGPU_SOAK_SECONDS"));
    long limit_kb = getenv("PVGPU_SOAK_RSS_KB") ?
                    atol(getenv("PVGPU_SOAK_RSS_KB")) : SOAK_RSS_LIMIT_KB;
    struct virtio_gpu_transfer_to_host_2d *t2d;
    struct virtio_gpu_resource_flush *fl;
    struct virtio_gpu_transfer_host_3d *t3d;
    const QListEntry *e;
    uint64_t pressure;
    double growth;

    g_assert_cmpint(secs, >, 0);
    s->b.gpu = gpu;
    s->b.alloc = alloc;
    s->rss = g_array_new(false, false, sizeof(SoakRss));
    pvgpu_setup_3d(gpu, alloc);
    for (uint32_t ctx = 1; ctx <= SOAK_CTXS; ctx++) {
        Load *load = bench_load(&s->b, ctx, SOAK_RT, SOAK_CLEARS,
                                SOAK_DEPTH);

        soak_stream(s, load);
        s->rt_backing[ctx - 1] = attach_backing(gpu, ctx,
                                                SOAK_RT * SOAK_RT * 4);
        for (unsigned k = load->first_slot; k < load->first_slot + SOAK_DEPTH;
             k++) {
            struct virtio_gpu_cmd_submit *c = (void *)s->slot[k].req;

            s->slot[k].kind = SOAK_SUBMIT;
            s->slot[k].load = load;
            s->slot[k].len = sizeof(*c);
            hdr_init(&c->hdr, VIRTIO_GPU_CMD_SUBMIT_3D);
            c->hdr.ctx_id = cpu_to_le32(ctx);
            c->size = cpu_to_le32(load->len);
        }
        /* synchronous requests take descriptors from 0 on */
        qvirtqueue_reset_pool(gpu->ctrl);
    }
    upload_pattern(gpu, SOAK_2D_RES, SOAK_2D_W, SOAK_2D_H);
    g_assert_cmphex(set_scanout(gpu, 0, SOAK_2D_RES, 0, 0, SOAK_2D_W,
                                SOAK_2D_H), ==, VIRTIO_GPU_RESP_OK_NODATA);
    qvirtqueue_reset_pool(gpu->ctrl);

    t2d = (void *)s->slot[SOAK_SLOT_TRANSFER].req;
    s->slot[SOAK_SLOT_TRANSFER].kind = SOAK_TRANSFER;
    s->slot[SOAK_SLOT_TRANSFER].len = sizeof(*t2d);
    hdr_init(&t2d->hdr, VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D);
    rect_set(&t2d->r, 0, 0, SOAK_2D_W, SOAK_2D_H);
    t2d->resource_id = cpu_to_le32(SOAK_2D_RES);
    fl = (void *)s->slot[SOAK_SLOT_FLUSH].req;
    s->slot[SOAK_SLOT_FLUSH].kind = SOAK_FLUSH;
    s->slot[SOAK_SLOT_FLUSH].len = sizeof(*fl);
    hdr_init(&fl->hdr, VIRTIO_GPU_CMD_RESOURCE_FLUSH);
    rect_set(&fl->r, 0, 0, SOAK_2D_W, SOAK_2D_H);
    fl->resource_id = cpu_to_le32(SOAK_2D_RES);
    /* a 32 x 16 box around the copied square, see soak_check_readback() */
    t3d = (void *)s->slot[SOAK_SLOT_READBACK].req;
    s->slot[SOAK_SLOT_READBACK].kind = SOAK_READBACK;
    s->slot[SOAK_SLOT_READBACK].len = sizeof(*t3d);
    hdr_init(&t3d->hdr, VIRTIO_GPU_CMD_TRANSFER_FROM_HOST_3D);
    t3d->box.y = cpu_to_le32(SOAK_RT / 2 - 8);
    t3d->box.w = cpu_to_le32(32);
    t3d->box.h = cpu_to_le32(16);
    t3d->box.d = cpu_to_le32(1);
    t3d->stride = cpu_to_le32(32 * 4);

    g_test_message("SOAK %" PRId64 " s: %d contexts x %d submissions queued "
                   "(%d clears of %dx%d, inline write, copy), 2D %dx%d "
                   "transfer+flush at 60 Hz, QMP every 100 ms", secs,
                   SOAK_CTXS, SOAK_DEPTH, SOAK_CLEARS, SOAK_RT, SOAK_RT,
                   SOAK_2D_W, SOAK_2D_H);
    pressure = soak_cpu_pressure_us();
    soak_run(s, secs * G_USEC_PER_SEC);
    pressure = pressure ? soak_cpu_pressure_us() - pressure : 0;

    for (int k = 0; k < SOAK_KINDS; k++) {
        g_test_message("SOAK fences %-21s issued %8" PRIu64 " answered %8"
                       PRIu64 ", slowest %.1f ms (posted at %.1f s)",
                       soak_kind[k], s->issued[k], s->answered[k],
                       s->max_latency[k] / 1000.0, s->slowest_at[k] / 1e6);
    }
    for (e = s->info ? qlist_first(qdict_get_qlist(s->info, "contexts")) :
             NULL; e; e = qlist_next(e)) {
        QDict *c = qobject_to(QDict, qlist_entry_obj(e));

        g_test_message("SOAK ctx %" PRId64 ": %" PRId64 " submissions, "
                       "%.0f ms GPU, fence latency p50 %.2f ms p99 %.2f "
                       "ms", qdict_get_int(c, "ctx-id"),
                       qdict_get_int(c, "submissions"),
                       qdict_get_int(c, "gpu-time-ns") / 1e6,
                       qdict_get_int(c, "fence-latency-p50-ns") / 1e6,
                       qdict_get_int(c, "fence-latency-p99-ns") / 1e6);
    }
    g_test_message("SOAK %.0f submissions/s, %.1f frames/s; checked %"
                   PRIu64 " readbacks, %" PRIu64 " screendumps; QMP %"
                   PRIu64 " queries, %" PRIu64 " reconfigurations",
                   (double)s->answered[SOAK_SUBMIT] / secs,
                   (double)s->answered[SOAK_FLUSH] / secs, s->readbacks,
                   s->screens, s->queries, s->reconfigs);
    g_test_message("SOAK slowest QMP replies: query-pvgpu %.1f ms, "
                   "pvgpu-set-scheduler %.1f ms, pvgpu-set-context %.1f ms, "
                   "pvgpu-set-limits %.1f ms; the harness's longest pause "
                   "%.1f ms", s->qmp_slowest[0] / 1000.0,
                   s->qmp_slowest[1] / 1000.0, s->qmp_slowest[2] / 1000.0,
                   s->qmp_slowest[3] / 1000.0, s->pause / 1000.0);
    if (pressure) {
        /* latencies above mean little on a host short of CPU */
        g_test_message("SOAK host CPU pressure: some task waited for a CPU "
                       "%.0f%% of the time", 100.0 * pressure /
                       (g_get_monotonic_time() - s->start));
    }
    if (s->leaked_kb) {
        g_test_message("SOAK PVGPU_SOAK_LEAK_KB: grew QEMU by %" PRIu64
                       " kB on purpose", s->leaked_kb);
    }
    growth = soak_rss_report(s, secs * G_USEC_PER_SEC);
    if (growth > limit_kb) {
        soak_fail(s, "RSS grew %.0f kB after the warm-up (limit %ld kB)",
                  growth, limit_kb);
    }
    for (int k = 0; k < SOAK_KINDS; k++) {
        if (s->answered[k] != s->issued[k]) {
            soak_fail(s, "%" PRIu64 " %s fences unanswered",
                      s->issued[k] - s->answered[k], soak_kind[k]);
        }
    }
    g_test_message("SOAK verdict: %s (%u errors)",
                   s->errors ? "FAIL" : "PASS", s->errors);
    qobject_unref(s->info);
    g_array_free(s->rss, true);
    for (unsigned l = 0; l < s->b.nloads; l++) {
        g_free(s->b.loads[l]);
    }
    g_assert_cmpuint(s->errors, ==, 0);
}

/* A stream creating @n buffers of @size bytes with blob ids from @blob_id */
static uint32_t pipe_buffers(QPvgpu *gpu, uint32_t ctx, unsigned n,
                             uint32_t blob_id, uint32_t size)
{
    g_autofree uint32_t *dw = g_new(uint32_t, 12 * n);

    for (unsigned i = 0; i < n; i++) {
        uint32_t one[12] = {
            VIRGL_CMD(VIRGL_CCMD_PIPE_RESOURCE_CREATE, 0, 11),
            PIPE_BUFFER, VIRGL_FORMAT_R8_UNORM, VIRGL_BIND_VERTEX_BUFFER,
            size, 1, 1, 1, 0, 0, 0, blob_id + i,
        };

        for (int j = 0; j < 12; j++) {
            dw[12 * i + j] = cpu_to_le32(one[j]);
        }
    }
    return submit_3d(gpu, ctx, dw, 12 * n * 4, 0, 0);
}

static uint64_t hostmem_used(void)
{
    QDict *info = query_pvgpu();
    uint64_t used = qdict_get_int(info, "hostmem-used");

    qobject_unref(info);
    return used;
}

/*
 * Resources a context's command stream creates (PIPE_RESOURCE_CREATE,
 * Mesa's first step of every blob) take host memory before any
 * CREATE_BLOB names them: they are charged against max_hostmem when the
 * stream is submitted, the charge moves to the blob that claims one, and
 * what nobody claimed is freed with its context or by a reset (which
 * virglrenderer 0.10.4 does not do by itself: LeakSanitizer reports it
 * in the qtest-asan run when QEMU exits).
 */
static void test_pipe_resources(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;

    pvgpu_setup_blob(gpu, alloc, true);
    g_assert_cmphex(ctx_create(gpu, 1, 2), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmpuint(hostmem_used(), ==, 0);

    /* charged when submitted; a claim keeps the larger of both sizes */
    g_assert_cmphex(pipe_buffers(gpu, 1, 1, 1, 1 * MiB), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmpuint(hostmem_used(), ==, 1 * MiB);
    g_assert_cmphex(create_blob(gpu, 1, 20, VIRTIO_GPU_BLOB_MEM_HOST3D, 0, 1,
                                4096, NULL, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmpuint(hostmem_used(), ==, 1 * MiB);
    g_assert_cmphex(unref(gpu, 20), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmpuint(hostmem_used(), ==, 0);
    /*
     * claimed once: a second blob of that id has nothing to take, and the
     * renderer refuses it; its record keeps the id and the size the guest
     * gave charged until the guest lets go of it
     */
    g_assert_cmphex(create_blob(gpu, 1, 21, VIRTIO_GPU_BLOB_MEM_HOST3D, 0, 1,
                                4096, NULL, 0), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmpuint(hostmem_used(), ==, 4096);
    g_assert_cmphex(unref(gpu, 21), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmpuint(hostmem_used(), ==, 0);

    /* max_hostmem=8M: a stream asking for more is refused whole */
    g_assert_cmphex(pipe_buffers(gpu, 1, 3, 10, 3 * MiB), ==,
                    VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
    g_assert_cmpuint(hostmem_used(), ==, 0);
    g_assert_cmphex(pipe_buffers(gpu, 1, 2, 10, 3 * MiB), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmpuint(hostmem_used(), ==, 6 * MiB);
    g_assert_cmphex(create_2d(gpu, 30, FMT_XRGB, 1024, 1024), ==,
                    VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
    /* and at most 256 unclaimed per context */
    g_assert_cmphex(pipe_buffers(gpu, 1, 255, 100, 16), ==,
                    VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
    g_assert_cmphex(pipe_buffers(gpu, 1, 254, 100, 16), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmpuint(hostmem_used(), ==, 6 * MiB + 254 * 16);

    /* the context goes, and what it never claimed with it */
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_DESTROY, 1, 0), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmpuint(hostmem_used(), ==, 0);
    g_assert_cmphex(create_2d(gpu, 30, FMT_XRGB, 1024, 1024), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(unref(gpu, 30), ==, VIRTIO_GPU_RESP_OK_NODATA);

    /* a mappable blob claims it too, charged once */
    g_assert_cmphex(ctx_create(gpu, 2, 2), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(pipe_buffers(gpu, 2, 1, 7, 1 * MiB), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(create_blob(gpu, 2, 22, VIRTIO_GPU_BLOB_MEM_HOST3D,
                                VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE, 7, 4096,
                                NULL, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmpuint(hostmem_used(), ==, 1 * MiB);

    /* the device's own resource id is no guest's */
    g_assert_cmphex(create_blob(gpu, 2, 0xffffffff, VIRTIO_GPU_BLOB_MEM_HOST3D,
                                0, 7, 4096, NULL, 0), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);

    /* a reset frees what live contexts never claimed */
    g_assert_cmphex(pipe_buffers(gpu, 2, 2, 8, 1 * MiB), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmpuint(hostmem_used(), ==, 3 * MiB);
    qpvgpu_cleanup(gpu);
    qvirtio_reset(gpu->vdev);
    g_assert_cmpuint(hostmem_used(), ==, 0);
    qvirtio_set_acknowledge(gpu->vdev);
    qvirtio_set_driver(gpu->vdev);
    pvgpu_setup_blob(gpu, alloc, true);
    g_assert_cmphex(ctx_create(gpu, 3, 2), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(pipe_buffers(gpu, 3, 1, 9, 1 * MiB), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    /* left for QEMU's exit: the renderer's own teardown frees it */
}

/*
 * A host blob that claims a stream resource the renderer never made (its
 * PIPE_RESOURCE_CREATE names a format virglrenderer does not know, so the
 * stream is refused, after the device charged what it creates): the
 * renderer refuses the blob.  The claim goes back to the context, charged
 * until the context goes (a renderer refusing a blob may still hold what
 * it claimed), whether the guest unrefs the blob after the refusal or
 * before it is known.
 */
static void test_pipe_claim_refused(void *obj, void *data,
                                    QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    struct virtio_gpu_resource_create_blob cb = { 0 };
    Batch b = { .gpu = gpu, .hold = true };
    uint32_t dw[12] = {
        VIRGL_CMD(VIRGL_CCMD_PIPE_RESOURCE_CREATE, 0, 11),
        PIPE_BUFFER, 0xffff, VIRGL_BIND_VERTEX_BUFFER,
        1 * MiB, 1, 1, 1, 0, 0, 0, 77,
    };
    uint32_t types[2];

    for (int i = 0; i < 12; i++) {
        dw[i] = cpu_to_le32(dw[i]);
    }
    pvgpu_setup_blob(gpu, alloc, true);
    g_assert_cmphex(ctx_create(gpu, 1, 2), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(submit_3d(gpu, 1, dw, sizeof(dw), 0, 0), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmpuint(hostmem_used(), ==, 1 * MiB);

    /* refused; unreffed after: the claim's charge stays the context's */
    g_assert_cmphex(create_blob(gpu, 1, 50, VIRTIO_GPU_BLOB_MEM_HOST3D, 0, 77,
                                4096, NULL, 0), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmpuint(hostmem_used(), ==, 1 * MiB);
    g_assert_cmphex(unref(gpu, 50), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmpuint(hostmem_used(), ==, 1 * MiB);

    /* claimed again and unreffed in one notify, before the refusal */
    hdr_init(&cb.hdr, VIRTIO_GPU_CMD_RESOURCE_CREATE_BLOB);
    cb.hdr.ctx_id = cpu_to_le32(1);
    cb.resource_id = cpu_to_le32(51);
    cb.blob_mem = cpu_to_le32(VIRTIO_GPU_BLOB_MEM_HOST3D);
    cb.blob_id = cpu_to_le64(77);
    cb.size = cpu_to_le64(4096);
    batch_add(&b, &cb, sizeof(cb), 0, 0);
    batch_resource_cmd(&b, VIRTIO_GPU_CMD_RESOURCE_UNREF, 51);
    batch_publish(&b);
    batch_drain(&b, types);
    g_assert_cmphex(types[0], ==, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmpuint(hostmem_used(), ==, 1 * MiB);

    /* the context goes, and the claim with it */
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_DESTROY, 1, 0), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmpuint(hostmem_used(), ==, 0);
}

/*
 * A MAP_BLOB the device refuses after the renderer mapped more than the
 * blob's size (a stream resource larger than the blob that claimed it),
 * with an UNMAP_BLOB queued behind it in the same notify: the unmap is
 * answered as if it had come after the failure, once, and the renderer's
 * mapping goes.  (The internal unmap used to pump the queue before the
 * waiting UNMAP_BLOB was settled: it was dispatched, then answered again
 * and freed while the render thread ran it, a use-after-free.)
 */
static void test_blob_map_oversized(void *obj, void *data,
                                    QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    Batch b = { .gpu = gpu, .hold = true };
    struct virtio_gpu_resource_map_blob m = { 0 };
    struct virtio_gpu_resource_unmap_blob um = { 0 };
    struct virtio_gpu_ctrl_hdr di;
    static const uint32_t expect[] = {
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
        VIRTIO_GPU_RESP_OK_DISPLAY_INFO,
    };
    uint32_t types[ARRAY_SIZE(expect)];
    uint32_t dw[12] = {
        VIRGL_CMD(VIRGL_CCMD_PIPE_RESOURCE_CREATE, 0, 11),
        PIPE_BUFFER, VIRGL_FORMAT_R8_UNORM, VIRGL_BIND_VERTEX_BUFFER,
        512 * KiB, 1, 1, 1, 0, 0,
        VIRGL_RESOURCE_FLAG_MAP_PERSISTENT | VIRGL_RESOURCE_FLAG_MAP_COHERENT,
        3,
    };

    pvgpu_setup_blob(gpu, alloc, true);
    g_assert_cmphex(ctx_create(gpu, 1, 2), ==, VIRTIO_GPU_RESP_OK_NODATA);
    for (int i = 0; i < 12; i++) {
        dw[i] = cpu_to_le32(dw[i]);
    }
    g_assert_cmphex(submit_3d(gpu, 1, dw, sizeof(dw), 0, 0), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    /* the guest claims 512 KiB with a blob of 4 KiB */
    g_assert_cmphex(create_blob(gpu, 1, 7, VIRTIO_GPU_BLOB_MEM_HOST3D,
                                VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE, 3, 4096,
                                NULL, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);

    hdr_init(&m.hdr, VIRTIO_GPU_CMD_RESOURCE_MAP_BLOB);
    hdr_init(&um.hdr, VIRTIO_GPU_CMD_RESOURCE_UNMAP_BLOB);
    hdr_init(&di, VIRTIO_GPU_CMD_GET_DISPLAY_INFO);
    m.resource_id = um.resource_id = cpu_to_le32(7);
    batch_add(&b, &m, sizeof(m), 0, 0);
    batch_add(&b, &um, sizeof(um), 0, 0);
    batch_add(&b, &di, sizeof(di), 0, 0);
    batch_publish(&b);
    batch_drain(&b, types);
    for (unsigned i = 0; i < ARRAY_SIZE(expect); i++) {
        g_assert_cmphex(types[i], ==, expect[i]);
    }
    /* nothing was answered twice, and the device goes on */
    g_usleep(100 * 1000);
    qtest_clock_step(gpu->qts, 100);
    g_assert_cmpuint(qtest_readw(gpu->qts, gpu->ctrl->used + 2), ==,
                     qtest_readw(gpu->qts, gpu->ctrl->avail + 2));
    g_assert_cmphex(map_blob(gpu, 7, 0, NULL), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(unref(gpu, 7), ==, VIRTIO_GPU_RESP_OK_NODATA);
}

/*
 * A bad -device property is refused at realize with a message naming it
 * and the range it takes: the same ranges QMP enforces (one table,
 * pvgpu-settings.c).
 */
static void test_bad_properties(void)
{
#define NO3D "-device pvgpu-pci,virgl=off,"
#define SHARED_RAM "-object memory-backend-memfd,id=m,size=128M,share=on " \
                   "-machine memory-backend=m "
    static const struct {
        const char *args, *expect;
    } cases[] = {
        { NO3D "max-queued=0",
          "property 'max-queued' expects a value from 1 to 4096, not 0" },
        { NO3D "max-outputs=17",
          "property 'max-outputs' expects a value from 1 to 16, not 17" },
        /* the old spellings are aliases */
        { NO3D "max_outputs=17",
          "property 'max-outputs' expects a value from 1 to 16, not 17" },
        { NO3D "max_hostmem=4096",
          "property 'max-hostmem' expects at least 1 MiB, not 4096" },
        { NO3D "sched-quantum-us=5",
          "property 'sched-quantum-us' expects a value from 100 to "
          "1000000, not 5" },
        { NO3D "max-contexts=0",
          "property 'max-contexts' expects at least 1, not 0" },
        { NO3D "sched-inflight=17",
          "property 'sched-inflight' expects a value from 1 to 16, not 17" },
        { NO3D "sched-solo-inflight=17",
          "property 'sched-solo-inflight' expects a value from 0 to 16, "
          "not 17" },
        { NO3D "sched-batch-quanta=0",
          "property 'sched-batch-quanta' expects a value from 1 to 1000, "
          "not 0" },
        { NO3D "sched-switch-budget=101",
          "property 'sched-switch-budget' expects a value from 0 to 100, "
          "not 101" },
        { NO3D "render-timeout=3601",
          "property 'render-timeout' expects a value from 0 to 3600, not "
          "3601" },
        { NO3D "xres=15",
          "property 'xres' expects a value from 16 to 16384, not 15" },
        { NO3D "yres=16385",
          "property 'yres' expects a value from 16 to 16384, not 16385" },
        { NO3D "max-fps=1001",
          "property 'max-fps' expects a value from 0 to 1000, not 1001" },
        { NO3D "max-resources=0",
          "property 'max-resources' expects at least 1, not 0" },
        /* a render process that cannot work is refused, saying why */
        { "-device pvgpu-pci,render-process=on",
          "pvgpu: render-process=on: the guest's RAM is not shareable with "
          "a render process" },
        { SHARED_RAM "-device pvgpu-pci,render-process=on,blob=on,"
          "hostmem=1M", "pvgpu: render-process=on: host-visible blobs "
          "(hostmem) need virglrenderer in QEMU's process" },
        { SHARED_RAM "-device pvgpu-pci,render-process=on,"
          "render-helper=/nonexistent",
          "render-helper /nonexistent: No such file or directory" },
    };
#undef NO3D
#undef SHARED_RAM
    const char *qemu = getenv("QTEST_QEMU_BINARY");

    g_assert(qemu);
    for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
        g_autofree char *cmd = g_strdup_printf(
            "%s -M pc -display none -nodefaults %s", qemu, cases[i].args);
        g_auto(GStrv) argv = NULL;
        g_autofree char *err = NULL;
        g_autoptr(GError) gerr = NULL;
        int status;

        g_assert(g_shell_parse_argv(cmd, NULL, &argv, NULL));
        g_assert(g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH |
                              G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL,
                              &err, &status, &gerr));
        g_assert(!(WIFEXITED(status) && WEXITSTATUS(status) == 0));
        if (!strstr(err, cases[i].expect)) {
            g_error("%s: expected '%s' in: %s", cases[i].args,
                    cases[i].expect, err);
        }
    }
}

/* --- the render process (render-process=on) ---------------------------- */

/*
 * QTEST_QEMU_BINARY with its last word (QEMU) replaced by the render
 * helper built beside it: the same "env ..." prefix, if any
 */
static char *helper_command(void)
{
    const char *qemu = g_getenv("QTEST_QEMU_BINARY");
    const char *last = strrchr(qemu, ' ');
    g_autofree char *prefix = g_strndup(qemu, last ? last + 1 - qemu : 0);
    g_autofree char *dir = g_path_get_dirname(last ? last + 1 : qemu);

    return g_strdup_printf("%s%s/contrib/pvgpu-render/pvgpu-render", prefix,
                           dir);
}

/* The HELLO the real render helper sends: header and body */
static GByteArray *real_hello(void)
{
    g_autofree char *cmd = helper_command();
    g_auto(GStrv) argv = NULL;
    g_autoptr(GError) err = NULL;
    GByteArray *msg = g_byte_array_new();
    uint64_t want = 16;
    GPid pid;
    int sv[2];

    g_assert(g_shell_parse_argv(cmd, NULL, &argv, NULL));
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
    g_assert(g_spawn_async_with_fds(NULL, argv, NULL,
                                    G_SPAWN_DO_NOT_REAP_CHILD |
                                    G_SPAWN_SEARCH_PATH, NULL, NULL, &pid,
                                    sv[1], -1, -1, &err));
    close(sv[1]);
    /* the header (type, nfds, len: 16 bytes), then len bytes of body */
    while (msg->len < want) {
        uint8_t buf[4096];
        ssize_t n = read(sv[0], buf, MIN(sizeof(buf), want - msg->len));

        g_assert_cmpint(n, >, 0);
        g_byte_array_append(msg, buf, n);
        if (msg->len == 16 && want == 16) {
            uint64_t len;

            memcpy(&len, msg->data + 8, 8);
            g_assert_cmpuint(len, <, 1 << 20);
            want += len;
        }
    }
    /* end of its input: the helper exits */
    close(sv[0]);
    g_assert_cmpint(waitpid(pid, NULL, 0), ==, pid);
    g_spawn_close_pid(pid);
    return msg;
}

/*
 * A render process's first message is checked before anything of it is
 * used: QEMU refuses, saying why, a helper that sends no HELLO, one that
 * sends something else, one whose sizes do not add up, and passes on the
 * reason of one that could not start its renderer.  Each fake helper is
 * a script that writes a message made from the real helper's HELLO to
 * its standard input (the socket) and exits.
 */
static void test_render_hello(void)
{
    g_autoptr(GByteArray) hello = real_hello();
    g_autofree char *dir = g_dir_make_tmp("pvgpu-hello-XXXXXX", NULL);
    const char *qemu = g_getenv("QTEST_QEMU_BINARY");
    /* PvgpuRpHello: version, op_size, ok, ncapsets, capsets[], text_len */
    uint32_t type = 1, ncapsets, text_len, text_at;
    const size_t hdr = 16, ok_at = hdr + 8, caps_at = hdr + 16;
    size_t len_at;
    static const char reason[] = "no GPU for you";
    struct {
        const char *what, *expect;
        GByteArray *msg;
    } cases[4];

    memcpy(&type, hello->data, 4);
    g_assert_cmpuint(type, ==, 1);
    memcpy(&ncapsets, hello->data + hdr + 12, 4);
    g_assert_cmpuint(ncapsets, >=, 1);
    /*
     * text_len follows the capset table, whose size the test does not
     * know: it is the word that says how long the text at the end is
     * (the renderer's description, "virglrenderer, ...")
     */
    len_at = hello->len;
    text_len = 0;
    for (size_t at = caps_at + 4; at + 4 <= hello->len; at += 4) {
        uint32_t v;

        memcpy(&v, hello->data + at, 4);
        if (v >= 13 && v <= hello->len - at - 4 &&
            !memcmp(hello->data + hello->len - v, "virglrenderer", 13)) {
            len_at = at;
            text_len = v;
            break;
        }
    }
    g_assert_cmpuint(len_at, <, hello->len);
    text_at = hello->len - text_len;

    cases[0].what = "nothing";
    cases[0].expect = "no answer within";
    cases[0].msg = g_byte_array_new();
    cases[1].what = "not a HELLO";
    cases[1].expect = "not a pvgpu-render of this QEMU";
    cases[1].msg = g_byte_array_new();
    g_byte_array_append(cases[1].msg, hello->data, hello->len);
    cases[1].msg->data[0] = 3;
    cases[2].what = "a text longer than the message";
    cases[2].expect = "malformed HELLO";
    cases[2].msg = g_byte_array_new();
    g_byte_array_append(cases[2].msg, hello->data, hello->len);
    text_len++;
    memcpy(cases[2].msg->data + len_at, &text_len, 4);
    text_len--;
    cases[3].what = "a renderer that failed";
    cases[3].expect = reason;
    cases[3].msg = g_byte_array_new();
    g_byte_array_append(cases[3].msg, hello->data, text_at);
    g_byte_array_append(cases[3].msg, (const uint8_t *)reason,
                        sizeof(reason) - 1);
    {
        uint32_t zero = 0, n = sizeof(reason) - 1;
        uint64_t body = cases[3].msg->len - hdr;

        memcpy(cases[3].msg->data + ok_at, &zero, 4);
        memcpy(cases[3].msg->data + len_at, &n, 4);
        memcpy(cases[3].msg->data + 8, &body, 8);
    }

    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *msg = g_strdup_printf("%s/msg%u", dir, i);
        g_autofree char *script = g_strdup_printf("%s/helper%u", dir, i);
        g_autofree char *text = g_strdup_printf("#!/bin/sh\n"
                                                "cat '%s' >&0\n", msg);
        /* a QEMU that wrongly accepts the helper would run on: -S, timeout */
        g_autofree char *cmd = g_strdup_printf(
            "timeout 60 %s -M pc -display none -nodefaults -S "
            "-object memory-backend-memfd,id=m,size=128M,share=on "
            "-machine memory-backend=m "
            "-device pvgpu-pci,render-process=on,render-helper=%s", qemu,
            script);
        g_auto(GStrv) argv = NULL;
        g_autofree char *err = NULL;
        int status;

        g_assert(g_file_set_contents(msg, (char *)cases[i].msg->data,
                                     cases[i].msg->len, NULL));
        g_assert(g_file_set_contents(script, text, -1, NULL));
        g_assert_cmpint(chmod(script, 0700), ==, 0);
        g_assert(g_shell_parse_argv(cmd, NULL, &argv, NULL));
        g_assert(g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH |
                              G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL,
                              &err, &status, NULL));
        g_assert(!(WIFEXITED(status) && WEXITSTATUS(status) == 0));
        if (!strstr(err, cases[i].expect)) {
            g_error("a helper that sends %s: expected '%s' in: %s",
                    cases[i].what, cases[i].expect, err);
        }
        unlink(msg);
        unlink(script);
        g_byte_array_free(cases[i].msg, true);
    }
    rmdir(dir);
}

/* The device's render process: its pid, and how often it was restarted */
static int64_t render_pid(unsigned *restarts)
{
    QDict *info = query_pvgpu();
    QDict *rp = qdict_get_qdict(info, "render-process");
    int64_t pid;

    g_assert(rp);
    pid = qdict_get_int(rp, "pid");
    if (restarts) {
        *restarts = qdict_get_int(rp, "restarts");
    }
    qobject_unref(info);
    return pid;
}

/*
 * A crash of the render process, as a guest's command stream can cause
 * in virglrenderer or the host's GL driver, costs the guest its 3D work
 * and not QEMU: what was in flight and what comes later is answered with
 * errors (fences too), 2D and info commands still work, the loss is
 * reported, and a device reset starts a new process with which the
 * guest renders again.
 */
static void test_render_process(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    static const float magenta[4] = { 1, 0, 1, 1 }, green[4] = { 0, 1, 0, 1 };
    uint32_t dw[32];
    unsigned restarts;
    int64_t pid, pid2;
    QDict *info, *ev;
    size_t n;

    pvgpu_setup_3d(gpu, alloc);
    pid = render_pid(&restarts);
    g_assert_cmpint(pid, >, 0);
    g_assert_cmpuint(restarts, ==, 0);
    /* guest memory, commands and readbacks all cross the process boundary */
    clear_checked(gpu, 1, 10, magenta, 0xff00ff, 7);

    /* the renderer crashes */
    g_assert_cmpint(kill(pid, SIGSEGV), ==, 0);
    n = clear_stream(dw, 10, green);
    g_assert_cmphex(submit_3d(gpu, 1, dw, n, VIRTIO_GPU_FLAG_FENCE, 8), !=,
                    VIRTIO_GPU_RESP_OK_NODATA);
    ev = qtest_qmp_eventwait_ref(gpu->qts, "PVGPU_3D_UNAVAILABLE");
    /* (a sanitizer build's helper aborts on a SEGV, signal 6) */
    g_assert(strstr(qdict_get_str(qdict_get_qdict(ev, "data"), "reason"),
                    "was killed by signal "));
    qobject_unref(ev);
    info = query_pvgpu();
    g_assert_false(qdict_get_bool(info, "virgl"));
    g_assert(strstr(qdict_get_str(info, "virgl-unavailable"),
                    "comes back when the guest resets the device"));
    qobject_unref(info);
    g_assert_cmpint(render_pid(NULL), ==, 0);
    /* reaped: no zombie left behind */
    g_assert_cmpint(kill(pid, 0), ==, -1);
    /* 3D fails, the rest works */
    g_assert_cmphex(ctx_create(gpu, 2, VIRTIO_GPU_CAPSET_VIRGL2), !=,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(create_2d(gpu, 20, FMT_XRGB, 16, 16), !=,
                    VIRTIO_GPU_RESP_OK_NODATA);
    /*
     * What the renderer refused to create keeps its id until the guest
     * lets it go, and takes nothing else; letting it go needs no renderer
     */
    g_assert_cmphex(ctx_create(gpu, 2, VIRTIO_GPU_CAPSET_VIRGL2), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID);
    g_assert_cmphex(submit_3d(gpu, 2, dw, n, 0, 0), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID);
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_DESTROY, 2, 0), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_DESTROY, 2, 0), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID);
    g_assert_cmphex(create_2d(gpu, 20, FMT_XRGB, 16, 16), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    g_assert_cmphex(resource_cmd(gpu, VIRTIO_GPU_CMD_RESOURCE_UNREF, 20), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(resource_cmd(gpu, VIRTIO_GPU_CMD_RESOURCE_UNREF, 20), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    /*
     * A context refused with a stream committed behind it (one notify)
     * holds no GL state: only context 1 and its render target hold
     * migration back
     */
    {
        Batch b = { .gpu = gpu, .hold = true };
        struct virtio_gpu_ctx_create cc = { 0 };
        uint64_t stream = guest_alloc(alloc, n);
        g_autofree char *why = NULL;
        uint32_t types[2];

        hdr_init(&cc.hdr, VIRTIO_GPU_CMD_CTX_CREATE);
        cc.hdr.ctx_id = cpu_to_le32(3);
        batch_add(&b, &cc, sizeof(cc), 0, 0);
        memwrite(stream, dw, n);
        batch_submits(&b, 3, 1, stream, n);
        batch_publish(&b);
        batch_drain(&b, types);
        g_assert_cmphex(types[0], !=, VIRTIO_GPU_RESP_OK_NODATA);
        g_assert_cmphex(types[1], !=, VIRTIO_GPU_RESP_OK_NODATA);
        g_assert(!query_migratable(&why));
        g_assert(strstr(why, "(1 3D context with GL state: ids 1; "
                             "1 3D resource)"));
        g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_DESTROY, 3, 0), ==,
                        VIRTIO_GPU_RESP_OK_NODATA);
    }
    {
        struct virtio_gpu_ctrl_hdr req;
        struct virtio_gpu_resp_display_info resp;

        hdr_init(&req, VIRTIO_GPU_CMD_GET_DISPLAY_INFO);
        qpvgpu_ctrl(gpu, &req, sizeof(req), &resp, sizeof(resp));
        g_assert_cmphex(le32_to_cpu(resp.hdr.type), ==,
                        VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
    }

    /* a device reset, as a guest's driver reload or reboot: a new process */
    qpvgpu_cleanup(gpu);
    qvirtio_reset(gpu->vdev);
    pid2 = render_pid(&restarts);
    g_assert_cmpint(pid2, >, 0);
    g_assert_cmpint(pid2, !=, pid);
    g_assert_cmpuint(restarts, ==, 1);
    info = query_pvgpu();
    g_assert_true(qdict_get_bool(info, "virgl"));
    g_assert_false(qdict_haskey(info, "virgl-unavailable"));
    qobject_unref(info);
    qvirtio_set_acknowledge(gpu->vdev);
    qvirtio_set_driver(gpu->vdev);
    pvgpu_setup_3d(gpu, alloc);
    clear_checked(gpu, 1, 10, green, 0x00ff00, 9);
}

/*
 * virglrenderer serves one device per process: in QEMU's, one 3D device
 * at a time (3d/hotplug); with render processes, as many as one likes.
 * Two of them each get a process, and a hot-plugged third too, whose
 * process goes when it is unplugged.
 */
static void test_render_process_two(void)
{
    QTestState *qts = qtest_init(
        "-M pc -object memory-backend-memfd,id=m,size=128M,share=on "
        "-machine memory-backend=m "
        "-device pvgpu-pci,id=a,render-process=on "
        "-device pvgpu-pci,id=b,render-process=on");
    QDict *rsp;
    QList *list;
    QListEntry *e;
    GHashTable *pids = g_hash_table_new(NULL, NULL);
    int64_t pid_c = 0;

    qtest_qmp_device_add(qts, "pvgpu-pci", "c",
                         "{'addr': '0x7', 'render-process': 'on'}");
    rsp = qtest_qmp(qts, "{'execute': 'query-pvgpu'}");
    list = qdict_get_qlist(rsp, "return");
    g_assert_cmpuint(qlist_size(list), ==, 3);
    QLIST_FOREACH_ENTRY(list, e) {
        QDict *dev = qobject_to(QDict, qlist_entry_obj(e));
        int64_t pid = qdict_get_int(qdict_get_qdict(dev, "render-process"),
                                    "pid");

        g_assert_true(qdict_get_bool(dev, "virgl"));
        g_assert_cmpint(pid, >, 0);
        g_hash_table_add(pids, GINT_TO_POINTER(pid));
        if (!strcmp(qdict_get_str(dev, "id"), "c")) {
            pid_c = pid;
        }
    }
    g_assert_cmpuint(g_hash_table_size(pids), ==, 3);
    g_hash_table_destroy(pids);
    qobject_unref(rsp);
    qpci_unplug_acpi_device_test(qts, "c", 0x7);
    g_assert_cmpint(pid_c, >, 0);
    g_assert_cmpint(kill(pid_c, 0), ==, -1);
    qtest_quit(qts);
}

/*
 * The render process tests' device options, its guest RAM a shared memfd
 * (which libqos/pvgpu.c sets up itself with PVGPU_QTEST_RENDER_PROCESS);
 * @timeout_1s: render-timeout=1
 */
static const char *render_process_args(bool timeout_1s)
{
    static char *args[2];

    if (!args[timeout_1s]) {
        args[timeout_1s] = g_strdup_printf(
            "%s-global pvgpu-device.render-process=on%s",
            getenv("PVGPU_QTEST_RENDER_PROCESS") ? "" :
            "-object memory-backend-memfd,id=pvgpu-ram,size=128M,share=on "
            "-machine memory-backend=pvgpu-ram ",
            timeout_1s ? " -global pvgpu-device.render-timeout=1" : "");
    }
    return args[timeout_1s];
}

/* QEMU's render processes say wrong things now and then (pvgpu-render.c) */
static void *before_corrupt(GString *cmd_line, void *arg)
{
    g_setenv("PVGPU_RENDER_CORRUPT", "1", true);
    return arg;
}

/*
 * The render process is the less trusted side: it runs what the guest
 * sends through the host's GL stack.  One that answers with wrong tags,
 * lengths, types, readbacks or file descriptors (PVGPU_RENDER_CORRUPT) is
 * killed, QEMU reads nothing it did not check (this runs under ASan in
 * scripts/test.sh), and the guest's next reset brings a new one.
 */
static void test_render_process_corrupt(void *obj, void *data,
                                        QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    static const float green[4] = { 0, 1, 0, 1 };
    uint32_t dw[32];
    unsigned restarts = 0;
    size_t n = clear_stream(dw, 10, green);

    /* only this test's QEMU, which has started, corrupts */
    g_unsetenv("PVGPU_RENDER_CORRUPT");
    for (int round = 0; round < 30 && restarts < 3; round++) {
        struct virtio_gpu_mem_entry e = {
            .addr = cpu_to_le64(guest_alloc(alloc, 64 * 48 * 4)),
            .length = cpu_to_le32(64 * 48 * 4),
        };

        pvgpu_setup_3d(gpu, alloc);
        /* any of these may fail once the process is gone */
        ctx_create(gpu, 1, VIRTIO_GPU_CAPSET_VIRGL2);
        create_rt(gpu, 10, 64, 48);
        attach_entries(gpu, 10, 1, &e, 1);
        ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE, 1, 10);
        set_scanout(gpu, 0, 10, 0, 0, 64, 48);
        for (int i = 0; i < 20; i++) {
            submit_3d(gpu, 1, dw, n, VIRTIO_GPU_FLAG_FENCE, i + 1);
            transfer_3d(gpu, VIRTIO_GPU_CMD_TRANSFER_FROM_HOST_3D, 1, 10, 64,
                        48);
            flush(gpu, 10, 0, 0, 64, 48);
        }
        render_pid(&restarts);
        qpvgpu_cleanup(gpu);
        qvirtio_reset(gpu->vdev);
        qvirtio_set_acknowledge(gpu->vdev);
        qvirtio_set_driver(gpu->vdev);
    }
    /* it lied, was caught, and QEMU is fine */
    g_assert_cmpuint(restarts, >=, 1);
    g_assert_cmpint(render_pid(NULL), >, 0);
}

/*
 * A render process that stops finishing work (a draw that never ends, a
 * stuck driver; here: stopped) is taken for hung after render-timeout (1 s
 * here) and killed: the guest's waiting command is answered, with an
 * error, instead of never.
 */
static void test_render_process_hang(void *obj, void *data,
                                     QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    static const float magenta[4] = { 1, 0, 1, 1 };
    uint32_t dw[32];
    int64_t pid, t0;
    QDict *ev;
    size_t n;

    pvgpu_setup_3d(gpu, alloc);
    pid = render_pid(NULL);
    g_assert_cmphex(ctx_create(gpu, 1, VIRTIO_GPU_CAPSET_VIRGL2), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    make_rt(gpu, 1, 10, 64, 48);
    g_assert_cmpint(kill(pid, SIGSTOP), ==, 0);
    t0 = g_get_monotonic_time();
    n = clear_stream(dw, 10, magenta);
    g_assert_cmphex(submit_3d(gpu, 1, dw, n, VIRTIO_GPU_FLAG_FENCE, 7), !=,
                    VIRTIO_GPU_RESP_OK_NODATA);
    /* not before the timeout, and not long after it */
    g_assert_cmpint(g_get_monotonic_time() - t0, >=, 900 * 1000);
    ev = qtest_qmp_eventwait_ref(gpu->qts, "PVGPU_3D_UNAVAILABLE");
    g_assert(strstr(qdict_get_str(qdict_get_qdict(ev, "data"), "reason"),
                    "finished no job in 1 s (render-timeout), so it was "
                    "killed by signal 9"));
    qobject_unref(ev);
    g_assert_cmpint(kill(pid, 0), ==, -1);
}

/* --- ordering (docs/pvgpu-scheduler.rst, "Ordering") ------------------ */

/* The index in @b of the next request answered (waits up to 30 s) */
static unsigned batch_next(Batch *b)
{
    gint64 deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
    uint32_t idx, len;

    while (!qvirtqueue_get_buf(b->gpu->qts, b->gpu->ctrl, &idx, &len)) {
        g_assert(g_get_monotonic_time() < deadline);
        qtest_clock_step(b->gpu->qts, 100);
        g_usleep(1000);
    }
    for (unsigned i = 0; i < b->n; i++) {
        if (b->head[i] == idx) {
            return i;
        }
    }
    g_assert_not_reached();
}

/* SUBMIT_3D fenced on ring 0 of @ctx's own timeline */
static void batch_submit_ring(Batch *b, uint32_t ctx, uint64_t stream,
                              size_t n)
{
    struct virtio_gpu_cmd_submit c = { 0 };

    hdr_init(&c.hdr, VIRTIO_GPU_CMD_SUBMIT_3D);
    c.hdr.ctx_id = cpu_to_le32(ctx);
    c.hdr.flags = cpu_to_le32(VIRTIO_GPU_FLAG_FENCE |
                              VIRTIO_GPU_FLAG_INFO_RING_IDX);
    c.hdr.fence_id = cpu_to_le64(b->n + 1);
    c.size = cpu_to_le32(n);
    batch_add(b, &c, sizeof(c), stream, n);
}

static uint64_t put_stream(QGuestAllocator *alloc, const uint32_t *dw,
                           size_t n)
{
    uint64_t a = guest_alloc(alloc, n);

    memwrite(a, dw, n);
    return a;
}

/*
 * Whoever reads what a context's queued work renders reads it after that
 * work: a transfer without a context, and a transfer by another context
 * that has the resource attached too, both see the last of context 1's
 * queued clears (blue), not what was there before (green).  Under equal
 * share an idle context's work would otherwise go first: reordering
 * between contexts is only allowed where they share nothing.
 */
/*
 * Behind what @b holds: read the top-left @box x @box of resource @res
 * back through context @ctx (TRANSFER_FROM_HOST_3D into its backing,
 * whose first pixel is at @at); publish and drain the batch; every
 * request succeeded and every pixel read is green (the target's B8G8R8
 * bytes, in guest memory, as 0x0000ff)
 */
static void batch_read_back(Batch *b, uint32_t ctx, uint32_t res,
                            uint32_t box, uint64_t at)
{
    struct virtio_gpu_transfer_host_3d t = { 0 };
    g_autofree uint32_t *px = g_new(uint32_t, box * box);
    uint32_t types[ARRAY_SIZE(b->head)];

    hdr_init(&t.hdr, VIRTIO_GPU_CMD_TRANSFER_FROM_HOST_3D);
    t.hdr.ctx_id = cpu_to_le32(ctx);
    t.box.w = t.box.h = cpu_to_le32(box);
    t.box.d = cpu_to_le32(1);
    t.resource_id = cpu_to_le32(res);
    t.stride = cpu_to_le32(box * 4);
    batch_add(b, &t, sizeof(t), 0, 0);
    batch_publish(b);
    batch_drain(b, types);
    for (unsigned i = 0; i < b->n; i++) {
        g_assert_cmphex(types[i], ==, VIRTIO_GPU_RESP_OK_NODATA);
    }
    memread(at, px, box * box * 4);
    for (unsigned i = 0; i < box * box; i++) {
        g_assert_cmphex(le32_to_cpu(px[i]) & 0xffffff, ==, 0x0000ff);
    }
}

static void test_order_resources(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    static const float green[4] = { 0, 1, 0, 1 };
    enum { W = 1024, H = 1024, BOX = 16 };
    uint32_t dw[10 + 9 * 64], px[BOX * BOX];
    uint64_t backing, first, stream;
    size_t n, gn;

    pvgpu_setup_3d(gpu, alloc);
    qobject_unref(qmp_ok("{'execute': 'pvgpu-set-scheduler', 'arguments': "
                         "{'id': 'pvgpu0', 'policy': 'equal-share'}}"));
    g_assert_cmphex(ctx_create(gpu, 1, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(ctx_create(gpu, 2, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    backing = make_rt(gpu, 1, 1, W, H);
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE, 2, 1),
                    ==, VIRTIO_GPU_RESP_OK_NODATA);
    /* linear offset 0: the backing's pages are listed in reverse */
    first = backing + (uint64_t)(W * H * 4 / 4096 - 1) * 4096;
    n = busy_stream(dw, 1, 64);
    stream = put_stream(alloc, dw, n);

    for (uint32_t reader = 0; reader <= 2; reader += 2) {
        Batch b = { .gpu = gpu, .hold = true };

        gn = clear_stream(dw, 1, green);
        g_assert_cmphex(submit_3d(gpu, 1, dw, gn, VIRTIO_GPU_FLAG_FENCE, 1),
                        ==, VIRTIO_GPU_RESP_OK_NODATA);
        qtest_memset(gpu->qts, first, 0xa5, sizeof(px));
        for (int i = 0; i < 4; i++) {
            batch_submit_ring(&b, 1, stream, n);
        }
        batch_read_back(&b, reader, 1, BOX, first);
    }
}

/*
 * The render process @pid maps the guest's RAM (a memfd) and leaves it
 * out of its core dumps: VmFlags "dd" (MADV_DONTDUMP)
 */
static void helper_guest_ram_not_dumped(int64_t pid)
{
    g_autofree char *path = g_strdup_printf("/proc/%" PRId64 "/smaps", pid);
    g_autofree char *smaps = NULL;
    g_auto(GStrv) lines = NULL;
    bool in_ram = false;
    unsigned found = 0;

    g_assert_true(g_file_get_contents(path, &smaps, NULL, NULL));
    lines = g_strsplit(smaps, "\n", -1);
    for (char **l = lines; *l; l++) {
        const char *dash = strchr(*l, '-'), *space = strchr(*l, ' ');

        if (g_ascii_isxdigit(**l) && dash && space && dash < space) {
            /* a mapping's first line: the guest's RAM is a memfd */
            in_ram = strstr(*l, "memfd:pvgpu-ram") ||
                     strstr(*l, "memfd:memory-backend-memfd");
        } else if (in_ram && g_str_has_prefix(*l, "VmFlags:")) {
            g_assert_nonnull(strstr(*l, " dd"));
            found++;
        }
    }
    g_assert_cmpuint(found, >, 0);
}

/* ATTACH_BACKING of @id with @size bytes at @base, in one 4 KiB piece each */
static void batch_attach(Batch *b, uint32_t id, uint64_t base, uint64_t size,
                         bool fenced)
{
    struct {
        struct virtio_gpu_resource_attach_backing a;
        struct virtio_gpu_mem_entry e[16];
    } req = { 0 };
    unsigned n = DIV_ROUND_UP(size, 4096);

    g_assert_cmpuint(n, <=, ARRAY_SIZE(req.e));
    hdr_init(&req.a.hdr, VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING);
    if (fenced) {
        req.a.hdr.flags = cpu_to_le32(VIRTIO_GPU_FLAG_FENCE);
        req.a.hdr.fence_id = cpu_to_le64(b->n + 1);
    }
    req.a.resource_id = cpu_to_le32(id);
    req.a.nr_entries = cpu_to_le32(n);
    for (unsigned i = 0; i < n; i++) {
        req.e[i].addr = cpu_to_le64(base + (uint64_t)i * 4096);
        req.e[i].length = cpu_to_le32(MIN(4096, size - (uint64_t)i * 4096));
    }
    batch_add(b, &req, sizeof(req.a) + n * sizeof(req.e[0]), 0, 0);
}

/*
 * A creation the renderer refuses (a format virglrenderer does not know),
 * with an ATTACH_BACKING, a context attach and a SET_SCANOUT committed
 * behind it before the refusal is known.  Nothing is undone: the record
 * keeps the guest's id, its backing and its host memory until the
 * guest's UNREF, which is the only command it still takes; then the id
 * and the memory are free again.
 */
static void test_refused_create(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    Batch b = { .gpu = gpu, .hold = true };
    struct virtio_gpu_resource_create_3d c = { 0 };
    struct virtio_gpu_ctx_resource a = { 0 };
    struct virtio_gpu_set_scanout so = { 0 };
    uint64_t hostmem, resources;
    QTestState *src, *dst;
    uint32_t types[4];
    QDict *info;

    pvgpu_setup_3d(gpu, alloc);
    g_assert_cmphex(ctx_create(gpu, 1, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    info = query_pvgpu();
    hostmem = qdict_get_int(info, "hostmem-used");
    resources = qdict_get_int(info, "resources");
    qobject_unref(info);

    hdr_init(&c.hdr, VIRTIO_GPU_CMD_RESOURCE_CREATE_3D);
    c.resource_id = cpu_to_le32(30);
    c.target = cpu_to_le32(PIPE_TEXTURE_2D);
    c.format = cpu_to_le32(0xffff);
    c.bind = cpu_to_le32(VIRGL_BIND_RENDER_TARGET);
    c.width = c.height = cpu_to_le32(32);
    c.depth = c.array_size = cpu_to_le32(1);
    batch_add(&b, &c, sizeof(c), 0, 0);
    batch_attach(&b, 30, guest_alloc(gpu->alloc, 32 * 32 * 4), 32 * 32 * 4,
                 false);
    hdr_init(&a.hdr, VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE);
    a.hdr.ctx_id = cpu_to_le32(1);
    a.resource_id = cpu_to_le32(30);
    batch_add(&b, &a, sizeof(a), 0, 0);
    hdr_init(&so.hdr, VIRTIO_GPU_CMD_SET_SCANOUT);
    so.resource_id = cpu_to_le32(30);
    so.r.width = so.r.height = cpu_to_le32(32);
    batch_add(&b, &so, sizeof(so), 0, 0);
    batch_publish(&b);
    batch_drain(&b, types);
    g_assert_cmphex(types[0], ==, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    /* virglrenderer has no resource 30 to back */
    g_assert_cmphex(types[1], ==, VIRTIO_GPU_RESP_ERR_UNSPEC);
    /*
     * virglrenderer attaches any id to a context; the scanout is set, and
     * its readback finds nothing to show
     */
    g_assert_cmphex(types[2], ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(types[3], ==, VIRTIO_GPU_RESP_OK_NODATA);

    info = query_pvgpu();
    g_assert_cmpuint(qdict_get_int(info, "resources"), ==, resources + 1);
    g_assert_cmpuint(qdict_get_int(info, "hostmem-used"), >, hostmem);
    qobject_unref(info);
    g_assert_cmphex(create_rt(gpu, 30, 32, 32), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    g_assert_cmphex(transfer_3d(gpu, VIRTIO_GPU_CMD_TRANSFER_TO_HOST_3D, 1, 30,
                                32, 32), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    g_assert_cmphex(resource_cmd(gpu, VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING,
                                 30), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_DETACH_RESOURCE, 1, 30),
                    ==, VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    g_assert_cmphex(set_scanout(gpu, 0, 30, 0, 0, 32, 32), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    g_assert_cmphex(flush(gpu, 30, 0, 0, 32, 32), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);

    /* let go: id, backing and host memory are free again */
    g_assert_cmphex(resource_cmd(gpu, VIRTIO_GPU_CMD_RESOURCE_UNREF, 30), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(resource_cmd(gpu, VIRTIO_GPU_CMD_RESOURCE_UNREF, 30), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    info = query_pvgpu();
    g_assert_cmpuint(qdict_get_int(info, "resources"), ==, resources);
    g_assert_cmpuint(qdict_get_int(info, "hostmem-used"), ==, hostmem);
    qobject_unref(info);
    make_rt(gpu, 1, 30, 32, 32);
    g_assert_cmphex(set_scanout(gpu, 0, 30, 0, 0, 32, 32), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(resource_cmd(gpu, VIRTIO_GPU_CMD_RESOURCE_UNREF, 30), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);

    /*
     * A refused 3D resource is nothing of the renderer's: it does not
     * hold migration back, and is not migrated
     */
    c.resource_id = cpu_to_le32(31);
    g_assert_cmphex(ctrl_nodata(gpu, &c, sizeof(c)), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert(query_migratable(NULL));
    src = migrate_to_new();
    dst = global_qtest;
    info = query_pvgpu();
    g_assert_cmpuint(qdict_get_int(info, "resources"), ==, resources);
    g_assert_cmpuint(qdict_get_int(info, "hostmem-used"), ==, hostmem);
    qobject_unref(info);
    global_qtest = src;
    qtest_quit(dst);
}

/*
 * A backing replaced in one notify, with a fence on the replaced one:
 * the renderer must render into the backing attached last, though the
 * fenced ATTACH_BACKING completes after the DETACH_BACKING and the
 * ATTACH_BACKING that follow it.  (A render process once kept the
 * backing of whatever ATTACH_BACKING completed last, and freed the one
 * virglrenderer still used: the next transfer crashed it, reliably so
 * under ASan: 3d/render-process-backing runs this on a render process
 * in every suite.)
 */
static void test_backing_replaced(void *obj, void *data,
                                  QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    static const float blue[4] = { 0, 0, 1, 1 };
    enum { W = 32, H = 32, SIZE = W * H * 4 };
    uint32_t dw[32], px[W * H], types[8];
    uint64_t older, last;
    QDict *info;
    size_t n;

    pvgpu_setup_3d(gpu, alloc);
    g_assert_cmphex(ctx_create(gpu, 1, VIRTIO_GPU_CAPSET_VIRGL2), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    make_rt(gpu, 1, 7, W, H);
    older = guest_alloc(alloc, SIZE);
    last = guest_alloc(alloc, SIZE);
    for (int round = 0; round < 3; round++) {
        Batch b = { .gpu = gpu, .hold = true };

        batch_resource_cmd(&b, VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING, 7);
        batch_attach(&b, 7, older, SIZE, true);
        batch_resource_cmd(&b, VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING, 7);
        batch_attach(&b, 7, last, SIZE, false);
        batch_publish(&b);
        batch_drain(&b, types);
        for (unsigned i = 0; i < b.n; i++) {
            g_assert_cmphex(types[i], ==, VIRTIO_GPU_RESP_OK_NODATA);
        }
        /* what is rendered comes back into the last backing only */
        n = clear_stream(dw, 7, blue);
        g_assert_cmphex(submit_3d(gpu, 1, dw, n, VIRTIO_GPU_FLAG_FENCE,
                                  10 + round), ==, VIRTIO_GPU_RESP_OK_NODATA);
        qtest_memset(gpu->qts, older, 0x5a, SIZE);
        qtest_memset(gpu->qts, last, 0xa5, SIZE);
        g_assert_cmphex(transfer_3d(gpu, VIRTIO_GPU_CMD_TRANSFER_FROM_HOST_3D,
                                    1, 7, W, H), ==,
                        VIRTIO_GPU_RESP_OK_NODATA);
        memread(last, px, sizeof(px));
        for (unsigned i = 0; i < W * H; i++) {
            g_assert_cmphex(le32_to_cpu(px[i]) & 0xffffff, ==, 0x0000ff);
        }
        memread(older, px, sizeof(px));
        for (unsigned i = 0; i < W * H; i++) {
            g_assert_cmphex(le32_to_cpu(px[i]), ==, 0x5a5a5a5a);
        }
    }
    /* and a render process is the one it was: it never crashed */
    info = query_pvgpu();
    if (qdict_haskey(info, "render-process")) {
        unsigned restarts;
        int64_t pid = render_pid(&restarts);

        g_assert_cmpint(pid, >, 0);
        g_assert_cmpuint(restarts, ==, 0);
        helper_guest_ram_not_dumped(pid);
    }
    qobject_unref(info);
}

/*
 * Contexts that share a resource keep their order: context 2's SUBMIT_3D
 * copies from a resource context 1 renders to and shares with it, so it
 * must run after context 1's queued clears, although it shares no key
 * with them of its own (the guest does not wait for context 1's fences:
 * Linux relies on the device's order on one timeline).
 */
static void test_order_shared(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    static const float green[4] = { 0, 1, 0, 1 };
    enum { BOX = 16 };
    uint32_t dw[10 + 9 * 64], copy[14], px[BOX * BOX];
    Batch b = { .gpu = gpu, .hold = true };
    uint64_t stream, copy_stream, backing;
    size_t n, gn;

    pvgpu_setup_3d(gpu, alloc);
    qobject_unref(qmp_ok("{'execute': 'pvgpu-set-scheduler', 'arguments': "
                         "{'id': 'pvgpu0', 'policy': 'equal-share'}}"));
    g_assert_cmphex(ctx_create(gpu, 1, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(ctx_create(gpu, 2, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    make_rt(gpu, 1, 1, 1024, 1024);
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE, 2, 1),
                    ==, VIRTIO_GPU_RESP_OK_NODATA);
    backing = make_rt(gpu, 2, 2, BOX, BOX);
    gn = clear_stream(dw, 1, green);
    g_assert_cmphex(submit_3d(gpu, 1, dw, gn, VIRTIO_GPU_FLAG_FENCE, 1), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    n = busy_stream(dw, 1, 64);
    stream = put_stream(alloc, dw, n);
    /* context 2: resource 1's top-left corner into resource 2 */
    copy[0] = VIRGL_CMD(VIRGL_CCMD_RESOURCE_COPY_REGION, 0, 13);
    copy[1] = 2;                /* destination, level, x, y, z */
    copy[2] = copy[3] = copy[4] = copy[5] = 0;
    copy[6] = 1;                /* source, level, x, y, z, w, h, d */
    copy[7] = copy[8] = copy[9] = copy[10] = 0;
    copy[11] = copy[12] = BOX;
    copy[13] = 1;
    for (int i = 0; i < 14; i++) {
        copy[i] = cpu_to_le32(copy[i]);
    }
    copy_stream = put_stream(alloc, copy, sizeof(copy));
    qtest_memset(gpu->qts, backing, 0xa5, sizeof(px));

    for (int i = 0; i < 4; i++) {
        batch_submit_ring(&b, 1, stream, n);
    }
    batch_submit_ring(&b, 2, copy_stream, sizeof(copy));
    batch_read_back(&b, 2, 2, BOX, backing);
}

/*
 * Work a context queued before its CTX_DESTROY runs, even when it was
 * still held in the device (here behind a flush the frame-rate limiter
 * holds, of a resource attached to the context) when the destroy came:
 * its fence is answered OK and what it rendered is there.  An UNREF of a
 * resource the destroyed context had attached still waits for that work.
 */
static void test_order_destroy(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    static const float red[4] = { 1, 0, 0, 1 };
    struct virtio_gpu_resource_flush fl;
    struct virtio_gpu_ctrl_hdr destroy;
    Batch b = { .gpu = gpu, .hold = true };
    uint32_t dw[32], types[4];
    uint64_t rt, stream;
    QDict *info;
    size_t n;

    pvgpu_setup_3d(gpu, alloc);
    g_assert_cmphex(ctx_create(gpu, 1, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    rt = make_rt(gpu, 1, 3, 16, 16);
    n = clear_stream(dw, 3, red);
    stream = put_stream(alloc, dw, n);
    hold_behind_flushes(gpu, &fl);
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE, 1, 2),
                    ==, VIRTIO_GPU_RESP_OK_NODATA);

    batch_add(&b, &fl, sizeof(fl), 0, 0);
    batch_submit_ring(&b, 1, stream, n);
    hdr_init(&destroy, VIRTIO_GPU_CMD_CTX_DESTROY);
    destroy.ctx_id = cpu_to_le32(1);
    batch_add(&b, &destroy, sizeof(destroy), 0, 0);
    batch_resource_cmd(&b, VIRTIO_GPU_CMD_RESOURCE_UNREF, 2);
    batch_publish(&b);
    batch_drain(&b, types);
    for (unsigned i = 0; i < b.n; i++) {
        g_assert_cmphex(types[i], ==, VIRTIO_GPU_RESP_OK_NODATA);
    }
    info = query_pvgpu();
    g_assert_cmpuint(qlist_size(qdict_get_qlist(info, "contexts")), ==, 0);
    qobject_unref(info);
    /* read without a context: the resource outlives the one destroyed */
    check_rt(gpu, 0, 3, rt, 16, 16, 0xff0000);
    set_max_fps(0);
}

/*
 * A flush the frame-rate limiter holds delays only what touches its
 * resource or scanout: context 1, which has the flushed resource
 * attached, waits behind it; context 2's fence is answered at once.
 */
static void test_order_fps(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    static const float red[4] = { 1, 0, 0, 1 };
    struct virtio_gpu_resource_flush fl;
    Batch b = { .gpu = gpu, .hold = true };
    uint32_t dw[32], types[3];
    uint64_t s1, s2;
    gint64 start;
    unsigned first;
    size_t n;

    pvgpu_setup_3d(gpu, alloc);
    g_assert_cmphex(ctx_create(gpu, 1, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(ctx_create(gpu, 2, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    make_rt(gpu, 1, 3, 16, 16);
    make_rt(gpu, 2, 4, 16, 16);
    n = clear_stream(dw, 3, red);
    s1 = put_stream(alloc, dw, n);
    n = clear_stream(dw, 4, red);
    s2 = put_stream(alloc, dw, n);
    /* resource 2 on scanout 0 at one frame a second, a frame just shown */
    hold_behind_flushes(gpu, &fl);
    g_assert_cmphex(ctx_cmd(gpu, VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE, 1, 2),
                    ==, VIRTIO_GPU_RESP_OK_NODATA);

    start = g_get_monotonic_time();
    batch_add(&b, &fl, sizeof(fl), 0, 0);
    batch_submit_ring(&b, 1, s1, n);
    batch_submit_ring(&b, 2, s2, n);
    batch_publish(&b);
    first = batch_next(&b);
    g_assert_cmpuint(first, ==, 2);
    /* well before the limiter lets the next frame go */
    g_assert_cmpint(g_get_monotonic_time() - start, <, 900 * 1000);
    /* context 1 waits for the flush */
    g_assert_cmpuint(batch_next(&b), ==, 0);
    g_assert_cmpuint(batch_next(&b), ==, 1);
    for (unsigned i = 0; i < b.n; i++) {
        types[i] = qtest_readl(gpu->qts, b.resp[i]);
        g_assert_cmphex(types[i], ==, VIRTIO_GPU_RESP_OK_NODATA);
    }
    set_max_fps(0);
}

/* --- the GPU pool (pvgpu-poold) ----------------------------------------- */

/* A pvgpu-poold of the build under test, in a directory of its own */
typedef struct Pool {
    char *dir;
    char *sock;
    char *qmp;
    GPid pid;
    int qmp_fd;
    GPtrArray *events;          /* QDicts the daemon sent between answers */
    unsigned concurrent;        /* --concurrent, if not 0 */
} Pool;

/* A QEMU whose pvgpu joins @pool, with a Bench to load it */
typedef struct PoolVm {
    QTestState *qts;
    QGuestAllocator alloc;
    QPCIBus *bus;
    QVirtioPCIDevice *dev;
    QPvgpu gpu;
    Bench b;
    bool busy;                  /* pool_run() keeps its loads topped up */
    bool killed;                /* its QEMU was killed: no more I/O */
} PoolVm;

/*
 * $PVGPU_POOLD, or the daemon built beside QEMU (QTEST_QEMU_BINARY's last
 * word: it may be an "env ... qemu" command line)
 */
static char *poold_binary(void)
{
    const char *qemu = g_getenv("QTEST_QEMU_BINARY");
    const char *last = strrchr(qemu, ' ');
    g_autofree char *dir = g_path_get_dirname(last ? last + 1 : qemu);

    if (g_getenv("PVGPU_POOLD")) {
        return g_strdup(g_getenv("PVGPU_POOLD"));
    }
    return g_build_filename(dir, "contrib", "pvgpu-pool", "pvgpu-poold",
                            NULL);
}

/* Run pvgpu-poold with @args; its exit status */
static int poold_run_sync(const char *args)
{
    g_autofree char *bin = poold_binary();
    g_autofree char *cmd = g_strdup_printf("%s %s", bin, args);
    g_autofree char *err = NULL;
    int status;

    g_assert(g_spawn_command_line_sync(cmd, NULL, &err, &status, NULL));
    g_test_message("%s: %s", cmd, err);
    return status;
}

/* The daemon goes with the test, however the test ends */
static void pool_child_setup(gpointer data)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
}

static void pool_start(Pool *p)
{
    g_autofree char *bin = poold_binary();
    g_autofree char *concurrent = g_strdup_printf("%u", p->concurrent);
    char *argv[] = { bin, (char *)"--socket", p->sock, (char *)"--qmp",
                     p->qmp, (char *)"--concurrent", concurrent, NULL };
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    GError *err = NULL;

    if (!p->dir) {
        p->dir = g_dir_make_tmp("pvgpu-pool-XXXXXX", NULL);
        p->sock = g_build_filename(p->dir, "pool.sock", NULL);
        p->qmp = g_build_filename(p->dir, "qmp.sock", NULL);
        p->events = g_ptr_array_new_with_free_func(
            (GDestroyNotify)qobject_unref_impl);
        argv[2] = p->sock;
        argv[4] = p->qmp;
    }
    if (!p->concurrent) {
        argv[5] = NULL;
    }
    unlink(p->qmp);
    g_assert(g_spawn_async(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD,
                           pool_child_setup, NULL, &p->pid, &err));
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        pstrcpy(sa.sun_path, sizeof(sa.sun_path), p->qmp);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            p->qmp_fd = fd;
            break;
        }
        close(fd);
        g_assert(g_get_monotonic_time() < deadline);
        g_usleep(20 * 1000);
    }
    qobject_unref(qmp_fd_receive(p->qmp_fd));
    qobject_unref(qmp_fd(p->qmp_fd, "{'execute': 'qmp_capabilities'}"));
}

static void pool_kill(Pool *p)
{
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    g_spawn_close_pid(p->pid);
    close(p->qmp_fd);
}

static void pool_free(Pool *p)
{
    g_autofree char *state = g_strdup_printf("%s.state", p->sock);
    g_autofree char *lock = g_strdup_printf("%s.lock", p->sock);

    unlink(state);
    unlink(lock);
    unlink(p->sock);
    unlink(p->qmp);
    rmdir(p->dir);
    g_ptr_array_free(p->events, true);
    g_free(p->dir);
    g_free(p->sock);
    g_free(p->qmp);
}

/* A command to the daemon; events that come first are kept */
static QDict *pool_qmp(Pool *p, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static QDict *pool_qmp(Pool *p, const char *fmt, ...)
{
    va_list ap;
    QDict *rsp;

    va_start(ap, fmt);
    qmp_fd_vsend(p->qmp_fd, fmt, ap);
    va_end(ap);
    for (;;) {
        rsp = qmp_fd_receive(p->qmp_fd);
        if (!qdict_haskey(rsp, "event")) {
            return rsp;
        }
        g_ptr_array_add(p->events, rsp);
    }
}

static bool pool_event_seen(Pool *p, const char *event, const char *name)
{
    for (guint i = 0; i < p->events->len; i++) {
        QDict *e = p->events->pdata[i];

        if (g_str_equal(qdict_get_str(e, "event"), event) &&
            g_str_equal(qdict_get_str(qdict_get_qdict(e, "data"), "name"),
                        name)) {
            return true;
        }
    }
    return false;
}

/* The pool's entry for VM @name (a new reference), NULL if none */
static QDict *pool_vm_info(Pool *p, const char *name)
{
    QDict *rsp = pool_qmp(p, "{'execute': 'query-pvgpu-pool'}");
    QListEntry *e;
    QDict *found = NULL;

    QLIST_FOREACH_ENTRY(qdict_get_qlist(qdict_get_qdict(rsp, "return"),
                                        "vms"), e) {
        QDict *vm = qobject_to(QDict, qlist_entry_obj(e));

        if (g_str_equal(qdict_get_str(vm, "name"), name)) {
            found = qobject_ref(vm);
        }
    }
    qobject_unref(rsp);
    return found;
}

/* A boolean member of VM @name's entry: false if it has none */
static bool pool_vm_flag(Pool *p, const char *name, const char *key)
{
    QDict *vm = pool_vm_info(p, name);
    bool flag = vm && qdict_get_bool(vm, key);

    qobject_unref(vm);
    return flag;
}

static bool pool_vm_connected(Pool *p, const char *name)
{
    return pool_vm_flag(p, name, "connected");
}

/* The "pool" member of @vm's query-pvgpu (a new reference) */
static QDict *pool_member(PoolVm *vm)
{
    QDict *rsp = qtest_qmp(vm->qts, "{'execute': 'query-pvgpu'}");
    QDict *info = qobject_to(QDict, qlist_peek(qdict_get_qlist(rsp,
                                                                "return")));
    QDict *m = qobject_ref(qdict_get_qdict(info, "pool"));

    qobject_unref(rsp);
    return m;
}

static void pool_vm_start(PoolVm *vm, Pool *p, const char *name,
                          const char *extra)
{
    /* PVGPU_POOL_QEMU_ARGS: e.g. -trace for a VM's side of the pool */
    vm->qts = qtest_initf("-M pc -name %s -chardev socket,id=pool0,path=%s,"
                          "reconnect-ms=200 -device pvgpu-pci,addr=5,"
                          "virgl=on,pool=pool0%s %s", name, p->sock, extra,
                          g_getenv("PVGPU_POOL_QEMU_ARGS") ?: "");
    global_qtest = vm->qts;
    pc_alloc_init(&vm->alloc, vm->qts, ALLOC_NO_FLAGS);
    vm->bus = qpci_new_pc(vm->qts, &vm->alloc);
    vm->dev = hotplug_gpu(vm->qts, vm->bus, &vm->alloc, 5, &vm->gpu);
    vm->b = (Bench) { .gpu = &vm->gpu, .alloc = &vm->alloc };
    memset(vm->b.slot_load, -1, sizeof(vm->b.slot_load));
}

static void pool_vm_stop(PoolVm *vm)
{
    global_qtest = vm->qts;
    qpvgpu_cleanup(&vm->gpu);
    if (!vm->killed) {
        qvirtio_pci_device_disable(vm->dev);
    }
    g_free(vm->dev->pdev);
    g_free(vm->dev);
    qpci_free_pc(vm->bus);
    alloc_destroy(&vm->alloc);
    qtest_quit(vm->qts);
    for (unsigned l = 0; l < vm->b.nloads; l++) {
        g_free(vm->b.loads[l]);
    }
    vm->qts = NULL;
}

/* Wait up to 10 s for @cond(@p, @name) */
static void pool_wait(bool (*cond)(Pool *p, const char *name), Pool *p,
                      const char *name)
{
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

    while (!cond(p, name)) {
        g_assert(g_get_monotonic_time() < deadline);
        g_usleep(20 * 1000);
    }
}

/* VMs pool-a and pool-b joined to @p, at pool weights 1:3 */
static void pool_start_pair(Pool *p, PoolVm *a, PoolVm *b)
{
    qobject_unref(pool_qmp(p, "{'execute': 'pvgpu-pool-set-vm', "
                           "'arguments': {'name': 'pool-b', 'weight': 300}}"));
    pool_vm_start(a, p, "pool-a", "");
    pool_vm_start(b, p, "pool-b", "");
    pool_wait(pool_vm_connected, p, "pool-a");
    pool_wait(pool_vm_connected, p, "pool-b");
}

/*
 * Keep the loads of every busy VM topped up for @usecs and collect the
 * answers; then wait for what is outstanding.  Fails if a VM's answers
 * stop for @stall_us (0: 30 s).
 */
typedef struct PoolRun {
    void (*sample)(void *opaque, gint64 t);  /* every 100 ms, if set */
    void *opaque;
    gint64 max_gap_us[8];       /* longest wait for an answer, per VM */
    unsigned polls, dry;        /* of busy VMs; with nothing outstanding */
} PoolRun;

static void pool_run_full(PoolVm **vms, unsigned n, gint64 usecs,
                          gint64 stall_us, PoolRun *run)
{
    gint64 start = g_get_monotonic_time(), next = start;
    gint64 last[8];

    g_assert(n <= ARRAY_SIZE(last));
    for (unsigned i = 0; i < n; i++) {
        last[i] = start;
    }
    for (;;) {
        gint64 now = g_get_monotonic_time();
        bool idle = true, got = false;

        if (run && run->sample && now >= next && now - start <= usecs) {
            run->sample(run->opaque, now - start);
            next += 100 * 1000;
        }

        for (unsigned i = 0; i < n; i++) {
            Bench *b = &vms[i]->b;

            global_qtest = vms[i]->qts;
            if (vms[i]->busy && now - start < usecs) {
                if (run) {
                    run->polls++;
                    run->dry += bench_idle(b);
                }
                bench_top_up(b);
            }
            while (bench_reap(b)) {
                if (run && !bench_idle(b)) {
                    run->max_gap_us[i] = MAX(run->max_gap_us[i],
                                             g_get_monotonic_time() -
                                             last[i]);
                }
                last[i] = g_get_monotonic_time();
                got = true;
            }
            if (!bench_idle(b) &&
                now - last[i] > (stall_us ?: 30 * G_USEC_PER_SEC)) {
                g_error("VM %u: no answer for %" PRId64 " us", i,
                        now - last[i]);
            }
            idle &= bench_idle(b);
        }
        if (now - start >= usecs && idle) {
            return;
        }
        if (!got) {
            g_usleep(200);
        }
    }
}

static void pool_run(PoolVm **vms, unsigned n, gint64 usecs, gint64 stall_us)
{
    pool_run_full(vms, n, usecs, stall_us, NULL);
}

/*
 * Two VMs at pool weights 1:3 share the GPU about 25:75 while both are
 * busy; one alone gets all of it.  Each device shows its pool.
 */
static void test_pool_shares(void)
{
    QTestState *saved = global_qtest;
    Pool pool = { 0 };
    PoolVm a = { 0 }, b = { 0 };
    PoolVm *both[] = { &a, &b };
    QDict *rsp, *va, *vb, *m;
    double sa, sb;

    pool_start(&pool);
    pool_start_pair(&pool, &a, &b);
    g_assert(pool_event_seen(&pool, "PVGPU_POOL_JOIN", "pool-a"));

    global_qtest = a.qts;
    bench_load(&a.b, 1, 512, 8, 32);
    global_qtest = b.qts;
    bench_load(&b.b, 1, 512, 8, 32);
    a.busy = b.busy = true;
    pool_run(both, 2, 3 * G_USEC_PER_SEC, 0);

    va = pool_vm_info(&pool, "pool-a");
    vb = pool_vm_info(&pool, "pool-b");
    sa = qdict_get_double(va, "share");
    sb = qdict_get_double(vb, "share");
    g_test_message("shares over the last second, 1:3: %.1f%% %.1f%%", sa, sb);
    /*
     * the split, of the GPU time both used; both busy use nearly all of
     * it, but a host short of CPU (an ASan build beside other work) has
     * left the GPU idle 4 % of a second: the VMs could not queue faster
     */
    g_assert_cmpfloat(sb / (sa + sb) * 100, >, 55);
    g_assert_cmpfloat(sb / (sa + sb) * 100, <, 95);
    g_assert_cmpfloat(sa + sb, >, 90);
    g_assert_cmpuint(qdict_get_int(vb, "grants"), >, 1);
    g_assert_cmpuint(qdict_get_int(vb, "effective-weight"), ==, 7500);
    qobject_unref(va);
    qobject_unref(vb);

    /* a weight changed at run time: 3:3 */
    qobject_unref(pool_qmp(&pool, "{'execute': 'pvgpu-pool-set-vm', "
                           "'arguments': {'name': 'pool-a', 'weight': 300}}"));
    pool_run(both, 2, 2 * G_USEC_PER_SEC, 0);
    va = pool_vm_info(&pool, "pool-a");
    sa = qdict_get_double(va, "share");
    g_test_message("shares over the last second, 3:3: %.1f%%", sa);
    g_assert_cmpfloat(sa, >, 35);
    g_assert_cmpfloat(sa, <, 65);
    g_assert_cmpuint(qdict_get_int(va, "effective-weight"), ==, 5000);
    qobject_unref(va);

    /* A idle: B gets everything */
    a.busy = false;
    pool_run(both, 2, 1500 * G_USEC_PER_SEC / 1000, 0);
    vb = pool_vm_info(&pool, "pool-b");
    g_assert_cmpfloat(qdict_get_double(vb, "share"), >, 95);
    qobject_unref(vb);

    m = pool_member(&b);
    g_assert_cmpstr(qdict_get_str(m, "state"), ==, "member");
    g_assert_cmpstr(qdict_get_str(m, "name"), ==, "pool-b");
    g_assert_cmpuint(qdict_get_int(m, "grants"), >, 1);
    /* the pool reports the weight after the change (3:3) */
    g_assert_cmpuint(qdict_get_int(m, "weight"), ==, 5000);
    qobject_unref(m);

    /* a bad QMP argument is named */
    rsp = pool_qmp(&pool, "{'execute': 'pvgpu-pool-set-vm', 'arguments': "
                   "{'name': 'pool-b', 'weight': 0}}");
    g_assert(strstr(qdict_get_str(qdict_get_qdict(rsp, "error"), "desc"),
                    "weight"));
    qobject_unref(rsp);

    pool_vm_stop(&a);
    pool_vm_stop(&b);
    pool_kill(&pool);
    pool_free(&pool);
    global_qtest = saved;
}

/*
 * Faults: a malformed peer, a second daemon, the daemon killed and
 * restarted (the VMs render on, and rejoin with the shares that were
 * set), a VM killed.
 */
/* A raw peer that joins as @name and asks for the GPU */
static int pool_ghost(Pool *p, const char *name)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    uint8_t hello[8 + 76] = { 1, 0, 0, 0, 76, 0, 0, 0, 1 };
    static const uint8_t demand[8] = { 2 };
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    pstrcpy(sa.sun_path, sizeof(sa.sun_path), p->sock);
    pstrcpy((char *)hello + 20, 64, name);
    g_assert_cmpint(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    g_assert_cmpint(write(fd, hello, sizeof(hello)), ==, sizeof(hello));
    g_assert_cmpint(write(fd, demand, sizeof(demand)), ==, sizeof(demand));
    pool_wait(pool_vm_connected, p, name);
    return fd;
}

static bool pool_vm_granted(Pool *p, const char *name)
{
    return pool_vm_flag(p, name, "granted");
}

static bool pool_vm_gone(Pool *p, const char *name)
{
    return !pool_vm_connected(p, name);
}

static void test_pool_faults(void)
{
    QTestState *saved = global_qtest;
    Pool pool = { 0 };
    PoolVm a = { 0 }, b = { 0 };
    PoolVm *both[] = { &a, &b };
    g_autofree char *args = NULL;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    static const uint8_t junk[16] = { 0xe7, 0x03, 0, 0, 8, 0, 0, 0 };
    uint64_t done_a, done_b;
    QDict *vm, *m;
    int fd;

    pool_start(&pool);

    /*
     * peers that vanish while they hold the GPU, and while they wait for
     * it: the daemon carries on (a peer that left while queued made it
     * call a NULL function)
     */
    {
        int holder = pool_ghost(&pool, "ghost-holder");
        int waiter;

        pool_wait(pool_vm_granted, &pool, "ghost-holder");
        waiter = pool_ghost(&pool, "ghost-waiter");
        g_assert(!pool_vm_granted(&pool, "ghost-waiter"));
        close(waiter);
        pool_wait(pool_vm_gone, &pool, "ghost-waiter");
        close(holder);
        pool_wait(pool_vm_gone, &pool, "ghost-holder");
    }

    /*
     * the same process again under its name before the pool saw its old
     * connection end (a QEMU that left a pool that did not answer, and
     * came back at once): the new connection replaces the old one, where
     * the VM was refused for its own name before
     */
    {
        struct timeval tv = { .tv_sec = 10 };
        int old = pool_ghost(&pool, "ghost-again");
        int again = pool_ghost(&pool, "ghost-again");
        uint8_t msg[8];
        ssize_t n;
        char byte;

        g_assert_cmpint(setsockopt(old, SOL_SOCKET, SO_RCVTIMEO, &tv,
                                   sizeof(tv)), ==, 0);
        g_assert_cmpint(setsockopt(again, SOL_SOCKET, SO_RCVTIMEO, &tv,
                                   sizeof(tv)), ==, 0);
        /* the old connection is closed: what it got, then its end (0) */
        while ((n = read(old, &byte, 1)) > 0) {
            continue;
        }
        g_assert_cmpint(n, ==, 0);
        /* the new one is welcomed (16), not refused (17) */
        g_assert_cmpint(read(again, msg, sizeof(msg)), ==, sizeof(msg));
        g_assert_cmpuint(msg[0], ==, 16);
        g_assert(pool_vm_connected(&pool, "ghost-again"));
        close(old);
        close(again);
        pool_wait(pool_vm_gone, &pool, "ghost-again");
    }

    /* a peer that floods the pool with messages is disconnected */
    {
        int flood = pool_ghost(&pool, "ghost-flood");
        static const uint8_t demand[8] = { 2 };
        char byte;

        for (int i = 0; i < 5000; i++) {
            if (send(flood, demand, sizeof(demand), MSG_NOSIGNAL) !=
                sizeof(demand)) {
                break;
            }
        }
        /* the daemon closes the socket: read sees the end */
        while (read(flood, &byte, 1) > 0) {
            continue;
        }
        close(flood);
        pool_wait(pool_vm_gone, &pool, "ghost-flood");
    }

    /*
     * but a member alone that returns each grant at once and asks again
     * (short submissions one at a time) is not flooding: each of its
     * messages follows a grant of the pool's
     */
    {
        int cycle = pool_ghost(&pool, "ghost-cycle");

        for (int i = 0; i < 3000; i++) {
            uint8_t ret[24] = { 3, 0, 0, 0, 16 };
            static const uint8_t demand[8] = { 2 };
            uint8_t msg[8 + 64];
            uint32_t len;

            /* the next GRANT (type 19), past the pool's other messages */
            do {
                g_assert_cmpint(recv(cycle, msg, 8, MSG_WAITALL), ==, 8);
                len = ldl_le_p(msg + 4);
                g_assert_cmpuint(len, <=, 64);
                g_assert_cmpint(len ? recv(cycle, msg + 8, len, MSG_WAITALL) :
                                0, ==, len);
            } while (lduw_le_p(msg) != 19);
            memcpy(ret + 8, msg + 8, 4);    /* its seq; busy 0, used 0 */
            g_assert_cmpint(send(cycle, ret, sizeof(ret), MSG_NOSIGNAL), ==,
                            sizeof(ret));
            g_assert_cmpint(send(cycle, demand, sizeof(demand), MSG_NOSIGNAL),
                            ==, sizeof(demand));
        }
        g_assert(pool_vm_connected(&pool, "ghost-cycle"));
        close(cycle);
        pool_wait(pool_vm_gone, &pool, "ghost-cycle");
    }

    pool_start_pair(&pool, &a, &b);
    global_qtest = a.qts;
    bench_load(&a.b, 1, 256, 4, 4);
    global_qtest = b.qts;
    bench_load(&b.b, 1, 256, 4, 4);
    a.busy = b.busy = true;

    /* a peer that sends an unknown message is dropped; nobody else is */
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    pstrcpy(sa.sun_path, sizeof(sa.sun_path), pool.sock);
    g_assert_cmpint(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    g_assert_cmpint(write(fd, junk, sizeof(junk)), ==, sizeof(junk));
    g_assert_cmpint(read(fd, (char[8]) { 0 }, 8), ==, 0);
    close(fd);
    pool_run(both, 2, G_USEC_PER_SEC / 2, 2 * G_USEC_PER_SEC);
    g_assert(pool_vm_connected(&pool, "pool-a"));
    g_assert(pool_vm_connected(&pool, "pool-b"));

    /* one daemon per socket */
    args = g_strdup_printf("--socket %s --no-state", pool.sock);
    g_assert_cmpint(poold_run_sync(args), !=, 0);
    /* a bad option value: an error and exit status 1 (it aborted) */
    {
        static const char *const bad[] = {
            "--batch-quanta 0", "--quantum-us 0", "--concurrent 17",
            "--policy fifo",
        };

        for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
            int status = poold_run_sync(bad[i]);

            g_assert(WIFEXITED(status));
            g_assert_cmpint(WEXITSTATUS(status), ==, 1);
        }
    }
    g_assert(pool_vm_connected(&pool, "pool-a"));

    /*
     * the daemon hung (stopped, its sockets open): both hear nothing from
     * it, leave it after PVGPU_POOL_SILENCE_MS and render on their own;
     * once it runs again they rejoin
     */
    done_a = a.b.loads[0]->completed;
    done_b = b.b.loads[0]->completed;
    kill(pool.pid, SIGSTOP);
    pool_run(both, 2, 8 * G_USEC_PER_SEC, 7 * G_USEC_PER_SEC);
    g_assert_cmpuint(a.b.loads[0]->completed, >, done_a + 10);
    g_assert_cmpuint(b.b.loads[0]->completed, >, done_b + 10);
    m = pool_member(&a);
    g_assert_cmpstr(qdict_get_str(m, "state"), !=, "member");
    qobject_unref(m);
    kill(pool.pid, SIGCONT);
    {
        gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
        bool joined = false;

        while (!joined) {
            g_assert(g_get_monotonic_time() < deadline);
            pool_run(both, 2, G_USEC_PER_SEC / 5, 7 * G_USEC_PER_SEC);
            joined = true;
            for (unsigned i = 0; i < 2; i++) {
                m = pool_member(both[i]);
                joined &= g_str_equal(qdict_get_str(m, "state"), "member");
                qobject_unref(m);
            }
        }
    }

    /*
     * the pool's policy: a value out of range is refused naming its
     * argument and changes nothing; one in range is kept in the state
     * file like the VMs' settings
     */
    m = pool_qmp(&pool, "{'execute': 'pvgpu-pool-set-policy', 'arguments': "
                 "{'quantum-us': 3000, 'batch-quanta': 1001}}");
    g_assert(strstr(qdict_get_str(qdict_get_qdict(m, "error"), "desc"),
                    "batch-quanta"));
    qobject_unref(m);
    qobject_unref(pool_qmp(&pool, "{'execute': 'pvgpu-pool-set-policy', "
                           "'arguments': {'batch-quanta': 48}}"));

    /* the daemon killed: both render on, on their own */
    done_a = a.b.loads[0]->completed;
    done_b = b.b.loads[0]->completed;
    pool_kill(&pool);
    pool_run(both, 2, G_USEC_PER_SEC, G_USEC_PER_SEC);
    g_assert_cmpuint(a.b.loads[0]->completed, >, done_a + 10);
    g_assert_cmpuint(b.b.loads[0]->completed, >, done_b + 10);
    m = pool_member(&a);
    g_assert_cmpstr(qdict_get_str(m, "state"), ==, "disconnected");
    qobject_unref(m);

    /* back: both rejoin, with pool-b's weight from the state file */
    pool_start(&pool);
    pool_wait(pool_vm_connected, &pool, "pool-a");
    pool_wait(pool_vm_connected, &pool, "pool-b");
    vm = pool_vm_info(&pool, "pool-b");
    g_assert_cmpuint(qdict_get_int(vm, "weight"), ==, 300);
    qobject_unref(vm);
    m = pool_qmp(&pool, "{'execute': 'query-pvgpu-pool'}");
    g_assert_cmpuint(qdict_get_int(qdict_get_qdict(m, "return"),
                                   "batch-quanta"), ==, 48);
    g_assert_cmpuint(qdict_get_int(qdict_get_qdict(m, "return"),
                                   "quantum-us"), ==, 2000);
    qobject_unref(m);
    pool_run(both, 2, G_USEC_PER_SEC, 2 * G_USEC_PER_SEC);
    m = pool_member(&a);
    g_assert_cmpstr(qdict_get_str(m, "state"), ==, "member");
    qobject_unref(m);

    /* a VM killed: its share is freed at once */
    qtest_kill_qemu(b.qts);
    b.killed = true;
    b.busy = false;
    {
        gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;

        while (pool_vm_connected(&pool, "pool-b")) {
            g_assert(g_get_monotonic_time() < deadline);
            g_usleep(20 * 1000);
        }
    }
    g_assert(pool_event_seen(&pool, "PVGPU_POOL_LEAVE", "pool-b"));
    pool_run(both, 1, 1500 * G_USEC_PER_SEC / 1000, 2 * G_USEC_PER_SEC);
    /* still a member (a flood of grant returns once got it dropped) */
    g_assert(pool_vm_connected(&pool, "pool-a"));
    vm = pool_vm_info(&pool, "pool-a");
    g_assert_cmpfloat(qdict_get_double(vm, "share"), >, 95);
    qobject_unref(vm);

    pool_vm_stop(&a);
    pool_vm_stop(&b);
    pool_kill(&pool);
    pool_free(&pool);
    global_qtest = saved;
}

/*
 * Admission and limits: a VM whose reservation does not fit is refused
 * and says why; the pool's bounds apply under the device's own.
 */
static void test_pool_admission(void)
{
    QTestState *saved = global_qtest;
    Pool pool = { 0 };
    PoolVm a = { 0 }, b = { 0 };
    QDict *m, *vm;

    /*
     * a state file from before batch-quanta existed: its settings are
     * loaded, batch-quanta is the default
     */
    pool_start(&pool);
    pool_kill(&pool);
    {
        g_autofree char *state = g_strdup_printf("%s.state", pool.sock);
        static const char old[] =
            "{\"policy\": \"equal-share\", \"quantum-us\": 3000, "
            "\"vms\": []}\n";

        g_assert(g_file_set_contents(state, old, -1, NULL));
    }
    pool_start(&pool);
    m = pool_qmp(&pool, "{'execute': 'query-pvgpu-pool'}");
    g_assert_cmpstr(qdict_get_str(qdict_get_qdict(m, "return"), "policy"),
                    ==, "equal-share");
    g_assert_cmpuint(qdict_get_int(qdict_get_qdict(m, "return"),
                                   "quantum-us"), ==, 3000);
    g_assert_cmpuint(qdict_get_int(qdict_get_qdict(m, "return"),
                                   "batch-quanta"), ==, 16);
    qobject_unref(m);
    qobject_unref(pool_qmp(&pool, "{'execute': 'pvgpu-pool-set-policy', "
                           "'arguments': {'policy': 'weighted', "
                           "'quantum-us': 2000}}"));
    qobject_unref(pool_qmp(&pool, "{'execute': 'pvgpu-pool-set-vm', "
                           "'arguments': {'name': 'pool-a', "
                           "'reservation': 70, 'max-contexts': 1}}"));
    pool_vm_start(&a, &pool, "pool-a", "");
    pool_wait(pool_vm_connected, &pool, "pool-a");
    pool_vm_start(&b, &pool, "pool-b", ",pool-reservation=50");
    {
        gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

        for (;;) {
            bool refused;

            m = pool_member(&b);
            refused = g_str_equal(qdict_get_str(m, "state"), "refused");
            if (refused) {
                break;
            }
            qobject_unref(m);
            g_assert(g_get_monotonic_time() < deadline);
            g_usleep(20 * 1000);
        }
    }
    g_assert(strstr(qdict_get_str(m, "reason"), "does not fit"));
    qobject_unref(m);
    qobject_unref(pool_qmp(&pool, "{'execute': 'query-pvgpu-pool'}"));
    g_assert(pool_event_seen(&pool, "PVGPU_POOL_LEAVE", "pool-b"));
    g_assert(!pool_vm_connected(&pool, "pool-b"));

    /* a refused VM asks again: once its reservation fits, it joins */
    qobject_unref(pool_qmp(&pool, "{'execute': 'pvgpu-pool-set-vm', "
                           "'arguments': {'name': 'pool-a', "
                           "'reservation': 30}}"));
    {
        gint64 deadline = g_get_monotonic_time() + 15 * G_USEC_PER_SEC;

        while (!pool_vm_connected(&pool, "pool-b")) {
            g_assert(g_get_monotonic_time() < deadline);
            g_usleep(100 * 1000);
        }
    }
    m = pool_member(&b);
    g_assert_cmpstr(qdict_get_str(m, "state"), ==, "member");
    qobject_unref(m);
    vm = pool_vm_info(&pool, "pool-b");
    g_assert_cmpuint(qdict_get_int(vm, "reservation"), ==, 50);
    qobject_unref(vm);

    /* pool-a: max-contexts 1 from the pool, under its own 64 */
    m = pool_member(&a);
    g_assert_cmpuint(qdict_get_int(m, "max-contexts"), ==, 1);
    qobject_unref(m);
    global_qtest = a.qts;
    g_assert_cmphex(ctx_create(&a.gpu, 1, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(ctx_create(&a.gpu, 2, 0), ==,
                    VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
    {
        gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

        while (!pool_event_seen(&pool, "PVGPU_POOL_LIMIT", "pool-a")) {
            qobject_unref(pool_qmp(&pool, "{'execute': 'query-pvgpu-pool'}"));
            g_assert(g_get_monotonic_time() < deadline);
            g_usleep(20 * 1000);
        }
    }
    /* lifted at run time */
    qobject_unref(pool_qmp(&pool, "{'execute': 'pvgpu-pool-set-vm', "
                           "'arguments': {'name': 'pool-a', "
                           "'max-contexts': 0}}"));
    {
        gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

        while (ctx_create(&a.gpu, 2, 0) != VIRTIO_GPU_RESP_OK_NODATA) {
            g_assert(g_get_monotonic_time() < deadline);
            g_usleep(20 * 1000);
        }
    }

    pool_vm_stop(&a);
    pool_vm_stop(&b);
    pool_kill(&pool);
    pool_free(&pool);
    global_qtest = saved;
}

/* --- pool benchmark (PVGPU_BENCH_POOL=1, scripts/bench-pool.sh) --------- */

typedef struct PoolShares {
    Pool *pool;
    const char *names[3];
    double target[3];
    uint64_t base[3];           /* GPU time at the start of the window */
    uint64_t prev[3];           /* at the last sample */
    gint64 settled;             /* last sample off target (cumulative) */
    double win_min[3], win_max[3];  /* 100 ms windows, after 1 s */
    double last[3];
} PoolShares;

static void pool_gpu_ns(Pool *p, const char *const *names, unsigned n,
                        uint64_t *out)
{
    QDict *rsp = pool_qmp(p, "{'execute': 'query-pvgpu-pool'}");
    QListEntry *e;

    QLIST_FOREACH_ENTRY(qdict_get_qlist(qdict_get_qdict(rsp, "return"),
                                        "vms"), e) {
        QDict *vm = qobject_to(QDict, qlist_entry_obj(e));

        for (unsigned i = 0; i < n; i++) {
            if (g_str_equal(qdict_get_str(vm, "name"), names[i])) {
                out[i] = qdict_get_int(vm, "gpu-ns");
            }
        }
    }
    qobject_unref(rsp);
}

static void pool_shares_start(PoolShares *sh)
{
    pool_gpu_ns(sh->pool, sh->names, 3, sh->base);
    memcpy(sh->prev, sh->base, sizeof(sh->prev));
    sh->settled = 0;
    for (int i = 0; i < 3; i++) {
        sh->win_min[i] = 100;
        sh->win_max[i] = 0;
    }
}

static void pool_shares_sample(void *opaque, gint64 t)
{
    PoolShares *sh = opaque;
    uint64_t g[3], sum = 0, wsum = 0;

    pool_gpu_ns(sh->pool, sh->names, 3, g);
    for (int i = 0; i < 3; i++) {
        sum += g[i] - sh->base[i];
        wsum += g[i] - sh->prev[i];
    }
    for (int i = 0; i < 3 && sum; i++) {
        sh->last[i] = 100.0 * (g[i] - sh->base[i]) / sum;
        if (fabs(sh->last[i] - 100 * sh->target[i]) > 2) {
            sh->settled = t;
        }
        if (wsum && t >= G_USEC_PER_SEC) {
            double w = 100.0 * (g[i] - sh->prev[i]) / wsum;

            sh->win_min[i] = MIN(sh->win_min[i], w);
            sh->win_max[i] = MAX(sh->win_max[i], w);
        }
    }
    memcpy(sh->prev, g, sizeof(g));
}

static uint64_t pool_done(PoolVm **vms, unsigned n)
{
    uint64_t done = 0;

    for (unsigned i = 0; i < n; i++) {
        for (unsigned l = 0; l < vms[i]->b.nloads; l++) {
            done += vms[i]->b.loads[l]->completed;
        }
    }
    return done;
}

/* Polls of busy VMs, and of them those that found nothing outstanding */
typedef struct PoolDry {
    unsigned polls, dry;
} PoolDry;

/*
 * Submissions per second of @vms while pool_run() keeps them busy for
 * @usecs; the longest wait for an answer raises @max_gap_us, and the
 * harness's polls add to @dry, if given
 */
static double pool_rate(PoolVm **vms, unsigned n, gint64 usecs,
                        gint64 *max_gap_us, PoolDry *dry)
{
    PoolRun run = { 0 };
    uint64_t d0 = pool_done(vms, n);
    gint64 t0 = g_get_monotonic_time();

    pool_run_full(vms, n, usecs, 0, &run);
    for (unsigned i = 0; max_gap_us && i < n; i++) {
        *max_gap_us = MAX(*max_gap_us, run.max_gap_us[i]);
    }
    if (dry) {
        dry->polls += run.polls;
        dry->dry += run.dry;
    }
    return (pool_done(vms, n) - d0) * 1e6 / (g_get_monotonic_time() - t0);
}

/* (Re)start @p's daemon and wait until the VMs @names have joined it */
static void pool_rejoin(Pool *p, const char *const *names, unsigned n)
{
    pool_start(p);
    for (unsigned i = 0; i < n; i++) {
        pool_wait(pool_vm_connected, p, names[i]);
    }
}

/* Set sched-inflight of the device of each of @vms */
static void pool_set_inflight(PoolVm **vms, unsigned n, unsigned inflight)
{
    for (unsigned i = 0; i < n; i++) {
        QDict *rsp = qtest_qmp(vms[i]->qts, "{'execute': 'query-pvgpu'}");
        QDict *info = qobject_to(QDict, qlist_peek(qdict_get_qlist(rsp,
                                                                    "return")));

        qobject_unref(qtest_qmp_assert_success_ref(vms[i]->qts,
            "{'execute': 'pvgpu-set-scheduler', 'arguments': "
            "{'id': %s, 'inflight': %u}}",
            qdict_get_str(info, "qom-path"), inflight));
        qobject_unref(rsp);
    }
}

/* GPU time per submission of the load of @vm, from its query-pvgpu */
/* The pool's grant length among busy VMs, in quanta */
static void pool_set_policy_batch(Pool *p, int quanta)
{
    QDict *rsp = pool_qmp(p, "{'execute': 'pvgpu-pool-set-policy', "
                          "'arguments': {'batch-quanta': %d}}", quanta);

    g_assert(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
}

static double pool_vm_batch_ms(PoolVm *vm, uint32_t ctx)
{
    QDict *rsp = qtest_qmp(vm->qts, "{'execute': 'query-pvgpu'}");
    QDict *info = qobject_to(QDict, qlist_peek(qdict_get_qlist(rsp,
                                                                "return")));
    QDict *c = context_info(info, ctx);
    double ms = c && qdict_get_int(c, "submissions") ?
                qdict_get_int(c, "gpu-time-ns") / 1e6 /
                qdict_get_int(c, "submissions") : 0;

    qobject_unref(rsp);
    return ms;
}

/*
 * The arms of bench_pool()'s throughput rounds: with the pool's defaults
 * (one VM at a time, grants of 16 quanta), with grants of a length the
 * bench chooses, with --concurrent 2, and without the pool; with one
 * submission on the GPU per VM at a time (sched-inflight=1, the
 * default) and with two, with which one VM alone keeps a renderer that
 * overlaps submissions (llvmpipe on several cores) as busy as several
 * VMs side by side do
 */
enum {
    TP_POOL, TP_POOL2, TP_LONG, TP_LONG2, TP_CONC, TP_NONE, TP_NONE2,
    TP_ARMS
};

/* What each arm is set against: no pool, the same sched-inflight */
static const int tp_base[TP_ARMS] = {
    TP_NONE, TP_NONE2, TP_NONE, TP_NONE2, TP_NONE, TP_NONE, TP_NONE2,
};

/*
 * The pooled arms into @r, the harness's polls into @dry; the longest
 * wait for a fence raises @gap
 */
static void pool_pooled_arms(Pool *pool, PoolVm **all, int long_batch,
                             double *r, PoolDry *dry, gint64 *gap)
{
    pool_run(all, 3, G_USEC_PER_SEC / 4, 0);
    r[TP_POOL] = pool_rate(all, 3, 2 * G_USEC_PER_SEC, gap, &dry[TP_POOL]);
    pool_set_policy_batch(pool, long_batch);
    r[TP_LONG] = pool_rate(all, 3, 2 * G_USEC_PER_SEC, NULL, &dry[TP_LONG]);
    pool_set_inflight(all, 3, 2);
    r[TP_LONG2] = pool_rate(all, 3, 2 * G_USEC_PER_SEC, NULL,
                            &dry[TP_LONG2]);
    pool_set_policy_batch(pool, DEFAULT_BATCH);
    r[TP_POOL2] = pool_rate(all, 3, 2 * G_USEC_PER_SEC, NULL,
                            &dry[TP_POOL2]);
    pool_set_inflight(all, 3, 1);
}

static void bench_pool(void)
{
    QTestState *saved = global_qtest;
    Pool pool = { 0 };
    PoolVm vm[3] = { 0 }, light = { 0 };
    PoolVm *all[] = { &vm[0], &vm[1], &vm[2] };
    PoolVm *pair[] = { &light, &vm[2] };
    static const char *const names[] = { "w1", "w2", "w4" };
    PoolShares sh = { .pool = &pool, .names = { "w1", "w2", "w4" },
                      .target = { 1 / 7.0, 2 / 7.0, 4 / 7.0 } };
    PoolRun run = { .sample = pool_shares_sample, .opaque = &sh };
    int rounds = getenv("PVGPU_BENCH_POOL_ROUNDS") ?
                 MAX(atoi(getenv("PVGPU_BENCH_POOL_ROUNDS")), 1) : 4;
    double rate[TP_ARMS] = { 0 };
    PoolDry dry[TP_ARMS] = { 0 };
    g_autofree double *cost = g_new(double, TP_ARMS * rounds);
    char *costs[TP_ARMS];
    /* grants long enough for VM switches to cost little here */
    int long_batch = getenv("PVGPU_BENCH_POOL_LONG_BATCH") ?
                     atoi(getenv("PVGPU_BENCH_POOL_LONG_BATCH")) : 128;
    double alone_with = 0, alone_without = 0;
    double solo_p99, shared_p99, batch_ms;
    gint64 worst_gap = 0, pooled_gap = 0;
    Load *lt;

    pool_start(&pool);
    if (getenv("PVGPU_BENCH_POOL_LIGHT")) {
        goto light_only;
    }
    for (int i = 0; i < 3; i++) {
        qobject_unref(pool_qmp(&pool, "{'execute': 'pvgpu-pool-set-vm', "
                               "'arguments': {'name': %s, 'weight': %d}}",
                               names[i], 100 << i));
        pool_vm_start(&vm[i], &pool, names[i], "");
    }
    for (int i = 0; i < 3; i++) {
        pool_wait(pool_vm_connected, &pool, names[i]);
        global_qtest = vm[i].qts;
        /* deep enough that the harness, polling three VMs, keeps up */
        bench_load(&vm[i].b, 1, 512, 8, 32);
        renice_render(vm[i].qts);
        vm[i].busy = true;
    }

    /* 1. shares at 1:2:4 */
    pool_run(all, 3, G_USEC_PER_SEC / 2, 0);
    pool_shares_start(&sh);
    pool_run_full(all, 3, 5 * G_USEC_PER_SEC, 0, &run);
    g_test_message("pool shares at weights 1:2:4, 5 s: %.1f / %.1f / %.1f %% "
                   "(targets 14.3 / 28.6 / 57.1); within 2 points from "
                   "%" PRId64 " ms on", sh.last[0], sh.last[1], sh.last[2],
                   sh.settled / 1000);
    g_test_message("pool shares in 100 ms windows after the first second: "
                   "w1 %.0f-%.0f %%, w2 %.0f-%.0f %%, w4 %.0f-%.0f %% "
                   "(grants last up to 32 ms)",
                   sh.win_min[0], sh.win_max[0], sh.win_min[1],
                   sh.win_max[1], sh.win_min[2], sh.win_max[2]);

    /* 2. a run-time weight change: w1 400, targets 40 / 20 / 40 */
    qobject_unref(pool_qmp(&pool, "{'execute': 'pvgpu-pool-set-vm', "
                           "'arguments': {'name': 'w1', 'weight': 400}}"));
    sh.target[0] = 0.4;
    sh.target[1] = 0.2;
    sh.target[2] = 0.4;
    pool_shares_start(&sh);
    pool_run_full(all, 3, 4 * G_USEC_PER_SEC, 0, &run);
    g_test_message("weight change w1 100 -> 400: shares %.1f / %.1f / %.1f %% "
                   "(targets 40 / 20 / 40) within 2 points from %" PRId64
                   " ms after the change", sh.last[0], sh.last[1], sh.last[2],
                   sh.settled / 1000);

    /*
     * 3a. the grants' own cost: one VM alone, with the pool and without
     * (nothing to share, so only the mechanism differs)
     */
    vm[0].busy = vm[1].busy = false;
    pool_run(all, 3, G_USEC_PER_SEC / 2, 0);
    for (int round = 0; round < 2; round++) {
        alone_with += pool_rate(all, 3, 2 * G_USEC_PER_SEC, NULL, NULL);
        pool_kill(&pool);
        alone_without += pool_rate(all, 3, 2 * G_USEC_PER_SEC, NULL,
                                   NULL);
        pool_rejoin(&pool, names, 3);
    }
    g_test_message("one VM alone: with the pool %.1f, without %.1f "
                   "submissions/s: cost of the grants %.2f %%",
                   alone_with / 2, alone_without / 2,
                   100.0 * (alone_without - alone_with) / alone_without);
    vm[0].busy = vm[1].busy = true;

    /*
     * 3b. throughput of three busy VMs with the pool and without it
     * (the daemon killed), in @rounds rounds whose pooled and unpooled
     * halves swap places every round so that drift of the host's speed
     * cancels out; each arm against the unpooled arm with the same
     * sched-inflight of its own round
     */
    for (int round = 0; round < rounds; round++) {
        bool pooled_first = !(round & 1);
        double r[TP_ARMS];

        if (pooled_first) {
            pool_pooled_arms(&pool, all, long_batch, r, dry, &pooled_gap);
        }
        pool_kill(&pool);
        /* the longest wait for a fence right after the kill */
        pool_rate(all, 3, G_USEC_PER_SEC, &worst_gap, NULL);
        r[TP_NONE] = pool_rate(all, 3, 2 * G_USEC_PER_SEC, NULL,
                               &dry[TP_NONE]);
        pool_set_inflight(all, 3, 2);
        r[TP_NONE2] = pool_rate(all, 3, 2 * G_USEC_PER_SEC, NULL,
                                &dry[TP_NONE2]);
        pool_set_inflight(all, 3, 1);
        pool.concurrent = 2;
        pool_rejoin(&pool, names, 3);
        pool_run(all, 3, G_USEC_PER_SEC / 4, 0);
        r[TP_CONC] = pool_rate(all, 3, 2 * G_USEC_PER_SEC, NULL,
                               &dry[TP_CONC]);
        pool_kill(&pool);
        pool.concurrent = 1;
        pool_rejoin(&pool, names, 3);
        if (!pooled_first) {
            pool_pooled_arms(&pool, all, long_batch, r, dry, &pooled_gap);
        }
        g_test_message("throughput round %d, submissions/s: pool %.0f, "
                       "long grants %.0f, --concurrent 2 %.0f, no pool "
                       "%.0f; sched-inflight=2: pool %.0f, long grants "
                       "%.0f, no pool %.0f", round, r[TP_POOL],
                       r[TP_LONG], r[TP_CONC], r[TP_NONE], r[TP_POOL2],
                       r[TP_LONG2], r[TP_NONE2]);
        for (int m = 0; m < TP_ARMS; m++) {
            rate[m] += r[m] / rounds;
            cost[m * rounds + round] = 100.0 * (1 - r[m] / r[tp_base[m]]);
        }
    }
    for (int m = 0; m < TP_ARMS; m++) {
        qsort(&cost[m * rounds], rounds, sizeof(double), cmp_double);
        costs[m] = cost_text(&cost[m * rounds], rounds,
                             100.0 * (1 - rate[m] / rate[tp_base[m]]));
    }
    g_test_message("throughput, 3 VMs busy, %d interleaved rounds, "
                   "sched-inflight=1 (the default): without the pool %.1f "
                   "submissions/s; with it %.1f/s, cost of the pool %s "
                   "(goal <= 2 %%)", rounds, rate[TP_NONE], rate[TP_POOL],
                   costs[TP_POOL]);
    g_test_message("throughput, sched-inflight=1, grants of %d quanta "
                   "(--batch-quanta): %.1f/s, cost %s; --concurrent 2: "
                   "%.1f/s, cost %s", long_batch, rate[TP_LONG],
                   costs[TP_LONG], rate[TP_CONC], costs[TP_CONC]);
    g_test_message("throughput, sched-inflight=2: without the pool %.1f/s; "
                   "with it %.1f/s, cost %s; grants of %d quanta %.1f/s, "
                   "cost %s", rate[TP_NONE2], rate[TP_POOL2],
                   costs[TP_POOL2], long_batch, rate[TP_LONG2],
                   costs[TP_LONG2]);
    for (int m = 0; m < TP_ARMS; m++) {
        g_free(costs[m]);
    }
    /* a harness that falls behind starves the VMs, not the GPU */
    g_test_message("throughput: the harness found a busy VM with nothing "
                   "queued at %.1f %% of its polls with the pool, %.1f %% "
                   "without (sched-inflight=1)",
                   100.0 * dry[TP_POOL].dry / MAX(dry[TP_POOL].polls, 1),
                   100.0 * dry[TP_NONE].dry / MAX(dry[TP_NONE].polls, 1));
    g_test_message("longest wait for a fence in the second after the "
                   "daemon was killed: %.1f ms; in the second before, "
                   "with the pool: %.1f ms (a grant is up to 32 ms)",
                   worst_gap / 1000.0, pooled_gap / 1000.0);

    /* 4. a light VM (one submission at a time) next to a greedy one */
    for (int i = 0; i < 2; i++) {
        vm[i].busy = false;
    }
    pool_run(all, 3, 1, 0);
    if (0) {
light_only:
        pool_vm_start(&vm[2], &pool, names[2], "");
        pool_wait(pool_vm_connected, &pool, names[2]);
        global_qtest = vm[2].qts;
        bench_load(&vm[2].b, 1, 512, 8, 4);
        renice_render(vm[2].qts);
    }
    pool_vm_start(&light, &pool, "light", "");
    pool_wait(pool_vm_connected, &pool, "light");
    global_qtest = light.qts;
    lt = bench_load(&light.b, 1, 256, 1, 1);
    renice_render(light.qts);
    lt->latency_us = g_array_new(false, false, sizeof(gint64));
    light.busy = true;
    vm[2].busy = false;
    pool_run(pair, 2, 2 * G_USEC_PER_SEC, 0);
    solo_p99 = load_p99_ms(lt);
    g_array_set_size(lt->latency_us, 0);
    vm[2].busy = true;
    pool_run(pair, 2, 3 * G_USEC_PER_SEC, 0);
    shared_p99 = load_p99_ms(lt);
    batch_ms = pool_vm_batch_ms(&vm[2], 1);
    g_test_message("light VM fence p99 (as its guest sees it): solo %.2f ms, "
                   "next to a greedy VM %.2f ms; bound solo + greedy "
                   "submission (%.2f ms) = %.2f ms; with the quantum the "
                   "greedy grant is cut to: %.2f ms", solo_p99, shared_p99,
                   batch_ms, solo_p99 + batch_ms, solo_p99 + batch_ms + 2);
    g_array_free(lt->latency_us, true);
    lt->latency_us = NULL;

    pool_vm_stop(&light);
    for (int i = 0; i < 3; i++) {
        if (vm[i].qts) {
            pool_vm_stop(&vm[i]);
        }
    }
    pool_kill(&pool);
    pool_free(&pool);
    global_qtest = saved;
}

static void register_pvgpu_test(void)
{
    /* device properties for one test, as -global options */
    QOSGraphTestOptions virgl_off = {
        .edge.before_cmd_line = "-global pvgpu-device.virgl=off",
        .arg = GINT_TO_POINTER(1),
    };
    QOSGraphTestOptions outputs = {
        .edge.before_cmd_line = "-global pvgpu-device.max_outputs=4",
        .arg = GUINT_TO_POINTER(4),
    };
    QOSGraphTestOptions hostmem = {
        .edge.before_cmd_line = "-global pvgpu-device.max_hostmem=4M",
    };
    QOSGraphTestOptions blob_hostmem = {
        .edge.before_cmd_line = "-global pvgpu-device.hostmem=1M",
    };
    QOSGraphTestOptions blob_virgl = { .arg = GINT_TO_POINTER(1) };
    QOSGraphTestOptions blob_quota = {
        .edge.before_cmd_line = "-global pvgpu-device.hostmem=1M "
                                "-global pvgpu-device.max_hostmem=8M",
    };
    QOSGraphTestOptions gl_scanout = {
        .edge.before_cmd_line = "-global pvgpu-device.gl-scanout=on",
    };
    QOSGraphTestOptions vnc = { .before = before_vnc };
    QOSGraphTestOptions render_process = {
        .edge.before_cmd_line = render_process_args(false),
    };
    QOSGraphTestOptions render_process_corrupt = {
        .before = before_corrupt,
        .edge.before_cmd_line = render_process_args(true),
    };
    QOSGraphTestOptions render_process_hang = {
        .edge.before_cmd_line = render_process_args(true),
    };
    QOSGraphTestOptions vnc_2d = {
        .before = before_vnc,
        .edge.before_cmd_line = "-global pvgpu-device.virgl=off",
    };
    QOSGraphTestOptions vnc_virgl = {
        .before = before_vnc, .arg = GINT_TO_POINTER(1),
    };
    QOSGraphTestOptions fenced = { .arg = GINT_TO_POINTER(1) };
    /*
     * Tests that count events need a QEMU of their own: qos-test reuses
     * one between tests with the same command line, and events are
     * rate-limited.  A distinct (harmless) max-queued makes the line new.
     */
    QOSGraphTestOptions fresh1 = {
        .edge.before_cmd_line = "-global pvgpu-device.max-queued=63",
    };
    QOSGraphTestOptions fresh2 = {
        .edge.before_cmd_line = "-global pvgpu-device.max-queued=62",
    };

    qos_add_test("config", "pvgpu", test_config, NULL);
    qos_add_test("config-virgl-off", "pvgpu", test_config, &virgl_off);
    qos_add_test("display-info", "pvgpu", test_display_info, NULL);
    qos_add_test("display-info-4-outputs", "pvgpu", test_display_info,
                 &outputs);
    qos_add_test("edid", "pvgpu", test_edid, NULL);
    qos_add_test("create-unref", "pvgpu", test_create_unref, NULL);
    qos_add_test("hostmem-limit", "pvgpu", test_hostmem_limit, &hostmem);
    qos_add_test("backing", "pvgpu", test_backing, NULL);
    qos_add_test("transfer-errors", "pvgpu", test_transfer_errors, NULL);
    qos_add_test("scanout-flush", "pvgpu", test_scanout_flush_errors, NULL);
    qos_add_test("malformed", "pvgpu", test_malformed, NULL);
    qos_add_test("fence", "pvgpu", test_fence, NULL);
    qos_add_test("uuid", "pvgpu", test_uuid, NULL);
    qos_add_test("pixels", "pvgpu", test_pixels, NULL);
    qos_add_test("reset", "pvgpu", test_reset, NULL);
    qos_add_test("cursor", "pvgpu", test_cursor, NULL);
    qos_add_test("ui-resize", "pvgpu", test_ui_resize, &vnc);
    qos_add_test("migrate", "pvgpu", test_migrate, NULL);
    qos_add_test("stop-answers", "pvgpu", test_stop_answers, NULL);
    qos_add_test("3d/render-process", "pvgpu", test_render_process,
                 &render_process);
    qos_add_test("3d/render-process-hang", "pvgpu", test_render_process_hang,
                 &render_process_hang);
    qos_add_test("3d/render-process-corrupt", "pvgpu",
                 test_render_process_corrupt, &render_process_corrupt);
    qos_add_test("3d/render-process-backing", "pvgpu", test_backing_replaced,
                 &render_process);
    qos_add_test("3d/capsets", "pvgpu", test_capsets, NULL);
    qos_add_test("3d/clear-readback", "pvgpu", test_clear_readback, NULL);
    qos_add_test("3d/2d-on-virgl", "pvgpu", test_2d_on_virgl, NULL);
    qos_add_test("3d/migrate", "pvgpu", test_migrate_3d, NULL);
    qos_add_test("3d/migrate-racing", "pvgpu", test_migrate_3d_racing, NULL);
    qos_add_test("3d/scanout-orientation", "pvgpu", test_scanout_orientation,
                 NULL);
    qos_add_test("3d/gl-scanout-fallback", "pvgpu", test_scanout_orientation,
                 &gl_scanout);
    qos_add_test("3d/fence-rings", "pvgpu", test_fence_rings, NULL);
    qos_add_test("3d/ctx-rules", "pvgpu", test_ctx_rules, NULL);
    qos_add_test("3d/destroy-busy", "pvgpu", test_destroy_busy, NULL);
    qos_add_test("3d/order-resources", "pvgpu", test_order_resources, NULL);
    qos_add_test("3d/backing-replaced", "pvgpu", test_backing_replaced,
                 NULL);
    qos_add_test("3d/order-fps", "pvgpu", test_order_fps, NULL);
    qos_add_test("3d/order-shared", "pvgpu", test_order_shared, NULL);
    qos_add_test("3d/order-destroy", "pvgpu", test_order_destroy, NULL);
    qos_add_test("3d/destroy-pending-fence", "pvgpu",
                 test_destroy_pending_fence, NULL);
    qos_add_test("3d/reset-queued", "pvgpu", test_reset_queued, NULL);
    qos_add_test("3d/reset-queued-fenced", "pvgpu", test_reset_queued,
                 &fenced);
    qos_add_test("3d/queue-reset", "pvgpu", test_queue_reset, NULL);
    qos_add_test("3d/dma-reentrancy", "pvgpu", test_dma_reentrancy, NULL);
    qos_add_test("3d/fence-order", "pvgpu", test_fence_order, NULL);
    qos_add_test("3d/orphan-bound", "pvgpu", test_orphan_bound, NULL);
    qos_add_test("3d/blob-map-queued", "pvgpu", test_blob_map_queued,
                 &blob_hostmem);
    qos_add_test("3d/refused-create", "pvgpu", test_refused_create, NULL);
    qos_add_test("3d/ctx-attach-count", "pvgpu", test_ctx_attach_count,
                 NULL);
    qos_add_test("3d/solo-inflight", "pvgpu", test_solo_inflight, NULL);
    qos_add_test("3d/switch-budget", "pvgpu", test_switch_budget, NULL);
    qos_add_test("cursor-blob", "pvgpu", test_cursor_blob, &vnc_2d);
    qos_add_test("3d/cursor-blob", "pvgpu", test_cursor_blob, &vnc_virgl);
    qos_add_test("blob/scanout", "pvgpu", test_blob_scanout, NULL);
    qos_add_test("blob/scanout-virgl", "pvgpu", test_blob_scanout,
                 &blob_virgl);
    qos_add_test("3d/blob-map", "pvgpu", test_blob_map, &blob_hostmem);
    qos_add_test("3d/pipe-resources", "pvgpu", test_pipe_resources,
                 &blob_quota);
    qos_add_test("3d/pipe-claim-refused", "pvgpu", test_pipe_claim_refused,
                 &blob_quota);
    qos_add_test("3d/blob-map-oversized", "pvgpu", test_blob_map_oversized,
                 &blob_hostmem);
    qos_add_test("blob/migrate", "pvgpu", test_migrate_blob, NULL);
    if (getenv("PVGPU_BENCH")) {
        /* a measurement, not a test: scripts/bench-fairness.sh */
        qos_add_test("bench/fairness", "pvgpu", bench_fairness, NULL);
    }
    if (getenv("PVGPU_SOAK_SECONDS")) {
        /* minutes of everything at once: scripts/soak.sh */
        qos_add_test("soak/load", "pvgpu", soak_load, NULL);
    }
    qos_add_test("qmp/scheduler", "pvgpu", test_qmp_scheduler, &fresh1);
    qos_add_test("qmp/qom-set", "pvgpu", test_qom_set, NULL);
    qos_add_test("qmp/quotas", "pvgpu", test_quotas, &fresh2);
    qos_add_test("qmp/fps-limit", "pvgpu", test_fps_limit, NULL);
    if (g_str_equal(qtest_get_arch(), "x86_64")) {
        qtest_add_func("pvgpu/3d/hotplug", test_hotplug);
        qtest_add_func("pvgpu/bad-properties", test_bad_properties);
        qtest_add_func("pvgpu/render-hello", test_render_hello);
        qtest_add_func("pvgpu/3d/render-process-two",
                       test_render_process_two);
        qtest_add_func("pvgpu/pool/shares", test_pool_shares);
        qtest_add_func("pvgpu/pool/faults", test_pool_faults);
        qtest_add_func("pvgpu/pool/admission", test_pool_admission);
        if (getenv("PVGPU_BENCH_POOL")) {
            /* a measurement, not a test: scripts/bench-pool.sh */
            qtest_add_func("pvgpu/bench/pool", bench_pool);
        }
    }
}

libqos_init(register_pvgpu_test);
