/*
 * pvgpu renderer backend: virglrenderer in a render process
 *
 * The renderer of render-process=on.  Jobs go to contrib/pvgpu-render,
 * which runs them on pvgpu-virgl.c, over a socket (the messages are in
 * pvgpu-render-proto.h), so that a crash in virglrenderer or the host's
 * GL driver, which a guest's command stream can reach, ends that process
 * and not QEMU.  The guest's RAM must be shareable (a memfd or shared file
 * backend): the helper maps it, as a vhost-user back end does.
 *
 * Like pvgpu-virgl.c, one thread of QEMU's talks to the renderer, through
 * the job lists of pvgpu-render-queue.h.  The thread sends jobs, reads
 * completions and pulls scheduled work when a completion came, so
 * dispatch stays off the main loop.  Its socket never blocks: it always
 * reads what the helper writes, so neither side can wait on the other's
 * full socket.  Readback pixels come through shared memory buffers.
 *
 * When the process dies, every job in flight and every later one fails
 * (the guest gets error responses, its fences are answered), the device
 * reports 3D lost, and the next device reset starts a new process.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <sys/socket.h>
#include <sys/wait.h>
#include "qapi/error.h"
#include "qemu/cutils.h"
#include "qemu/error-report.h"
#include "qemu/iov.h"
#include "qemu/log.h"
#include "qemu/memfd.h"
#include "qemu/units.h"
#include "qemu/main-loop.h"
#include "qemu/rcu.h"
#include "qemu/timer.h"
#include "exec/cpu-common.h"
#include "exec/ramblock.h"
#include "hw/boards.h"
#include "exec/memory.h"
#include "qemu/sockets.h"
#include "hw/display/pvgpu-render-proto.h"
#include "hw/display/pvgpu-render-queue.h"
#include "trace.h"

#define HELPER_NAME "pvgpu-render"
#define HELLO_TIMEOUT_NS (10 * NANOSECONDS_PER_SECOND)
#define EXIT_TIMEOUT_NS (2 * NANOSECONDS_PER_SECOND)
#define READ_CHUNK (256 * KiB)

typedef struct OutMsg {
    GByteArray *buf;
    size_t pos;
    int fd;                     /* sent with the first byte; not ours */
} OutMsg;

/*
 * Shared memory the helper puts readback pixels in (instead of sending
 * them through the socket, which cost two more copies of every frame)
 */
#define NR_RBUFS 4
#define RBUF_MAX (64 * MiB)
typedef struct RbBuf {
    uint8_t *map;               /* NULL: none yet */
    size_t size;
    int fd;
    bool sent;                  /* the helper has it */
    uint64_t tag;               /* the job whose readback fills it; 0: free */
    unsigned index;             /* which of its readbacks */
} RbBuf;

typedef struct Region {
    RAMBlock *rb;
    void *host;
    int fd;
    uint32_t id;
} Region;

typedef struct PvgpuRemote {
    PvgpuRenderer parent;
    PvgpuRenderQueue q;
    QemuThread thread;
    char *helper;
    char *render_node;
    bool gles;
    int64_t hang_ns;

    /* under q.lock */
    char *broken;               /* why there is no process to render on */
    int pid;
    unsigned restarts;

    /* the thread only (and pvgpu_remote_new() before it starts) */
    int sock;                   /* -1: no process */
    GPid child;
    GHashTable *sent;           /* tag -> job, not answered yet */
    uint64_t tag;
    GArray *regions;            /* of Region */
    GQueue out;                 /* of OutMsg */
    GByteArray *in;
    GQueue in_fds;              /* received, not claimed by a message yet */
    PvgpuRenderJob *resetting;  /* a reset waiting for RESET_DONE */
    RbBuf rbufs[NR_RBUFS];
    int64_t progress_ns;        /* when the process last finished something */

    /* fixed once started */
    char *describe;
    PvgpuCapset capsets[PVGPU_MAX_CAPSETS];
    unsigned ncapsets;
} PvgpuRemote;

static const PvgpuRenderBackend pvgpu_remote_backend;

static PvgpuRemote *remote_of(PvgpuRenderer *r)
{
    return container_of(r, PvgpuRemote, parent);
}

/* --- the helper process -------------------------------------------------- */

static char *helper_default(void)
{
    g_autofree char *exe = g_file_read_link("/proc/self/exe", NULL);
    g_autofree char *dir = exe ? g_path_get_dirname(exe) : NULL;
    g_autofree char *installed = get_relocated_path(CONFIG_QEMU_HELPERDIR);
    /* a build tree, beside QEMU, then where it is installed */
    char *candidates[] = {
        dir ? g_build_filename(dir, "contrib", "pvgpu-render", HELPER_NAME,
                               NULL) : NULL,
        dir ? g_build_filename(dir, HELPER_NAME, NULL) : NULL,
        g_build_filename(installed, HELPER_NAME, NULL),
    };
    char *found = NULL;

    for (int i = 0; i < ARRAY_SIZE(candidates); i++) {
        if (!found && candidates[i] && !access(candidates[i], X_OK)) {
            found = g_steal_pointer(&candidates[i]);
        }
        g_free(candidates[i]);
    }
    return found;
}

