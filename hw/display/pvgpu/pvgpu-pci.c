/*
 * pvgpu-pci: the PCI transport of pvgpu
 *
 * Modern-only (virtio 1.x): the device ID is then 0x1040 + VIRTIO_ID_GPU,
 * which the stock Linux virtio_gpu driver binds.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/module.h"
#include "hw/pci/pci.h"
#include "hw/qdev-properties.h"
#include "hw/virtio/virtio-pci.h"
#include "qemu/units.h"
#include "standard-headers/linux/virtio_gpu.h"
#include "hw/display/pvgpu.h"

typedef struct PvgpuPCI {
    VirtIOPCIProxy parent_obj;
    PvgpuState vdev;
} PvgpuPCI;

#define TYPE_PVGPU_PCI_BASE "pvgpu-pci-base"
DECLARE_INSTANCE_CHECKER(PvgpuPCI, PVGPU_PCI, TYPE_PVGPU_PCI_BASE)

static const Property pvgpu_pci_properties[] = {
    DEFINE_PROP_BIT("ioeventfd", VirtIOPCIProxy, flags,
                    VIRTIO_PCI_FLAG_USE_IOEVENTFD_BIT, true),
    /* config change + control queue + cursor queue */
    DEFINE_PROP_UINT32("vectors", VirtIOPCIProxy, nvectors, 3),
};

static void pvgpu_pci_realize(VirtIOPCIProxy *vpci_dev, Error **errp)
{
    PvgpuPCI *dev = PVGPU_PCI(vpci_dev);
    PvgpuState *s = &dev->vdev;

    if (s->hostmem) {
        if (!is_power_of_2(s->hostmem) || s->hostmem < 64 * KiB) {
            error_setg(errp, "pvgpu: hostmem must be a power of two of at "
                       "least 64K, not %" PRIu64, s->hostmem);
            return;
        }
        /*
         * Host-visible memory (spec 5.7.5: shared memory region id 1) in
         * BAR 4, where virtio-pci would put its modern registers: those
         * move to BAR 2 and MSI-X to BAR 1.
         */
        vpci_dev->msix_bar_idx = 1;
        vpci_dev->modern_mem_bar_idx = 2;
        memory_region_init(&s->hostmem_bar, OBJECT(s), "pvgpu-hostmem",
                           s->hostmem);
        pci_register_bar(&vpci_dev->pci_dev, 4,
                         PCI_BASE_ADDRESS_SPACE_MEMORY |
                         PCI_BASE_ADDRESS_MEM_PREFETCH |
                         PCI_BASE_ADDRESS_MEM_TYPE_64, &s->hostmem_bar);
        virtio_pci_add_shm_cap(vpci_dev, 4, 0, s->hostmem,
                               VIRTIO_GPU_SHM_ID_HOST_VISIBLE);
    }
    virtio_pci_force_virtio_1(vpci_dev);
    if (!qdev_realize(DEVICE(&dev->vdev), BUS(&vpci_dev->bus), errp)) {
        return;
    }
    /*
     * The user names the PCI device (-device pvgpu-pci,id=...), so that is
     * the device screendump and the UIs must find the consoles by.
     */
    for (uint32_t i = 0; i < dev->vdev.max_outputs; i++) {
        object_property_set_link(OBJECT(dev->vdev.scanouts[i].con), "device",
                                 OBJECT(vpci_dev), &error_abort);
    }
}

static void pvgpu_pci_class_init(ObjectClass *klass, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    VirtioPCIClass *k = VIRTIO_PCI_CLASS(klass);
    PCIDeviceClass *pcidev_k = PCI_DEVICE_CLASS(klass);

    k->realize = pvgpu_pci_realize;
    set_bit(DEVICE_CATEGORY_DISPLAY, dc->categories);
    device_class_set_props(dc, pvgpu_pci_properties);
    dc->desc = "pvgpu shared paravirtual GPU (virtio-gpu protocol)";
    pcidev_k->class_id = PCI_CLASS_DISPLAY_OTHER;
}

static void pvgpu_pci_instance_init(Object *obj)
{
    PvgpuPCI *dev = PVGPU_PCI(obj);

    virtio_instance_init_common(obj, &dev->vdev, sizeof(dev->vdev),
                                TYPE_PVGPU);
    pvgpu_add_property_aliases(obj, OBJECT(&dev->vdev));
}

static const VirtioPCIDeviceTypeInfo pvgpu_pci_info = {
    .base_name = TYPE_PVGPU_PCI_BASE,
    .generic_name = TYPE_PVGPU_PCI,
    .instance_size = sizeof(PvgpuPCI),
    .instance_init = pvgpu_pci_instance_init,
    .class_init = pvgpu_pci_class_init,
};

static void pvgpu_pci_register_types(void)
{
    virtio_pci_types_register(&pvgpu_pci_info);
}

type_init(pvgpu_pci_register_types)
