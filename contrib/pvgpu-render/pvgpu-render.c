/*
 * pvgpu-render: virglrenderer in a process of its own, for one pvgpu
 * device (render-process=on).  QEMU starts it with a Unix socket as its
 * standard input and speaks the protocol of pvgpu-render-proto.h.
 *
 * The renderer is pvgpu-virgl.c, the same backend QEMU runs in-process:
 * this program only turns messages into its jobs and its completions
 * into messages.  Guest memory comes as file descriptors of guest RAM,
 * mapped shared, as a vhost-user back end maps it.  When QEMU goes (the
 * socket closes, or the thread that started it ends), so does the helper,
 * at once: a draw still running on the GPU must not keep it alive.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <execinfo.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include "qapi/error.h"
#include "qemu/error-report.h"
#include "qemu/madvise.h"
#include "qemu/main-loop.h"
#include "hw/display/pvgpu-render-proto.h"

#define SOCK 0

typedef struct Region {
    uint8_t *base;
    uint64_t size;
} Region;

typedef struct HelperJob {
    PvgpuRenderJob job;
    uint64_t tag;
    uint8_t *data;
    /* a TRANSFER_READ's inline memory, sent back with the DONE */
    uint8_t *read_buf;
    uint64_t read_len;
} HelperJob;

static PvgpuRenderer *renderer;
static GArray *regions;         /* of Region, by id */
static GArray *rbufs;           /* of Region: readback buffers, by id */
/*
 * PVGPU_RENDER_CORRUPT=SEED, for tests: now and then a DONE says
 * something wrong, as a compromised render process could; QEMU has to
 * notice and kill it, and never trust what it says
 */
static GRand *corrupt;

/*
 * QEMU closed its end: nothing this process holds matters any more, and
 * the render thread may be in a draw that does not end.  The kernel frees
 * the GPU's memory.
 */
static void G_NORETURN gone(void)
{
    _exit(0);
}

/*
 * A crash (SIGSEGV, SIGBUS, SIGILL, SIGFPE: inside virglrenderer or the
 * GL driver, as a guest's commands can cause, or ours) leaves its stack
 * on standard error, which is QEMU's, before the process dies of it as it
 * would have (with a core dump where the host keeps them):
 *   pvgpu-render[PID]: fatal signal N at ADDRESS
 *   OBJECT(SYMBOL+OFFSET)[PC]        one line per frame, innermost first
 * so that a log tells a crash of virglrenderer's from one of pvgpu's
 * (scripts/fuzz-deaths.sh).  Not under AddressSanitizer, whose report
 * says more.
 */
#ifndef QEMU_SANITIZE_ADDRESS
static void crash_report(int sig, siginfo_t *si, void *uc)
{
    void *frames[48];
    char line[96];
    int n, len;

    if (si->si_code <= 0) {
        /* sent, not a fault: die of it (SA_RESETHAND made it SIG_DFL) */
        raise(sig);
        return;
    }
    n = backtrace(frames, ARRAY_SIZE(frames));
    len = snprintf(line, sizeof(line),
                   "pvgpu-render[%d]: fatal signal %d at %p\n",
                   (int)getpid(), sig, si->si_addr);
    if (write(STDERR_FILENO, line, MIN(len, (int)sizeof(line) - 1)) < 0) {
        /* nothing to be done */
    }
    /* this handler and the signal trampoline first */
    if (n > 2) {
        backtrace_symbols_fd(frames + 2, n - 2, STDERR_FILENO);
    }
    /* SA_RESETHAND: the fault happens again, and kills */
}
#endif

static void crash_report_init(void)
{
#ifndef QEMU_SANITIZE_ADDRESS
    static const int sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE };
    struct sigaction sa = {
        .sa_sigaction = crash_report,
        .sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER,
    };
    void *warm[1];

    /* the first backtrace() loads libgcc_s: not in a signal handler */
    backtrace(warm, 1);
    for (int i = 0; i < ARRAY_SIZE(sigs); i++) {
        sigaction(sigs[i], &sa, NULL);
    }
#endif
}

static void die(const char *what)
{
    error_report("pvgpu-render: %s", what);
    exit(1);
}