static char *exit_status(int status)
{
    if (WIFSIGNALED(status)) {
        return g_strdup_printf("was killed by signal %d (%s)",
                               WTERMSIG(status), strsignal(WTERMSIG(status)));
    }
    return g_strdup_printf("exited with status %d", WEXITSTATUS(status));
}

/* Wait for the helper to exit, killing it if it does not within @ns */
static char *reap(GPid pid, int64_t ns)
{
    int64_t deadline = get_clock() + ns;
    int status = 0;
    pid_t ret;

    while ((ret = waitpid(pid, &status, WNOHANG)) == 0) {
        if (get_clock() >= deadline) {
            kill(pid, SIGKILL);
            if (waitpid(pid, &status, 0) < 0) {
                return g_strdup("could not be waited for");
            }
            break;
        }
        g_usleep(1000);
    }
    if (ret < 0) {
        return g_strdup_printf("could not be waited for (%s)",
                               strerror(errno));
    }
    return exit_status(status);
}

/* Do the sizes in HELLO @h add up to its body's @len? */
static bool hello_well_formed(const PvgpuRpHello *h, uint64_t len)
{
    uint64_t off = sizeof(*h);

    if (h->ncapsets > PVGPU_MAX_CAPSETS) {
        return false;
    }
    for (unsigned i = 0; i < h->ncapsets; i++) {
        if (h->capsets[i].max_size > len - off) {
            return false;
        }
        off += h->capsets[i].max_size;
    }
    return h->text_len == len - off;
}

/* The helper's first message: its capsets, or why it could not start */
static bool hello(PvgpuRemote *r, int fd, Error **errp)
{
    int64_t deadline = get_clock() + HELLO_TIMEOUT_NS;
    g_autofree uint8_t *body = NULL;
    PvgpuRpHello h;
    PvgpuRpHdr hdr;
    uint64_t off;

    if (!pvgpu_rp_read_full(fd, &hdr, sizeof(hdr), deadline)) {
        goto no_answer;
    }
    if (hdr.type != PVGPU_RP_HELLO || hdr.nfds || hdr.len < sizeof(h) ||
        hdr.len > 16 * MiB) {
        error_setg(errp, "not a pvgpu-render of this QEMU");
        return false;
    }
    body = g_malloc(hdr.len + 1);
    if (!pvgpu_rp_read_full(fd, body, hdr.len, deadline)) {
        goto no_answer;
    }
    body[hdr.len] = 0;
    memcpy(&h, body, sizeof(h));
    if (h.version != PVGPU_RP_VERSION || h.op_size != sizeof(PvgpuRenderOp)) {
        error_setg(errp, "not a pvgpu-render of this QEMU (protocol %u)",
                   h.version);
        return false;
    }
    if (!hello_well_formed(&h, hdr.len)) {
        error_setg(errp, "malformed HELLO");
        return false;
    }
    if (!h.ok) {
        /* the text is the body's end; body[hdr.len] is a NUL */
        error_setg(errp, "%s", (char *)body + hdr.len - h.text_len);
        return false;
    }
    if (r->describe) {
        /* a restart: the first process's capsets stay the device's */
        return true;
    }
    off = sizeof(h);
    for (unsigned i = 0; i < h.ncapsets; i++) {
        PvgpuCapset *c = &r->capsets[i];

        c->id = h.capsets[i].id;
        c->max_version = h.capsets[i].max_version;
        c->max_size = h.capsets[i].max_size;
        c->data = g_memdup2(body + off, c->max_size);
        off += c->max_size;
    }
    r->ncapsets = h.ncapsets;
    r->describe = g_strdup_printf("%s, in a render process (%s)",
                                  (char *)body + off, r->helper);
    return true;

no_answer:
    error_setg(errp, "no answer within %d s",
               (int)(HELLO_TIMEOUT_NS / NANOSECONDS_PER_SECOND));
    return false;
}

/* Start a helper; on success it has said hello and r->sock is its socket */
static bool spawn(PvgpuRemote *r, Error **errp)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autoptr(GError) gerr = NULL;
    Error *err = NULL;
    GPid pid;
    int sv[2];

    if (qemu_socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
        error_setg_errno(errp, errno, "pvgpu: cannot create a socket for "
                         "the render process");
        return false;
    }
    g_ptr_array_add(argv, r->helper);
    if (r->render_node) {
        g_ptr_array_add(argv, (char *)"--render-node");
        g_ptr_array_add(argv, r->render_node);
    }
    if (r->gles) {
        g_ptr_array_add(argv, (char *)"--gles");
    }
    g_ptr_array_add(argv, NULL);
    /* the socket is its standard input; stdout and stderr are QEMU's */
    if (!g_spawn_async_with_fds(NULL, (char **)argv->pdata, NULL,
                                G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &pid,
                                sv[1], -1, -1, &gerr)) {
        error_setg(errp, "pvgpu: cannot start %s: %s", r->helper,
                   gerr->message);
        close(sv[0]);
        close(sv[1]);
        return false;
    }
    close(sv[1]);
    if (!hello(r, sv[0], &err)) {
        g_autofree char *how = NULL;

        close(sv[0]);
        how = reap(pid, EXIT_TIMEOUT_NS);
        error_setg(errp, "pvgpu: the render process %s (pid %d) %s: %s",
                   r->helper, pid, how, error_get_pretty(err));
        error_free(err);
        return false;
    }
    qemu_socket_set_nonblock(sv[0]);
    r->sock = sv[0];
    r->child = pid;
    qemu_mutex_lock(&r->q.lock);
    r->pid = pid;
    qemu_mutex_unlock(&r->q.lock);
    trace_pvgpu_remote_start(pid);
    return true;
}

