/*
 * pvgpu render process: the messages between QEMU and pvgpu-render
 *
 * With render-process=on, virglrenderer runs in a process of its own,
 * contrib/pvgpu-render, so that a crash in the host's GL stack (which a
 * guest's command stream can reach) takes down that process and not the
 * VM.  QEMU's side is the backend in pvgpu-remote.c.  They talk over a
 * Unix stream socket, the helper's standard input:
 *
 *   helper -> QEMU  HELLO once started: capsets and a description, or
 *                   why virglrenderer could not start
 *   QEMU -> helper  REGION: a block of guest RAM (its file descriptor),
 *                   before the first job that points into it
 *   QEMU -> helper  READBACK_BUF: shared memory (its file descriptor) a
 *                   job's readback may put its pixels in
 *   QEMU -> helper  JOB: a renderer job (pvgpu-render.h); guest memory
 *                   as (region, offset, length) segments
 *   helper -> QEMU  DONE: a job's results, readback pixels, dmabufs
 *   QEMU -> helper  RESET; helper -> QEMU RESET_DONE once every job sent
 *                   before it was answered
 *
 * Each message is a PvgpuRpHdr and @len bytes; the @nfds descriptors go
 * with its first byte (SCM_RIGHTS).  Both ends come from one build (as a
 * module does), so a job's operation travels as the PvgpuRenderOp struct
 * itself, its pointers replaced on the other side; HELLO checks the
 * build.  The helper trusts QEMU; QEMU checks everything the helper says.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_DISPLAY_PVGPU_RENDER_PROTO_H
#define HW_DISPLAY_PVGPU_RENDER_PROTO_H

#include <sys/socket.h>
#include "qemu/timer.h"
#include "hw/display/pvgpu-render.h"

#define PVGPU_RP_VERSION 2
/* no message is larger: a command buffer, or a readback of 16384^2 */
#define PVGPU_RP_MAX_LEN (1024 * 1024 * 1024)
#define PVGPU_RP_MAX_FDS PVGPU_MAX_SCANOUTS
#define PVGPU_RP_MAX_SEGS 16384
#define PVGPU_RP_MAX_RBUFS 8

typedef enum PvgpuRpType {
    PVGPU_RP_HELLO = 1,
    PVGPU_RP_REGION,
    PVGPU_RP_JOB,
    PVGPU_RP_DONE,
    PVGPU_RP_RESET,
    PVGPU_RP_RESET_DONE,
    PVGPU_RP_READBACK_BUF,
} PvgpuRpType;

typedef struct PvgpuRpHdr {
    uint32_t type;              /* PvgpuRpType */
    uint32_t nfds;
    uint64_t len;
} PvgpuRpHdr;

/* HELLO: then each capset's data (max_size bytes), then @text */
typedef struct PvgpuRpHello {
    uint32_t version;           /* PVGPU_RP_VERSION */
    uint32_t op_size;           /* sizeof(PvgpuRenderOp), the build check */
    uint32_t ok;                /* 0: @text says why virglrenderer failed */
    uint32_t ncapsets;
    struct {
        uint32_t id;
        uint32_t max_version;
        uint32_t max_size;
        uint32_t pad;
    } capsets[PVGPU_MAX_CAPSETS];
    uint32_t text_len;          /* the renderer's description, or error */
    uint32_t pad;
} PvgpuRpHello;

/* REGION, with its fd: guest RAM the helper maps shared */
typedef struct PvgpuRpRegion {
    uint32_t id;
    uint32_t pad;
    uint64_t size;
    uint64_t fd_offset;
} PvgpuRpRegion;

/* READBACK_BUF, with its fd: buffer @id (replacing one of that id) */
typedef struct PvgpuRpReadbackBuf {
    uint32_t id;
    uint32_t pad;
    uint64_t size;
} PvgpuRpReadbackBuf;

/* Guest memory of a job: @len bytes at @offset of region @region */
#define PVGPU_RP_INLINE UINT32_MAX  /* bytes in the message (or the DONE) */
typedef struct PvgpuRpSeg {
    uint32_t region;
    uint32_t pad;
    uint64_t offset;
    uint64_t len;
} PvgpuRpSeg;