static void send_all(const PvgpuRpHdr *hdr, const struct iovec *parts,
                     int nparts, const int *fds, unsigned nfds)
{
    struct iovec iov[8];
    PvgpuRpFdBuf fb;
    struct msghdr msg = { .msg_iov = iov };
    int n = 0;

    assert(nparts < (int)ARRAY_SIZE(iov) && nfds <= PVGPU_RP_MAX_FDS);
    iov[n++] = (struct iovec) { (void *)hdr, sizeof(*hdr) };
    for (int i = 0; i < nparts; i++) {
        if (parts[i].iov_len) {
            iov[n++] = parts[i];
        }
    }
    msg.msg_iovlen = n;
    if (nfds) {
        pvgpu_rp_attach_fds(&msg, &fb, fds, nfds);
    }
    while (msg.msg_iovlen) {
        ssize_t ret = sendmsg(SOCK, &msg, MSG_NOSIGNAL);

        if (ret < 0) {
            if (errno == EINTR) {
                continue;
            }
            gone();
        }
        /* the fds went with the first bytes */
        msg.msg_control = NULL;
        msg.msg_controllen = 0;
        while (msg.msg_iovlen && ret >= (ssize_t)msg.msg_iov->iov_len) {
            ret -= msg.msg_iov->iov_len;
            msg.msg_iov++;
            msg.msg_iovlen--;
        }
        if (msg.msg_iovlen) {
            msg.msg_iov->iov_base = (uint8_t *)msg.msg_iov->iov_base + ret;
            msg.msg_iov->iov_len -= ret;
        }
    }
}

static void send_hello(bool ok, const char *text)
{
    PvgpuRpHello hello = {
        .version = PVGPU_RP_VERSION,
        .op_size = sizeof(PvgpuRenderOp),
        .ok = ok,
        .text_len = strlen(text),
    };
    PvgpuRpHdr hdr = { .type = PVGPU_RP_HELLO };
    struct iovec parts[2 + PVGPU_MAX_CAPSETS];
    int n = 0;

    parts[n++] = (struct iovec) { &hello, sizeof(hello) };
    if (ok) {
        const PvgpuCapset *caps;

        hello.ncapsets = pvgpu_render_capsets(renderer, &caps);
        for (unsigned i = 0; i < hello.ncapsets; i++) {
            hello.capsets[i].id = caps[i].id;
            hello.capsets[i].max_version = caps[i].max_version;
            hello.capsets[i].max_size = caps[i].max_size;
            parts[n++] = (struct iovec) { caps[i].data, caps[i].max_size };
        }
    }
    parts[n++] = (struct iovec) { (void *)text, hello.text_len };
    for (int i = 0; i < n; i++) {
        hdr.len += parts[i].iov_len;
    }
    send_all(&hdr, parts, n, NULL, 0);
}

static void corrupt_done(PvgpuRpHdr *hdr, PvgpuRpDone *done,
                         PvgpuRpReadbackDone *rbd)
{
    if (!corrupt || g_rand_int_range(corrupt, 0, 8)) {
        return;
    }
    switch (g_rand_int_range(corrupt, 0, 8)) {
    case 0:
        hdr->len += g_rand_int_range(corrupt, -64, 64);
        break;
    case 1:
        hdr->type = g_rand_int(corrupt);
        break;
    case 2:
        done->tag ^= 1ull << g_rand_int_range(corrupt, 0, 64);
        break;
    case 3:
        done->nreadbacks += g_rand_int_range(corrupt, 1, 100);
        break;
    case 4:
        /* a dmabuf without its file descriptor */
        rbd[0].ok = rbd[0].dmabuf = 1;
        break;
    case 5:
        hdr->nfds += 1;
        break;
    case 6:
        /* pixels in a shared buffer it was not given */
        rbd[0].ok = rbd[0].in_buf = 1;
        break;
    default:
        done->cancelled = !done->cancelled;
        break;
    }
}