/* --- the thread ---------------------------------------------------------- */

static void finish(PvgpuRemote *r, PvgpuRenderJob *job)
{
    pvgpu_queue_finish(&r->q, job);
}

/* Readback buffers that job @tag filled are free again */
static void rbuf_release(PvgpuRemote *r, uint64_t tag)
{
    for (unsigned i = 0; i < NR_RBUFS; i++) {
        if (r->rbufs[i].tag == tag) {
            r->rbufs[i].tag = 0;
        }
    }
}

static gint tag_cmp(gconstpointer a, gconstpointer b)
{
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;

    return x < y ? -1 : x > y;
}

/* Every job sent and not answered: @cancelled, else failed */
static void drop_sent(PvgpuRemote *r, bool cancelled)
{
    /* in the order they were sent, as a renderer would finish them */
    GList *tags = g_list_sort(g_hash_table_get_keys(r->sent), tag_cmp);

    for (GList *l = tags; l; l = l->next) {
        PvgpuRenderJob *job = g_hash_table_lookup(r->sent, l->data);

        rbuf_release(r, (uintptr_t)l->data);
        job->failed = !cancelled;
        job->cancelled = cancelled;
        finish(r, job);
    }
    g_list_free(tags);
    g_hash_table_remove_all(r->sent);
}

static void restart(PvgpuRemote *r)
{
    Error *err = NULL;

    qemu_mutex_lock(&r->q.lock);
    r->pid = 0;
    qemu_mutex_unlock(&r->q.lock);
    if (!spawn(r, &err)) {
        qemu_mutex_lock(&r->q.lock);
        g_free(r->broken);
        r->broken = g_strdup_printf("the render process could not be "
                                    "restarted: %s", error_get_pretty(err));
        qemu_mutex_unlock(&r->q.lock);
        error_report_err(err);
        return;
    }
    qemu_mutex_lock(&r->q.lock);
    g_clear_pointer(&r->broken, g_free);
    r->restarts++;
    qemu_mutex_unlock(&r->q.lock);
}

static void reset_finished(PvgpuRemote *r, PvgpuRenderJob *reset)
{
    drop_sent(r, true);
    if (reset->kind == PVGPU_JOB_RESET && r->sock < 0) {
        restart(r);
    }
    qemu_sem_post(&r->q.reset_done);
}

/* What was on its way to or from a helper that is gone */
static void forget_streams(PvgpuRemote *r)
{
    OutMsg *m;
    int fd;

    while ((m = g_queue_pop_head(&r->out))) {
        g_byte_array_unref(m->buf);
        g_free(m);
    }
    g_byte_array_set_size(r->in, 0);
    while ((fd = GPOINTER_TO_INT(g_queue_pop_head(&r->in_fds)) - 1) >= 0) {
        close(fd);
    }
    g_array_set_size(r->regions, 0);
    for (unsigned i = 0; i < NR_RBUFS; i++) {
        r->rbufs[i].sent = false;
        r->rbufs[i].tag = 0;
    }
}

/*
 * The helper is gone (QEMU ended it because of @what, or NULL: by
 * itself): jobs in flight fail, and so does every later one until a reset
 * starts another.
 */
static void lost(PvgpuRemote *r, const char *what)
{
    g_autofree char *how = NULL;

    close(r->sock);
    r->sock = -1;
    how = reap(r->child, EXIT_TIMEOUT_NS);
    qemu_mutex_lock(&r->q.lock);
    g_free(r->broken);
    r->broken = g_strdup_printf("the render process (pid %d) %s%s%s; 3D "
                                "comes back when the guest resets the "
                                "device", (int)r->child,
                                what ? what : "", what ? ", so it " : "",
                                how);
    r->pid = 0;
    error_report("pvgpu: %s", r->broken);
    qemu_mutex_unlock(&r->q.lock);
    trace_pvgpu_remote_lost(r->child, how);
    forget_streams(r);
    if (r->resetting) {
        reset_finished(r, g_steal_pointer(&r->resetting));
    } else {
        drop_sent(r, false);
    }
}

/* End the helper with signal @sig because of @what */
static void end_helper(PvgpuRemote *r, const char *what, int sig)
{
    kill(r->child, sig);
    lost(r, what);
}

static void out_queue(PvgpuRemote *r, GByteArray *buf, int fd)
{
    OutMsg *m = g_new0(OutMsg, 1);

    m->buf = buf;
    m->fd = fd;
    g_queue_push_tail(&r->out, m);
}

static GByteArray *msg_new(PvgpuRpType type, uint32_t nfds)
{
    PvgpuRpHdr hdr = { .type = type, .nfds = nfds };
    GByteArray *buf = g_byte_array_new();

    g_byte_array_append(buf, (uint8_t *)&hdr, sizeof(hdr));
    return buf;
}