typedef struct PvgpuRpReadback {
    int32_t scanout_id;
    uint32_t resource_id;
    PvgpuRect r;
    uint32_t want_dmabuf;
    uint32_t buf;               /* READBACK_BUF id, or PVGPU_RP_INLINE */
} PvgpuRpReadback;

#define PVGPU_RP_FENCE 1        /* job.fence */
#define PVGPU_RP_SYNC 2         /* pvgpu_render_run() */

/*
 * JOB: then @nreadbacks PvgpuRpReadback, @nsegs PvgpuRpSeg (op.iov), and
 * @data_len bytes: the context's name (CTX_CREATE) or command buffer
 * (SUBMIT), then the bytes of inline segments of a TRANSFER_WRITE
 */
typedef struct PvgpuRpJob {
    uint64_t tag;
    uint32_t kind;              /* PVGPU_JOB_OP, _READBACK or _RESTART */
    uint32_t flags;
    PvgpuRenderOp op;           /* its pointers mean nothing here */
    uint32_t nreadbacks;
    uint32_t nsegs;
    uint64_t data_len;
} PvgpuRpJob;

typedef struct PvgpuRpReadbackDone {
    uint32_t ok;
    uint32_t format;
    uint32_t dmabuf;            /* an fd came for it (in readback order) */
    uint32_t width;
    uint32_t height;
    uint32_t stride;
    uint32_t fourcc;
    uint32_t y0_top;
    uint32_t in_buf;            /* the pixels are in its READBACK_BUF */
    uint32_t pad;
} PvgpuRpReadbackDone;

/*
 * DONE: then @nreadbacks PvgpuRpReadbackDone, then the pixels of each ok
 * readback without a dmabuf or buffer (width * height * 4 bytes of its
 * rectangle), then, for a TRANSFER_READ, the bytes of its inline segments
 */
typedef struct PvgpuRpDone {
    uint64_t tag;
    uint64_t gpu_ns;
    uint32_t failed;
    uint32_t cancelled;
    uint32_t nreadbacks;
    uint32_t pad;
} PvgpuRpDone;

typedef struct PvgpuRpReset {
    uint32_t keep_memory;
    uint32_t pad;
} PvgpuRpReset;

/* Room for the file descriptors of one message, aligned for cmsg */
typedef union PvgpuRpFdBuf {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * PVGPU_RP_MAX_FDS)];
} PvgpuRpFdBuf;

/* Send @fds (@nfds, at most PVGPU_RP_MAX_FDS) with @msg, in @fb */
static inline void pvgpu_rp_attach_fds(struct msghdr *msg, PvgpuRpFdBuf *fb,
                                       const int *fds, unsigned nfds)
{
    struct cmsghdr *cmsg;

    memset(fb, 0, sizeof(*fb));
    msg->msg_control = fb->buf;
    msg->msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cmsg = CMSG_FIRSTHDR(msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
}

/* Hand each file descriptor @msg received to @take; returns how many */
static inline unsigned pvgpu_rp_received_fds(struct msghdr *msg,
                                             void (*take)(int fd, void *opaque),
                                             void *opaque)
{
    unsigned count = 0;

    for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(msg); cmsg;
         cmsg = CMSG_NXTHDR(msg, cmsg)) {
        if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS) {
            int n = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);

            for (int i = 0; i < n; i++) {
                int fd;

                memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
                take(fd, opaque);
                count++;
            }
        }
    }
    return count;
}

/*
 * Read exactly @len bytes from @fd, waiting for them until @deadline
 * (get_clock() nanoseconds; negative: as long as it takes); false on
 * end of file, error, or the deadline
 */
static inline bool pvgpu_rp_read_full(int fd, void *buf, size_t len,
                                      int64_t deadline)
{
    while (len) {
        ssize_t ret;

        if (deadline >= 0) {
            GPollFD pfd = { .fd = fd, .events = G_IO_IN };
            int64_t left = deadline - get_clock();

            if (left <= 0 || qemu_poll_ns(&pfd, 1, left) <= 0) {
                return false;
            }
        }
        ret = read(fd, buf, len);
        if (ret < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        if (ret <= 0) {
            return false;
        }
        buf = (uint8_t *)buf + ret;
        len -= ret;
    }
    return true;
}

#endif /* HW_DISPLAY_PVGPU_RENDER_PROTO_H */