static void job_done(PvgpuRenderJob *job, void *opaque)
{
    HelperJob *hj = container_of(job, HelperJob, job);
    PvgpuRpDone done = {
        .tag = hj->tag,
        .gpu_ns = job->gpu_ns,
        .failed = job->failed,
        .cancelled = job->cancelled,
        .nreadbacks = job->nreadbacks,
    };
    PvgpuRpReadbackDone rbd[PVGPU_MAX_SCANOUTS] = {};
    PvgpuRpHdr hdr = { .type = PVGPU_RP_DONE };
    struct iovec parts[3 + PVGPU_MAX_SCANOUTS];
    int fds[PVGPU_MAX_SCANOUTS];
    unsigned nfds;
    int n = 0;

    parts[n++] = (struct iovec) { &done, sizeof(done) };
    parts[n++] = (struct iovec) { rbd, sizeof(rbd[0]) * job->nreadbacks };
    for (unsigned i = 0; i < job->nreadbacks; i++) {
        PvgpuReadback *rb = &job->readbacks[i];

        rbd[i].ok = rb->ok && !job->failed && !job->cancelled;
        if (!rbd[i].ok) {
            continue;
        }
        rbd[i].format = rb->format;
        if (rb->dmabuf.fd >= 0) {
            rbd[i].dmabuf = 1;
            rbd[i].width = rb->dmabuf.width;
            rbd[i].height = rb->dmabuf.height;
            rbd[i].stride = rb->dmabuf.stride;
            rbd[i].fourcc = rb->dmabuf.fourcc;
            rbd[i].y0_top = rb->dmabuf.y0_top;
            fds[hdr.nfds++] = rb->dmabuf.fd;
        } else if (rb->dest) {
            rbd[i].in_buf = 1;
        } else {
            parts[n++] = (struct iovec) {
                rb->pixels, (size_t)rb->r.width * rb->r.height * 4
            };
        }
    }
    if (hj->read_buf && !job->failed && !job->cancelled) {
        parts[n++] = (struct iovec) { hj->read_buf, hj->read_len };
    }
    for (int i = 0; i < n; i++) {
        hdr.len += parts[i].iov_len;
    }
    nfds = hdr.nfds;
    corrupt_done(&hdr, &done, rbd);
    send_all(&hdr, parts, n, fds, nfds);
    pvgpu_render_job_clear(job);
    if (!job->iov_taken) {
        g_free(job->op.iov);
    }
    g_free(hj->data);
    g_free(hj->read_buf);
    g_free(hj);
}

/* Map @size bytes of @fd at @offset as @id of @table, replacing it */
static void map_shared(GArray *table, uint32_t id, int fd, uint64_t size,
                       uint64_t offset)
{
    Region reg = {};

    reg.base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                    offset);
    if (reg.base == MAP_FAILED) {
        /* what would use it fails, or goes through the socket */
        error_report("pvgpu-render: cannot map %" PRIu64 " bytes of "
                     "shared memory: %s", size, strerror(errno));
        reg.base = NULL;
    } else {
        reg.size = size;
        /*
         * Guest RAM and the guest's pixels stay out of this process's
         * core dump (a hung one gets SIGABRT): QEMU decides whether its
         * own dump holds guest memory (-machine dump-guest-core)
         */
        qemu_madvise(reg.base, size, QEMU_MADV_DONTDUMP);
    }
    close(fd);
    if (id >= table->len) {
        g_array_set_size(table, id + 1);
    }
    if (g_array_index(table, Region, id).base) {
        munmap(g_array_index(table, Region, id).base,
               g_array_index(table, Region, id).size);
    }
    g_array_index(table, Region, id) = reg;
}

static void recv_region(const uint8_t *body, uint64_t len, int fd)
{
    PvgpuRpRegion rr;

    if (len != sizeof(rr) || fd < 0) {
        die("malformed REGION");
    }
    memcpy(&rr, body, sizeof(rr));
    map_shared(regions, rr.id, fd, rr.size, rr.fd_offset);
}

static void recv_readback_buf(const uint8_t *body, uint64_t len, int fd)
{
    PvgpuRpReadbackBuf rb;

    if (len != sizeof(rb) || fd < 0) {
        die("malformed READBACK_BUF");
    }
    memcpy(&rb, body, sizeof(rb));
    if (rb.id >= PVGPU_RP_MAX_RBUFS) {
        die("malformed READBACK_BUF");
    }
    map_shared(rbufs, rb.id, fd, rb.size, 0);
}

/* The guest memory of @hj from @segs; false if a segment is not mapped */
static bool job_memory(HelperJob *hj, const PvgpuRpSeg *segs, uint32_t nsegs,
                       const uint8_t **inline_data, uint64_t *inline_left)
{
    PvgpuRenderOp *op = &hj->job.op;
    bool read = op->kind == PVGPU_OP_TRANSFER_READ;
    uint64_t read_off = 0;
    struct iovec *iov = g_new0(struct iovec, nsegs);

    /* freed with the job (unless the renderer took it) */
    op->iov = iov;
    op->niov = nsegs;
    for (uint32_t i = 0; i < nsegs; i++) {
        const PvgpuRpSeg *seg = &segs[i];

        if (seg->region == PVGPU_RP_INLINE) {
            if (read) {
                hj->read_len += seg->len;
                continue;
            }
            if (seg->len > *inline_left) {
                die("malformed JOB: inline memory");
            }
            iov[i] = (struct iovec) { (void *)*inline_data, seg->len };
            *inline_data += seg->len;
            *inline_left -= seg->len;
            continue;
        }
        if (seg->region >= regions->len) {
            return false;
        }
        {
            Region *reg = &g_array_index(regions, Region, seg->region);

            if (!reg->base || seg->offset > reg->size ||
                seg->len > reg->size - seg->offset) {
                return false;
            }
            iov[i] = (struct iovec) { reg->base + seg->offset, seg->len };
        }
    }
    if (hj->read_len) {
        if (hj->read_len > PVGPU_RP_MAX_LEN) {
            return false;
        }
        hj->read_buf = g_try_malloc0(hj->read_len);
        if (!hj->read_buf) {
            return false;
        }
        for (uint32_t i = 0; i < nsegs; i++) {
            if (segs[i].region == PVGPU_RP_INLINE) {
                iov[i] = (struct iovec) {
                    hj->read_buf + read_off, segs[i].len
                };
                read_off += segs[i].len;
            }
        }
    }
    return true;
}