static void msg_end(GByteArray *buf)
{
    ((PvgpuRpHdr *)buf->data)->len = buf->len - sizeof(PvgpuRpHdr);
}

/* Write what the socket takes now; false if the helper is gone */
static bool flush_out(PvgpuRemote *r)
{
    OutMsg *m;

    while (r->sock >= 0 && (m = g_queue_peek_head(&r->out))) {
        PvgpuRpFdBuf fb;
        struct iovec iov = { m->buf->data + m->pos, m->buf->len - m->pos };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t ret;

        if (m->pos == 0 && m->fd >= 0) {
            pvgpu_rp_attach_fds(&msg, &fb, &m->fd, 1);
        }
        ret = sendmsg(r->sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (ret < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return true;
            }
            lost(r, NULL);
            return false;
        }
        m->pos += ret;
        if (m->pos == m->buf->len) {
            g_queue_pop_head(&r->out);
            g_byte_array_unref(m->buf);
            g_free(m);
        }
    }
    return r->sock >= 0;
}

/* The helper's region of the guest RAM at @iov, sending it if new */
static bool translate(PvgpuRemote *r, const struct iovec *iov, PvgpuRpSeg *seg)
{
    ram_addr_t offset;
    RAMBlock *rb = qemu_ram_block_from_host(iov->iov_base, false, &offset);
    PvgpuRpRegion rr;
    GByteArray *buf;
    Region reg;
    int fd;

    fd = rb ? qemu_ram_get_fd(rb) : -1;
    if (fd < 0 || !qemu_ram_is_shared(rb) ||
        offset > qemu_ram_get_used_length(rb) ||
        iov->iov_len > qemu_ram_get_used_length(rb) - offset) {
        return false;
    }
    seg->offset = offset;
    seg->len = iov->iov_len;
    for (guint i = 0; i < r->regions->len; i++) {
        Region *known = &g_array_index(r->regions, Region, i);

        if (known->rb == rb && known->host == qemu_ram_get_host_addr(rb) &&
            known->fd == fd) {
            seg->region = known->id;
            return true;
        }
    }
    reg = (Region) {
        .rb = rb, .host = qemu_ram_get_host_addr(rb), .fd = fd,
        .id = r->regions->len,
    };
    g_array_append_val(r->regions, reg);
    rr = (PvgpuRpRegion) {
        .id = reg.id,
        .size = qemu_ram_get_used_length(rb),
        .fd_offset = rb->fd_offset,
    };
    buf = msg_new(PVGPU_RP_REGION, 1);
    g_byte_array_append(buf, (uint8_t *)&rr, sizeof(rr));
    msg_end(buf);
    out_queue(r, buf, fd);
    trace_pvgpu_remote_region(reg.id, rr.size);
    seg->region = reg.id;
    return true;
}

/* The process owes QEMU an answer */
static bool busy(PvgpuRemote *r)
{
    return g_hash_table_size(r->sent) || r->resetting;
}

/* TRANSFER_* with memory of their own carry it in the messages */
static bool op_inline(const PvgpuRenderOp *op)
{
    return op->kind == PVGPU_OP_TRANSFER_WRITE ||
           op->kind == PVGPU_OP_TRANSFER_READ;
}

/*
 * A shared buffer for readback @index of job @tag, @need bytes: its id,
 * sent to the helper if new; PVGPU_RP_INLINE if none is free (the pixels
 * then come through the socket)
 */
static uint32_t rbuf_take(PvgpuRemote *r, uint64_t tag, unsigned index,
                          size_t need)
{
    RbBuf *b = NULL;

    for (unsigned i = 0; i < NR_RBUFS && !b; i++) {
        if (!r->rbufs[i].tag && r->rbufs[i].size >= need) {
            b = &r->rbufs[i];
        }
    }
    for (unsigned i = 0; i < NR_RBUFS && !b && need <= RBUF_MAX; i++) {
        if (!r->rbufs[i].tag) {
            /* too small or none yet: (re)made at the size asked */
            b = &r->rbufs[i];
            if (b->map) {
                qemu_memfd_free(b->map, b->size, b->fd);
            }
            b->size = ROUND_UP(need, MiB);
            b->map = qemu_memfd_alloc("pvgpu-readback", b->size, 0, &b->fd,
                                      NULL);
            b->sent = false;
            if (!b->map) {
                b->size = 0;
                return PVGPU_RP_INLINE;
            }
        }
    }
    if (!b) {
        return PVGPU_RP_INLINE;
    }
    if (!b->sent) {
        PvgpuRpReadbackBuf rb = { .id = b - r->rbufs, .size = b->size };
        GByteArray *buf = msg_new(PVGPU_RP_READBACK_BUF, 1);

        g_byte_array_append(buf, (uint8_t *)&rb, sizeof(rb));
        msg_end(buf);
        out_queue(r, buf, b->fd);
        b->sent = true;
    }
    b->tag = tag;
    b->index = index;
    return b - r->rbufs;
}

