/*
 * libqos driver for pvgpu
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef TESTS_LIBQOS_PVGPU_H
#define TESTS_LIBQOS_PVGPU_H

#include "qgraph.h"
#include "virtio.h"
#include "virtio-pci.h"

typedef struct QPvgpu {
    QVirtioDevice *vdev;
    QVirtQueue *ctrl;
    QVirtQueue *cursor;
    QGuestAllocator *alloc;
    QTestState *qts;
} QPvgpu;

typedef struct QPvgpuPCI {
    QVirtioPCIDevice pci_vdev;
    QPvgpu gpu;
} QPvgpuPCI;

/*
 * Negotiate @features (masked by what the device offers; returned) and
 * set up both virtqueues, as the guest driver does at probe time.
 */
uint64_t qpvgpu_init(QPvgpu *gpu, QGuestAllocator *alloc, uint64_t features);
void qpvgpu_cleanup(QPvgpu *gpu);

/*
 * Send @req on the control queue, wait for the device to use it and copy
 * up to @resp_size bytes of the response to @resp.  Returns the number of
 * bytes the device wrote.
 */
uint32_t qpvgpu_ctrl(QPvgpu *gpu, const void *req, size_t req_size,
                     void *resp, size_t resp_size);
/* Same with the request split over the given out-descriptors. */
uint32_t qpvgpu_ctrl_sg(QPvgpu *gpu, const void *const *parts,
                        const size_t *sizes, unsigned nparts,
                        void *resp, size_t resp_size);
/*
 * VIRTIO_F_RING_RESET (negotiated by qpvgpu_init's caller): reset queue
 * @index (0 control, 1 cursor) and set it up again with fresh rings.
 */
void qpvgpu_queue_reset(QPvgpu *gpu, unsigned index);
/* Send @req on the cursor queue (no response) and wait until it is used. */
void qpvgpu_cursor(QPvgpu *gpu, const void *req, size_t req_size);

#endif