static void recv_job(uint8_t *body, uint64_t len)
{
    PvgpuRpJob rj;
    HelperJob *hj;
    PvgpuRenderJob *job;
    const PvgpuRpReadback *rbs;
    const PvgpuRpSeg *segs;
    const uint8_t *data;
    uint64_t want, data_left;
    bool ok;

    if (len < sizeof(rj)) {
        die("malformed JOB");
    }
    memcpy(&rj, body, sizeof(rj));
    want = sizeof(rj) + (uint64_t)rj.nreadbacks * sizeof(*rbs) +
           (uint64_t)rj.nsegs * sizeof(*segs) + rj.data_len;
    if (rj.nreadbacks > PVGPU_MAX_SCANOUTS || rj.nsegs > PVGPU_RP_MAX_SEGS ||
        want != len) {
        die("malformed JOB");
    }
    rbs = (const void *)(body + sizeof(rj));
    segs = (const void *)(rbs + rj.nreadbacks);
    data = (const uint8_t *)(segs + rj.nsegs);
    data_left = rj.data_len;

    hj = g_new0(HelperJob, 1);
    job = &hj->job;
    hj->tag = rj.tag;
    /* the message's body is the job's until it is done */
    hj->data = body;
    job->kind = rj.kind;
    job->fence = rj.flags & PVGPU_RP_FENCE;
    job->op = rj.op;
    job->op.iov = NULL;
    job->op.niov = 0;
    job->nreadbacks = rj.nreadbacks;
    for (uint32_t i = 0; i < rj.nreadbacks; i++) {
        job->readbacks[i] = (PvgpuReadback) {
            .scanout_id = rbs[i].scanout_id,
            .resource_id = rbs[i].resource_id,
            .r = rbs[i].r,
            .want_dmabuf = rbs[i].want_dmabuf,
            .dmabuf.fd = -1,
        };
        if (rbs[i].buf < rbufs->len) {
            Region *b = &g_array_index(rbufs, Region, rbs[i].buf);

            if (b->base &&
                (uint64_t)rbs[i].r.width * rbs[i].r.height * 4 <= b->size) {
                job->readbacks[i].dest = b->base;
            }
        }
    }
    switch (job->op.kind) {
    case PVGPU_OP_CTX_CREATE:
        if (job->op.u.ctx_create.nlen > data_left) {
            die("malformed JOB: name");
        }
        job->op.u.ctx_create.name = (const char *)data;
        break;
    case PVGPU_OP_SUBMIT:
        if ((uint64_t)job->op.u.submit.ndw * 4 > data_left) {
            die("malformed JOB: command buffer");
        }
        job->op.u.submit.dwords = (const uint32_t *)data;
        break;
    default:
        break;
    }
    ok = job_memory(hj, segs, rj.nsegs, &data, &data_left);
    if (job->kind != PVGPU_JOB_OP && job->kind != PVGPU_JOB_READBACK &&
        job->kind != PVGPU_JOB_RESTART) {
        die("malformed JOB: kind");
    }
    if (!ok || job->op.kind == PVGPU_OP_MAP ||
        job->op.kind == PVGPU_OP_UNMAP) {
        /* guest memory this process cannot reach; no mappings here */
        pvgpu_render_job_begin(job);
        job->failed = true;
        job_done(job, NULL);
        return;
    }
    if (rj.flags & PVGPU_RP_SYNC) {
        job->failed = !pvgpu_render_run(renderer, job);
        job_done(job, NULL);
        return;
    }
    pvgpu_render_submit(renderer, job);
}