/* Send @job; false if its guest memory is not the helper's to reach */
static bool send_job(PvgpuRemote *r, PvgpuRenderJob *job)
{
    const PvgpuRenderOp *op = &job->op;
    PvgpuRpJob rj = {
        .tag = ++r->tag,
        .kind = job->kind,
        .flags = (job->fence ? PVGPU_RP_FENCE : 0) |
                 (job->sync ? PVGPU_RP_SYNC : 0),
        .op = *op,
        .nreadbacks = job->nreadbacks,
        .nsegs = op->niov,
    };
    g_autofree PvgpuRpSeg *segs = g_new0(PvgpuRpSeg, op->niov);
    GByteArray *buf;

    if (op->niov > PVGPU_RP_MAX_SEGS) {
        return false;
    }
    for (unsigned i = 0; i < op->niov; i++) {
        if (op_inline(op)) {
            segs[i].region = PVGPU_RP_INLINE;
            segs[i].len = op->iov[i].iov_len;
            if (op->kind == PVGPU_OP_TRANSFER_WRITE) {
                rj.data_len += segs[i].len;
            }
        } else if (!translate(r, &op->iov[i], &segs[i])) {
            qemu_log_mask(LOG_GUEST_ERROR, "pvgpu: %s of resource %u: guest "
                          "memory the render process cannot map (guest RAM "
                          "must be a shared memory backend)\n",
                          op->kind == PVGPU_OP_BACKING_ATTACH ?
                          "backing" : "blob", op->resource_id);
            return false;
        }
    }
    rj.op.iov = NULL;
    rj.op.niov = 0;
    if (op->kind == PVGPU_OP_CTX_CREATE) {
        rj.op.u.ctx_create.name = NULL;
        rj.data_len += op->u.ctx_create.nlen;
    } else if (op->kind == PVGPU_OP_SUBMIT) {
        rj.op.u.submit.dwords = NULL;
        rj.data_len += (uint64_t)op->u.submit.ndw * 4;
    }
    buf = msg_new(PVGPU_RP_JOB, 0);
    g_byte_array_append(buf, (uint8_t *)&rj, sizeof(rj));
    for (unsigned i = 0; i < job->nreadbacks; i++) {
        const PvgpuReadback *rb = &job->readbacks[i];
        PvgpuRpReadback rrb = {
            .scanout_id = rb->scanout_id, .resource_id = rb->resource_id,
            .r = rb->r, .want_dmabuf = rb->want_dmabuf,
            .buf = rbuf_take(r, rj.tag, i,
                             (size_t)rb->r.width * rb->r.height * 4),
        };

        g_byte_array_append(buf, (uint8_t *)&rrb, sizeof(rrb));
    }
    g_byte_array_append(buf, (uint8_t *)segs, sizeof(*segs) * op->niov);
    if (op->kind == PVGPU_OP_CTX_CREATE) {
        g_byte_array_append(buf, (const uint8_t *)op->u.ctx_create.name,
                            op->u.ctx_create.nlen);
    } else if (op->kind == PVGPU_OP_SUBMIT) {
        g_byte_array_append(buf, (const uint8_t *)op->u.submit.dwords,
                            op->u.submit.ndw * 4);
    } else if (op->kind == PVGPU_OP_TRANSFER_WRITE) {
        for (unsigned i = 0; i < op->niov; i++) {
            g_byte_array_append(buf, op->iov[i].iov_base,
                                op->iov[i].iov_len);
        }
    }
    msg_end(buf);
    out_queue(r, buf, -1);
    if (!busy(r)) {
        /* the hang timer runs from the first job of a busy spell */
        r->progress_ns = get_clock();
    }
    g_hash_table_insert(r->sent, (gpointer)(uintptr_t)rj.tag, job);
    return true;
}

/* A job from the main loop or the scheduler */
static void dispatch(PvgpuRemote *r, PvgpuRenderJob *job)
{
    switch (job->kind) {
    case PVGPU_JOB_RESET:
    case PVGPU_JOB_CANCEL:
        if (r->sock >= 0) {
            PvgpuRpReset rr = { .keep_memory = job->kind == PVGPU_JOB_CANCEL };
            GByteArray *buf = msg_new(PVGPU_RP_RESET, 0);

            g_byte_array_append(buf, (uint8_t *)&rr, sizeof(rr));
            msg_end(buf);
            out_queue(r, buf, -1);
            if (!busy(r)) {
                r->progress_ns = get_clock();
            }
            r->resetting = job;
        } else {
            reset_finished(r, job);
        }
        return;
    case PVGPU_JOB_RESTART:
        if (r->sock < 0) {
            restart(r);
            finish(r, job);
            return;
        }
        break;
    default:
        break;
    }
    job->start_ns = get_clock();
    if (r->sock < 0 && job->op.kind == PVGPU_OP_NONE && !job->nreadbacks) {
        /*
         * Nothing for a process to do (the CTX_DESTROY or UNREF of what
         * the renderer refused to create), and nothing sent is pending
         */
        finish(r, job);
        return;
    }
    if (job->op.kind == PVGPU_OP_MAP || job->op.kind == PVGPU_OP_UNMAP ||
        r->sock < 0 || !send_job(r, job)) {
        /* no process, or memory it cannot reach; no mappings across */
        job->failed = true;
        finish(r, job);
    }
}

