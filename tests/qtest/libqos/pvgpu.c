/*
 * libqos driver for pvgpu
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "../libqtest.h"
#include "qemu/module.h"
#include "qgraph.h"
#include "standard-headers/linux/virtio_pci.h"
#include "pvgpu.h"

#define PVGPU_TIMEOUT_US (30 * 1000 * 1000)

uint64_t qpvgpu_init(QPvgpu *gpu, QGuestAllocator *alloc, uint64_t features)
{
    features &= qvirtio_get_features(gpu->vdev);
    qvirtio_set_features(gpu->vdev, features);
    gpu->alloc = alloc;
    gpu->ctrl = qvirtqueue_setup(gpu->vdev, alloc, 0);
    gpu->cursor = qvirtqueue_setup(gpu->vdev, alloc, 1);
    qvirtio_set_driver_ok(gpu->vdev);
    return features;
}

void qpvgpu_cleanup(QPvgpu *gpu)
{
    if (gpu->ctrl) {
        qvirtqueue_cleanup(gpu->vdev->bus, gpu->ctrl, gpu->alloc);
        qvirtqueue_cleanup(gpu->vdev->bus, gpu->cursor, gpu->alloc);
        gpu->ctrl = gpu->cursor = NULL;
    }
}

void qpvgpu_queue_reset(QPvgpu *gpu, unsigned index)
{
    QVirtioPCIDevice *pci = container_of(gpu->vdev, QVirtioPCIDevice, vdev);
    QVirtQueue **vq = index ? &gpu->cursor : &gpu->ctrl;
    uint64_t cfg = pci->common_cfg_offset;

    qpci_io_writew(pci->pdev, pci->bar, cfg + VIRTIO_PCI_COMMON_Q_SELECT,
                   index);
    qpci_io_writew(pci->pdev, pci->bar, cfg + VIRTIO_PCI_COMMON_Q_RESET, 1);
    /* spec 4.1.4.3.2: done once queue_reset reads 0; the queue is off */
    g_assert_cmpuint(qpci_io_readw(pci->pdev, pci->bar,
                                   cfg + VIRTIO_PCI_COMMON_Q_RESET), ==, 0);
    g_assert_cmpuint(qpci_io_readw(pci->pdev, pci->bar,
                                   cfg + VIRTIO_PCI_COMMON_Q_ENABLE), ==, 0);
    qvirtqueue_cleanup(gpu->vdev->bus, *vq, gpu->alloc);
    *vq = qvirtqueue_setup(gpu->vdev, gpu->alloc, index);
}

static QTestState *qpvgpu_qts(QPvgpu *gpu)
{
    return gpu->qts;
}

uint32_t qpvgpu_ctrl_sg(QPvgpu *gpu, const void *const *parts,
                        const size_t *sizes, unsigned nparts,
                        void *resp, size_t resp_size)
{
    QTestState *qts = qpvgpu_qts(gpu);
    uint64_t addr[8];
    uint64_t resp_addr = 0;
    uint32_t head = 0, len = 0;

    g_assert(nparts >= 1 && nparts <= ARRAY_SIZE(addr));
    for (unsigned i = 0; i < nparts; i++) {
        uint32_t idx;

        addr[i] = guest_alloc(gpu->alloc, MAX(sizes[i], 1));
        qtest_memwrite(qts, addr[i], parts[i], sizes[i]);
        idx = qvirtqueue_add(qts, gpu->ctrl, addr[i], sizes[i], false,
                             i + 1 < nparts || resp_size);
        if (i == 0) {
            head = idx;
        }
    }
    if (resp_size) {
        resp_addr = guest_alloc(gpu->alloc, resp_size);
        qtest_memset(qts, resp_addr, 0xa5, resp_size);
        qvirtqueue_add(qts, gpu->ctrl, resp_addr, resp_size, true, false);
    }
    qvirtqueue_kick(qts, gpu->vdev, gpu->ctrl, head);
    qvirtio_wait_used_elem(qts, gpu->vdev, gpu->ctrl, head, &len,
                           PVGPU_TIMEOUT_US);
    if (resp_size) {
        qtest_memread(qts, resp_addr, resp, resp_size);
        guest_free(gpu->alloc, resp_addr);
    }
    for (unsigned i = 0; i < nparts; i++) {
        guest_free(gpu->alloc, addr[i]);
    }
    return len;
}