static void recv_reset(const uint8_t *body, uint64_t len)
{
    PvgpuRpReset rr;
    PvgpuRpHdr hdr = { .type = PVGPU_RP_RESET_DONE };

    if (len != sizeof(rr)) {
        die("malformed RESET");
    }
    memcpy(&rr, body, sizeof(rr));
    /* every job not done comes back, cancelled, before this returns */
    pvgpu_render_reset(renderer, rr.keep_memory);
    send_all(&hdr, NULL, 0, NULL, 0);
}

/* A message's first file descriptor is kept, others are closed */
static void keep_first_fd(int fd, void *opaque)
{
    int *first = opaque;

    if (*first < 0) {
        *first = fd;
    } else {
        close(fd);
    }
}

static void readable(void *opaque)
{
    PvgpuRpFdBuf fb;
    PvgpuRpHdr hdr;
    struct iovec iov = { &hdr, sizeof(hdr) };
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = fb.buf, .msg_controllen = sizeof(fb.buf),
    };
    int fd = -1;
    unsigned nfds;
    uint8_t *body;
    ssize_t ret;

    do {
        ret = recvmsg(SOCK, &msg, MSG_CMSG_CLOEXEC);
    } while (ret < 0 && errno == EINTR);
    if (ret <= 0) {
        gone();
    }
    nfds = pvgpu_rp_received_fds(&msg, keep_first_fd, &fd);
    if (ret < (ssize_t)sizeof(hdr) &&
        !pvgpu_rp_read_full(SOCK, (uint8_t *)&hdr + ret,
                            sizeof(hdr) - ret, -1)) {
        gone();
    }
    if (hdr.len > PVGPU_RP_MAX_LEN || hdr.nfds != nfds) {
        die("malformed message header");
    }
    body = g_malloc(hdr.len + 1);
    if (!pvgpu_rp_read_full(SOCK, body, hdr.len, -1)) {
        gone();
    }
    switch (hdr.type) {
    case PVGPU_RP_REGION:
        recv_region(body, hdr.len, fd);
        g_free(body);
        return;
    case PVGPU_RP_READBACK_BUF:
        recv_readback_buf(body, hdr.len, fd);
        g_free(body);
        return;
    case PVGPU_RP_JOB:
        recv_job(body, hdr.len);
        break;
    case PVGPU_RP_RESET:
        recv_reset(body, hdr.len);
        g_free(body);
        break;
    default:
        die("unknown message");
    }
    if (fd >= 0) {
        close(fd);
    }
}

static void usage(const char *name)
{
    printf("Usage: %s [--render-node PATH] [--gles]\n"
           "\n"
           "virglrenderer for one pvgpu device, in a process of its own.\n"
           "QEMU starts it (pvgpu-pci property render-process) with a Unix\n"
           "socket as its standard input; it is not run by hand.\n"
           "\n"
           "  --render-node PATH  render on this DRM render node\n"
           "                      (default: EGL surfaceless)\n"
           "  --gles              OpenGL ES instead of desktop OpenGL\n",
           name);
}

int main(int argc, char **argv)
{
    /* the iovec arrays of backings are made here, and the renderer's */
    PvgpuRenderOpts opts = { .own_iov = true };
    Error *err = NULL;
    struct stat st;
    sigset_t all;

    error_init(argv[0]);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--render-node") && i + 1 < argc) {
            opts.render_node = argv[++i];
        } else if (!strcmp(argv[i], "--gles")) {
            opts.gles = true;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(argv[0]);
            return 0;
        } else {
            usage(argv[0]);
            return 2;
        }
    }
    /* a QEMU thread that started us had its signals blocked */
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    crash_report_init();
    /* QEMU killed, or its thread that started us gone: so are we */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1) {
        return 0;
    }
    if (fstat(SOCK, &st) || !S_ISSOCK(st.st_mode)) {
        error_report("pvgpu-render: standard input is not QEMU's socket; "
                     "QEMU starts this program (render-process=on)");
        return 2;
    }
    if (getenv("PVGPU_RENDER_CORRUPT")) {
        corrupt = g_rand_new_with_seed(atoi(getenv("PVGPU_RENDER_CORRUPT")));
    }
    qemu_init_main_loop(&error_fatal);
    regions = g_array_new(false, true, sizeof(Region));
    rbufs = g_array_new(false, true, sizeof(Region));
    renderer = pvgpu_virgl_new(&opts, job_done, NULL, &err);
    if (!renderer) {
        send_hello(false, error_get_pretty(err));
        return 1;
    }
    send_hello(true, pvgpu_render_describe(renderer));
    qemu_set_fd_handler(SOCK, readable, NULL, NULL);
    for (;;) {
        main_loop_wait(false);
    }
}