static RbBuf *rbuf_of(PvgpuRemote *r, uint64_t tag, unsigned index)
{
    for (unsigned i = 0; i < NR_RBUFS; i++) {
        if (r->rbufs[i].tag == tag && r->rbufs[i].index == index) {
            return &r->rbufs[i];
        }
    }
    return NULL;
}

/* A DONE: check it against the job it answers, which it completes */
static bool recv_done(PvgpuRemote *r, const PvgpuRpHdr *hdr,
                      const uint8_t *body)
{
    PvgpuRpDone d;
    const PvgpuRpReadbackDone *rbd;
    PvgpuRenderJob *job;
    uint64_t want, pixels = 0, inline_len = 0;
    const uint8_t *data;
    uint32_t nfds = 0;
    bool ok;

    if (hdr->len < sizeof(d)) {
        return false;
    }
    memcpy(&d, body, sizeof(d));
    job = g_hash_table_lookup(r->sent, (gpointer)(uintptr_t)d.tag);
    /*
     * Only a reset QEMU asked for cancels a job: a job said to be
     * cancelled otherwise would never be answered to the guest
     */
    if (!job || d.nreadbacks != job->nreadbacks ||
        (d.cancelled && !r->resetting)) {
        return false;
    }
    rbd = (const void *)(body + sizeof(d));
    want = sizeof(d) + (uint64_t)d.nreadbacks * sizeof(*rbd);
    if (hdr->len < want) {
        return false;
    }
    ok = !d.failed && !d.cancelled;
    for (unsigned i = 0; i < d.nreadbacks; i++) {
        if (rbd[i].ok && rbd[i].dmabuf) {
            nfds++;
        } else if (rbd[i].ok && rbd[i].in_buf) {
            if (!rbuf_of(r, d.tag, i)) {
                return false;
            }
        } else if (rbd[i].ok) {
            pixels += (uint64_t)job->readbacks[i].r.width *
                      job->readbacks[i].r.height * 4;
        }
    }
    if (job->op.kind == PVGPU_OP_TRANSFER_READ && ok) {
        inline_len = iov_size(job->op.iov, job->op.niov);
    }
    if (hdr->len != want + pixels + inline_len || hdr->nfds != nfds ||
        g_queue_get_length(&r->in_fds) < nfds) {
        return false;
    }
    g_hash_table_remove(r->sent, (gpointer)(uintptr_t)d.tag);
    job->failed = d.failed;
    job->cancelled = d.cancelled;
    job->gpu_ns = d.gpu_ns;
    data = body + want;
    for (unsigned i = 0; i < d.nreadbacks; i++) {
        PvgpuReadback *rb = &job->readbacks[i];
        size_t size = (size_t)rb->r.width * rb->r.height * 4;

        rb->ok = rbd[i].ok;
        rb->format = rbd[i].format;
        rb->pixels = NULL;
        rb->image = NULL;
        rb->dmabuf.fd = -1;
        if (!rbd[i].ok) {
            continue;
        }
        if (rbd[i].dmabuf) {
            rb->dmabuf.fd = GPOINTER_TO_INT(g_queue_pop_head(&r->in_fds)) - 1;
            rb->dmabuf.width = rbd[i].width;
            rb->dmabuf.height = rbd[i].height;
            rb->dmabuf.stride = rbd[i].stride;
            rb->dmabuf.fourcc = rbd[i].fourcc;
            rb->dmabuf.y0_top = rbd[i].y0_top;
            continue;
        }
        rb->pixels = g_try_malloc(size);
        rb->ok = rb->pixels != NULL;
        if (rbd[i].in_buf) {
            if (rb->pixels) {
                memcpy(rb->pixels, rbuf_of(r, d.tag, i)->map, size);
            }
            continue;
        }
        if (rb->pixels) {
            memcpy(rb->pixels, data, size);
        }
        data += size;
    }
    rbuf_release(r, d.tag);
    if (inline_len) {
        iov_from_buf(job->op.iov, job->op.niov, 0, data, inline_len);
    }
    finish(r, job);
    return true;
}

static bool recv_msg(PvgpuRemote *r, const PvgpuRpHdr *hdr,
                     const uint8_t *body)
{
    r->progress_ns = get_clock();
    switch (hdr->type) {
    case PVGPU_RP_DONE:
        return recv_done(r, hdr, body);
    case PVGPU_RP_RESET_DONE:
        if (!r->resetting || hdr->len || hdr->nfds) {
            return false;
        }
        reset_finished(r, g_steal_pointer(&r->resetting));
        return true;
    default:
        return false;
    }
}

/* A received file descriptor, for the message that claims it */
static void queue_fd(int fd, void *opaque)
{
    g_queue_push_tail(opaque, GINT_TO_POINTER(fd + 1));
}

