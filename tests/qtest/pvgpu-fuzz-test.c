/*
 * pvgpu-fuzz-test: a structured fuzzer for the whole device, driven
 * through its virtqueues like a (misbehaving) guest driver.
 *
 * A seeded PRNG generates command streams that are mostly valid: the
 * fuzzer keeps a model of the resources, contexts, backings, blob
 * mappings and 3D pipeline objects it created and picks ids from it, so
 * that most commands reach deep into the device (and into
 * virglrenderer, with command streams that really draw).  Mixed in are
 * mutated and garbage commands, malformed descriptor chains, device
 * resets, queue resets, system resets and QMP calls.
 *
 * The fuzzer is its own virtio driver: it owns the descriptor table and
 * the available ring, batches many requests per notification and writes
 * them with a few large qtest writes.  From the used ring it checks the
 * protocol itself: the used index never runs ahead of what was made
 * available, every used id is a head that is in flight, every response
 * is a valid OK/ERR code whose size matches its type, fenced responses
 * echo fence_id, ctx_id and ring_idx, responses of one fence timeline
 * come in order, and every request is answered before a deadline.
 *
 * Built with ASan/UBSan (scripts/build.sh --sanitize), any memory error
 * or undefined behaviour aborts QEMU and fails the test.
 *
 * Environment:
 *   PVGPU_FUZZ_SEED      seed (default: from the clock; always printed)
 *   PVGPU_FUZZ_COMMANDS  number of commands (default 4000)
 *   PVGPU_FUZZ_SECONDS   stop after this many seconds even if fewer
 *                        commands ran (default: no limit)
 *   PVGPU_FUZZ_TIMEOUT   seconds a request may stay unanswered (default 60)
 *   PVGPU_FUZZ_TRACE     1: print every command to stderr (for minimising)
 *   PVGPU_FUZZ_AVOID     comma-separated patterns to leave out while the
 *                        bugs they trigger are open (to bisect; none is):
 *                        reset-busy (device or system reset with requests
 *                        in flight),
 *                        qreset-busy (queue reset with requests in flight),
 *                        map-unmap (MAP_BLOB and UNMAP_BLOB of one
 *                        resource in one notification),
 *                        map-new-blob (MAP_BLOB of a host blob whose
 *                        creation has not been answered yet),
 *                        ctx-destroy (CTX_DESTROY only of the last context
 *                        alive, otherwise contexts go with device resets;
 *                        Mesa 22.3's llvmpipe crashed in a later SUBMIT_3D
 *                        of another context),
 *                        unclaimed-blob (a PIPE_RESOURCE_CREATE is always
 *                        turned into a host blob right away: virglrenderer
 *                        leaks the ones still unclaimed when their context
 *                        goes, unless pvgpu frees them),
 *                        bad-shader (no mutation of a stream that creates
 *                        and binds the shaders it draws with: when a
 *                        bound shader fails to compile for a draw,
 *                        virglrenderer dereferences its NULL variant),
 *                        fence-order (the fence timeline order check)
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "qemu/bswap.h"
#include "qemu/module.h"
#include "qemu/units.h"
#include "qobject/qdict.h"
#include "qobject/qjson.h"
#include "qobject/qlist.h"
#include "standard-headers/linux/pci_regs.h"
#include "standard-headers/linux/virtio_config.h"
#include "standard-headers/linux/virtio_gpu.h"
#include "standard-headers/linux/virtio_pci.h"
#include "standard-headers/linux/virtio_ring.h"
#include "libqos/qgraph.h"
#include "libqos/pvgpu.h"
#include "libqos/virtio-pci.h"
#include "libqos/pci.h"

/* --- sizes and limits ----------------------------------------------------- */

#define NR_RES          48      /* resource ids 1..NR_RES */
#define NR_CTX          8       /* context ids 1..NR_CTX */
#define NR_RINGS        4       /* ring_idx values the model orders */
#define MAX_OUTPUTS     2       /* the device is started with max_outputs=2 */
#define HOSTMEM_SIZE    (4 * MiB)
#define MAP_SLOT        (64 * KiB)
#define NR_SLOTS        (HOSTMEM_SIZE / MAP_SLOT)
#define ARENA_SIZE      (2 * MiB)       /* requests and responses */
#define POOL_SIZE       (8 * MiB)       /* backing memory */
#define MAX_BATCHES     64
#define MAX_BATCH_REQS  128
#define MAX_SEGS        12
#define CMD_MAX         (16 * KiB)
#define NOT_RAM         (1ull << 40)
#define LOG_SIZE        128

#define RESP_HDR        24
#define RESP_DISPLAY    ((uint32_t)sizeof(struct virtio_gpu_resp_display_info))
#define RESP_CAPSET_INFO ((uint32_t)sizeof(struct virtio_gpu_resp_capset_info))
#define RESP_EDID       ((uint32_t)sizeof(struct virtio_gpu_resp_edid))
#define RESP_UUID       ((uint32_t)sizeof(struct virtio_gpu_resp_resource_uuid))
#define RESP_MAP        ((uint32_t)sizeof(struct virtio_gpu_resp_map_info))
#define RESP_CAPSET     4096

/* virglrenderer's protocol (virgl_protocol.h), the parts the streams use */
#define VCMD(cmd, obj, len)     ((cmd) | ((obj) << 8) | ((uint32_t)(len) << 16))
#define VCCMD_CREATE_OBJECT     1
#define VCCMD_BIND_OBJECT       2
#define VCCMD_DESTROY_OBJECT    3
#define VCCMD_SET_VIEWPORT      4
#define VCCMD_SET_FRAMEBUFFER   5
#define VCCMD_SET_VERTEX_BUFS   6
#define VCCMD_CLEAR             7
#define VCCMD_DRAW_VBO          8
#define VCCMD_INLINE_WRITE      9
#define VCCMD_SET_SCISSOR       15
#define VCCMD_BIND_SHADER       31
#define VCCMD_LAUNCH_GRID       37
#define VCCMD_PIPE_RES_CREATE   48
#define VOBJ_BLEND              1
#define VOBJ_RASTERIZER         2
#define VOBJ_DSA                3
#define VOBJ_SHADER             4
#define VOBJ_VERTEX_ELEMENTS    5
#define VOBJ_SURFACE            8
#define PIPE_BUFFER             0
#define PIPE_TEXTURE_2D         2
#define PIPE_SHADER_VERTEX      0
#define PIPE_SHADER_FRAGMENT    1
#define PIPE_PRIM_TRIANGLES     4
#define PIPE_CLEAR_COLOR0       (1 << 2)
#define VFMT_B8G8R8A8           1
#define VFMT_B8G8R8X8           2
#define VFMT_R32G32B32A32_FLOAT 31
#define VFMT_R8_UNORM           64
#define VFMT_R8G8B8A8           67
#define VBIND_RENDER_TARGET     (1 << 1)
#define VBIND_SAMPLER_VIEW      (1 << 3)
#define VBIND_VERTEX_BUFFER     (1 << 4)
#define VRES_MAP_PERSISTENT     (1 << 1)
#define VRES_MAP_COHERENT       (1 << 2)

/* pipeline object handles of a draw stream, per context */
enum { H_SURF = 0x101, H_BLEND, H_RS, H_DSA, H_VS, H_FS, H_VE };

static const char vs_text[] =
    "VERT\n"
    "DCL IN[0]\n"
    "DCL IN[1]\n"
    "DCL OUT[0], POSITION\n"
    "DCL OUT[1], GENERIC[0]\n"
    "  0: MOV OUT[0], IN[0]\n"
    "  1: MOV OUT[1], IN[1]\n"
    "  2: END\n";

static const char fs_text[] =
    "FRAG\n"
    "PROPERTY FS_COLOR0_WRITES_ALL_CBUFS 1\n"
    "DCL IN[0], GENERIC[0], PERSPECTIVE\n"
    "DCL OUT[0], COLOR\n"
    "  0: MOV OUT[0], IN[0]\n"
    "  1: END\n";

/* --- command kinds, for the statistics ------------------------------------ */

typedef enum Kind {
    K_DISPLAY_INFO, K_EDID, K_CAPSET_INFO, K_CAPSET, K_CREATE_2D, K_UNREF,
    K_SET_SCANOUT, K_FLUSH, K_TRANSFER_2D, K_ATTACH, K_DETACH, K_UUID,
    K_BLOB_GUEST, K_BLOB_HOST, K_SCANOUT_BLOB, K_CTX_CREATE, K_CTX_DESTROY,
    K_CTX_ATTACH, K_CTX_DETACH, K_CREATE_3D, K_TO_HOST_3D, K_FROM_HOST_3D,
    K_SUBMIT_DRAW, K_SUBMIT_CLEAR, K_SUBMIT_BLOBRES, K_SUBMIT_RANDOM,
    K_SUBMIT_GARBAGE, K_MAP, K_UNMAP, K_UPDATE_CURSOR, K_MOVE_CURSOR,
    K_GARBAGE, K_WRONG_QUEUE, NR_KINDS
} Kind;

static const char *const kind_name[NR_KINDS] = {
    "GET_DISPLAY_INFO", "GET_EDID", "GET_CAPSET_INFO", "GET_CAPSET",
    "RESOURCE_CREATE_2D", "RESOURCE_UNREF", "SET_SCANOUT", "RESOURCE_FLUSH",
    "TRANSFER_TO_HOST_2D", "ATTACH_BACKING", "DETACH_BACKING", "ASSIGN_UUID",
    "CREATE_BLOB(guest)", "CREATE_BLOB(host3d)", "SET_SCANOUT_BLOB",
    "CTX_CREATE", "CTX_DESTROY", "CTX_ATTACH_RESOURCE", "CTX_DETACH_RESOURCE",
    "RESOURCE_CREATE_3D", "TRANSFER_TO_HOST_3D", "TRANSFER_FROM_HOST_3D",
    "SUBMIT_3D(draw)", "SUBMIT_3D(clear)", "SUBMIT_3D(blob resource)",
    "SUBMIT_3D(random commands)", "SUBMIT_3D(garbage)", "RESOURCE_MAP_BLOB",
    "RESOURCE_UNMAP_BLOB", "UPDATE_CURSOR", "MOVE_CURSOR", "garbage",
    "wrong queue",
};

/* how a request is laid out in descriptors */
typedef enum Shape {
    SH_NORMAL,          /* one readable, one writable descriptor */
    SH_SPLIT,           /* request and response over many descriptors */
    SH_SHORT,           /* request truncated */
    SH_RESP_SMALL,      /* response buffer smaller than a header */
    SH_NO_RESP,         /* no writable descriptor at all */
    SH_WRITE_REQ,       /* the request sits in a write-only descriptor */
    SH_TRAILING,        /* junk after the request */
    /* the following break the device (virtio_error): a reset follows */
    SH_BAD_ORDER,       /* readable after writable */
    SH_BAD_ADDR,        /* a buffer outside guest RAM */
    SH_ZERO_LEN,        /* a zero-length buffer */
    SH_LOOP,            /* the chain loops */
    NR_SHAPES
} Shape;

static const char *const shape_name[NR_SHAPES] = {
    "normal", "split", "short", "resp-small", "no-resp", "write-req",
    "trailing", "bad-order", "bad-addr", "zero-len", "loop",
};

/* --- the model of what the device holds ----------------------------------- */

enum { R_FREE, R_2D, R_3D_TEX, R_3D_BUF, R_BLOB_GUEST, R_BLOB_HOST };

typedef struct FRes {
    uint8_t kind;
    uint32_t gen;
    uint32_t w, h, fmt;
    uint64_t size;              /* bytes the resource holds */
    bool backing;
    uint64_t back;              /* guest address of its (contiguous) memory */
    uint64_t back_len;
    uint32_t ctxs;              /* bit i: attached to context i + 1 */
    bool mappable;
    bool confirmed;             /* its creation was answered OK */
    int slot;                   /* hostmem slot it is mapped at, or -1 */
} FRes;

typedef struct FCtx {
    bool live;
    uint32_t gen;
    bool pipeline;              /* draw state objects exist and are bound */
    bool poisoned;              /* virglrenderer refused a stream: it */
                                /* refuses everything else from now on */
    uint32_t blob_ids[8];       /* made by PIPE_RESOURCE_CREATE, unused */
    uint32_t blob_sizes[8];
    unsigned nblob;
} FCtx;

/* what a request does to the model if the device refuses it */
typedef enum Undo {
    U_NONE, U_RES, U_CTX, U_BACKING, U_CTX_ATTACH, U_MAP, U_SUBMIT
} Undo;

/* --- the driver ----------------------------------------------------------- */

typedef struct Seg {
    bool write;
    bool in_area;               /* in the batch's response area */
    uint32_t off;
    uint32_t len;
    uint64_t addr;              /* absolute, for SH_BAD_ADDR */
} Seg;

/* a request in flight, indexed by its head descriptor */
typedef struct Inflight {
    bool busy;
    uint16_t ndesc;
    uint16_t desc[MAX_SEGS + 1];
    unsigned batch;
    uint32_t resp_off;          /* first writable byte in the batch area */
    uint32_t writable;          /* writable bytes in total */
    uint64_t seq;
    gint64 deadline;
    Kind kind;
    uint32_t type;
    bool has_hdr;               /* the whole header was readable */
    uint32_t flags;
    uint64_t fence_id;
    uint32_t ctx_id;
    uint8_t ring_idx;
    int timeline;               /* fence timeline it orders on, or -1 */
    uint32_t ok;                /* the OK type a success must carry */
    Undo undo;
    uint32_t undo_id, undo_arg, undo_gen;
    int *result;                /* where to store the response type */
} Inflight;

typedef struct FQueue {
    QVirtQueue *vq;
    unsigned index;
    uint32_t size;
    struct vring_desc *desc;    /* host copy, little-endian */
    uint16_t *avail;            /* host copy of avail->ring */
    bool *desc_busy;
    uint32_t nfree;
    uint32_t next_free;
    uint32_t dirty_lo, dirty_hi;
    uint16_t avail_idx;
    uint16_t used_idx;
    uint32_t inflight;
    bool kick;
    Inflight *req;
} FQueue;

typedef struct Batch {
    uint64_t vstart, vend;      /* virtual arena positions */
    uint64_t addr;              /* guest address of the batch */
    uint32_t out_len;           /* the response area follows the requests */
    uint32_t in_len;
    uint8_t *in;                /* host copy of the response area */
    unsigned outstanding;
    bool read;                  /* in[] is fresh for this poll */
} Batch;

/* a request being staged for the next notification */
typedef struct Staged {
    FQueue *q;
    Seg seg[MAX_SEGS];
    unsigned nseg;
    Shape shape;
    Inflight meta;
} Staged;

typedef struct Cmd {
    size_t len;
    Kind kind;
    bool cursor;                /* send on the cursor queue */
    uint32_t resp;              /* response buffer to offer */
    uint32_t ok;
    Undo undo;
    uint32_t undo_id, undo_arg, undo_gen;
    bool ordered_fence;         /* fence id from the increasing counter */
    bool plain;                 /* normal descriptors, no stray flags */
    bool pipeline;              /* the stream creates and binds shaders */
    char what[96];
    /* last: cmd_start() clears what precedes */
    uint8_t b[CMD_MAX] QEMU_ALIGNED(8);
} Cmd;

typedef struct Fuzz {
    QPvgpu *gpu;
    QTestState *qts;
    QGuestAllocator *alloc;
    QVirtioPCIDevice *vpci;
    QPCIBar hostmem_bar;
    bool has_hostmem;
    uint64_t seed, rng;
    uint64_t target;
    gint64 time_limit_us;
    gint64 timeout_us;
    unsigned trace;
    bool avoid_reset_busy, avoid_qreset_busy, avoid_map_unmap;
    bool avoid_map_new_blob, avoid_ctx_destroy, avoid_unclaimed_blob;
    bool avoid_fence_order, avoid_bad_shader;

    uint64_t offered;
    uint64_t features;
    bool virgl, blob, ctx_init, edid, uuid, ring_reset;
    bool broken;                /* a chain broke the device: reset next */

    FQueue q[2];
    uint64_t arena, pool;
    uint64_t vhead;
    Batch batch[MAX_BATCHES];
    unsigned batch_first, nbatches;
    uint8_t *stage_out, *stage_in;
    uint32_t stage_out_len, stage_in_len;
    Staged staged[MAX_BATCH_REQS];
    unsigned nstaged;
    uint32_t staged_desc[2];
    uint8_t *chunk;

    FRes res[NR_RES + 1];
    FCtx ctx[NR_CTX + 1];
    int slot_owner[NR_SLOTS];
    uint32_t mapped_this_batch[NR_RES + 1];
    uint32_t created_this_batch[NR_RES + 1];
    uint32_t gen;
    uint64_t fence;
    uint32_t next_blob_id;
    uint64_t seq;
    uint64_t timeline_done[1 + NR_CTX * NR_RINGS];

    char log[LOG_SIZE][160];
    unsigned log_pos;

    /* statistics */
    uint64_t commands, sent[NR_KINDS], ok[NR_KINDS], err[NR_KINDS];
    uint64_t shapes[NR_SHAPES];
    uint64_t fenced, notifies, batches, resets, queue_resets;
    uint64_t system_resets, qmp_calls, bar_touches, broken_chains;
    uint64_t fence_order_violations;
    uint64_t wait_us, waits;
    bool replaying;
    Shape replay_shape;
    uint64_t replay_features;
} Fuzz;

/* --- PRNG (splitmix64) ---------------------------------------------------- */