uint32_t qpvgpu_ctrl(QPvgpu *gpu, const void *req, size_t req_size,
                     void *resp, size_t resp_size)
{
    return qpvgpu_ctrl_sg(gpu, &req, &req_size, 1, resp, resp_size);
}

void qpvgpu_cursor(QPvgpu *gpu, const void *req, size_t req_size)
{
    QTestState *qts = qpvgpu_qts(gpu);
    uint64_t addr = guest_alloc(gpu->alloc, req_size);
    uint32_t head, len;

    qtest_memwrite(qts, addr, req, req_size);
    head = qvirtqueue_add(qts, gpu->cursor, addr, req_size, false, false);
    qvirtqueue_kick(qts, gpu->vdev, gpu->cursor, head);
    qvirtio_wait_used_elem(qts, gpu->vdev, gpu->cursor, head, &len,
                           PVGPU_TIMEOUT_US);
    g_assert_cmpuint(len, ==, 0);
    guest_free(gpu->alloc, addr);
}

static void *qpvgpu_get_driver(QPvgpu *gpu, const char *interface)
{
    if (!g_strcmp0(interface, "pvgpu")) {
        return gpu;
    }
    if (!g_strcmp0(interface, "virtio")) {
        return gpu->vdev;
    }
    fprintf(stderr, "%s not present in pvgpu\n", interface);
    g_assert_not_reached();
}

static void *qpvgpu_pci_get_driver(void *object, const char *interface)
{
    QPvgpuPCI *dev = object;

    if (!g_strcmp0(interface, "pci-device")) {
        return dev->pci_vdev.pdev;
    }
    return qpvgpu_get_driver(&dev->gpu, interface);
}

static void qpvgpu_pci_destructor(QOSGraphObject *obj)
{
    QPvgpuPCI *dev = (QPvgpuPCI *)obj;

    qpvgpu_cleanup(&dev->gpu);
    qvirtio_pci_destructor(obj);
}

static void *qpvgpu_pci_create(void *pci_bus, QGuestAllocator *alloc,
                               void *addr)
{
    QPvgpuPCI *dev = g_new0(QPvgpuPCI, 1);
    QOSGraphObject *obj = &dev->pci_vdev.obj;

    virtio_pci_init(&dev->pci_vdev, pci_bus, addr);
    dev->gpu.vdev = &dev->pci_vdev.vdev;
    dev->gpu.qts = dev->pci_vdev.pdev->bus->qts;
    obj->get_driver = qpvgpu_pci_get_driver;
    obj->destructor = qpvgpu_pci_destructor;
    return obj;
}

static void pvgpu_register_nodes(void)
{
    QPCIAddress addr = {
        .devfn = QPCI_DEVFN(4, 0),
    };
    QOSGraphEdgeOptions opts = {
        .extra_device_opts = "addr=04.0,id=pvgpu0",
    };
    g_autofree char *device_opts = NULL;

    /*
     * PVGPU_QTEST_RENDER_PROCESS=1: the tests' device renders in a render
     * process (pvgpu-render), with the guest's RAM (the pc machine's 128M)
     * a shared memfd it maps; except with hostmem, which needs the
     * renderer in QEMU (auto).  PVGPU_QTEST_RENDER_HELPER=PATH runs
     * PATH as the render process (scripts/fuzz.sh: a wrapper that gives
     * the helper sanitizer options of its own)
     */
    if (getenv("PVGPU_QTEST_RENDER_PROCESS")) {
        const char *helper = getenv("PVGPU_QTEST_RENDER_HELPER");

        opts.before_cmd_line = "-object memory-backend-memfd,id=pvgpu-ram,"
                               "size=128M,share=on "
                               "-machine memory-backend=pvgpu-ram";
        /* the graph keeps a copy */
        device_opts =
            g_strdup_printf("addr=04.0,id=pvgpu0,render-process=auto%s%s",
                            helper ? ",render-helper=" : "",
                            helper ? helper : "");
        opts.extra_device_opts = device_opts;
    }

    add_qpci_address(&opts, &addr);
    qos_node_create_driver("pvgpu-pci", qpvgpu_pci_create);
    qos_node_consumes("pvgpu-pci", "pci-bus", &opts);
    qos_node_produces("pvgpu-pci", "pci-device");
    qos_node_produces("pvgpu-pci", "pvgpu");
}

libqos_init(pvgpu_register_nodes);