/* Read and handle everything the helper sent; false if it is gone */
static bool read_in(PvgpuRemote *r)
{
    for (;;) {
        PvgpuRpFdBuf fb;
        guint len = r->in->len;
        struct iovec iov;
        struct msghdr msg = {
            .msg_iov = &iov, .msg_iovlen = 1,
            .msg_control = fb.buf, .msg_controllen = sizeof(fb.buf),
        };
        ssize_t ret;

        g_byte_array_set_size(r->in, len + READ_CHUNK);
        iov = (struct iovec) { r->in->data + len, READ_CHUNK };
        ret = recvmsg(r->sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        g_byte_array_set_size(r->in, len + MAX(ret, 0));
        if (ret > 0) {
            pvgpu_rp_received_fds(&msg, queue_fd, &r->in_fds);
        }
        if (ret < 0 && errno == EINTR) {
            continue;
        }
        if (ret < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        if (ret <= 0) {
            lost(r, NULL);
            return false;
        }
    }
    while (r->in->len >= sizeof(PvgpuRpHdr)) {
        PvgpuRpHdr hdr;

        memcpy(&hdr, r->in->data, sizeof(hdr));
        if (hdr.len > PVGPU_RP_MAX_LEN) {
            end_helper(r, "sent a malformed message", SIGKILL);
            return false;
        }
        if (r->in->len - sizeof(hdr) < hdr.len) {
            break;
        }
        if (!recv_msg(r, &hdr, r->in->data + sizeof(hdr))) {
            end_helper(r, "sent a malformed message", SIGKILL);
            return false;
        }
        g_byte_array_remove_range(r->in, 0, sizeof(hdr) + hdr.len);
    }
    return true;
}

static PvgpuRenderJob *pull(PvgpuRemote *r)
{
    /* nothing new goes out before a reset is confirmed */
    return r->resetting ? NULL : pvgpu_queue_pull(&r->q);
}

static void *pvgpu_remote_thread(void *opaque)
{
    PvgpuRemote *r = opaque;

    rcu_register_thread();
    for (;;) {
        GPollFD pfd[2] = {
            { .fd = event_notifier_get_fd(&r->q.wake), .events = G_IO_IN },
            { .fd = r->sock, .events = G_IO_IN },
        };
        PvgpuJobList batch = QSIMPLEQ_HEAD_INITIALIZER(batch);
        PvgpuRenderJob *job;
        bool quit;

        int64_t timeout = -1;

        if (!g_queue_is_empty(&r->out)) {
            pfd[1].events |= G_IO_OUT;
        }
        if (r->sock >= 0 && r->hang_ns && busy(r)) {
            timeout = MAX(r->progress_ns + r->hang_ns - get_clock(), 0);
        }
        qemu_poll_ns(pfd, r->sock >= 0 ? 2 : 1, timeout);
        event_notifier_test_and_clear(&r->q.wake);

        if (r->sock >= 0 && (pfd[1].revents & (G_IO_IN | G_IO_HUP |
                                                G_IO_ERR))) {
            read_in(r);
        }
        if (r->sock >= 0 && r->hang_ns && busy(r) &&
            get_clock() - r->progress_ns >= r->hang_ns) {
            /*
             * A GPU hang: a draw that does not end, or a stuck driver.
             * SIGABRT, as systemd's watchdog does, leaves a core dump to
             * tell which (where the host keeps them); SIGKILL follows if
             * it is not gone within EXIT_TIMEOUT_NS.
             */
            g_autofree char *what = g_strdup_printf(
                "finished no job in %" PRId64 " s (render-timeout)",
                (int64_t)(r->hang_ns / NANOSECONDS_PER_SECOND));

            end_helper(r, what, SIGABRT);
        }
        quit = pvgpu_queue_take(&r->q, &batch);
        while ((job = QSIMPLEQ_FIRST(&batch))) {
            QSIMPLEQ_REMOVE_HEAD(&batch, next);
            dispatch(r, job);
        }
        /* the next scheduled work goes out as soon as a completion came */
        while ((job = pull(r))) {
            dispatch(r, job);
        }
        flush_out(r);
        if (quit) {
            break;
        }
    }
    if (r->sock >= 0) {
        g_autofree char *how = NULL;

        /* its end of the socket closes: the helper cleans up and exits */
        close(r->sock);
        r->sock = -1;
        how = reap(r->child, EXIT_TIMEOUT_NS);
        trace_pvgpu_remote_exit(r->child, how);
    }
    drop_sent(r, true);
    rcu_unregister_thread();
    return NULL;
}

/* --- the main loop's side ------------------------------------------------ */

bool pvgpu_remote_possible(const char *helper, Error **errp)
{
    MachineState *ms = MACHINE(qdev_get_machine());
    g_autofree char *path = helper ? g_strdup(helper) : helper_default();

    if (!ms->ram || memory_region_get_fd(ms->ram) < 0 ||
        !qemu_ram_is_shared(ms->ram->ram_block)) {
        error_setg(errp, "the guest's RAM is not shareable with a render "
                   "process: give the machine a shared memory backend "
                   "(-object memory-backend-memfd,id=mem,size=SIZE,"
                   "share=on -machine memory-backend=mem)");
        return false;
    }
    if (!path) {
        error_setg(errp, "no " HELPER_NAME " found beside QEMU "
                   "or in " CONFIG_QEMU_HELPERDIR " (property render-helper)");
        return false;
    }
    if (access(path, X_OK)) {
        error_setg_errno(errp, errno, "render-helper %s", path);
        return false;
    }
    return true;
}

static void renderer_destroy(PvgpuRemote *r)
{
    forget_streams(r);
    for (unsigned i = 0; i < NR_RBUFS; i++) {
        if (r->rbufs[i].map) {
            qemu_memfd_free(r->rbufs[i].map, r->rbufs[i].size,
                            r->rbufs[i].fd);
        }
    }
    for (unsigned i = 0; i < r->ncapsets; i++) {
        g_free(r->capsets[i].data);
    }
    g_hash_table_destroy(r->sent);
    g_array_free(r->regions, true);
    g_byte_array_unref(r->in);
    g_free(r->broken);
    g_free(r->describe);
    g_free(r->helper);
    g_free(r->render_node);
    g_free(r);
}

PvgpuRenderer *pvgpu_remote_new(const PvgpuRenderOpts *opts,
                                const char *helper, PvgpuRenderDoneFn *done,
                                void *opaque, Error **errp)
{
    PvgpuRemote *r = g_new0(PvgpuRemote, 1);

    r->parent.be = &pvgpu_remote_backend;
    r->helper = helper ? g_strdup(helper) : helper_default();
    r->render_node = g_strdup(opts->render_node);
    r->gles = opts->gles;
    r->hang_ns = opts->hang_ns;
    r->sock = -1;
    g_queue_init(&r->out);
    g_queue_init(&r->in_fds);
    r->sent = g_hash_table_new(NULL, NULL);
    r->regions = g_array_new(false, true, sizeof(Region));
    r->in = g_byte_array_new();
    if (!r->helper) {
        error_setg(errp, "pvgpu: no " HELPER_NAME " found beside QEMU or in "
                   CONFIG_QEMU_HELPERDIR " (property render-helper)");
        goto fail;
    }
    if (!pvgpu_queue_init(&r->q, done, opaque, opts->guard, errp)) {
        goto fail;
    }
    if (!spawn(r, errp)) {
        pvgpu_queue_destroy(&r->q);
        goto fail;
    }
    qemu_thread_create(&r->thread, "pvgpu-remote", pvgpu_remote_thread, r,
                       QEMU_THREAD_JOINABLE);
    trace_pvgpu_virgl_init(r->describe);
    return &r->parent;

fail:
    renderer_destroy(r);
    return NULL;
}

static void remote_kick(PvgpuRenderer *base)
{
    pvgpu_queue_kick(&remote_of(base)->q);
}

static void remote_set_source(PvgpuRenderer *base, PvgpuRenderPullFn *pull,
                              PvgpuRenderRetireFn *retire, void *opaque)
{
    pvgpu_queue_set_source(&remote_of(base)->q, pull, retire, opaque);
}

static void remote_submit(PvgpuRenderer *base, PvgpuRenderJob *job)
{
    pvgpu_queue_submit(&remote_of(base)->q, job);
}

static bool remote_run(PvgpuRenderer *base, PvgpuRenderJob *job)
{
    return pvgpu_queue_run(&remote_of(base)->q, job);
}

static unsigned remote_complete(PvgpuRenderer *base)
{
    return pvgpu_queue_complete(&remote_of(base)->q);
}

static void remote_reset(PvgpuRenderer *base, bool keep_memory)
{
    pvgpu_queue_reset(&remote_of(base)->q, keep_memory);
}

static void remote_free(PvgpuRemote *r)
{
    pvgpu_queue_reset(&r->q, true);
    pvgpu_queue_stop(&r->q);
    qemu_thread_join(&r->thread);
    pvgpu_queue_destroy(&r->q);
    renderer_destroy(r);
}

static void remote_free_later(PvgpuRenderer *base, unsigned holds)
{
    PvgpuRemote *r = remote_of(base);

    if (holds) {
        pvgpu_queue_hold(&r->q, holds);
    } else {
        remote_free(r);
    }
}

static void remote_unhold(PvgpuRenderer *base)
{
    PvgpuRemote *r = remote_of(base);

    if (pvgpu_queue_unhold(&r->q)) {
        remote_free(r);
    }
}

static unsigned remote_capsets(PvgpuRenderer *base,
                               const PvgpuCapset **capsets)
{
    PvgpuRemote *r = remote_of(base);

    *capsets = r->capsets;
    return r->ncapsets;
}

static char *remote_broken(PvgpuRenderer *base)
{
    PvgpuRemote *r = remote_of(base);
    char *why;

    qemu_mutex_lock(&r->q.lock);
    why = g_strdup(r->broken);
    qemu_mutex_unlock(&r->q.lock);
    return why;
}

static const char *remote_describe(PvgpuRenderer *base)
{
    return remote_of(base)->describe;
}

static bool remote_process(PvgpuRenderer *base, int *pid, unsigned *restarts)
{
    PvgpuRemote *r = remote_of(base);

    qemu_mutex_lock(&r->q.lock);
    *pid = r->pid;
    *restarts = r->restarts;
    qemu_mutex_unlock(&r->q.lock);
    return true;
}

static const PvgpuRenderBackend pvgpu_remote_backend = {
    .set_source = remote_set_source,
    .submit = remote_submit,
    .run = remote_run,
    .complete = remote_complete,
    .kick = remote_kick,
    .reset = remote_reset,
    .free_later = remote_free_later,
    .unhold = remote_unhold,
    .capsets = remote_capsets,
    .describe = remote_describe,
    .broken = remote_broken,
    .process = remote_process,
};