static uint64_t rnd64(Fuzz *f)
{
    uint64_t z = (f->rng += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* 0 .. n - 1 */
static uint32_t rnd(Fuzz *f, uint32_t n)
{
    return n ? rnd64(f) % n : 0;
}

static bool chance(Fuzz *f, unsigned percent)
{
    return rnd(f, 100) < percent;
}

static uint32_t rnd_range(Fuzz *f, uint32_t lo, uint32_t hi)
{
    return lo + rnd(f, hi - lo + 1);
}

/* a dimension: mostly small, sometimes large, rarely absurd */
static uint32_t rnd_dim(Fuzz *f)
{
    uint32_t r = rnd(f, 100);

    if (r < 75) {
        return rnd_range(f, 1, 64);
    } else if (r < 95) {
        return rnd_range(f, 65, 300);
    } else if (r < 98) {
        return rnd_range(f, 301, 4096);
    }
    return chance(f, 50) ? 0 : (uint32_t)rnd64(f);
}

/* a value that is often at an edge */
static uint32_t rnd_edgy(Fuzz *f)
{
    static const uint32_t edges[] = {
        0, 1, 2, 3, 4, 15, 16, 63, 64, 255, 256, 4095, 4096, 0x7fffffff,
        0x80000000, 0xfffffffe, 0xffffffff, 16384, 16385, 65536,
    };

    if (chance(f, 50)) {
        return edges[rnd(f, ARRAY_SIZE(edges))];
    }
    return rnd64(f);
}

/* --- log of recent commands, printed when the test fails ------------------ */

static void fuzz_log(Fuzz *f, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void fuzz_log(Fuzz *f, const char *fmt, ...)
{
    va_list ap;
    char *line = f->log[f->log_pos++ % LOG_SIZE];

    va_start(ap, fmt);
    vsnprintf(line, sizeof(f->log[0]), fmt, ap);
    va_end(ap);
    if (f->trace) {
        fprintf(stderr, "fuzz: %s\n", line);
    }
}

static void dump_log(void *opaque)
{
    const Fuzz *f = opaque;
    unsigned n = MIN(f->log_pos, LOG_SIZE);

    fprintf(stderr, "pvgpu-fuzz: seed %" PRIu64 ", %" PRIu64
            " commands sent; the last %u events:\n", f->seed, f->commands, n);
    for (unsigned i = f->log_pos - n; i < f->log_pos; i++) {
        fprintf(stderr, "  %s\n", f->log[i % LOG_SIZE]);
    }
}

/*
 * Where QEMU's threads are when a request hangs: stuck in the renderer,
 * or waiting for a fence that never signals.  Needs gdb (any failure to
 * run it is only reported).
 */
static void dump_threads(Fuzz *f)
{
    g_autofree char *pid = g_strdup_printf("%d", (int)qtest_pid(f->qts));
    const char *argv[] = {
        "gdb", "-p", pid, "-batch", "-nx", "-ex", "thread apply all bt 30",
        NULL,
    };
    g_autofree char *out = NULL;
    g_autoptr(GError) err = NULL;

    if (!g_spawn_sync(NULL, (char **)argv, NULL,
                      G_SPAWN_SEARCH_PATH | G_SPAWN_STDERR_TO_DEV_NULL, NULL,
                      NULL, &out, NULL, NULL, &err)) {
        fprintf(stderr, "pvgpu-fuzz: no thread dump: %s\n", err->message);
        return;
    }
    fprintf(stderr, "pvgpu-fuzz: QEMU's threads:\n%s\n", out);
}

static void fail(Fuzz *f, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void fail(Fuzz *f, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    dump_log(f);
    g_error("pvgpu-fuzz: protocol violation (seed %" PRIu64 "): %s",
            f->seed, msg);
}

/* --- queues --------------------------------------------------------------- */

static void queue_bind(Fuzz *f, FQueue *q, QVirtQueue *vq)
{
    q->vq = vq;
    if (q->size != vq->size) {
        /* a new ring size: everything in flight was dropped already */
        q->size = vq->size;
        q->desc = g_renew(struct vring_desc, q->desc, q->size);
        q->avail = g_renew(uint16_t, q->avail, q->size);
        q->desc_busy = g_renew(bool, q->desc_busy, q->size);
        q->req = g_renew(Inflight, q->req, q->size);
    }
    memset(q->desc, 0, q->size * sizeof(*q->desc));
    memset(q->avail, 0, q->size * sizeof(*q->avail));
    memset(q->desc_busy, 0, q->size * sizeof(*q->desc_busy));
    memset(q->req, 0, q->size * sizeof(*q->req));
    q->nfree = q->size;
    q->next_free = 0;
    q->dirty_lo = q->size;
    q->dirty_hi = 0;
    q->avail_idx = 0;
    q->used_idx = 0;
    q->inflight = 0;
    q->kick = false;
}

static void batch_put(Fuzz *f, unsigned b)
{
    g_assert(f->batch[b].outstanding > 0);
    f->batch[b].outstanding--;
}

/* retire finished batches from the front of the arena */
static void batches_retire(Fuzz *f)
{
    while (f->nbatches &&
           !f->batch[f->batch_first].outstanding) {
        Batch *b = &f->batch[f->batch_first];

        g_free(b->in);
        b->in = NULL;
        f->batch_first = (f->batch_first + 1) % MAX_BATCHES;
        f->nbatches--;
    }
}

/* forget every request of @q: the device dropped them (reset) */
static void queue_drop_all(Fuzz *f, FQueue *q)
{
    for (uint32_t i = 0; i < q->size; i++) {
        if (q->req[i].busy) {
            batch_put(f, q->req[i].batch);
            q->req[i].busy = false;
        }
    }
    batches_retire(f);
}

/* --- model helpers -------------------------------------------------------- */

static uint32_t res_free_id(Fuzz *f)
{
    uint32_t start = rnd_range(f, 1, NR_RES);

    for (uint32_t i = 0; i < NR_RES; i++) {
        uint32_t id = (start + i - 1) % NR_RES + 1;

        if (f->res[id].kind == R_FREE) {
            return id;
        }
    }
    return 0;
}

typedef bool (*ResPred)(const FRes *r, uint32_t arg);

static uint32_t res_pick(Fuzz *f, ResPred pred, uint32_t arg)
{
    uint32_t start = rnd_range(f, 1, NR_RES);

    for (uint32_t i = 0; i < NR_RES; i++) {
        uint32_t id = (start + i - 1) % NR_RES + 1;

        if (f->res[id].kind != R_FREE && (!pred || pred(&f->res[id], arg))) {
            return id;
        }
    }
    return 0;
}

static uint32_t bad_res_id(Fuzz *f)
{
    switch (rnd(f, 4)) {
    case 0:
        return 0;
    case 1:
        return rnd_range(f, 1, NR_RES);
    case 2:
        return NR_RES + 1 + rnd(f, 100);
    default:
        return rnd_edgy(f);
    }
}

static bool is_kind(const FRes *r, uint32_t mask)
{
    return mask & (1u << r->kind);
}

static bool is_2d_backed(const FRes *r, uint32_t unused)
{
    return r->kind == R_2D && r->backing;
}

static bool needs_backing(const FRes *r, uint32_t unused)
{
    return (r->kind == R_2D || r->kind == R_3D_TEX || r->kind == R_3D_BUF) &&
           !r->backing;
}

static bool has_backing(const FRes *r, uint32_t unused)
{
    return (r->kind == R_2D || r->kind == R_3D_TEX || r->kind == R_3D_BUF) &&
           r->backing;
}

static bool attached_to(const FRes *r, uint32_t ctx)
{
    return r->ctxs & (1u << (ctx - 1));
}

static bool not_attached_to(const FRes *r, uint32_t ctx)
{
    return !(r->ctxs & (1u << (ctx - 1)));
}

static bool is_rt_of(const FRes *r, uint32_t ctx)
{
    return r->kind == R_3D_TEX && attached_to(r, ctx) &&
           (r->fmt == VFMT_B8G8R8X8 || r->fmt == VFMT_B8G8R8A8);
}

static bool is_vb_of(const FRes *r, uint32_t ctx)
{
    return r->kind == R_3D_BUF && attached_to(r, ctx) && r->w >= 96;
}

static bool is_3d_of(const FRes *r, uint32_t ctx)
{
    return (r->kind == R_3D_TEX || r->kind == R_3D_BUF) && attached_to(r, ctx);
}

static bool is_3d_backed_of(const FRes *r, uint32_t ctx)
{
    return is_3d_of(r, ctx) && r->backing;
}

static bool is_cursor(const FRes *r, uint32_t unused)
{
    return r->kind == R_2D && r->w == 64 && r->h == 64;
}

static bool is_mappable_host(const FRes *r, uint32_t unused)
{
    return r->kind == R_BLOB_HOST && r->mappable && r->slot < 0;
}

static bool is_mapped(const FRes *r, uint32_t unused)
{
    return r->slot >= 0;
}

static bool is_scanout_src(const FRes *r, uint32_t unused)
{
    return r->kind == R_2D || r->kind == R_3D_TEX;
}

static uint32_t ctx_pick_if(Fuzz *f, bool healthy_only)
{
    uint32_t start = rnd_range(f, 1, NR_CTX);

    for (uint32_t i = 0; i < NR_CTX; i++) {
        uint32_t id = (start + i - 1) % NR_CTX + 1;

        if (f->ctx[id].live && (!healthy_only || !f->ctx[id].poisoned)) {
            return id;
        }
    }
    return 0;
}

static uint32_t ctx_pick(Fuzz *f)
{
    return ctx_pick_if(f, false);
}

static uint32_t ctx_poisoned(Fuzz *f)
{
    for (uint32_t id = 1; id <= NR_CTX; id++) {
        if (f->ctx[id].live && f->ctx[id].poisoned) {
            return id;
        }
    }
    return 0;
}

static uint32_t ctx_free_id(Fuzz *f)
{
    uint32_t start = rnd_range(f, 1, NR_CTX);

    for (uint32_t i = 0; i < NR_CTX; i++) {
        uint32_t id = (start + i - 1) % NR_CTX + 1;

        if (!f->ctx[id].live) {
            return id;
        }
    }
    return 0;
}

static void res_forget(Fuzz *f, uint32_t id)
{
    FRes *r = &f->res[id];

    if (r->slot >= 0) {
        f->slot_owner[r->slot] = 0;
    }
    memset(r, 0, sizeof(*r));
    r->slot = -1;
}

static void ctx_forget(Fuzz *f, uint32_t ctx)
{
    memset(&f->ctx[ctx], 0, sizeof(f->ctx[ctx]));
    for (uint32_t id = 1; id <= NR_RES; id++) {
        f->res[id].ctxs &= ~(1u << (ctx - 1));
    }
}

/* the device lost everything (device or system reset) */
static void model_reset(Fuzz *f)
{
    for (uint32_t id = 1; id <= NR_RES; id++) {
        res_forget(f, id);
    }
    for (uint32_t c = 1; c <= NR_CTX; c++) {
        ctx_forget(f, c);
    }
    memset(f->slot_owner, 0, sizeof(f->slot_owner));
    memset(f->timeline_done, 0, sizeof(f->timeline_done));
}

/*
 * A refusal (response @type): take back what the model assumed.  A
 * creation the renderer refused (ERR_UNSPEC, or ERR_INVALID_PARAMETER for
 * 3D resources and blobs) keeps its id in the device until the guest
 * lets go of it: the model keeps it too, so that commands on it and its
 * UNREF or CTX_DESTROY are fuzzed (a creation the device refused with
 * those errors is then taken for one; commands on it are refused alike).
 */
static void model_undo(Fuzz *f, const Inflight *r, uint32_t type)
{
    FRes *res = r->undo_id <= NR_RES ? &f->res[r->undo_id] : NULL;

    switch (r->undo) {
    case U_NONE:
        break;
    case U_RES:
        if (type == VIRTIO_GPU_RESP_ERR_UNSPEC ||
            type == VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER) {
            break;
        }
        if (res && res->kind != R_FREE && res->gen == r->undo_gen) {
            res_forget(f, r->undo_id);
        }
        break;
    case U_CTX:
        if (type == VIRTIO_GPU_RESP_ERR_UNSPEC) {
            /* refused by the renderer: only CTX_DESTROY helps it */
            if (r->undo_id <= NR_CTX && f->ctx[r->undo_id].live &&
                f->ctx[r->undo_id].gen == r->undo_gen) {
                f->ctx[r->undo_id].poisoned = true;
            }
            break;
        }
        if (r->undo_id <= NR_CTX && f->ctx[r->undo_id].live &&
            f->ctx[r->undo_id].gen == r->undo_gen) {
            ctx_forget(f, r->undo_id);
        }
        break;
    case U_BACKING:
        if (res && res->gen == r->undo_gen) {
            res->backing = false;
        }
        break;
    case U_CTX_ATTACH:
        if (res && res->gen == r->undo_gen && r->undo_arg >= 1 &&
            r->undo_arg <= NR_CTX) {
            res->ctxs &= ~(1u << (r->undo_arg - 1));
        }
        break;
    case U_MAP:
        if (res && res->gen == r->undo_gen && res->slot >= 0) {
            f->slot_owner[res->slot] = 0;
            res->slot = -1;
        }
        break;
    case U_SUBMIT:
        if (r->undo_id <= NR_CTX && f->ctx[r->undo_id].live &&
            f->ctx[r->undo_id].gen == r->undo_gen) {
            f->ctx[r->undo_id].pipeline = false;
            f->ctx[r->undo_id].poisoned = true;
        }
        break;
    }
}

/* --- building requests ---------------------------------------------------- */

static void *cmd_put(Cmd *c, size_t size)
{
    void *p = c->b + c->len;

    g_assert(c->len + size <= sizeof(c->b));
    memset(p, 0, size);
    c->len += size;
    return p;
}

static void put32(Cmd *c, uint32_t v)
{
    stl_le_p(cmd_put(c, 4), v);
}

static void putf(Cmd *c, float v)
{
    uint32_t u;

    memcpy(&u, &v, 4);
    put32(c, u);
}

/* start a control request of @type; @ctx goes into the header */
static struct virtio_gpu_ctrl_hdr *cmd_start(Cmd *c, Kind kind, uint32_t type,
                                             size_t size, uint32_t ctx)
{
    struct virtio_gpu_ctrl_hdr *h;

    memset(c, 0, offsetof(Cmd, b));
    c->len = 0;
    c->kind = kind;
    c->resp = RESP_HDR;
    c->ok = VIRTIO_GPU_RESP_OK_NODATA;
    h = cmd_put(c, size);
    h->type = cpu_to_le32(type);
    h->ctx_id = cpu_to_le32(ctx);
    return h;
}

static void rect_rand(Fuzz *f, struct virtio_gpu_rect *r, uint32_t w,
                      uint32_t h)
{
    uint32_t x, y;

    if (w && h && chance(f, 90)) {
        x = rnd(f, w);
        y = rnd(f, h);
        r->x = cpu_to_le32(x);
        r->y = cpu_to_le32(y);
        r->width = cpu_to_le32(rnd_range(f, 1, w - x));
        r->height = cpu_to_le32(rnd_range(f, 1, h - y));
        if (chance(f, 30)) {
            r->x = r->y = 0;
            r->width = cpu_to_le32(w);
            r->height = cpu_to_le32(h);
        }
    } else {
        r->x = cpu_to_le32(rnd_edgy(f));
        r->y = cpu_to_le32(rnd_edgy(f));
        r->width = cpu_to_le32(rnd_edgy(f));
        r->height = cpu_to_le32(rnd_edgy(f));
    }
}

/*
 * Guest memory list for @len bytes at @base, cut into pieces in random
 * order; sometimes corrupted.  Returns the number of entries written
 * and stores the count to claim in *@claimed.
 */
static uint32_t put_entries(Fuzz *f, Cmd *c, uint64_t base, uint64_t len,
                            uint32_t *claimed)
{
    uint32_t n = chance(f, 50) ? 1 : rnd_range(f, 2, 16);
    uint64_t cut[17];
    struct virtio_gpu_mem_entry *e;

    n = MIN(n, MAX(len / 64, 1));
    cut[0] = 0;
    for (uint32_t i = 1; i < n; i++) {
        cut[i] = rnd64(f) % len;
    }
    cut[n] = len;
    /* sort the cut points: tiny n, insertion sort */
    for (uint32_t i = 1; i < n; i++) {
        for (uint32_t j = i; j > 0 && cut[j - 1] > cut[j]; j--) {
            uint64_t t = cut[j];

            cut[j] = cut[j - 1];
            cut[j - 1] = t;
        }
    }
    e = cmd_put(c, n * sizeof(*e));
    for (uint32_t i = 0; i < n; i++) {
        e[i].addr = cpu_to_le64(base + cut[i]);
        e[i].length = cpu_to_le32(MAX(cut[i + 1] - cut[i], 1));
    }
    *claimed = n;
    if (chance(f, 5)) {
        uint32_t i = rnd(f, n);

        switch (rnd(f, 5)) {
        case 0:
            e[i].length = 0;
            break;
        case 1:
            e[i].addr = cpu_to_le64(NOT_RAM + rnd(f, 4096));
            break;
        case 2:
            e[i].addr = cpu_to_le64(UINT64_MAX - rnd(f, 4096));
            break;
        case 3:
            *claimed = n + rnd_range(f, 1, 3);
            break;
        default:
            *claimed = rnd_edgy(f);
            break;
        }
        snprintf(c->what + strlen(c->what),
                 sizeof(c->what) - strlen(c->what), " corrupt-entries");
    }
    return n;
}

/* somewhere in the backing pool for @len bytes */
static uint64_t pool_place(Fuzz *f, uint64_t len)
{
    if (len >= POOL_SIZE) {
        return f->pool;
    }
    return f->pool + ((rnd64(f) % (POOL_SIZE - len)) & ~4095ull);
}

static uint32_t bpp_of(uint32_t fmt)
{
    return fmt == VFMT_R8_UNORM ? 1 : 4;
}

/* --- generators: 2D and common commands ---------------------------------- */

static void gen_display_info(Fuzz *f, Cmd *c)
{
    cmd_start(c, K_DISPLAY_INFO, VIRTIO_GPU_CMD_GET_DISPLAY_INFO,
              sizeof(struct virtio_gpu_ctrl_hdr), 0);
    c->resp = RESP_DISPLAY;
    c->ok = VIRTIO_GPU_RESP_OK_DISPLAY_INFO;
}

static void gen_edid(Fuzz *f, Cmd *c)
{
    struct virtio_gpu_cmd_get_edid *e;

    e = (void *)cmd_start(c, K_EDID, VIRTIO_GPU_CMD_GET_EDID, sizeof(*e), 0);
    e->scanout = cpu_to_le32(chance(f, 90) ? rnd(f, MAX_OUTPUTS)
                                           : rnd_edgy(f));
    c->resp = RESP_EDID;
    c->ok = VIRTIO_GPU_RESP_OK_EDID;
    snprintf(c->what, sizeof(c->what), "scanout=%u", le32_to_cpu(e->scanout));
}

static void gen_capset_info(Fuzz *f, Cmd *c)
{
    struct virtio_gpu_get_capset_info *g;

    g = (void *)cmd_start(c, K_CAPSET_INFO, VIRTIO_GPU_CMD_GET_CAPSET_INFO,
                          sizeof(*g), 0);
    g->capset_index = cpu_to_le32(chance(f, 90) ? rnd(f, 3) : rnd_edgy(f));
    c->resp = RESP_CAPSET_INFO;
    c->ok = VIRTIO_GPU_RESP_OK_CAPSET_INFO;
}

static void gen_capset(Fuzz *f, Cmd *c)
{
    struct virtio_gpu_get_capset *g;

    g = (void *)cmd_start(c, K_CAPSET, VIRTIO_GPU_CMD_GET_CAPSET, sizeof(*g),
                          0);
    g->capset_id = cpu_to_le32(chance(f, 85) ? rnd_range(f, 1, 2)
                                             : rnd_edgy(f));
    g->capset_version = cpu_to_le32(chance(f, 85) ? rnd(f, 3) : rnd_edgy(f));
    c->resp = RESP_CAPSET;
    c->ok = VIRTIO_GPU_RESP_OK_CAPSET;
}

static const uint32_t formats_2d[] = {
    VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM,
    VIRTIO_GPU_FORMAT_A8R8G8B8_UNORM, VIRTIO_GPU_FORMAT_X8R8G8B8_UNORM,
    VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM, VIRTIO_GPU_FORMAT_X8B8G8R8_UNORM,
    VIRTIO_GPU_FORMAT_A8B8G8R8_UNORM, VIRTIO_GPU_FORMAT_R8G8B8X8_UNORM,
};

static void gen_create_2d(Fuzz *f, Cmd *c, bool cursor_sized)
{
    struct virtio_gpu_resource_create_2d *r;
    uint32_t id = chance(f, 92) ? res_free_id(f) : bad_res_id(f);
    uint32_t w = cursor_sized ? 64 : rnd_dim(f);
    uint32_t h = cursor_sized ? 64 : rnd_dim(f);
    uint32_t fmt = chance(f, 97) ? formats_2d[rnd(f, 8)] : rnd_edgy(f);

    r = (void *)cmd_start(c, K_CREATE_2D, VIRTIO_GPU_CMD_RESOURCE_CREATE_2D,
                          sizeof(*r), 0);
    r->resource_id = cpu_to_le32(id);
    r->format = cpu_to_le32(fmt);
    r->width = cpu_to_le32(w);
    r->height = cpu_to_le32(h);
    snprintf(c->what, sizeof(c->what), "id=%u %ux%u fmt=%u", id, w, h, fmt);
    if (id >= 1 && id <= NR_RES && f->res[id].kind == R_FREE) {
        FRes *m = &f->res[id];

        m->kind = R_2D;
        m->gen = ++f->gen;
        m->w = w;
        m->h = h;
        m->fmt = fmt;
        m->size = (uint64_t)w * h * 4;
        m->slot = -1;
        c->undo = U_RES;
        c->undo_id = id;
        c->undo_gen = m->gen;
    }
}

static void gen_unref(Fuzz *f, Cmd *c)
{
    struct virtio_gpu_resource_unref *u;
    uint32_t id = chance(f, 90) ? res_pick(f, NULL, 0) : bad_res_id(f);

    u = (void *)cmd_start(c, K_UNREF, VIRTIO_GPU_CMD_RESOURCE_UNREF,
                          sizeof(*u), 0);
    u->resource_id = cpu_to_le32(id);
    snprintf(c->what, sizeof(c->what), "id=%u", id);
    if (id >= 1 && id <= NR_RES) {
        res_forget(f, id);
    }
}

static void gen_set_scanout(Fuzz *f, Cmd *c)
{
    struct virtio_gpu_set_scanout *s;
    uint32_t id = chance(f, 15) ? 0 : chance(f, 90) ?
                  res_pick(f, is_scanout_src, 0) : bad_res_id(f);
    FRes *r = id <= NR_RES ? &f->res[id] : NULL;

    s = (void *)cmd_start(c, K_SET_SCANOUT, VIRTIO_GPU_CMD_SET_SCANOUT,
                          sizeof(*s), 0);
    s->scanout_id = cpu_to_le32(chance(f, 95) ? rnd(f, MAX_OUTPUTS)
                                              : rnd_edgy(f));
    s->resource_id = cpu_to_le32(id);
    rect_rand(f, &s->r, r ? r->w : 0, r ? r->h : 0);
    snprintf(c->what, sizeof(c->what), "scanout=%u id=%u",
             le32_to_cpu(s->scanout_id), id);
}

static void gen_flush(Fuzz *f, Cmd *c)
{
    struct virtio_gpu_resource_flush *fl;
    uint32_t id = chance(f, 90) ? res_pick(f, NULL, 0) : bad_res_id(f);
    FRes *r = id <= NR_RES ? &f->res[id] : NULL;

    fl = (void *)cmd_start(c, K_FLUSH, VIRTIO_GPU_CMD_RESOURCE_FLUSH,
                           sizeof(*fl), 0);
    fl->resource_id = cpu_to_le32(id);
    rect_rand(f, &fl->r, r ? r->w : 0, r ? r->h : 0);
    snprintf(c->what, sizeof(c->what), "id=%u", id);
}

static void gen_transfer_2d(Fuzz *f, Cmd *c)
{
    struct virtio_gpu_transfer_to_host_2d *t;
    uint32_t id = chance(f, 90) ? res_pick(f, is_2d_backed, 0)
                                : bad_res_id(f);
    FRes *r = id <= NR_RES ? &f->res[id] : NULL;

    t = (void *)cmd_start(c, K_TRANSFER_2D, VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D,
                          sizeof(*t), 0);
    t->resource_id = cpu_to_le32(id);
    rect_rand(f, &t->r, r ? r->w : 0, r ? r->h : 0);
    if (r && chance(f, 90)) {
        t->offset = cpu_to_le64(((uint64_t)le32_to_cpu(t->r.y) * r->w +
                                 le32_to_cpu(t->r.x)) * 4);
    } else {
        t->offset = cpu_to_le64(chance(f, 50) ? rnd_edgy(f) : rnd64(f));
    }
    snprintf(c->what, sizeof(c->what), "id=%u", id);
}

static void gen_attach_id(Fuzz *f, Cmd *c, uint32_t id)
{
    struct virtio_gpu_resource_attach_backing *a;
    FRes *r = id >= 1 && id <= NR_RES ? &f->res[id] : NULL;
    uint64_t len = r && r->size ? r->size : rnd_range(f, 1, 65536);
    uint32_t claimed;
    uint64_t base;

    if (len > POOL_SIZE || chance(f, 3)) {
        len = MIN(len, POOL_SIZE);
        len = chance(f, 50) ? len / 2 + 1 : len;
    }
    base = pool_place(f, len);
    a = (void *)cmd_start(c, K_ATTACH, VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING,
                          sizeof(*a), 0);
    snprintf(c->what, sizeof(c->what), "id=%u len=%" PRIu64, id, len);
    put_entries(f, c, base, len, &claimed);
    a = (void *)c->b;
    a->resource_id = cpu_to_le32(id);
    a->nr_entries = cpu_to_le32(claimed);
    if (r && r->kind != R_FREE && !r->backing) {
        r->backing = true;
        r->back = base;
        r->back_len = len;
        c->undo = U_BACKING;
        c->undo_id = id;
        c->undo_gen = r->gen;
    }
}

static void gen_attach(Fuzz *f, Cmd *c)
{
    gen_attach_id(f, c, chance(f, 92) ? res_pick(f, needs_backing, 0)
                                      : bad_res_id(f));
}

static void gen_detach(Fuzz *f, Cmd *c)
{
    struct virtio_gpu_resource_detach_backing *d;
    uint32_t id = chance(f, 90) ? res_pick(f, has_backing, 0)
                                : bad_res_id(f);

    d = (void *)cmd_start(c, K_DETACH, VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING,
                          sizeof(*d), 0);
    d->resource_id = cpu_to_le32(id);
    snprintf(c->what, sizeof(c->what), "id=%u", id);
    if (id >= 1 && id <= NR_RES && has_backing(&f->res[id], 0)) {
        f->res[id].backing = false;
    }
}

static void gen_uuid(Fuzz *f, Cmd *c)
{
    struct virtio_gpu_resource_assign_uuid *u;
    uint32_t id = chance(f, 90) ? res_pick(f, NULL, 0) : bad_res_id(f);

    u = (void *)cmd_start(c, K_UUID, VIRTIO_GPU_CMD_RESOURCE_ASSIGN_UUID,
                          sizeof(*u), 0);
    u->resource_id = cpu_to_le32(id);
    c->resp = RESP_UUID;
    c->ok = VIRTIO_GPU_RESP_OK_RESOURCE_UUID;
    snprintf(c->what, sizeof(c->what), "id=%u", id);
}

static void gen_blob_guest(Fuzz *f, Cmd *c)
{
    struct virtio_gpu_resource_create_blob *b;
    uint32_t id = chance(f, 92) ? res_free_id(f) : bad_res_id(f);
    uint64_t size = chance(f, 90) ? (uint64_t)rnd_range(f, 1, 64) * 4096
                                  : rnd_range(f, 1, 300000);
    uint64_t base = pool_place(f, size);
    uint32_t mem = chance(f, 95) ? VIRTIO_GPU_BLOB_MEM_GUEST : rnd_edgy(f);
    uint32_t flags = chance(f, 90) ? rnd(f, 4) : rnd_edgy(f);
    uint32_t claimed;

    b = (void *)cmd_start(c, K_BLOB_GUEST, VIRTIO_GPU_CMD_RESOURCE_CREATE_BLOB,
                          sizeof(*b), 0);
    snprintf(c->what, sizeof(c->what), "id=%u size=%" PRIu64 " mem=%u", id,
             size, mem);
    put_entries(f, c, base, size, &claimed);
    b = (void *)c->b;
    b->resource_id = cpu_to_le32(id);
    b->blob_mem = cpu_to_le32(mem);
    b->blob_flags = cpu_to_le32(flags);
    b->nr_entries = cpu_to_le32(claimed);
    b->size = cpu_to_le64(chance(f, 95) ? size : rnd64(f) >> rnd(f, 64));
    if (chance(f, 10) && f->virgl) {
        b->hdr.ctx_id = cpu_to_le32(ctx_pick(f));
    }
    if (id >= 1 && id <= NR_RES && f->res[id].kind == R_FREE) {
        FRes *m = &f->res[id];

        m->kind = R_BLOB_GUEST;
        m->gen = ++f->gen;
        m->size = size;
        m->backing = true;
        m->back = base;
        m->back_len = size;
        m->slot = -1;
        c->undo = U_RES;
        c->undo_id = id;
        c->undo_gen = m->gen;
    }
}

static void gen_scanout_blob(Fuzz *f, Cmd *c)
{
    struct virtio_gpu_set_scanout_blob *s;
    uint32_t blobs = 1u << R_BLOB_GUEST | 1u << R_BLOB_HOST;
    uint32_t id = chance(f, 90) ? res_pick(f, is_kind, blobs)
                                : bad_res_id(f);
    FRes *r = id <= NR_RES ? &f->res[id] : NULL;
    uint64_t size = r && r->size ? r->size : 4096;
    uint32_t w = rnd_range(f, 1, 64), h, stride, off = 0;

    s = (void *)cmd_start(c, K_SCANOUT_BLOB, VIRTIO_GPU_CMD_SET_SCANOUT_BLOB,
                          sizeof(*s), 0);
    stride = w * 4 + (chance(f, 30) ? rnd(f, 16) * 4 : 0);
    h = MAX(MIN(size / stride, 64), 1);
    h = rnd_range(f, 1, h);
    if (chance(f, 30) && size > (uint64_t)stride * h) {
        off = (rnd64(f) % (size - (uint64_t)stride * h)) & ~3ull;
    }
    if (chance(f, 10)) {
        stride = rnd_edgy(f);
        off = rnd_edgy(f);
        h = rnd_dim(f);
    }
    s->scanout_id = cpu_to_le32(chance(f, 95) ? rnd(f, MAX_OUTPUTS)
                                              : rnd_edgy(f));
    s->resource_id = cpu_to_le32(chance(f, 5) ? 0 : id);
    s->width = cpu_to_le32(w);
    s->height = cpu_to_le32(h);
    s->format = cpu_to_le32(chance(f, 95) ? formats_2d[rnd(f, 8)]
                                          : rnd_edgy(f));
    s->strides[0] = cpu_to_le32(stride);
    s->offsets[0] = cpu_to_le32(off);
    rect_rand(f, &s->r, w, h);
    snprintf(c->what, sizeof(c->what), "id=%u %ux%u stride=%u off=%u", id, w,
             h, stride, off);
}

/* --- generators: 3D ------------------------------------------------------- */

static void gen_ctx_create(Fuzz *f, Cmd *c)
{
    struct virtio_gpu_ctx_create *cc;
    uint32_t ctx = chance(f, 92) ? ctx_free_id(f) :
                   chance(f, 50) ? rnd_range(f, 1, NR_CTX) : rnd_edgy(f);
    uint32_t capset = 0, nlen = rnd(f, 20);

    if (f->ctx_init) {
        capset = chance(f, 95) ? rnd(f, 3) : rnd_edgy(f);
    } else if (chance(f, 3)) {
        capset = rnd_edgy(f);
    }
    if (chance(f, 3)) {
        nlen = rnd_edgy(f);
    }
    cc = (void *)cmd_start(c, K_CTX_CREATE, VIRTIO_GPU_CMD_CTX_CREATE,
                           sizeof(*cc), ctx);
    cc->nlen = cpu_to_le32(nlen);
    cc->context_init = cpu_to_le32(capset);
    for (int i = 0; i < sizeof(cc->debug_name); i++) {
        cc->debug_name[i] = chance(f, 95) ? 'a' + rnd(f, 26) : rnd(f, 256);
    }
    snprintf(c->what, sizeof(c->what), "ctx=%u capset=%u nlen=%u", ctx,
             capset, nlen);
    if (ctx >= 1 && ctx <= NR_CTX && !f->ctx[ctx].live) {
        f->ctx[ctx].live = true;
        f->ctx[ctx].gen = ++f->gen;
        f->ctx[ctx].nblob = 0;
        c->undo = U_CTX;
        c->undo_id = ctx;
        c->undo_gen = f->ctx[ctx].gen;
    }
}

static uint32_t ctx_or_bad(Fuzz *f)
{
    if (chance(f, 93)) {
        return ctx_pick(f);
    }
    return chance(f, 50) ? rnd_range(f, 1, NR_CTX) : rnd_edgy(f);
}

/* contexts the model has alive */
static unsigned ctx_count(Fuzz *f)
{
    unsigned n = 0;

    for (uint32_t id = 1; id <= NR_CTX; id++) {
        n += f->ctx[id].live;
    }
    return n;
}

static void gen_ctx_destroy(Fuzz *f, Cmd *c)
{
    uint32_t ctx = ctx_or_bad(f);

    /*
     * The virglrenderer crash needs another context alive that drew: with
     * ctx-destroy avoided, the last context alive may still go
     */
    if (f->avoid_ctx_destroy && ctx >= 1 && ctx <= NR_CTX &&
        !(f->ctx[ctx].live && ctx_count(f) == 1)) {
        ctx = NR_CTX + 1 + rnd(f, 100);
    }
    cmd_start(c, K_CTX_DESTROY, VIRTIO_GPU_CMD_CTX_DESTROY,
              sizeof(struct virtio_gpu_ctx_destroy), ctx);
    snprintf(c->what, sizeof(c->what), "ctx=%u", ctx);
    if (ctx >= 1 && ctx <= NR_CTX) {
        ctx_forget(f, ctx);
    }
}

static void gen_ctx_res(Fuzz *f, Cmd *c, bool attach, uint32_t ctx,
                        uint32_t id)
{
    struct virtio_gpu_ctx_resource *r;

    r = (void *)cmd_start(c, attach ? K_CTX_ATTACH : K_CTX_DETACH,
                          attach ? VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE
                                 : VIRTIO_GPU_CMD_CTX_DETACH_RESOURCE,
                          sizeof(*r), ctx);
    r->resource_id = cpu_to_le32(id);
    snprintf(c->what, sizeof(c->what), "ctx=%u id=%u", ctx, id);
    if (id < 1 || id > NR_RES || ctx < 1 || ctx > NR_CTX ||
        f->res[id].kind == R_FREE || !f->ctx[ctx].live) {
        return;
    }
    if (attach && !attached_to(&f->res[id], ctx)) {
        f->res[id].ctxs |= 1u << (ctx - 1);
        c->undo = U_CTX_ATTACH;
        c->undo_id = id;
        c->undo_arg = ctx;
        c->undo_gen = f->res[id].gen;
    } else if (!attach) {
        f->res[id].ctxs &= ~(1u << (ctx - 1));
    }
}

static void gen_ctx_attach(Fuzz *f, Cmd *c)
{
    uint32_t ctx = ctx_or_bad(f);
    uint32_t id = ctx >= 1 && ctx <= NR_CTX && chance(f, 92) ?
                  res_pick(f, not_attached_to, ctx) : bad_res_id(f);

    gen_ctx_res(f, c, true, ctx, id);
}

static void gen_ctx_detach(Fuzz *f, Cmd *c)
{
    uint32_t ctx = ctx_or_bad(f);
    uint32_t id = ctx >= 1 && ctx <= NR_CTX && chance(f, 92) ?
                  res_pick(f, attached_to, ctx) : bad_res_id(f);

    gen_ctx_res(f, c, false, ctx, id);
}

/* a 3D resource: kind R_3D_TEX (render target) or R_3D_BUF (vertices) */
static uint32_t gen_create_3d(Fuzz *f, Cmd *c, int want)
{
    struct virtio_gpu_resource_create_3d *r;
    uint32_t id = chance(f, 92) ? res_free_id(f) : bad_res_id(f);
    bool buffer = want >= 0 ? want == R_3D_BUF : chance(f, 35);
    uint32_t w, h, fmt, target, bind;

    if (buffer) {
        target = PIPE_BUFFER;
        fmt = VFMT_R8_UNORM;
        bind = VBIND_VERTEX_BUFFER;
        w = chance(f, 90) ? rnd_range(f, 96, 16384) : rnd_dim(f);
        h = 1;
    } else {
        static const uint32_t fmts[] = {
            VFMT_B8G8R8X8, VFMT_B8G8R8A8, VFMT_R8G8B8A8,
        };

        target = PIPE_TEXTURE_2D;
        fmt = fmts[rnd(f, ARRAY_SIZE(fmts))];
        bind = VBIND_RENDER_TARGET | (chance(f, 30) ? VBIND_SAMPLER_VIEW : 0);
        w = MIN(rnd_dim(f), 512);
        h = MIN(rnd_dim(f), 512);
    }
    r = (void *)cmd_start(c, K_CREATE_3D, VIRTIO_GPU_CMD_RESOURCE_CREATE_3D,
                          sizeof(*r), 0);
    r->resource_id = cpu_to_le32(id);
    r->target = cpu_to_le32(target);
    r->format = cpu_to_le32(fmt);
    r->bind = cpu_to_le32(bind);
    r->width = cpu_to_le32(w);
    r->height = cpu_to_le32(h);
    r->depth = r->array_size = cpu_to_le32(1);
    r->flags = cpu_to_le32(!buffer && chance(f, 50) ?
                           VIRTIO_GPU_RESOURCE_FLAG_Y_0_TOP : 0);
    if (want < 0 && chance(f, 8)) {
        /* anything at all: virglrenderer has to check it */
        r->target = cpu_to_le32(rnd(f, 12));
        r->format = cpu_to_le32(chance(f, 50) ? rnd(f, 200) : rnd_edgy(f));
        r->bind = cpu_to_le32(rnd_edgy(f));
        r->depth = cpu_to_le32(rnd_dim(f));
        r->array_size = cpu_to_le32(rnd_dim(f));
        r->last_level = cpu_to_le32(rnd(f, 16));
        r->nr_samples = cpu_to_le32(rnd(f, 16));
        snprintf(c->what, sizeof(c->what), "id=%u random", id);
        return 0;
    }
    snprintf(c->what, sizeof(c->what), "id=%u %s %ux%u fmt=%u", id,
             buffer ? "buffer" : "texture", w, h, fmt);
    if (id >= 1 && id <= NR_RES && f->res[id].kind == R_FREE) {
        FRes *m = &f->res[id];

        m->kind = buffer ? R_3D_BUF : R_3D_TEX;
        m->gen = ++f->gen;
        m->w = w;
        m->h = h;
        m->fmt = fmt;
        m->size = (uint64_t)w * h * bpp_of(fmt);
        m->slot = -1;
        c->undo = U_RES;
        c->undo_id = id;
        c->undo_gen = m->gen;
        return id;
    }
    return 0;
}

static void gen_transfer_3d(Fuzz *f, Cmd *c, bool to_host, uint32_t ctx,
                            uint32_t id)
{
    struct virtio_gpu_transfer_host_3d *t;
    FRes *r = id <= NR_RES ? &f->res[id] : NULL;
    uint32_t w = r && r->w ? r->w : 16, h = r && r->h ? r->h : 16;
    uint32_t x = rnd(f, w), y = rnd(f, h);

    t = (void *)cmd_start(c, to_host ? K_TO_HOST_3D : K_FROM_HOST_3D,
                          to_host ? VIRTIO_GPU_CMD_TRANSFER_TO_HOST_3D
                                  : VIRTIO_GPU_CMD_TRANSFER_FROM_HOST_3D,
                          sizeof(*t), ctx);
    t->resource_id = cpu_to_le32(id);
    t->box.x = cpu_to_le32(x);
    t->box.y = cpu_to_le32(y);
    t->box.w = cpu_to_le32(rnd_range(f, 1, w - x));
    t->box.h = cpu_to_le32(rnd_range(f, 1, h - y));
    t->box.d = cpu_to_le32(1);
    t->stride = cpu_to_le32(r && r->kind == R_3D_BUF ? 0 : w * 4);
    t->offset = cpu_to_le64(r && r->kind == R_3D_TEX ?
                            ((uint64_t)y * w + x) * 4 : x);
    if (chance(f, 10)) {
        t->box.x = cpu_to_le32(rnd_edgy(f));
        t->box.w = cpu_to_le32(rnd_edgy(f));
        t->box.z = cpu_to_le32(rnd_edgy(f));
        t->box.d = cpu_to_le32(rnd_edgy(f));
        t->level = cpu_to_le32(rnd(f, 20));
        t->stride = cpu_to_le32(rnd_edgy(f));
        t->layer_stride = cpu_to_le32(rnd_edgy(f));
        t->offset = cpu_to_le64(rnd64(f) >> rnd(f, 64));
    }
    snprintf(c->what, sizeof(c->what), "ctx=%u id=%u", ctx, id);
}

/* --- virgl command streams ------------------------------------------------ */

static void put_text(Cmd *c, const char *text)
{
    size_t n = strlen(text) + 1;
    uint8_t *p = cmd_put(c, ROUND_UP(n, 4));

    memcpy(p, text, n);
}

static void put_shader(Cmd *c, uint32_t handle, uint32_t type,
                       const char *text)
{
    size_t n = strlen(text) + 1;

    put32(c, VCMD(VCCMD_CREATE_OBJECT, VOBJ_SHADER, 5 + DIV_ROUND_UP(n, 4)));
    put32(c, handle);
    put32(c, type);
    put32(c, n);                        /* whole text in this packet */
    put32(c, 300);                      /* tokens to allocate */
    put32(c, 0);                        /* no stream output */
    put_text(c, text);
}

static void put_destroy(Cmd *c, uint32_t obj, uint32_t handle)
{
    put32(c, VCMD(VCCMD_DESTROY_OBJECT, obj, 1));
    put32(c, handle);
}

static void put_surface(Cmd *c, uint32_t handle, uint32_t res, uint32_t fmt)
{
    put32(c, VCMD(VCCMD_CREATE_OBJECT, VOBJ_SURFACE, 5));
    put32(c, handle);
    put32(c, res);
    put32(c, fmt);
    put32(c, 0);                        /* level */
    put32(c, 0);                        /* first | last layer << 16 */
}

static void put_framebuffer(Cmd *c, uint32_t surf)
{
    put32(c, VCMD(VCCMD_SET_FRAMEBUFFER, 0, surf ? 3 : 2));
    put32(c, surf ? 1 : 0);             /* nr_cbufs */
    put32(c, 0);                        /* no depth/stencil surface */
    if (surf) {
        put32(c, surf);
    }
}

/* one triangle: 3 vertices of position and colour, four floats each */
static void put_triangle(Fuzz *f, Cmd *c, uint32_t vb, bool full)
{
    static const float cover[3][2] = { { -1, -1 }, { 3, -1 }, { -1, 3 } };
    float colour[4] = {
        rnd(f, 256) / 255.0f, rnd(f, 256) / 255.0f, rnd(f, 256) / 255.0f, 1,
    };

    if (full) {
        colour[0] = 0.0f;
        colour[1] = 1.0f;
        colour[2] = 0.0f;
    }
    put32(c, VCMD(VCCMD_INLINE_WRITE, 0, 11 + 24));
    put32(c, vb);
    put32(c, 0);                        /* level */
    put32(c, 0);                        /* usage */
    put32(c, 0);                        /* stride */
    put32(c, 0);                        /* layer stride */
    put32(c, 0);                        /* box x, y, z */
    put32(c, 0);
    put32(c, 0);
    put32(c, 96);                       /* box w, h, d */
    put32(c, 1);
    put32(c, 1);
    for (int v = 0; v < 3; v++) {
        putf(c, full ? cover[v][0] : rnd(f, 2001) / 1000.0f - 1.0f);
        putf(c, full ? cover[v][1] : rnd(f, 2001) / 1000.0f - 1.0f);
        putf(c, 0.0f);
        putf(c, 1.0f);
        for (int i = 0; i < 4; i++) {
            putf(c, colour[i]);
        }
    }
}

static void put_pipeline_teardown(Cmd *c)
{
    put32(c, VCMD(VCCMD_BIND_OBJECT, VOBJ_BLEND, 1));
    put32(c, 0);
    put32(c, VCMD(VCCMD_BIND_OBJECT, VOBJ_RASTERIZER, 1));
    put32(c, 0);
    put32(c, VCMD(VCCMD_BIND_OBJECT, VOBJ_DSA, 1));
    put32(c, 0);
    put32(c, VCMD(VCCMD_BIND_OBJECT, VOBJ_VERTEX_ELEMENTS, 1));
    put32(c, 0);
    put32(c, VCMD(VCCMD_BIND_SHADER, 0, 2));
    put32(c, 0);
    put32(c, PIPE_SHADER_VERTEX);
    put32(c, VCMD(VCCMD_BIND_SHADER, 0, 2));
    put32(c, 0);
    put32(c, PIPE_SHADER_FRAGMENT);
    put_destroy(c, VOBJ_BLEND, H_BLEND);
    put_destroy(c, VOBJ_RASTERIZER, H_RS);
    put_destroy(c, VOBJ_DSA, H_DSA);
    put_destroy(c, VOBJ_SHADER, H_VS);
    put_destroy(c, VOBJ_SHADER, H_FS);
    put_destroy(c, VOBJ_VERTEX_ELEMENTS, H_VE);
}

/* state objects and shaders, created and bound once per context */
static void put_pipeline(Cmd *c)
{
    /* leftovers of a stream that failed half-way */
    put_destroy(c, VOBJ_BLEND, H_BLEND);
    put_destroy(c, VOBJ_RASTERIZER, H_RS);
    put_destroy(c, VOBJ_DSA, H_DSA);
    put_destroy(c, VOBJ_SHADER, H_VS);
    put_destroy(c, VOBJ_SHADER, H_FS);
    put_destroy(c, VOBJ_VERTEX_ELEMENTS, H_VE);

    put32(c, VCMD(VCCMD_CREATE_OBJECT, VOBJ_BLEND, 11));
    put32(c, H_BLEND);
    put32(c, 0);                        /* S0 */
    put32(c, 0);                        /* S1 */
    put32(c, 0xfu << 27);               /* RT 0: write all channels */
    for (int i = 1; i < 8; i++) {
        put32(c, 0);
    }
    put32(c, VCMD(VCCMD_CREATE_OBJECT, VOBJ_RASTERIZER, 9));
    put32(c, H_RS);
    put32(c, (1 << 1) | (1 << 29));     /* depth clip, half-pixel centre */
    putf(c, 1.0f);                      /* point size */
    put32(c, 0);                        /* sprite coord enable */
    put32(c, 0);                        /* S3 */
    putf(c, 1.0f);                      /* line width */
    putf(c, 0.0f);                      /* offset units, scale, clamp */
    putf(c, 0.0f);
    putf(c, 0.0f);
    put32(c, VCMD(VCCMD_CREATE_OBJECT, VOBJ_DSA, 5));
    put32(c, H_DSA);
    put32(c, 0);
    put32(c, 0);
    put32(c, 0);
    put32(c, 0);
    put_shader(c, H_VS, PIPE_SHADER_VERTEX, vs_text);
    put_shader(c, H_FS, PIPE_SHADER_FRAGMENT, fs_text);
    put32(c, VCMD(VCCMD_CREATE_OBJECT, VOBJ_VERTEX_ELEMENTS, 9));
    put32(c, H_VE);
    for (int i = 0; i < 2; i++) {
        put32(c, i * 16);               /* src offset */
        put32(c, 0);                    /* instance divisor */
        put32(c, 0);                    /* vertex buffer index */
        put32(c, VFMT_R32G32B32A32_FLOAT);
    }

    put32(c, VCMD(VCCMD_BIND_OBJECT, VOBJ_BLEND, 1));
    put32(c, H_BLEND);
    put32(c, VCMD(VCCMD_BIND_OBJECT, VOBJ_RASTERIZER, 1));
    put32(c, H_RS);
    put32(c, VCMD(VCCMD_BIND_OBJECT, VOBJ_DSA, 1));
    put32(c, H_DSA);
    put32(c, VCMD(VCCMD_BIND_OBJECT, VOBJ_VERTEX_ELEMENTS, 1));
    put32(c, H_VE);
    put32(c, VCMD(VCCMD_BIND_SHADER, 0, 2));
    put32(c, H_VS);
    put32(c, PIPE_SHADER_VERTEX);
    put32(c, VCMD(VCCMD_BIND_SHADER, 0, 2));
    put32(c, H_FS);
    put32(c, PIPE_SHADER_FRAGMENT);
}

/*
 * A draw: the context's pipeline (made in this stream if it has none
 * yet), a surface on the render target, a vertex buffer filled inline,
 * one or more triangles; the surface goes again at the end and
 * sometimes the whole pipeline.
 */
static void stream_draw(Fuzz *f, Cmd *c, uint32_t ctx, uint32_t rt,
                        uint32_t vb, bool full)
{
    FRes *r = &f->res[rt];
    FCtx *m = &f->ctx[ctx];
    unsigned draws = full ? 1 : rnd_range(f, 1, 3);

    if (!m->pipeline || full) {
        put_pipeline(c);
        m->pipeline = true;
        c->pipeline = true;
    }
    put_destroy(c, VOBJ_SURFACE, H_SURF);
    put_surface(c, H_SURF, rt, r->fmt);
    put_framebuffer(c, H_SURF);
    put32(c, VCMD(VCCMD_SET_VIEWPORT, 0, 7));
    put32(c, 0);                        /* start slot */
    putf(c, r->w / 2.0f);               /* scale */
    putf(c, r->h / 2.0f);
    putf(c, 0.5f);
    putf(c, r->w / 2.0f);               /* translate */
    putf(c, r->h / 2.0f);
    putf(c, 0.5f);
    put32(c, VCMD(VCCMD_SET_VERTEX_BUFS, 0, 3));
    put32(c, 32);                       /* stride */
    put32(c, 0);                        /* offset */
    put32(c, vb);

    for (unsigned d = 0; d < draws; d++) {
        put_triangle(f, c, vb, full);
        put32(c, VCMD(VCCMD_DRAW_VBO, 0, 12));
        put32(c, 0);                    /* start */
        put32(c, 3);                    /* count */
        put32(c, PIPE_PRIM_TRIANGLES);
        put32(c, 0);                    /* not indexed */
        put32(c, 1);                    /* instances */
        put32(c, 0);                    /* index bias */
        put32(c, 0);                    /* start instance */
        put32(c, 0);                    /* no primitive restart */
        put32(c, 0);
        put32(c, 0);                    /* min, max index */
        put32(c, 2);
        put32(c, 0);                    /* not from stream output */
    }

    put_framebuffer(c, 0);
    put_destroy(c, VOBJ_SURFACE, H_SURF);
    if (!full && chance(f, 5)) {
        put_pipeline_teardown(c);
        m->pipeline = false;
    }
}

static void stream_clear(Fuzz *f, Cmd *c, uint32_t rt)
{
    put_destroy(c, VOBJ_SURFACE, H_SURF);
    put_surface(c, H_SURF, rt, f->res[rt].fmt);
    put_framebuffer(c, H_SURF);
    if (chance(f, 30)) {
        put32(c, VCMD(VCCMD_SET_SCISSOR, 0, 3));
        put32(c, 0);
        put32(c, rnd(f, 64) | rnd(f, 64) << 16);
        put32(c, rnd_range(f, 1, 600) | rnd_range(f, 1, 600) << 16);
    }
    put32(c, VCMD(VCCMD_CLEAR, 0, 8));
    put32(c, PIPE_CLEAR_COLOR0);
    for (int i = 0; i < 4; i++) {
        putf(c, rnd(f, 256) / 255.0f);
    }
    put32(c, 0);                        /* depth, a double */
    put32(c, 0);
    put32(c, 0);                        /* stencil */
    put_framebuffer(c, 0);
    put_destroy(c, VOBJ_SURFACE, H_SURF);
}

/* a host-memory buffer the context may then turn into a host3d blob */
static void stream_blob_resource(Fuzz *f, Cmd *c, uint32_t ctx)
{
    FCtx *m = &f->ctx[ctx];
    uint32_t blob_id = ++f->next_blob_id;
    uint32_t size = rnd_range(f, 1, 16) * 4096;

    put32(c, VCMD(VCCMD_PIPE_RES_CREATE, 0, 11));
    put32(c, PIPE_BUFFER);
    put32(c, VFMT_R8_UNORM);
    put32(c, VBIND_VERTEX_BUFFER);
    put32(c, size);
    put32(c, 1);
    put32(c, 1);
    put32(c, 1);
    put32(c, 0);
    put32(c, 0);
    put32(c, chance(f, 85) ? VRES_MAP_PERSISTENT | VRES_MAP_COHERENT : 0);
    put32(c, blob_id);
    if (m->nblob == ARRAY_SIZE(m->blob_ids)) {
        memmove(m->blob_ids, m->blob_ids + 1, sizeof(m->blob_ids) - 4);
        memmove(m->blob_sizes, m->blob_sizes + 1, sizeof(m->blob_sizes) - 4);
        m->nblob--;
    }
    m->blob_ids[m->nblob] = blob_id;
    m->blob_sizes[m->nblob++] = size;
}

/* commands with valid numbers and plausible, random arguments */
static void stream_random(Fuzz *f, Cmd *c, uint32_t ctx)
{
    unsigned n = rnd_range(f, 1, 8);

    for (unsigned i = 0; i < n; i++) {
        uint32_t len = rnd(f, 20);
        uint32_t cmd = rnd(f, 64);

        /* no draws or grids: a random count is hours of llvmpipe work */
        if (cmd == VCCMD_DRAW_VBO || cmd == VCCMD_LAUNCH_GRID ||
            (cmd == VCCMD_PIPE_RES_CREATE && f->avoid_unclaimed_blob)) {
            cmd = VCCMD_SET_SCISSOR;
        }
        put32(c, VCMD(cmd, rnd(f, 12), len));
        for (uint32_t k = 0; k < len; k++) {
            switch (rnd(f, 4)) {
            case 0:
                put32(c, rnd(f, 8));
                break;
            case 1:
                put32(c, rnd_range(f, H_SURF, H_VE));
                break;
            case 2:
                put32(c, rnd_range(f, 1, NR_RES));
                break;
            default:
                put32(c, rnd_edgy(f));
                break;
            }
        }
    }
}

/*
 * Whatever else changed, no draw or grid of hours.  Walk the stream from
 * @start as virglrenderer parses it (each command's header gives its
 * length), so that draws a mutation made out of other dwords are bounded
 * too: count, instances, start, the index range llvmpipe may fetch
 * vertices over, no indirect draws, small grids.  (Under ASan, seeds
 * 30005, 31001, 33001, 33002 and 42000 found the render thread inside one
 * draw, in shader code or in Mesa's vertex stage, for over a minute.)  A
 * guest can do that; it stalls its own device, see docs/pvgpu.rst,
 * "Limitations".
 */
static void bound_work(Cmd *c, size_t start)
{
    size_t at = start;

    while (at + 4 <= c->len) {
        uint8_t *d = c->b + at;
        uint32_t hdr = ldl_le_p(d);
        size_t len = hdr >> 16;
        size_t end = MIN(at + 4 * (len + 1), c->len);

        if ((hdr & 0xff) == VCCMD_DRAW_VBO) {
            /* under ASan, llvmpipe's vertex stage is 100x slower */
            if (at + 12 <= end) {
                stl_le_p(d + 8, ldl_le_p(d + 8) % 600);     /* count */
            }
            if (at + 24 <= end) {
                stl_le_p(d + 20, ldl_le_p(d + 20) % 8);     /* instances */
            }
            for (size_t o = 4; o <= 44; o += 4) {
                /* start, index bias, start instance, min and max index */
                if ((o == 4 || o == 24 || o == 28 || o == 40 || o == 44) &&
                    at + o + 4 <= end) {
                    stl_le_p(d + o, ldl_le_p(d + o) % (o == 28 ? 64 : 3000));
                }
            }
            for (size_t o = 52; at + o + 4 <= end; o += 4) {
                /* indirect buffers and counts: none */
                stl_le_p(d + o, 0);
            }
        } else if ((hdr & 0xff) == VCCMD_LAUNCH_GRID) {
            for (size_t o = 4; at + o + 4 <= end; o += 4) {
                /* block and grid sizes small, no indirect buffer */
                stl_le_p(d + o, o <= 24 ? ldl_le_p(d + o) % 4 + 1 : 0);
            }
        }
        at += 4 * (len + 1);
    }
}

static void mutate_stream(Fuzz *f, Cmd *c, size_t start)
{
    size_t dwords = (c->len - start) / 4;
    unsigned n = rnd_range(f, 1, 4);

    for (unsigned i = 0; i < n && dwords; i++) {
        uint8_t *p = c->b + start + 4 * rnd(f, dwords);

        switch (rnd(f, 3)) {
        case 0:
            stl_le_p(p, rnd_edgy(f));
            break;
        case 1:
            p[rnd(f, 4)] ^= 1 << rnd(f, 8);
            break;
        default:
            stl_le_p(p, ldl_le_p(p) + rnd_range(f, 1, 3));
            break;
        }
    }
    if (chance(f, 20)) {
        c->len = start + 4 * rnd(f, dwords + 1);
    }
    bound_work(c, start);
}

static void gen_submit(Fuzz *f, Cmd *c, Kind kind, uint32_t ctx,
                       uint32_t rt, uint32_t vb)
{
    struct virtio_gpu_cmd_submit *s;
    size_t start;
    uint32_t size;

    s = (void *)cmd_start(c, kind, VIRTIO_GPU_CMD_SUBMIT_3D, sizeof(*s), ctx);
    start = c->len;
    switch (kind) {
    case K_SUBMIT_DRAW:
        stream_draw(f, c, ctx, rt, vb, false);
        break;
    case K_SUBMIT_CLEAR:
        stream_clear(f, c, rt);
        break;
    case K_SUBMIT_BLOBRES:
        stream_blob_resource(f, c, ctx);
        break;
    case K_SUBMIT_RANDOM:
        stream_random(f, c, ctx);
        break;
    default: {
        uint32_t n = rnd(f, 256);
        uint8_t *p = cmd_put(c, n);

        for (uint32_t i = 0; i < n; i++) {
            p[i] = rnd(f, 256);
        }
        break;
    }
    }
    if ((kind == K_SUBMIT_DRAW || kind == K_SUBMIT_CLEAR) && chance(f, 8) &&
        !(c->pipeline && f->avoid_bad_shader)) {
        mutate_stream(f, c, start);
    }
    size = c->len - start;
    s = (void *)c->b;
    if (chance(f, 4)) {
        switch (rnd(f, 4)) {
        case 0:
            size += rnd_range(f, 1, 64);    /* more than was sent */
            break;
        case 1:
            size = size ? size - rnd_range(f, 1, MIN(size, 8)) : 0;
            break;
        case 2:
            size |= rnd_range(f, 1, 3);     /* not whole dwords */
            break;
        default:
            size = rnd_edgy(f);
            break;
        }
    }
    s->size = cpu_to_le32(size);
    snprintf(c->what, sizeof(c->what), "ctx=%u rt=%u vb=%u bytes=%zu size=%u",
             ctx, rt, vb, c->len - start, size);
    if (ctx >= 1 && ctx <= NR_CTX && f->ctx[ctx].live) {
        c->undo = U_SUBMIT;
        c->undo_id = ctx;
        c->undo_gen = f->ctx[ctx].gen;
    }
}

static void gen_blob_host(Fuzz *f, Cmd *c, uint32_t ctx)
{
    struct virtio_gpu_resource_create_blob *b;
    FCtx *m = &f->ctx[ctx];
    bool claim = f->avoid_unclaimed_blob;
    uint32_t id = chance(f, 92) || claim ? res_free_id(f) : bad_res_id(f);
    uint32_t blob_id = 0, size = 4096;
    uint32_t flags = chance(f, 85) ? VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE :
                     rnd(f, 8);

    if (m->nblob && (chance(f, 92) || claim)) {
        unsigned i = rnd(f, m->nblob);

        blob_id = m->blob_ids[i];
        size = m->blob_sizes[i];
        m->blob_ids[i] = m->blob_ids[--m->nblob];
        m->blob_sizes[i] = m->blob_sizes[m->nblob];
    } else {
        blob_id = chance(f, 50) ? rnd_range(f, 1, f->next_blob_id + 1)
                                : rnd_edgy(f);
    }
    b = (void *)cmd_start(c, K_BLOB_HOST, VIRTIO_GPU_CMD_RESOURCE_CREATE_BLOB,
                          sizeof(*b), ctx);
    b->resource_id = cpu_to_le32(id);
    b->blob_mem = cpu_to_le32(chance(f, 95) || claim ?
                              VIRTIO_GPU_BLOB_MEM_HOST3D :
                              VIRTIO_GPU_BLOB_MEM_HOST3D_GUEST);
    b->blob_flags = cpu_to_le32(flags);
    b->blob_id = cpu_to_le64(blob_id);
    b->size = cpu_to_le64(chance(f, 92) || claim ? size : rnd_edgy(f));
    if (claim) {
        b->blob_flags = cpu_to_le32(VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE);
        c->plain = true;
    }
    snprintf(c->what, sizeof(c->what), "ctx=%u id=%u blob_id=%u size=%u "
             "flags=%u", ctx, id, blob_id, size, flags);
    if (id >= 1 && id <= NR_RES && f->res[id].kind == R_FREE) {
        FRes *r = &f->res[id];

        r->kind = R_BLOB_HOST;
        r->gen = ++f->gen;
        f->created_this_batch[id] = 1;
        r->size = size;
        r->mappable = flags & VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE;
        r->slot = -1;
        c->undo = U_RES;
        c->undo_id = id;
        c->undo_gen = r->gen;
    }
}

static void gen_map(Fuzz *f, Cmd *c)
{
    struct virtio_gpu_resource_map_blob *m;
    uint32_t id = chance(f, 90) ? res_pick(f, is_mappable_host, 0)
                                : bad_res_id(f);
    int slot = -1;
    uint64_t off;

    if (f->avoid_map_new_blob && id >= 1 && id <= NR_RES &&
        (f->created_this_batch[id] || !f->res[id].confirmed)) {
        id = bad_res_id(f);
    }
    for (unsigned i = 0, s = rnd(f, NR_SLOTS); i < NR_SLOTS; i++) {
        if (!f->slot_owner[(s + i) % NR_SLOTS]) {
            slot = (s + i) % NR_SLOTS;
            break;
        }
    }
    off = slot >= 0 ? (uint64_t)slot * MAP_SLOT : 0;
    if (chance(f, 8)) {
        off = chance(f, 50) ? rnd64(f) >> rnd(f, 64)
                            : rnd(f, HOSTMEM_SIZE / 4096) * 4096ull;
        slot = -1;
    }
    m = (void *)cmd_start(c, K_MAP, VIRTIO_GPU_CMD_RESOURCE_MAP_BLOB,
                          sizeof(*m), 0);
    m->resource_id = cpu_to_le32(id);
    m->offset = cpu_to_le64(off);
    c->resp = RESP_MAP;
    c->ok = VIRTIO_GPU_RESP_OK_MAP_INFO;
    snprintf(c->what, sizeof(c->what), "id=%u offset=0x%" PRIx64, id, off);
    if (slot >= 0 && id >= 1 && id <= NR_RES &&
        is_mappable_host(&f->res[id], 0)) {
        f->res[id].slot = slot;
        f->slot_owner[slot] = id;
        f->mapped_this_batch[id] = 1;
        c->undo = U_MAP;
        c->undo_id = id;
        c->undo_gen = f->res[id].gen;
    }
}

static void gen_unmap(Fuzz *f, Cmd *c)
{
    struct virtio_gpu_resource_unmap_blob *u;
    uint32_t id = chance(f, 90) ? res_pick(f, is_mapped, 0) : bad_res_id(f);

    if (f->avoid_map_unmap && id >= 1 && id <= NR_RES &&
        f->mapped_this_batch[id]) {
        id = bad_res_id(f);
    }
    u = (void *)cmd_start(c, K_UNMAP, VIRTIO_GPU_CMD_RESOURCE_UNMAP_BLOB,
                          sizeof(*u), 0);
    u->resource_id = cpu_to_le32(id);
    snprintf(c->what, sizeof(c->what), "id=%u", id);
    if (id >= 1 && id <= NR_RES && f->res[id].slot >= 0) {
        f->slot_owner[f->res[id].slot] = 0;
        f->res[id].slot = -1;
    }
}

/* --- generators: cursor queue and garbage --------------------------------- */

static void gen_cursor(Fuzz *f, Cmd *c, bool update)
{
    struct virtio_gpu_update_cursor *u;
    uint32_t id = 0;

    u = (void *)cmd_start(c, update ? K_UPDATE_CURSOR : K_MOVE_CURSOR,
                          update ? VIRTIO_GPU_CMD_UPDATE_CURSOR
                                 : VIRTIO_GPU_CMD_MOVE_CURSOR,
                          sizeof(*u), 0);
    c->cursor = true;
    c->resp = 0;
    c->ok = 0;
    u->pos.scanout_id = cpu_to_le32(chance(f, 95) ? rnd(f, MAX_OUTPUTS)
                                                  : rnd_edgy(f));
    u->pos.x = cpu_to_le32(chance(f, 90) ? rnd(f, 1400) : rnd_edgy(f));
    u->pos.y = cpu_to_le32(chance(f, 90) ? rnd(f, 900) : rnd_edgy(f));
    if (update) {
        id = chance(f, 10) ? 0 : chance(f, 85) ? res_pick(f, is_cursor, 0)
                                               : bad_res_id(f);
        u->resource_id = cpu_to_le32(id);
        u->hot_x = cpu_to_le32(chance(f, 90) ? rnd(f, 64) : rnd_edgy(f));
        u->hot_y = cpu_to_le32(chance(f, 90) ? rnd(f, 64) : rnd_edgy(f));
    }
    snprintf(c->what, sizeof(c->what), "id=%u", id);
}

static void gen_garbage(Fuzz *f, Cmd *c)
{
    static const uint32_t types[] = {
        0, 0xffffffff, 0x00ff, 0x0100, 0x010e, 0x0200, 0x020a, 0x0300,
        0x0302, 0x1100, 0x1200,
    };
    uint32_t n = chance(f, 20) ? rnd(f, 24) : rnd_range(f, 24, 400);
    struct virtio_gpu_ctrl_hdr *h;
    uint8_t *p;

    memset(c, 0, offsetof(Cmd, b));
    c->len = 0;
    c->kind = K_GARBAGE;
    c->cursor = chance(f, 15);
    c->resp = c->cursor ? 0 : RESP_DISPLAY;
    p = cmd_put(c, MAX(n, 24));
    for (uint32_t i = 0; i < MAX(n, 24); i++) {
        p[i] = rnd(f, 256);
    }
    h = (void *)p;
    if (chance(f, 60)) {
        h->type = cpu_to_le32(chance(f, 50) ? types[rnd(f, ARRAY_SIZE(types))]
                              : 0x100 * rnd_range(f, 1, 3) + rnd(f, 16));
    }
    if (chance(f, 50)) {
        h->flags = cpu_to_le32(rnd(f, 4));
        h->ring_idx = rnd(f, 4);
        h->ctx_id = cpu_to_le32(rnd(f, NR_CTX + 2));
    }
    c->len = n;
    /* anything goes: only "some valid response" is required */
    c->ok = 0;
    snprintf(c->what, sizeof(c->what), "type=0x%x len=%u",
             n >= 4 ? ldl_le_p(c->b) : 0, n);
}

/* --- choosing the next command -------------------------------------------- */

typedef struct Plan {
    Cmd c[8];                   /* prerequisites first */
    unsigned n;
} Plan;

static Cmd *plan_next(Plan *p)
{
    g_assert(p->n < ARRAY_SIZE(p->c));
    return &p->c[p->n++];
}

/* a context for 3D work, made in this plan if the model has none */
static uint32_t plan_ctx(Fuzz *f, Plan *p)
{
    uint32_t ctx = ctx_pick_if(f, true);

    if (!ctx && !ctx_free_id(f) && !f->avoid_ctx_destroy &&
        (ctx = ctx_poisoned(f))) {
        Cmd *c = plan_next(p);

        cmd_start(c, K_CTX_DESTROY, VIRTIO_GPU_CMD_CTX_DESTROY,
                  sizeof(struct virtio_gpu_ctx_destroy), ctx);
        snprintf(c->what, sizeof(c->what), "ctx=%u (poisoned)", ctx);
        ctx_forget(f, ctx);
        ctx = 0;
    }
    if (!ctx && chance(f, 90)) {
        Cmd *c = plan_next(p);

        gen_ctx_create(f, c);
        ctx = le32_to_cpu(((struct virtio_gpu_ctrl_hdr *)c->b)->ctx_id);
        if (ctx < 1 || ctx > NR_CTX || !f->ctx[ctx].live) {
            ctx = 0;
        }
    }
    return ctx;
}

/* a 3D resource of @kind attached to @ctx, made in this plan if needed */
static uint32_t plan_res3d(Fuzz *f, Plan *p, uint32_t ctx, int kind)
{
    uint32_t id = res_pick(f, kind == R_3D_TEX ? is_rt_of : is_vb_of, ctx);

    if (!id) {
        id = gen_create_3d(f, plan_next(p), kind);
        if (id) {
            gen_ctx_res(f, plan_next(p), true, ctx, id);
        }
    }
    return id;
}

static void plan_3d(Fuzz *f, Plan *p)
{
    uint32_t ctx, rt, vb, r = rnd(f, 100);

    if (r < 6) {
        gen_ctx_create(f, plan_next(p));
    } else if (r < 8) {
        gen_ctx_destroy(f, plan_next(p));
        if (ctx_poisoned(f) && p->n < 2 && !f->avoid_ctx_destroy) {
            Cmd *c = plan_next(p);
            uint32_t bad = ctx_poisoned(f);

            cmd_start(c, K_CTX_DESTROY, VIRTIO_GPU_CMD_CTX_DESTROY,
                      sizeof(struct virtio_gpu_ctx_destroy), bad);
            snprintf(c->what, sizeof(c->what), "ctx=%u (poisoned)", bad);
            ctx_forget(f, bad);
        }
    } else if (r < 14) {
        gen_ctx_attach(f, plan_next(p));
    } else if (r < 16) {
        gen_ctx_detach(f, plan_next(p));
    } else if (r < 24) {
        gen_create_3d(f, plan_next(p), -1);
    } else if (r < 36) {
        ctx = chance(f, 93) ? plan_ctx(f, p) : ctx_or_bad(f);
        rt = ctx >= 1 && ctx <= NR_CTX && chance(f, 92) ?
             res_pick(f, is_3d_backed_of, ctx) : bad_res_id(f);
        if (!rt && ctx >= 1 && ctx <= NR_CTX) {
            rt = plan_res3d(f, p, ctx, chance(f, 70) ? R_3D_TEX : R_3D_BUF);
            if (rt && !f->res[rt].backing) {
                gen_attach_id(f, plan_next(p), rt);
            }
        }
        gen_transfer_3d(f, plan_next(p), r < 30, ctx, rt);
    } else if (r < 40) {
        /* random and garbage streams poison a context of their own */
        ctx = ctx_poisoned(f);
        ctx = ctx ? ctx : plan_ctx(f, p);
        if (ctx) {
            gen_submit(f, plan_next(p), chance(f, 70) ? K_SUBMIT_RANDOM
                                                      : K_SUBMIT_GARBAGE,
                       ctx, 0, 0);
        }
    } else if (r < 92 || !f->blob) {
        ctx = plan_ctx(f, p);
        if (!ctx) {
            return;
        }
        r = rnd(f, 100);
        if (r < 45) {
            rt = plan_res3d(f, p, ctx, R_3D_TEX);
            vb = plan_res3d(f, p, ctx, R_3D_BUF);
            if (rt && vb) {
                gen_submit(f, plan_next(p), K_SUBMIT_DRAW, ctx, rt, vb);
            }
        } else if (r < 65) {
            rt = plan_res3d(f, p, ctx, R_3D_TEX);
            if (rt) {
                gen_submit(f, plan_next(p), K_SUBMIT_CLEAR, ctx, rt, 0);
            }
        } else if (f->blob) {
            gen_submit(f, plan_next(p), K_SUBMIT_BLOBRES, ctx, 0, 0);
            if (f->avoid_unclaimed_blob) {
                gen_blob_host(f, plan_next(p), ctx);
            }
        }
    } else {
        ctx = plan_ctx(f, p);
        if (ctx) {
            if (!f->ctx[ctx].nblob && p->n < 3) {
                gen_submit(f, plan_next(p), K_SUBMIT_BLOBRES, ctx, 0, 0);
            }
            gen_blob_host(f, plan_next(p), ctx);
        }
    }
}

static void plan_2d(Fuzz *f, Plan *p)
{
    uint32_t r = rnd(f, 100);

    if (r < 3) {
        gen_display_info(f, plan_next(p));
    } else if (r < 5) {
        if (f->edid || chance(f, 10)) {
            gen_edid(f, plan_next(p));
        }
    } else if (r < 7) {
        gen_capset_info(f, plan_next(p));
    } else if (r < 8) {
        gen_capset(f, plan_next(p));
    } else if (r < 20) {
        gen_create_2d(f, plan_next(p), chance(f, 10));
    } else if (r < 30) {
        gen_unref(f, plan_next(p));
    } else if (r < 37) {
        gen_set_scanout(f, plan_next(p));
    } else if (r < 47) {
        gen_flush(f, plan_next(p));
    } else if (r < 62) {
        gen_transfer_2d(f, plan_next(p));
    } else if (r < 74) {
        gen_attach(f, plan_next(p));
    } else if (r < 78) {
        gen_detach(f, plan_next(p));
    } else if (r < 81) {
        if (f->uuid || chance(f, 10)) {
            gen_uuid(f, plan_next(p));
        }
    } else if (r < 89) {
        if (f->blob || chance(f, 10)) {
            gen_blob_guest(f, plan_next(p));
        }
    } else if (r < 93) {
        if (f->blob || chance(f, 10)) {
            gen_scanout_blob(f, plan_next(p));
        }
    } else if (r < 96) {
        if (f->virgl && f->blob) {
            gen_map(f, plan_next(p));
        }
    } else {
        if (f->virgl && f->blob) {
            gen_unmap(f, plan_next(p));
        }
    }
}

static void plan_command(Fuzz *f, Plan *p)
{
    uint32_t r = rnd(f, 100);

    p->n = 0;
    if (r < 6) {
        gen_cursor(f, plan_next(p), chance(f, 50));
    } else if (r < 9) {
        gen_garbage(f, plan_next(p));
    } else if (r < 10) {
        /* a command on the other queue */
        if (chance(f, 50)) {
            gen_cursor(f, plan_next(p), true);
            p->c[0].cursor = false;
            p->c[0].resp = RESP_HDR;
        } else {
            gen_flush(f, plan_next(p));
            p->c[0].cursor = true;
            p->c[0].resp = 0;
        }
        p->c[0].kind = K_WRONG_QUEUE;
        p->c[0].ok = 0;
    } else if (r < 55 && (f->virgl || chance(f, 3))) {
        plan_3d(f, p);
    } else {
        plan_2d(f, p);
    }
}

/* fence, ring and stray header bits */
static void cmd_flags(Fuzz *f, Cmd *c)
{
    struct virtio_gpu_ctrl_hdr *h = (void *)c->b;
    uint32_t flags = 0;

    if (c->len < sizeof(*h) || c->kind == K_GARBAGE) {
        return;
    }
    if (!c->cursor && chance(f, 35)) {
        flags |= VIRTIO_GPU_FLAG_FENCE;
        if (chance(f, 95)) {
            h->fence_id = cpu_to_le64(++f->fence);
            c->ordered_fence = true;
        } else {
            h->fence_id = cpu_to_le64(chance(f, 50) ? 0 : rnd64(f));
        }
        if (f->ctx_init && chance(f, 40)) {
            flags |= VIRTIO_GPU_FLAG_INFO_RING_IDX;
            h->ring_idx = chance(f, 95) ? rnd(f, NR_RINGS) : rnd(f, 256);
            if (h->ring_idx >= 64) {
                c->ordered_fence = false;
            }
        }
    }
    if (chance(f, 2) && !c->plain) {
        flags |= 1u << rnd_range(f, 2, 31);
        c->ordered_fence = false;
    }
    if (chance(f, 2) && !c->plain) {
        h->padding[rnd(f, 3)] = rnd(f, 256);
    }
    h->flags = cpu_to_le32(flags);
}

/* --- staging and sending -------------------------------------------------- */

static Batch *batch_front_new(Fuzz *f)
{
    return &f->batch[(f->batch_first + f->nbatches) % MAX_BATCHES];
}

static void poll_used(Fuzz *f);

static void wait_progress(Fuzz *f, const char *why)
{
    gint64 now = g_get_monotonic_time();

    for (int qi = 0; qi < 2; qi++) {
        FQueue *q = &f->q[qi];

        for (uint32_t i = 0; i < q->size && !f->broken; i++) {
            if (q->req[i].busy && now > q->req[i].deadline) {
                Inflight *r = &q->req[i];

                for (int qj = 0; qj < 2; qj++) {
                    for (uint32_t j = 0; j < f->q[qj].size; j++) {
                        Inflight *o = &f->q[qj].req[j];

                        if (o->busy) {
                            fprintf(stderr, "pvgpu-fuzz: in flight on queue "
                                    "%d: #%" PRIu64 " %s ctx %u fence %"
                                    PRIu64 " flags 0x%x\n", qj, o->seq,
                                    kind_name[o->kind], o->ctx_id,
                                    o->fence_id, o->flags);
                        }
                    }
                }
                {
                    /* where the device holds it: queued or on the GPU */
                    QDict *rsp = qtest_qmp(f->qts,
                                           "{'execute': 'query-pvgpu'}");
                    g_autoptr(GString) js = qobject_to_json(QOBJECT(rsp));

                    fprintf(stderr, "pvgpu-fuzz: query-pvgpu: %s\n", js->str);
                    qobject_unref(rsp);
                    dump_threads(f);
                }
                fail(f, "queue %u: request #%" PRIu64 " (%s type 0x%x "
                     "ctx %u fence %" PRIu64 " flags 0x%x) unanswered "
                     "after %" PRId64 " s (%s); device status 0x%x", qi,
                     r->seq, kind_name[r->kind], r->type, r->ctx_id,
                     r->fence_id, r->flags, f->timeout_us / G_USEC_PER_SEC,
                     why, f->gpu->vdev->bus->get_status(f->gpu->vdev));
            }
        }
    }
    g_usleep(100);
    poll_used(f);
    f->wait_us += g_get_monotonic_time() - now;
    f->waits++;
}

static void send_staged(Fuzz *f);
static void drain(Fuzz *f);

/* room for @nseg more descriptors on @q and @bytes more staged bytes */
static void stage_reserve(Fuzz *f, FQueue *q, unsigned nseg, uint32_t bytes)
{
    unsigned qi = q->index;

    if (f->nstaged == MAX_BATCH_REQS ||
        f->staged_desc[qi] + nseg > q->nfree ||
        f->stage_out_len + f->stage_in_len + bytes + 64 > ARENA_SIZE / 4) {
        send_staged(f);
    }
    while (q->nfree < nseg) {
        if (f->broken) {
            return;
        }
        wait_progress(f, "waiting for free descriptors");
    }
}

static uint32_t stage_bytes(Fuzz *f, bool in, const void *data, uint32_t len)
{
    uint8_t *area = in ? f->stage_in : f->stage_out;
    uint32_t *used = in ? &f->stage_in_len : &f->stage_out_len;
    uint32_t off = *used;

    if (data) {
        memcpy(area + off, data, len);
    } else {
        memset(area + off, 0xa5, len);
    }
    *used += ROUND_UP(len, 8);
    return off;
}

static void seg_add(Staged *s, bool write, bool in_area, uint32_t off,
                    uint32_t len)
{
    g_assert(s->nseg < MAX_SEGS);
    s->seg[s->nseg++] = (Seg) {
        .write = write, .in_area = in_area, .off = off, .len = len,
    };
}

/* readable bytes of @data split over @pieces descriptors */
static void seg_split(Fuzz *f, Staged *s, const uint8_t *data, uint32_t len,
                      unsigned pieces)
{
    uint32_t done = 0;

    if (!len) {
        return;                 /* no zero-length buffers by accident */
    }
    pieces = MAX(MIN(pieces, len), 1);
    for (unsigned i = 0; i < pieces; i++) {
        uint32_t left = len - done;
        uint32_t n = i + 1 == pieces ? left
                     : rnd_range(f, 1, left - (pieces - 1 - i));

        seg_add(s, false, false, stage_bytes(f, false, data + done, n), n);
        done += n;
    }
}

static Shape pick_shape(Fuzz *f, bool cursor)
{
    uint32_t r = rnd(f, 1000);

    if (f->replaying) {
        return f->replay_shape;
    }
    if (r < 880) {
        return SH_NORMAL;
    } else if (r < 930) {
        return SH_SPLIT;
    } else if (r < 945) {
        return SH_SHORT;
    } else if (r < 955) {
        return cursor ? SH_NORMAL : SH_RESP_SMALL;
    } else if (r < 965) {
        return cursor ? SH_NORMAL : SH_NO_RESP;
    } else if (r < 975) {
        return SH_WRITE_REQ;
    } else if (r < 996) {
        return SH_TRAILING;
    }
    return SH_BAD_ORDER + rnd(f, 4);
}

/* lay @c out in descriptors for its queue and stage it */
static void stage_cmd(Fuzz *f, Cmd *c)
{
    FQueue *q = &f->q[c->cursor ? 1 : 0];
    Shape shape = c->plain ? SH_NORMAL : pick_shape(f, c->cursor);
    uint32_t len = c->len, resp = c->resp;
    uint32_t bytes = ROUND_UP(len, 8) + ROUND_UP(MAX(resp, 64), 8) + 512;
    unsigned maxseg = c->cursor ? 4 : MAX_SEGS;
    const struct virtio_gpu_ctrl_hdr *h = (const void *)c->b;
    Staged *s;

    if (f->broken) {
        return;
    }
    if (shape >= SH_BAD_ORDER && f->avoid_reset_busy) {
        /* the reset that follows finds nothing of the device's in flight */
        drain(f);
    }
    stage_reserve(f, q, maxseg + 1, bytes);
    if (f->broken) {
        return;
    }
    s = &f->staged[f->nstaged];
    memset(s, 0, sizeof(*s));
    s->q = q;
    s->shape = shape;

    switch (shape) {
    case SH_NORMAL:
    case SH_TRAILING:
        seg_split(f, s, c->b, len, 1);
        if (shape == SH_TRAILING) {
            uint8_t junk[64];
            uint32_t n = rnd_range(f, 1, sizeof(junk));

            for (uint32_t i = 0; i < n; i++) {
                junk[i] = rnd(f, 256);
            }
            seg_split(f, s, junk, n, 1);
        }
        if (resp) {
            seg_add(s, true, true, stage_bytes(f, true, NULL, resp), resp);
        }
        break;
    case SH_SPLIT: {
        unsigned pieces = rnd_range(f, 2, maxseg - 2);

        seg_split(f, s, c->b, len, pieces);
        if (resp) {
            uint32_t off = stage_bytes(f, true, NULL, resp);
            uint32_t first = resp > 1 ? rnd_range(f, 1, resp - 1) : resp;

            seg_add(s, true, true, off, first);
            if (first < resp) {
                seg_add(s, true, true, off + first, resp - first);
            }
        }
        break;
    }
    case SH_SHORT:
        len = rnd(f, len);
        if (len) {
            seg_split(f, s, c->b, len, 1);
        }
        if (resp) {
            seg_add(s, true, true, stage_bytes(f, true, NULL, resp), resp);
        }
        break;
    case SH_RESP_SMALL:
        seg_split(f, s, c->b, len, 1);
        resp = rnd_range(f, 1, RESP_HDR - 1);
        seg_add(s, true, true, stage_bytes(f, true, NULL, resp), resp);
        break;
    case SH_NO_RESP:
        seg_split(f, s, c->b, len, 1);
        resp = 0;
        break;
    case SH_WRITE_REQ: {
        /* the request and the response in one writable stretch */
        uint32_t off = stage_bytes(f, true, NULL, len + resp);

        memcpy(f->stage_in + off, c->b, len);
        seg_add(s, true, true, off, len);
        if (resp) {
            seg_add(s, true, true, off + len, resp);
        }
        resp += len;
        len = 0;
        break;
    }
    case SH_BAD_ORDER:
        seg_split(f, s, c->b, len, 1);
        seg_add(s, true, true, stage_bytes(f, true, NULL, 64), 64);
        seg_split(f, s, c->b, MIN(len, 24), 1);
        break;
    case SH_BAD_ADDR:
        seg_split(f, s, c->b, len, 1);
        s->seg[0].addr = chance(f, 50) ? NOT_RAM : UINT64_MAX - 4096;
        if (resp) {
            seg_add(s, true, true, stage_bytes(f, true, NULL, resp), resp);
        }
        break;
    case SH_ZERO_LEN:
    case SH_LOOP:
        seg_split(f, s, c->b, len, 1);
        if (shape == SH_ZERO_LEN) {
            seg_add(s, false, false, stage_bytes(f, false, c->b, 8), 0);
        }
        if (!s->nseg) {
            seg_add(s, false, false, stage_bytes(f, false, c->b, 8), 8);
        }
        seg_add(s, true, true, stage_bytes(f, true, NULL, 64), 64);
        break;
    default:
        g_assert_not_reached();
    }
    if (!s->nseg) {
        /* an empty chain cannot exist: a single empty writable buffer */
        seg_add(s, true, true, stage_bytes(f, true, NULL, 8), 8);
        resp = 8;
    }

    s->meta.kind = c->kind;
    s->meta.type = c->len >= 4 ? ldl_le_p(c->b) : 0;
    /* a buffer outside RAM reads as whatever the bus returns */
    s->meta.has_hdr = len >= sizeof(*h) && shape != SH_WRITE_REQ &&
                      shape != SH_BAD_ADDR;
    s->meta.flags = c->len >= sizeof(*h) ? le32_to_cpu(h->flags) : 0;
    s->meta.fence_id = c->len >= sizeof(*h) ? le64_to_cpu(h->fence_id) : 0;
    s->meta.ctx_id = c->len >= sizeof(*h) ? le32_to_cpu(h->ctx_id) : 0;
    s->meta.ring_idx = c->len >= sizeof(*h) ? h->ring_idx : 0;
    s->meta.ok = (shape == SH_NORMAL || shape == SH_SPLIT ||
                  shape == SH_TRAILING || shape == SH_RESP_SMALL ||
                  shape == SH_NO_RESP) ? c->ok : 0;
    s->meta.writable = resp;
    s->meta.undo = c->undo;
    s->meta.undo_id = c->undo_id;
    s->meta.undo_arg = c->undo_arg;
    s->meta.undo_gen = c->undo_gen;
    s->meta.timeline = -1;
    if (c->ordered_fence && s->meta.has_hdr && !c->cursor &&
        (s->meta.flags & VIRTIO_GPU_FLAG_FENCE)) {
        if (!(s->meta.flags & VIRTIO_GPU_FLAG_INFO_RING_IDX)) {
            s->meta.timeline = 0;
        } else if (s->meta.ctx_id >= 1 && s->meta.ctx_id <= NR_CTX &&
                   s->meta.ring_idx < NR_RINGS) {
            s->meta.timeline = 1 + (s->meta.ctx_id - 1) * NR_RINGS +
                               s->meta.ring_idx;
        }
    }
    if (f->trace > 1) {
        /* in PVGPU_FUZZ_REPLAY's format, to cut down to a reproducer */
        g_autofree char *hex = g_malloc(c->len * 2 + 1);

        hex[0] = 0;
        for (size_t i = 0; i < c->len; i++) {
            sprintf(hex + 2 * i, "%02x", c->b[i]);
        }
        fprintf(stderr, "replay: %s %s %u %s\n",
                c->cursor ? "cursor" : "ctrl", hex, resp, shape_name[shape]);
    }
    f->staged_desc[q->index] += s->nseg;
    f->nstaged++;
    f->shapes[shape]++;
    f->sent[c->kind]++;
    f->commands++;
    if (s->meta.flags & VIRTIO_GPU_FLAG_FENCE) {
        f->fenced++;
    }
    if (shape >= SH_BAD_ORDER) {
        f->broken_chains++;
    }
    fuzz_log(f, "#%" PRIu64 " q%u %s %s flags=0x%x fence=%" PRIu64
             " ctx=%u ring=%u shape=%s len=%u resp=%u", f->seq + f->nstaged,
             q->index, kind_name[c->kind], c->what, s->meta.flags,
             s->meta.fence_id, s->meta.ctx_id, s->meta.ring_idx,
             shape_name[shape], (unsigned)c->len, resp);
}

static uint16_t desc_alloc(FQueue *q)
{
    for (uint32_t i = 0; i < q->size; i++) {
        uint32_t d = (q->next_free + i) % q->size;

        if (!q->desc_busy[d]) {
            q->desc_busy[d] = true;
            q->nfree--;
            q->next_free = (d + 1) % q->size;
            q->dirty_lo = MIN(q->dirty_lo, d);
            q->dirty_hi = MAX(q->dirty_hi, d + 1);
            return d;
        }
    }
    g_assert_not_reached();
}

/*
 * Write guest memory in pieces: QEMU's qtest server looks for the end of
 * a line from the start of what it has buffered each time more arrives,
 * so one long b64write costs it the square of its length (and most of a
 * sanitizer build's time, whose strchr() measures the whole buffer).
 */
#define WRITE_PIECE (16 * KiB)
static void bufwrite(QTestState *qts, uint64_t addr, const void *data,
                     size_t len)
{
    for (size_t off = 0; off < len; off += WRITE_PIECE) {
        qtest_bufwrite(qts, addr + off, (const uint8_t *)data + off,
                       MIN(WRITE_PIECE, len - off));
    }
}

/* publish everything staged: one write of the buffers, then the rings */
static void send_staged(Fuzz *f)
{
    uint32_t out_len = ROUND_UP(f->stage_out_len, 64);
    uint32_t total = out_len + f->stage_in_len;
    uint64_t vstart, base;
    unsigned bi;
    Batch *b;

    if (!f->nstaged) {
        return;
    }
    if (f->nbatches == MAX_BATCHES) {
        while (f->nbatches == MAX_BATCHES && !f->broken) {
            wait_progress(f, "waiting for a batch slot");
        }
    }
    for (;;) {
        vstart = f->vhead;
        if (vstart % ARENA_SIZE + total > ARENA_SIZE) {
            vstart = ROUND_UP(vstart, ARENA_SIZE);
        }
        if (!f->nbatches ||
            vstart + total - f->batch[f->batch_first].vstart <= ARENA_SIZE) {
            break;
        }
        wait_progress(f, "waiting for arena space");
    }
    base = f->arena + vstart % ARENA_SIZE;
    bi = (f->batch_first + f->nbatches) % MAX_BATCHES;
    b = batch_front_new(f);
    memset(b, 0, sizeof(*b));
    b->vstart = vstart;
    b->vend = vstart + total;
    b->addr = base;
    b->out_len = out_len;
    b->in_len = f->stage_in_len;
    b->in = g_malloc(MAX(b->in_len, 1));
    f->nbatches++;
    f->vhead = b->vend;

    memcpy(f->chunk, f->stage_out, f->stage_out_len);
    memset(f->chunk + f->stage_out_len, 0, out_len - f->stage_out_len);
    memcpy(f->chunk + out_len, f->stage_in, f->stage_in_len);
    bufwrite(f->qts, base, f->chunk, total);

    for (unsigned i = 0; i < f->nstaged; i++) {
        Staged *s = &f->staged[i];
        FQueue *q = s->q;
        uint16_t d[MAX_SEGS] = { 0 };
        Inflight *r;

        for (unsigned k = 0; k < s->nseg; k++) {
            d[k] = desc_alloc(q);
        }
        for (unsigned k = 0; k < s->nseg; k++) {
            Seg *g = &s->seg[k];
            struct vring_desc *v = &q->desc[d[k]];
            uint16_t flags = g->write ? VRING_DESC_F_WRITE : 0;

            if (k + 1 < s->nseg || s->shape == SH_LOOP) {
                flags |= VRING_DESC_F_NEXT;
            }
            v->addr = cpu_to_le64(g->addr ? g->addr :
                                  base + (g->in_area ? out_len : 0) + g->off);
            v->len = cpu_to_le32(g->len);
            v->flags = cpu_to_le16(flags);
            v->next = cpu_to_le16(k + 1 < s->nseg ? d[k + 1] : d[0]);
        }
        r = &q->req[d[0]];
        g_assert(!r->busy);
        *r = s->meta;
        r->busy = true;
        r->ndesc = s->nseg;
        memcpy(r->desc, d, sizeof(d[0]) * s->nseg);
        r->batch = bi;
        r->resp_off = 0;
        for (unsigned k = 0; k < s->nseg; k++) {
            if (s->seg[k].write) {
                r->resp_off = s->seg[k].off;
                break;
            }
        }
        r->seq = ++f->seq;
        r->deadline = g_get_monotonic_time() + f->timeout_us;
        b->outstanding++;
        q->inflight++;
        q->avail[q->avail_idx % q->size] = cpu_to_le16(d[0]);
        q->avail_idx++;
        q->kick = true;
        if (s->shape >= SH_BAD_ORDER) {
            f->broken = true;
        }
        for (unsigned k = 0; k < s->nseg; k++) {
            /* QEMU's virtio core refuses a zero-sized buffer: NEEDS_RESET */
            if (!s->seg[k].len) {
                f->broken = true;
            }
        }
    }

    for (int qi = 0; qi < 2; qi++) {
        FQueue *q = &f->q[qi];
        g_autofree uint8_t *avail = g_malloc(4 + 2 * q->size);

        if (!q->kick) {
            continue;
        }
        if (q->dirty_lo < q->dirty_hi) {
            qtest_bufwrite(f->qts, q->vq->desc + 16 * q->dirty_lo,
                           &q->desc[q->dirty_lo],
                           16 * (q->dirty_hi - q->dirty_lo));
            q->dirty_lo = q->size;
            q->dirty_hi = 0;
        }
        /* ring entries and index in one write: the device sees both */
        stw_le_p(avail, 0);
        stw_le_p(avail + 2, q->avail_idx);
        memcpy(avail + 4, q->avail, 2 * q->size);
        qtest_bufwrite(f->qts, q->vq->avail, avail, 4 + 2 * q->size);
        f->gpu->vdev->bus->virtqueue_kick(f->gpu->vdev, q->vq);
        f->notifies++;
        q->kick = false;
    }
    if (f->trace > 1) {
        fprintf(stderr, "replay: send\n");
    }
    f->staged_desc[0] = f->staged_desc[1] = 0;
    f->nstaged = 0;
    f->stage_out_len = f->stage_in_len = 0;
    f->batches++;
    memset(f->mapped_this_batch, 0, sizeof(f->mapped_this_batch));
    memset(f->created_this_batch, 0, sizeof(f->created_this_batch));
}

/* --- completions ---------------------------------------------------------- */

static bool resp_type_valid(uint32_t t)
{
    return (t >= VIRTIO_GPU_RESP_OK_NODATA &&
            t <= VIRTIO_GPU_RESP_OK_MAP_INFO) ||
           (t >= VIRTIO_GPU_RESP_ERR_UNSPEC &&
            t <= VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
}

static uint32_t resp_size_of(uint32_t t)
{
    switch (t) {
    case VIRTIO_GPU_RESP_OK_DISPLAY_INFO:
        return RESP_DISPLAY;
    case VIRTIO_GPU_RESP_OK_CAPSET_INFO:
        return RESP_CAPSET_INFO;
    case VIRTIO_GPU_RESP_OK_EDID:
        return RESP_EDID;
    case VIRTIO_GPU_RESP_OK_RESOURCE_UUID:
        return RESP_UUID;
    case VIRTIO_GPU_RESP_OK_MAP_INFO:
        return RESP_MAP;
    case VIRTIO_GPU_RESP_OK_CAPSET:
        return 0;               /* depends on the capset */
    default:
        return RESP_HDR;
    }
}

static void check_response(Fuzz *f, FQueue *q, Inflight *r, uint32_t len)
{
    Batch *b = &f->batch[r->batch];
    const uint8_t *p;
    uint32_t type, want;

    if (len > r->writable) {
        fail(f, "queue %u #%" PRIu64 " %s: used len %u > %u writable bytes",
             q->index, r->seq, kind_name[r->kind], len, r->writable);
    }
    if (q->index == 1) {
        if (len) {
            fail(f, "cursor queue #%" PRIu64 ": used len %u, expected 0",
                 r->seq, len);
        }
        return;
    }
    if (r->writable >= RESP_HDR && len < RESP_HDR) {
        fail(f, "#%" PRIu64 " %s: response of %u bytes, less than a header",
             r->seq, kind_name[r->kind], len);
    }
    if (len < 4) {
        return;
    }
    if (!b->read) {
        qtest_bufread(f->qts, b->addr + b->out_len, b->in, b->in_len);
        b->read = true;
    }
    p = b->in + r->resp_off;
    type = ldl_le_p(p);
    if (f->replaying) {
        fprintf(stderr, "replay: answer to #%" PRIu64 " (type 0x%x fence %"
                PRIu64 "): 0x%x, %u bytes\n", r->seq, r->type, r->fence_id,
                type, len);
    }
    if (!resp_type_valid(type)) {
        fail(f, "#%" PRIu64 " %s (type 0x%x): response type 0x%x is no "
             "OK/ERR code", r->seq, kind_name[r->kind], r->type, type);
    }
    if (type < VIRTIO_GPU_RESP_ERR_UNSPEC) {
        f->ok[r->kind]++;
        if (r->undo == U_RES && r->undo_id <= NR_RES &&
            f->res[r->undo_id].gen == r->undo_gen) {
            f->res[r->undo_id].confirmed = true;
        }
        if (r->ok && type != r->ok) {
            fail(f, "#%" PRIu64 " %s: response 0x%x, expected 0x%x or an "
                 "error", r->seq, kind_name[r->kind], type, r->ok);
        }
        if (!r->ok && r->kind == K_WRONG_QUEUE) {
            fail(f, "#%" PRIu64 ": a command on the wrong queue succeeded "
                 "(0x%x)", r->seq, type);
        }
    } else {
        f->err[r->kind]++;
        model_undo(f, r, type);
    }
    want = resp_size_of(type);
    if (want && len != MIN(want, r->writable)) {
        fail(f, "#%" PRIu64 " %s: response 0x%x of %u bytes, expected %u",
             r->seq, kind_name[r->kind], type, len, MIN(want, r->writable));
    }
    if (len < RESP_HDR || !r->has_hdr ||
        !(r->flags & VIRTIO_GPU_FLAG_FENCE)) {
        return;
    }
    /* virtio spec 5.7.6.7: fenced responses echo the fence */
    if (!(ldl_le_p(p + 4) & VIRTIO_GPU_FLAG_FENCE) ||
        ldq_le_p(p + 8) != r->fence_id || ldl_le_p(p + 16) != r->ctx_id) {
        fail(f, "#%" PRIu64 " %s: fenced request (fence %" PRIu64 " ctx %u) "
             "answered with flags 0x%x fence %" PRIu64 " ctx %u", r->seq,
             kind_name[r->kind], r->fence_id, r->ctx_id, ldl_le_p(p + 4),
             ldq_le_p(p + 8), ldl_le_p(p + 16));
    }
    if (f->ctx_init && (r->flags & VIRTIO_GPU_FLAG_INFO_RING_IDX) &&
        type < VIRTIO_GPU_RESP_ERR_UNSPEC &&
        (!(ldl_le_p(p + 4) & VIRTIO_GPU_FLAG_INFO_RING_IDX) ||
         p[20] != r->ring_idx)) {
        fail(f, "#%" PRIu64 " %s: ring %u fence answered with flags 0x%x "
             "ring %u", r->seq, kind_name[r->kind], r->ring_idx,
             ldl_le_p(p + 4), p[20]);
    }
    /*
     * A fence signals every earlier fence of its timeline (Linux signals
     * by sequence number): a later fence may not come back first.
     */
    if (r->timeline >= 0 && type < VIRTIO_GPU_RESP_ERR_UNSPEC) {
        if (r->seq < f->timeline_done[r->timeline]) {
            if (!f->avoid_fence_order) {
                fail(f, "#%" PRIu64 " %s (fence %" PRIu64 ", timeline %d) "
                     "answered after the later #%" PRIu64, r->seq,
                     kind_name[r->kind], r->fence_id, r->timeline,
                     f->timeline_done[r->timeline]);
            }
            if (!f->fence_order_violations++) {
                g_test_message("pvgpu-fuzz: fence order: #%" PRIu64 " %s "
                               "(fence %" PRIu64 ", timeline %d) answered "
                               "after the later #%" PRIu64, r->seq,
                               kind_name[r->kind], r->fence_id, r->timeline,
                               f->timeline_done[r->timeline]);
            }
        } else {
            f->timeline_done[r->timeline] = r->seq;
        }
    }
}

static void poll_queue(Fuzz *f, FQueue *q)
{
    g_autofree uint8_t *used = NULL;
    uint16_t idx, n;
    uint32_t first;

    idx = qtest_readw(f->qts, q->vq->used + 2);
    n = idx - q->used_idx;
    if (!n) {
        return;
    }
    if (n > q->inflight) {
        fail(f, "queue %u: used idx %u runs %u ahead of the %u requests in "
             "flight (last seen %u)", q->index, idx, n, q->inflight,
             q->used_idx);
    }
    /* the new entries, in at most two pieces around the ring's end */
    used = g_malloc(8 * q->size);
    first = q->used_idx % q->size;
    qtest_bufread(f->qts, q->vq->used + 4 + 8 * first, used + 8 * first,
                  8 * MIN(n, q->size - first));
    if (first + n > q->size) {
        qtest_bufread(f->qts, q->vq->used + 4, used,
                      8 * (first + n - q->size));
    }
    for (uint16_t k = 0; k < n; k++) {
        const uint8_t *e = used + 8 * ((q->used_idx + k) % q->size);
        uint32_t id = ldl_le_p(e), len = ldl_le_p(e + 4);
        Inflight *r;

        if (id >= q->size || !q->req[id].busy) {
            fail(f, "queue %u: used id %u (used idx %u) is no head in "
                 "flight", q->index, id, (uint16_t)(q->used_idx + k));
        }
        r = &q->req[id];
        check_response(f, q, r, len);
        if (r->result) {
            *r->result = len >= 4 ? ldl_le_p(f->batch[r->batch].in +
                                             r->resp_off) : 0;
        }
        for (unsigned i = 0; i < r->ndesc; i++) {
            q->desc_busy[r->desc[i]] = false;
        }
        q->nfree += r->ndesc;
        q->inflight--;
        r->busy = false;
        batch_put(f, r->batch);
    }
    q->used_idx = idx;
}

static void poll_used(Fuzz *f)
{
    for (unsigned i = 0; i < f->nbatches; i++) {
        f->batch[(f->batch_first + i) % MAX_BATCHES].read = false;
    }
    poll_queue(f, &f->q[0]);
    poll_queue(f, &f->q[1]);
    batches_retire(f);
}

static void drain(Fuzz *f)
{
    send_staged(f);
    if (f->trace > 1 && (f->q[0].inflight || f->q[1].inflight)) {
        fprintf(stderr, "replay: wait\n");
    }
    while ((f->q[0].inflight || f->q[1].inflight) && !f->broken) {
        wait_progress(f, "draining");
    }
}

static void device_reset(Fuzz *f);
static void queue_reset(Fuzz *f, FQueue *q);
static void system_reset(Fuzz *f);

/*
 * PVGPU_FUZZ_REPLAY=FILE sends requests from FILE instead of generating
 * them, one per line: "ctrl HEX [RESP [SHAPE]]" or "cursor HEX" stage a
 * request (RESP bytes of response buffer, default 4096; descriptors laid
 * out as SHAPE says, one of shape_name[], default normal),
 * "send" sends what is staged in one notification, "wait" (or "kick")
 * sends it and waits for every answer, "reset" resets the device,
 * "features HEX" too, negotiating HEX, "qreset N" resets queue N,
 * "sysreset" resets the machine.  PVGPU_FUZZ_TRACE=2 prints
 * every generated request in this format ("replay: ..." lines), so a
 * failing run can be cut down to a reproducer by deleting lines.
 * Answers are printed as they come, with the same checks as a fuzz run.
 */
static void replay(Fuzz *f, const char *file)
{
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    g_autofree Cmd *c = g_new0(Cmd, 1);

    g_assert(g_file_get_contents(file, &text, NULL, NULL));
    lines = g_strsplit(text, "\n", -1);
    f->replaying = true;
    for (char **l = lines; *l; l++) {
        g_auto(GStrv) w = g_strsplit_set(g_strstrip(*l), " \t", -1);
        size_t n;

        if (!w[0] || !w[0][0] || w[0][0] == '#') {
            continue;
        }
        if (!strcmp(w[0], "replay:")) {
            /* a trace line pasted as it is */
            memmove(w, w + 1, sizeof(*w) * g_strv_length(w));
        }
        if (!strcmp(w[0], "kick") || !strcmp(w[0], "wait")) {
            drain(f);
            continue;
        } else if (!strcmp(w[0], "send")) {
            send_staged(f);
            continue;
        } else if (!strcmp(w[0], "features")) {
            /* a reset that negotiates these */
            f->replay_features = g_ascii_strtoull(w[1], NULL, 16);
            device_reset(f);
            continue;
        } else if (!strcmp(w[0], "reset")) {
            device_reset(f);
            continue;
        } else if (!strcmp(w[0], "qreset")) {
            queue_reset(f, &f->q[atoi(w[1]) ? 1 : 0]);
            continue;
        } else if (!strcmp(w[0], "sysreset")) {
            system_reset(f);
            continue;
        }
        g_assert(!strcmp(w[0], "ctrl") || !strcmp(w[0], "cursor"));
        g_assert(w[1]);
        memset(c, 0, offsetof(Cmd, b));
        n = strlen(w[1]) / 2;
        g_assert(n <= sizeof(c->b));
        for (size_t i = 0; i < n; i++) {
            unsigned v;

            g_assert(sscanf(w[1] + 2 * i, "%2x", &v) == 1);
            c->b[i] = v;
        }
        c->len = n;
        c->cursor = !strcmp(w[0], "cursor");
        c->resp = c->cursor ? 0 : w[2] ? atoi(w[2]) : RESP_CAPSET;
        f->replay_shape = SH_NORMAL;
        for (int k = 0; w[2] && w[3] && k < NR_SHAPES; k++) {
            if (!strcmp(w[3], shape_name[k])) {
                f->replay_shape = k;
            }
        }
        c->kind = K_GARBAGE;
        c->ordered_fence = true;
        snprintf(c->what, sizeof(c->what), "replayed type 0x%x",
                 n >= 4 ? ldl_le_p(c->b) : 0);
        stage_cmd(f, c);
    }
    drain(f);
}

/* send one request and wait for its answer; returns the response type */
static int sync_cmd(Fuzz *f, Cmd *c)
{
    int result = -1;
    FQueue *q = &f->q[c->cursor ? 1 : 0];
    Staged *s;
    Inflight *r = NULL;

    drain(f);
    stage_reserve(f, q, 2, c->len + c->resp + 64);
    s = &f->staged[f->nstaged++];
    memset(s, 0, sizeof(*s));
    s->q = q;
    s->shape = SH_NORMAL;
    seg_split(f, s, c->b, c->len, 1);
    if (c->resp) {
        seg_add(s, true, true, stage_bytes(f, true, NULL, c->resp), c->resp);
    }
    s->meta.kind = c->kind;
    s->meta.type = ldl_le_p(c->b);
    s->meta.has_hdr = true;
    s->meta.flags = ldl_le_p(c->b + 4);
    s->meta.fence_id = ldq_le_p(c->b + 8);
    s->meta.ctx_id = ldl_le_p(c->b + 16);
    s->meta.ring_idx = c->b[20];
    s->meta.ok = c->ok;
    s->meta.writable = c->resp;
    s->meta.timeline = -1;
    s->meta.result = &result;
    f->staged_desc[q->index] += s->nseg;
    f->sent[c->kind]++;
    f->commands++;
    fuzz_log(f, "#%" PRIu64 " q%u %s %s (sync)", f->seq + 1, q->index,
             kind_name[c->kind], c->what);
    send_staged(f);
    for (uint32_t i = 0; i < q->size; i++) {
        if (q->req[i].busy && q->req[i].result == &result) {
            r = &q->req[i];
        }
    }
    g_assert(r);
    while (r->busy) {
        wait_progress(f, "a synchronous request");
    }
    return result;
}

/* --- transport events ----------------------------------------------------- */

/*
 * Set queue @index up with a ring of @size (at most what the device
 * offers), as a driver does that picks its own ring size (spec 4.1.4.3).
 * libqos's qvirtqueue_setup() would write every descriptor one by one,
 * thousands of qtest round trips per reset; here the ring's two indexes
 * are all that needs to be zero.
 */
static QVirtQueue *queue_setup(Fuzz *f, unsigned index, uint32_t size)
{
    QVirtioPCIDevice *d = f->vpci;
    QVirtQueuePCI *vqpci = g_new0(QVirtQueuePCI, 1);
    QVirtQueue *vq = &vqpci->vq;
    uint64_t cfg = d->common_cfg_offset;
    g_autofree uint8_t *zero = NULL;
    uint16_t notify_off;

    d->vdev.bus->queue_select(&d->vdev, index);
    size = MIN(size, d->vdev.bus->get_queue_size(&d->vdev));
    qpci_io_writew(d->pdev, d->bar, cfg +
                   offsetof(struct virtio_pci_common_cfg, queue_size), size);
    vq->vdev = &d->vdev;
    vq->index = index;
    vq->size = size;
    vq->num_free = size;
    vq->align = VIRTIO_PCI_VRING_ALIGN;
    vqpci->msix_entry = -1;
    vq->desc = guest_alloc(f->alloc, qvring_size(size, vq->align));
    vq->avail = vq->desc + 16 * size;
    vq->used = ROUND_UP(vq->avail + 2 * (3 + size), vq->align);
    zero = g_malloc0(8 * size + 6);
    qtest_bufwrite(f->qts, vq->avail, zero, 2 * size + 6);
    qtest_bufwrite(f->qts, vq->used, zero, 8 * size + 6);
    d->vdev.bus->set_queue_address(&d->vdev, vq);
    notify_off = qpci_io_readw(d->pdev, d->bar, cfg +
                               offsetof(struct virtio_pci_common_cfg,
                                        queue_notify_off));
    vqpci->notify_offset = d->notify_cfg_offset +
                           notify_off * d->notify_off_multiplier;
    qpci_io_writew(d->pdev, d->bar, cfg +
                   offsetof(struct virtio_pci_common_cfg, queue_enable), 1);
    return vq;
}

static void choose_features(Fuzz *f)
{
    static const uint32_t ctrl_sizes[] = { 64, 128, 256, 1024 };
    static const uint32_t cursor_sizes[] = { 8, 16, 64 };
    uint64_t want = 1ull << VIRTIO_F_VERSION_1;

    if (f->replay_features) {
        want = f->replay_features;
    } else if (getenv("PVGPU_FUZZ_REPLAY")) {
        want |= 0x1f | 1ull << VIRTIO_F_RING_RESET;
    } else if (chance(f, 92)) {
        want |= 1ull << VIRTIO_GPU_F_VIRGL;
        if (chance(f, 85)) {
            want |= 1ull << VIRTIO_GPU_F_CONTEXT_INIT;
        }
    }
    if (chance(f, 85)) {
        want |= 1ull << VIRTIO_GPU_F_RESOURCE_BLOB;
    }
    if (chance(f, 90)) {
        want |= 1ull << VIRTIO_GPU_F_EDID;
    }
    if (chance(f, 90)) {
        want |= 1ull << VIRTIO_GPU_F_RESOURCE_UUID;
    }
    if (chance(f, 95)) {
        want |= 1ull << VIRTIO_F_RING_RESET;
    }
    if (getenv("PVGPU_FUZZ_NO_VIRGL")) {
        want &= ~(1ull << VIRTIO_GPU_F_VIRGL);
    }
    f->features = want & f->offered;
    qvirtio_set_features(f->gpu->vdev, f->features);
    f->gpu->alloc = f->alloc;
    f->gpu->ctrl = queue_setup(f, 0, ctrl_sizes[rnd(f, 4)]);
    f->gpu->cursor = queue_setup(f, 1, cursor_sizes[rnd(f, 3)]);
    qvirtio_set_driver_ok(f->gpu->vdev);
    f->virgl = f->features & (1ull << VIRTIO_GPU_F_VIRGL);
    f->ctx_init = f->features & (1ull << VIRTIO_GPU_F_CONTEXT_INIT);
    f->blob = f->features & (1ull << VIRTIO_GPU_F_RESOURCE_BLOB);
    f->edid = f->features & (1ull << VIRTIO_GPU_F_EDID);
    f->uuid = f->features & (1ull << VIRTIO_GPU_F_RESOURCE_UUID);
    f->ring_reset = f->features & (1ull << VIRTIO_F_RING_RESET);
    queue_bind(f, &f->q[0], f->gpu->ctrl);
    queue_bind(f, &f->q[1], f->gpu->cursor);
    f->q[0].index = 0;
    f->q[1].index = 1;
    if (f->trace > 1) {
        fprintf(stderr, "replay: features %" PRIx64 "\n", f->features);
    }
    fuzz_log(f, "driver up: features 0x%" PRIx64 ", queue sizes %u, %u",
             f->features, f->q[0].size, f->q[1].size);
}

static uint64_t query_int(Fuzz *f, const char *key)
{
    QDict *rsp = qtest_qmp(f->qts, "{'execute': 'query-pvgpu'}");
    QList *list = qdict_get_qlist(rsp, "return");
    uint64_t v;

    f->qmp_calls++;
    g_assert(list && qlist_size(list) == 1);
    v = qdict_get_int(qobject_to(QDict, qlist_peek(list)), key);
    qobject_unref(rsp);
    return v;
}

static void device_reset(Fuzz *f)
{
    bool had_map = false;

    if (f->avoid_reset_busy) {
        drain(f);
        /* a broken device answers no more: let what it took finish */
        for (int i = 0; i < 50 && f->broken; i++) {
            g_usleep(10000);
            poll_used(f);
        }
    }
    send_staged(f);
    for (uint32_t id = 1; id <= NR_RES; id++) {
        had_map |= f->res[id].slot >= 0;
    }
    fuzz_log(f, "device reset (%u + %u in flight%s)", f->q[0].inflight,
             f->q[1].inflight, f->broken ? ", device broken" : "");
    if (f->trace > 1) {
        fprintf(stderr, "replay: reset\n");
    }
    qpvgpu_cleanup(f->gpu);
    qvirtio_reset(f->gpu->vdev);
    queue_drop_all(f, &f->q[0]);
    queue_drop_all(f, &f->q[1]);
    f->q[0].inflight = f->q[1].inflight = 0;
    model_reset(f);
    f->broken = false;
    f->resets++;
    /* a reset frees everything the driver made */
    if (!had_map && query_int(f, "resources") != 0) {
        fail(f, "resources left after a device reset");
    }
    qvirtio_set_acknowledge(f->gpu->vdev);
    qvirtio_set_driver(f->gpu->vdev);
    choose_features(f);
}

static void queue_reset(Fuzz *f, FQueue *q)
{
    QVirtioPCIDevice *d = f->vpci;
    uint64_t cfg = d->common_cfg_offset;
    uint8_t zero[4] = { 0 };

    if (f->avoid_qreset_busy) {
        drain(f);
    }
    send_staged(f);
    fuzz_log(f, "queue %u reset (%u in flight)", q->index, q->inflight);
    if (f->trace > 1) {
        fprintf(stderr, "replay: qreset %u\n", q->index);
    }
    d->vdev.bus->queue_select(&d->vdev, q->index);
    qpci_io_writew(d->pdev, d->bar, cfg +
                   offsetof(struct virtio_pci_modern_common_cfg, queue_reset),
                   1);
    if (qpci_io_readw(d->pdev, d->bar, cfg +
                      offsetof(struct virtio_pci_modern_common_cfg,
                               queue_reset)) != 0 ||
        qpci_io_readw(d->pdev, d->bar, cfg +
                      offsetof(struct virtio_pci_common_cfg,
                               queue_enable)) != 0) {
        fail(f, "queue %u: still enabled after queue_reset", q->index);
    }
    queue_drop_all(f, q);
    queue_bind(f, q, q->vq);
    qtest_bufwrite(f->qts, q->vq->avail, zero, 4);
    qtest_bufwrite(f->qts, q->vq->used, zero, 4);
    d->vdev.bus->set_queue_address(&d->vdev, q->vq);
    qpci_io_writew(d->pdev, d->bar, cfg +
                   offsetof(struct virtio_pci_common_cfg, queue_enable), 1);
    if (q->index == 0) {
        memset(f->timeline_done, 0, sizeof(f->timeline_done));
    }
    f->queue_resets++;
}

static void system_reset(Fuzz *f)
{
    QPCIDevice *pdev = f->vpci->pdev;
    uint32_t bars[6];
    uint16_t command;
    QDict *rsp;

    if (f->avoid_reset_busy) {
        drain(f);
    }
    send_staged(f);
    fuzz_log(f, "system_reset (%u + %u in flight)", f->q[0].inflight,
             f->q[1].inflight);
    if (f->trace > 1) {
        fprintf(stderr, "replay: sysreset\n");
    }
    for (int i = 0; i < 6; i++) {
        bars[i] = qpci_config_readl(pdev, PCI_BASE_ADDRESS_0 + 4 * i);
    }
    command = qpci_config_readw(pdev, PCI_COMMAND);
    rsp = qtest_qmp(f->qts, "{'execute': 'system_reset'}");
    g_assert(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
    qtest_qmp_eventwait(f->qts, "RESET");
    /* the firmware would assign the BARs again: put them back */
    for (int i = 0; i < 6; i++) {
        qpci_config_writel(pdev, PCI_BASE_ADDRESS_0 + 4 * i, bars[i]);
    }
    qpci_config_writew(pdev, PCI_COMMAND, command);
    qpvgpu_cleanup(f->gpu);
    queue_drop_all(f, &f->q[0]);
    queue_drop_all(f, &f->q[1]);
    f->q[0].inflight = f->q[1].inflight = 0;
    model_reset(f);
    f->broken = false;
    f->system_resets++;
    f->qmp_calls++;
    g_assert_cmphex(f->gpu->vdev->bus->get_status(f->gpu->vdev), ==, 0);
    qvirtio_set_acknowledge(f->gpu->vdev);
    qvirtio_set_driver(f->gpu->vdev);
    choose_features(f);
}

/* --- QMP ------------------------------------------------------------------ */

static void qmp_expect(Fuzz *f, int expect, QDict *rsp, const char *what)
{
    f->qmp_calls++;
    fuzz_log(f, "qmp %s -> %s", what,
             qdict_haskey(rsp, "return") ? "return" : "error");
    if (expect > 0 && !qdict_haskey(rsp, "return")) {
        fail(f, "qmp %s failed: %s", what,
             qdict_get_str(qdict_get_qdict(rsp, "error"), "desc"));
    }
    if (expect == 0 && !qdict_haskey(rsp, "error")) {
        fail(f, "qmp %s accepted an invalid value", what);
    }
    qobject_unref(rsp);
}

static void fuzz_qmp(Fuzz *f)
{
    static const char *const policies[] = {
        "best-effort", "equal-share", "weighted",
    };
    QTestState *qts = f->qts;
    g_autofree char *what = NULL;
    uint32_t r = rnd(f, 100);

    if (r < 30) {
        QDict *rsp = qtest_qmp(qts, "{'execute': 'query-pvgpu'}");
        QList *list = qdict_get_qlist(rsp, "return");
        QDict *dev;

        if (!list || qlist_size(list) != 1) {
            fail(f, "query-pvgpu does not list the device");
        }
        dev = qobject_to(QDict, qlist_peek(list));
        g_assert(qdict_get_qlist(dev, "scanouts"));
        g_assert(qdict_get_qlist(dev, "contexts"));
        if (qlist_size(qdict_get_qlist(dev, "scanouts")) != MAX_OUTPUTS) {
            fail(f, "query-pvgpu lists %zu scanouts",
                 qlist_size(qdict_get_qlist(dev, "scanouts")));
        }
        qmp_expect(f, 1, rsp, "query-pvgpu");
    } else if (r < 50) {
        uint32_t quantum = chance(f, 80) ? rnd_range(f, 100, 20000)
                                         : rnd_edgy(f);
        uint32_t fps = chance(f, 70) ? 0 : chance(f, 80) ?
                       rnd_range(f, 200, 1000) : rnd_edgy(f);
        bool valid = quantum >= 100 && quantum <= 1000000 && fps <= 1000;
        const char *policy = policies[rnd(f, 3)];

        what = g_strdup_printf("pvgpu-set-scheduler %s quantum %u fps %u",
                               policy, quantum, fps);
        qmp_expect(f, valid, qtest_qmp(qts,
                   "{'execute': 'pvgpu-set-scheduler', 'arguments': "
                   "{'id': 'pvgpu0', 'policy': %s, 'quantum-us': %u, "
                   "'max-fps': %u}}", policy, quantum, fps), what);
        if (fps && fps < 200) {
            /* a low frame rate limit only slows the fuzzer down */
            qmp_expect(f, 1, qtest_qmp(qts,
                       "{'execute': 'pvgpu-set-scheduler', 'arguments': "
                       "{'id': 'pvgpu0', 'max-fps': 0}}"), "max-fps 0");
        }
    } else if (r < 75) {
        uint32_t ctx = chance(f, 80) ? ctx_pick(f) : rnd_edgy(f);
        uint32_t weight = chance(f, 85) ? rnd_range(f, 1, 10000)
                                        : rnd_edgy(f);
        uint32_t cap = chance(f, 85) ? rnd(f, 101) : rnd_edgy(f);
        uint32_t prio = chance(f, 85) ? rnd(f, 4) : rnd_edgy(f);
        bool valid = weight >= 1 && weight <= 10000 && cap <= 100 &&
                     prio <= 3;

        /*
         * A cap throttles even an idle GPU: one of 1% after a draw of a
         * second under ASan holds the context, and every command queued
         * behind its work, for over a minute (the fuzzer's timeout).  So
         * a valid cap is 0 or at least 50.
         */
        if (cap && cap < 50) {
            cap = 0;
        }
        what = g_strdup_printf("pvgpu-set-context ctx %u weight %u cap %u "
                               "priority %u", ctx, weight, cap, prio);
        qmp_expect(f, valid ? -1 : 0, qtest_qmp(qts,
                   "{'execute': 'pvgpu-set-context', 'arguments': "
                   "{'id': 'pvgpu0', 'ctx-id': %u, 'weight': %u, "
                   "'cap': %u, 'priority': %u}}", ctx, weight, cap, prio),
                   what);
    } else if (r < 95) {
        uint64_t hostmem = chance(f, 85) ? (uint64_t)rnd_range(f, 1, 256) * MiB
                                         : rnd_edgy(f);
        uint32_t ctxs = chance(f, 85) ? rnd_range(f, 1, 64) : rnd_edgy(f);
        uint32_t ress = chance(f, 85) ? rnd_range(f, 1, 4096) : rnd_edgy(f);
        uint32_t queued = chance(f, 85) ? rnd_range(f, 1, 4096)
                                        : rnd_edgy(f);
        bool valid = hostmem >= MiB && ctxs && ress && queued &&
                     queued <= 4096;

        what = g_strdup_printf("pvgpu-set-limits hostmem %" PRIu64
                               " contexts %u resources %u queued %u",
                               hostmem, ctxs, ress, queued);
        qmp_expect(f, valid, qtest_qmp(qts,
                   "{'execute': 'pvgpu-set-limits', 'arguments': "
                   "{'id': 'pvgpu0', 'max-hostmem': %" PRIu64 ", "
                   "'max-contexts': %u, 'max-resources': %u, "
                   "'max-queued': %u}}", hostmem, ctxs, ress, queued),
                   what);
    } else if (r < 98) {
        /* back to generous limits, so that most commands succeed again */
        qmp_expect(f, 1, qtest_qmp(qts,
                   "{'execute': 'pvgpu-set-limits', 'arguments': "
                   "{'id': 'pvgpu0', 'max-hostmem': %" PRIu64 ", "
                   "'max-contexts': 64, 'max-resources': 4096, "
                   "'max-queued': 64}}", (uint64_t)64 * MiB), "limits back");
    } else {
        qmp_expect(f, 0, qtest_qmp(qts,
                   "{'execute': 'pvgpu-set-limits', 'arguments': "
                   "{'id': 'no-such-device', 'max-contexts': 4}}"),
                   "pvgpu-set-limits on an unknown id");
    }
}

/* read and write mapped host blobs through the hostmem BAR */
static void touch_hostmem(Fuzz *f)
{
    uint8_t buf[256];
    int slot = rnd(f, NR_SLOTS);
    uint64_t off = (uint64_t)slot * MAP_SLOT + rnd(f, 4096 - sizeof(buf));

    for (unsigned i = 0; i < sizeof(buf); i++) {
        buf[i] = rnd(f, 256);
    }
    fuzz_log(f, "hostmem BAR access at 0x%" PRIx64 " (slot owner %d)", off,
             f->slot_owner[slot]);
    qpci_memwrite(f->vpci->pdev, f->hostmem_bar, off, buf, sizeof(buf));
    qpci_memread(f->vpci->pdev, f->hostmem_bar, off, buf, sizeof(buf));
    f->bar_touches++;
}

/* --- a draw that must work: the streams are right ------------------------- */

static Cmd *new_cmd(void)
{
    return g_new0(Cmd, 1);
}

static void selftest_draw(Fuzz *f)
{
    g_autofree Cmd *c = new_cmd();
    const uint32_t ctx = NR_CTX, rt = NR_RES, vb = NR_RES - 1;
    const uint32_t W = 32, H = 32;
    uint32_t px[32 * 32];
    uint32_t claimed;
    uint64_t back;

    if (!f->virgl) {
        return;
    }
    cmd_start(c, K_CTX_CREATE, VIRTIO_GPU_CMD_CTX_CREATE,
              sizeof(struct virtio_gpu_ctx_create), ctx);
    g_assert_cmphex(sync_cmd(f, c), ==, VIRTIO_GPU_RESP_OK_NODATA);
    f->ctx[ctx].live = true;
    f->ctx[ctx].gen = ++f->gen;

    for (int i = 0; i < 2; i++) {
        struct virtio_gpu_resource_create_3d *r;
        uint32_t id = i ? vb : rt;
        FRes *m = &f->res[id];

        r = (void *)cmd_start(c, K_CREATE_3D,
                              VIRTIO_GPU_CMD_RESOURCE_CREATE_3D, sizeof(*r),
                              0);
        r->resource_id = cpu_to_le32(id);
        r->target = cpu_to_le32(i ? PIPE_BUFFER : PIPE_TEXTURE_2D);
        r->format = cpu_to_le32(i ? VFMT_R8_UNORM : VFMT_B8G8R8X8);
        r->bind = cpu_to_le32(i ? VBIND_VERTEX_BUFFER : VBIND_RENDER_TARGET);
        r->width = cpu_to_le32(i ? 4096 : W);
        r->height = cpu_to_le32(i ? 1 : H);
        r->depth = r->array_size = cpu_to_le32(1);
        r->flags = cpu_to_le32(i ? 0 : VIRTIO_GPU_RESOURCE_FLAG_Y_0_TOP);
        g_assert_cmphex(sync_cmd(f, c), ==, VIRTIO_GPU_RESP_OK_NODATA);
        m->kind = i ? R_3D_BUF : R_3D_TEX;
        m->gen = ++f->gen;
        m->w = i ? 4096 : W;
        m->h = i ? 1 : H;
        m->fmt = i ? VFMT_R8_UNORM : VFMT_B8G8R8X8;
        m->size = (uint64_t)m->w * m->h * bpp_of(m->fmt);
        m->slot = -1;
        gen_ctx_res(f, c, true, ctx, id);
        g_assert_cmphex(sync_cmd(f, c), ==, VIRTIO_GPU_RESP_OK_NODATA);
    }
    back = f->pool;
    cmd_start(c, K_ATTACH, VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING,
              sizeof(struct virtio_gpu_resource_attach_backing), 0);
    claimed = 0;
    {
        struct virtio_gpu_mem_entry *e = cmd_put(c, sizeof(*e));
        struct virtio_gpu_resource_attach_backing *a = (void *)c->b;

        e->addr = cpu_to_le64(back);
        e->length = cpu_to_le32(W * H * 4);
        a->resource_id = cpu_to_le32(rt);
        a->nr_entries = cpu_to_le32(1);
        claimed = 1;
    }
    g_assert_cmphex(sync_cmd(f, c), ==, VIRTIO_GPU_RESP_OK_NODATA);
    f->res[rt].backing = claimed == 1;
    f->res[rt].back = back;
    f->res[rt].back_len = W * H * 4;

    cmd_start(c, K_SUBMIT_DRAW, VIRTIO_GPU_CMD_SUBMIT_3D,
              sizeof(struct virtio_gpu_cmd_submit), ctx);
    stream_draw(f, c, ctx, rt, vb, true);
    stl_le_p(c->b + 24, c->len - sizeof(struct virtio_gpu_cmd_submit));
    g_assert_cmphex(sync_cmd(f, c), ==, VIRTIO_GPU_RESP_OK_NODATA);

    qtest_memset(f->qts, back, 0xa5, W * H * 4);
    {
        struct virtio_gpu_transfer_host_3d *t;

        t = (void *)cmd_start(c, K_FROM_HOST_3D,
                              VIRTIO_GPU_CMD_TRANSFER_FROM_HOST_3D,
                              sizeof(*t), ctx);
        t->hdr.flags = cpu_to_le32(VIRTIO_GPU_FLAG_FENCE);
        t->hdr.fence_id = cpu_to_le64(++f->fence);
        t->resource_id = cpu_to_le32(rt);
        t->box.w = cpu_to_le32(W);
        t->box.h = cpu_to_le32(H);
        t->box.d = cpu_to_le32(1);
        t->stride = cpu_to_le32(W * 4);
    }
    g_assert_cmphex(sync_cmd(f, c), ==, VIRTIO_GPU_RESP_OK_NODATA);
    qtest_bufread(f->qts, back, px, sizeof(px));
    for (unsigned i = 0; i < W * H; i++) {
        /* the triangle covers the target, green (B8G8R8X8) */
        if ((le32_to_cpu(px[i]) & 0xffffff) != 0x00ff00) {
            fail(f, "the self-test draw left pixel %u at 0x%08x", i,
                 le32_to_cpu(px[i]));
        }
    }
    g_test_message("self-test: a draw through shaders, vertex buffer and "
                   "render target filled %ux%u pixels", W, H);
}

/* --- the run -------------------------------------------------------------- */

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);

    return v && *v ? g_ascii_strtoull(v, NULL, 0) : dflt;
}

static bool avoid(const char *list, const char *what)
{
    g_auto(GStrv) v = g_strsplit(list ? list : "", ",", -1);

    return g_strv_contains((const char *const *)v, what);
}

static void fuzz_setup(Fuzz *f, QPvgpu *gpu, QGuestAllocator *alloc)
{
    QPvgpuPCI *pci = container_of(gpu, QPvgpuPCI, gpu);
    const char *avoid_list = getenv("PVGPU_FUZZ_AVOID");
    uint64_t bar_size = 0;

    f->gpu = gpu;
    f->qts = gpu->qts;
    f->alloc = alloc;
    f->vpci = &pci->pci_vdev;
    f->seed = env_u64("PVGPU_FUZZ_SEED",
                      g_get_real_time() ^ ((uint64_t)getpid() << 32));
    f->rng = f->seed;
    f->target = env_u64("PVGPU_FUZZ_COMMANDS", 4000);
    f->time_limit_us = env_u64("PVGPU_FUZZ_SECONDS", 0) * G_USEC_PER_SEC;
    f->timeout_us = env_u64("PVGPU_FUZZ_TIMEOUT", 60) * G_USEC_PER_SEC;
    f->trace = env_u64("PVGPU_FUZZ_TRACE", 0);
    f->avoid_reset_busy = avoid(avoid_list, "reset-busy");
    f->avoid_qreset_busy = avoid(avoid_list, "qreset-busy");
    f->avoid_map_unmap = avoid(avoid_list, "map-unmap");
    f->avoid_map_new_blob = avoid(avoid_list, "map-new-blob");
    f->avoid_ctx_destroy = avoid(avoid_list, "ctx-destroy");
    f->avoid_unclaimed_blob = avoid(avoid_list, "unclaimed-blob");
    f->avoid_fence_order = avoid(avoid_list, "fence-order");
    f->avoid_bad_shader = avoid(avoid_list, "bad-shader");
    f->stage_out = g_malloc(ARENA_SIZE);
    f->stage_in = g_malloc(ARENA_SIZE);
    f->chunk = g_malloc(ARENA_SIZE);
    f->arena = guest_alloc(alloc, ARENA_SIZE);
    f->pool = guest_alloc(alloc, POOL_SIZE);
    for (uint32_t i = 0; i <= NR_RES; i++) {
        f->res[i].slot = -1;
    }
    {
        /* backing memory holds something other than zeroes */
        g_autofree uint8_t *fill = g_malloc(POOL_SIZE);

        for (size_t i = 0; i < POOL_SIZE; i += 8) {
            stq_le_p(fill + i, rnd64(f));
        }
        bufwrite(f->qts, f->pool, fill, POOL_SIZE);
    }
    /*
     * A render process (PVGPU_QTEST_RENDER_PROCESS) cannot map host blobs
     * into QEMU: no hostmem BAR, MAP_BLOB fails
     */
    f->has_hostmem = !getenv("PVGPU_QTEST_RENDER_PROCESS");
    if (f->has_hostmem) {
        f->hostmem_bar = qpci_iomap(f->vpci->pdev, 4, &bar_size);
        g_assert_cmpuint(bar_size, ==, HOSTMEM_SIZE);
    }
    f->offered = qvirtio_get_features(gpu->vdev);
    qtest_add_abrt_handler(dump_log, f);
}

static void fuzz_report(Fuzz *f, gint64 usecs)
{
    double secs = usecs / 1e6;

    g_test_message("pvgpu-fuzz: seed %" PRIu64 " (PVGPU_FUZZ_SEED=%" PRIu64
                   " PVGPU_FUZZ_COMMANDS=%" PRIu64 " to replay)", f->seed,
                   f->seed, f->target);
    g_test_message("pvgpu-fuzz: %" PRIu64 " commands in %.1f s = %.0f/s, "
                   "%" PRIu64 " notifications, %" PRIu64 " fenced, %" PRIu64
                   " device resets, %" PRIu64 " queue resets, %" PRIu64
                   " system resets, %" PRIu64 " QMP calls, %" PRIu64
                   " hostmem accesses, %" PRIu64 " chains that break the "
                   "device, %" PRIu64 " fence order violations (tolerated "
                   "with PVGPU_FUZZ_AVOID=fence-order)", f->commands, secs,
                   f->commands / secs, f->notifies, f->fenced, f->resets,
                   f->queue_resets, f->system_resets, f->qmp_calls,
                   f->bar_touches, f->broken_chains,
                   f->fence_order_violations);
    g_test_message("pvgpu-fuzz: %.1f s waiting for the device (%" PRIu64
                   " polls)", f->wait_us / 1e6, f->waits);
    for (int k = 0; k < NR_KINDS; k++) {
        g_test_message("pvgpu-fuzz:   %-28s %8" PRIu64 " sent %8" PRIu64
                       " ok %8" PRIu64 " err", kind_name[k], f->sent[k],
                       f->ok[k], f->err[k]);
    }
    for (int s = 0; s < NR_SHAPES; s++) {
        g_test_message("pvgpu-fuzz:   chain %-22s %8" PRIu64, shape_name[s],
                       f->shapes[s]);
    }
    /* one machine-readable line for scripts/fuzz.sh */
    g_test_message("PVGPU_FUZZ_TOTALS seed=%" PRIu64 " commands=%" PRIu64
                   " seconds=%.1f resets=%" PRIu64 " queue_resets=%" PRIu64
                   " system_resets=%" PRIu64 " qmp=%" PRIu64, f->seed,
                   f->commands, secs, f->resets, f->queue_resets,
                   f->system_resets, f->qmp_calls);
}

static void fuzz_run(void *obj, void *data, QGuestAllocator *alloc)
{
    QPvgpu *gpu = obj;
    g_autofree Fuzz *f = g_new0(Fuzz, 1);
    g_autofree Plan *plan = g_new0(Plan, 1);
    g_autofree Cmd *c = new_cmd();
    gint64 start = g_get_monotonic_time();
    uint64_t next_report = 100000;

    fuzz_setup(f, gpu, alloc);
    g_test_message("pvgpu-fuzz: seed %" PRIu64 ", %" PRIu64 " commands",
                   f->seed, f->target);
    choose_features(f);
    if (getenv("PVGPU_FUZZ_REPLAY")) {
        replay(f, getenv("PVGPU_FUZZ_REPLAY"));
        f->target = 0;
    } else {
        selftest_draw(f);
    }

    while (f->commands < f->target &&
           (!f->time_limit_us ||
            g_get_monotonic_time() - start < f->time_limit_us)) {
        uint32_t n = chance(f, 20) ? rnd_range(f, 1, 8)
                                   : rnd_range(f, 16, MAX_BATCH_REQS);
        uint32_t r;

        for (uint32_t i = 0; i < n && !f->broken; i++) {
            plan_command(f, plan);
            for (unsigned k = 0; k < plan->n && !f->broken; k++) {
                cmd_flags(f, &plan->c[k]);
                stage_cmd(f, &plan->c[k]);
            }
        }
        send_staged(f);
        if (f->broken) {
            /* let the device answer what came before, then reset it */
            for (int i = 0; i < 20; i++) {
                g_usleep(200);
                poll_used(f);
            }
            device_reset(f);
            continue;
        }
        /* right behind the notification: work is still in flight */
        r = rnd(f, 1000);
        if (r < 10) {
            device_reset(f);
        } else if (r < 30 && f->ring_reset) {
            queue_reset(f, &f->q[chance(f, 70) ? 0 : 1]);
        } else if (r < 32) {
            system_reset(f);
        } else if (r < 80) {
            fuzz_qmp(f);
        } else if (r < 100 && f->virgl && f->blob && f->has_hostmem) {
            touch_hostmem(f);
        }
        /* mostly wait for the answers; sometimes run ahead of them */
        if (chance(f, 75)) {
            drain(f);
        } else {
            poll_used(f);
        }
        if (f->commands >= next_report) {
            g_test_message("pvgpu-fuzz: %" PRIu64 " commands, %.0f/s",
                           f->commands, f->commands /
                           ((g_get_monotonic_time() - start) / 1e6));
            next_report += 100000;
        }
    }
    drain(f);

    /* afterwards the device still answers, and QEMU is alive */
    gen_display_info(f, c);
    g_assert_cmphex(sync_cmd(f, c), ==, VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
    query_int(f, "resources");
    fuzz_report(f, g_get_monotonic_time() - start);
    qtest_remove_abrt_handler(f);
    if (f->has_hostmem) {
        qpci_iounmap(f->vpci->pdev, f->hostmem_bar);
    }
    g_free(f->stage_out);
    g_free(f->stage_in);
    g_free(f->chunk);
    for (int i = 0; i < 2; i++) {
        g_free(f->q[i].desc);
        g_free(f->q[i].avail);
        g_free(f->q[i].desc_busy);
        g_free(f->q[i].req);
    }
    for (unsigned i = 0; i < MAX_BATCHES; i++) {
        g_free(f->batch[i].in);
    }
}

static void register_pvgpu_fuzz_test(void)
{
    QOSGraphTestOptions opts = {
        .edge.before_cmd_line =
            "-global pvgpu-device.hostmem=4M "
            "-global pvgpu-device.max_outputs=2 "
            "-global pvgpu-device.max_hostmem=64M",
    };

    if (getenv("PVGPU_QTEST_RENDER_PROCESS")) {
        /* hostmem would keep virglrenderer in QEMU */
        opts.edge.before_cmd_line =
            "-global pvgpu-device.render-process=on "
            "-global pvgpu-device.max_outputs=2 "
            "-global pvgpu-device.max_hostmem=64M";
    }

    qos_add_test("fuzz", "pvgpu", fuzz_run, &opts);
}

libqos_init(register_pvgpu_fuzz_test);
