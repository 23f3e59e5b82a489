/*
 * pvgpu-poold: one host GPU's time shared between VMs
 *
 * pvgpu devices join over a Unix socket (each VM through a socket
 * chardev: -device pvgpu-pci,pool=CHARDEV).  The pool schedules VMs
 * with pvgpu-sched.c, the same scheduler each device uses for its
 * guest's contexts, one level up: a VM's turn is a *grant*, a budget of
 * GPU time its device spends locally (dispatching its contexts' work on
 * its own render thread) and hands back with the time it measured.  By
 * default one VM holds a grant at a time, so the GPU time each measures
 * is its own (--concurrent lets more overlap).
 * The messages are in pvgpu-pool-proto.h, the design and the trust
 * model in docs/pvgpu-pool.rst.
 *
 * Built like qemu-storage-daemon: QEMU's main loop, chardevs and QMP
 * server with a schema of its own (qapi/pvgpu-poold-schema.json).
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <getopt.h>
#include <sys/file.h>

#include "chardev/char.h"
#include "io/channel-socket.h"
#include "io/net-listener.h"
#include "monitor/monitor.h"
#include "monitor/monitor-internal.h"
#include "qapi/error.h"
#include "qapi/qmp/qerror.h"
#include "qapi/qobject-input-visitor.h"
#include "qapi/qobject-output-visitor.h"
#include "qobject/qjson.h"
#include "qobject/qobject.h"
#include "qemu/config-file.h"
#include "qemu/cutils.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qemu/module.h"
#include "qemu/timer.h"
#include "qemu-version.h"
#include "system/runstate.h"
#include "system/system.h"
#include "contrib/pvgpu-pool/qapi-commands.h"
#include "contrib/pvgpu-pool/qapi-events-pvgpu-pool.h"
#include "contrib/pvgpu-pool/qapi-init-commands.h"
#include "contrib/pvgpu-pool/qapi-visit-pvgpu-pool.h"
#include "hw/display/pvgpu-pool-proto.h"
#include "hw/display/pvgpu-sched.h"
#include "pool-sched.h"

#define DEFAULT_SOCKET      "/run/pvgpu/pool.sock"
#define TICK_NS             (100 * SCALE_MS)
#define WINDOW_TICKS        10                  /* one second */
/*
 * A VM that keeps a grant this much past its budget loses it: a hung
 * QEMU, or one submission that runs this long (seconds happen on a CPU
 * renderer under load; submissions are not preempted)
 */
#define GRANT_SLACK_NS      (5000ull * SCALE_MS)
/* Messages a peer may send per second (burst the same) */
#define PEER_MSG_RATE       2000

typedef struct PoolPeer PoolPeer;

/* The settings kept for a VM name, and its connection if it has one */
typedef struct PoolVm {
    char *name;
    PoolVmSettings set;
    PvgpuPoolLimits limits;
    bool configured;            /* set through QMP: in the state file */
    PoolPeer *peer;
    QTAILQ_ENTRY(PoolVm) next;
} PoolVm;

struct PoolPeer {
    QIOChannelSocket *sioc;
    guint watch;
    pid_t pid;
    PoolVm *vm;                 /* NULL until admitted */
    bool dead;
    bool refused;               /* not admitted: kept, ignored, until it goes */
    char *refusal;              /* the last reason it was refused for */
    char *why;                  /* why it is being dropped */

    PvgpuPoolReader in;
    int64_t bucket_ns;          /* message rate: token bucket refill time */
    double tokens;

    PoolSchedVm sv;             /* its scheduling, while joined */
    bool joined;
    QEMUTimer *grant_timer;     /* takes back a grant kept too long */

    PvgpuPoolMsg stats;         /* the latest STATS */
    uint64_t hist_gpu[WINDOW_TICKS + 1];
    uint64_t hist_frames[WINDOW_TICKS + 1];
    double share, fps;

    QTAILQ_ENTRY(PoolPeer) next;
};

static struct {
    PvgpuPoolPolicy policy;
    uint64_t quantum_us;
    uint32_t batch_quanta;      /* grant length among VMs always busy */
    PoolSched *sched;
    unsigned concurrent;        /* VMs that may hold grants at once */
    QEMUTimer *pump_timer;
    QEMUTimer *tick_timer;
    unsigned ticks;
    QEMUBH *reap_bh;
    char *state_path;
    QTAILQ_HEAD(, PoolVm) vms;
    QTAILQ_HEAD(, PoolPeer) peers;
} pool = {
    .policy = PVGPU_POOL_POLICY_WEIGHTED,
    .concurrent = 1,
    .quantum_us = PVGPU_SCHED_DEFAULT_QUANTUM_NS / 1000,
    .batch_quanta = PVGPU_SCHED_DEFAULT_BATCH_QUANTA,
    .vms = QTAILQ_HEAD_INITIALIZER(pool.vms),
    .peers = QTAILQ_HEAD_INITIALIZER(pool.peers),
};

static bool exit_requested;

void qemu_system_killed(int signal, pid_t pid)
{
    exit_requested = true;
}

void qmp_quit(Error **errp)
{
    exit_requested = true;
}

/* --- settings -------------------------------------------------------- */

static PoolVm *vm_find(const char *name)
{
    PoolVm *vm;

    QTAILQ_FOREACH(vm, &pool.vms, next) {
        if (!strcmp(vm->name, name)) {
            return vm;
        }
    }
    return NULL;
}

static PoolVm *vm_get(const char *name)
{
    PoolVm *vm = vm_find(name);

    if (!vm) {
        vm = g_new0(PoolVm, 1);
        vm->name = g_strdup(name);
        vm->set = POOL_VM_DEFAULT_SETTINGS;
        QTAILQ_INSERT_TAIL(&pool.vms, vm, next);
    }
    return vm;
}

/* A VM neither connected nor configured is forgotten */
static void vm_put(PoolVm *vm)
{
    if (!vm->peer && !vm->configured) {
        QTAILQ_REMOVE(&pool.vms, vm, next);
        g_free(vm->name);
        g_free(vm);
    }
}

/* The connected peer of @vm, if it has joined */
static PoolPeer *vm_peer(PoolVm *vm)
{
    return vm && vm->peer && vm->peer->joined && !vm->peer->dead ?
           vm->peer : NULL;
}

/* Reservations of the joined VMs other than @except's */
static uint32_t reserved_except(PoolVm *except)
{
    PoolPeer *p = vm_peer(except);

    return pool_sched_reserved(pool.sched, p ? &p->sv : NULL);
}

/* Hand the VMs' settings to the scheduler */
static void pool_reweigh(void)
{
    PoolPeer *p;

    QTAILQ_FOREACH(p, &pool.peers, next) {
        if (p->joined) {
            p->sv.set = p->vm->set;
        }
    }
    pool_sched_reweigh(pool.sched, get_clock());
}

/* A VM's settings as QAPI has them: what QMP shows and the state keeps */
static void settings_to_qapi(const PoolVm *vm, PvgpuPoolVmSettings *q)
{
    q->name = g_strdup(vm->name);
    q->weight = vm->set.weight;
    q->cap = vm->set.cap;
    q->priority = vm->set.priority;
    q->reservation = vm->set.reservation;
    q->limits = g_memdup2(&vm->limits, sizeof(vm->limits));
}

static void state_save(Error **errp)
{
    g_autoptr(PvgpuPoolConfig) cfg = g_new0(PvgpuPoolConfig, 1);
    PvgpuPoolVmSettingsList **tail = &cfg->vms;
    g_autoptr(GString) json = NULL;
    QObject *obj = NULL;
    Visitor *v;
    PoolVm *vm;
    GError *gerr = NULL;

    if (!pool.state_path) {
        return;
    }
    cfg->policy = pool.policy;
    cfg->quantum_us = pool.quantum_us;
    cfg->has_batch_quanta = true;
    cfg->batch_quanta = pool.batch_quanta;
    QTAILQ_FOREACH(vm, &pool.vms, next) {
        PvgpuPoolVmSettings *c;

        if (!vm->configured) {
            continue;
        }
        c = g_new0(PvgpuPoolVmSettings, 1);
        settings_to_qapi(vm, c);
        QAPI_LIST_APPEND(tail, c);
    }
    v = qobject_output_visitor_new(&obj);
    visit_type_PvgpuPoolConfig(v, NULL, &cfg, &error_abort);
    visit_complete(v, &obj);
    visit_free(v);
    json = qobject_to_json_pretty(obj, true);
    qobject_unref(obj);
    g_string_append_c(json, '\n');
    /* written to a temporary file and renamed over the old one */
    if (!g_file_set_contents(pool.state_path, json->str, json->len, &gerr)) {
        error_setg(errp, "cannot write state file: %s", gerr->message);
        g_error_free(gerr);
    }
}

static bool state_load(Error **errp)
{
    g_autofree char *text = NULL;
    g_autoptr(PvgpuPoolConfig) cfg = NULL;
    GError *gerr = NULL;
    QObject *obj;
    Visitor *v;
    bool ok;

    if (!pool.state_path ||
        !g_file_test(pool.state_path, G_FILE_TEST_EXISTS)) {
        return true;
    }
    if (!g_file_get_contents(pool.state_path, &text, NULL, &gerr)) {
        error_setg(errp, "%s", gerr->message);
        g_error_free(gerr);
        return false;
    }
    obj = qobject_from_json(text, errp);
    if (!obj) {
        error_prepend(errp, "state file %s: ", pool.state_path);
        return false;
    }
    v = qobject_input_visitor_new(obj);
    ok = visit_type_PvgpuPoolConfig(v, NULL, &cfg, errp);
    visit_free(v);
    qobject_unref(obj);
    if (!ok) {
        error_prepend(errp, "state file %s: ", pool.state_path);
        return false;
    }
    pool.policy = cfg->policy;
    pool.quantum_us = cfg->quantum_us;
    /* a state file written before the setting existed has none */
    if (cfg->has_batch_quanta) {
        pool.batch_quanta = cfg->batch_quanta;
    }
    for (PvgpuPoolVmSettingsList *l = cfg->vms; l; l = l->next) {
        PvgpuPoolVmSettings *c = l->value;
        PoolVm *vm = vm_get(c->name);

        vm->configured = true;
        vm->set = (PoolVmSettings) {
            .weight = c->weight, .cap = c->cap, .priority = c->priority,
            .reservation = c->reservation,
        };
        vm->limits = *c->limits;
    }
    return true;
}

/* --- peers ----------------------------------------------------------- */

static void peer_fail(PoolPeer *p, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void peer_fail(PoolPeer *p, const char *fmt, ...)
{
    va_list ap;

    if (p->dead) {
        return;
    }
    va_start(ap, fmt);
    p->why = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    p->dead = true;
    qemu_bh_schedule(pool.reap_bh);
}

static void peer_send(PoolPeer *p, const PvgpuPoolMsg *m)
{
    uint8_t buf[PVGPU_POOL_MAX_MSG_SIZE];
    size_t len = pvgpu_pool_msg_encode(m, buf, sizeof(buf));
    ssize_t n;

    assert(len);
    if (p->dead) {
        return;
    }
    /*
     * Messages are few and small; a socket buffer that is full means
     * the peer does not read, and waiting for it would stall the pool.
     */
    n = qio_channel_write(QIO_CHANNEL(p->sioc), (char *)buf, len, NULL);
    if (n != len) {
        peer_fail(p, "does not read its messages");
    }
}

static void peer_send_limits(PoolPeer *p)
{
    PvgpuPoolMsg m = { .type = PVGPU_POOL_LIMITS };

    m.u.limits.max_hostmem = p->vm->limits.max_hostmem;
    m.u.limits.max_contexts = p->vm->limits.max_contexts;
    m.u.limits.max_resources = p->vm->limits.max_resources;
    m.u.limits.max_fps = p->vm->limits.max_fps;
    peer_send(p, &m);
}

static void pump(void);
static void peer_free(PoolPeer *p);
static void grant_timer_cb(void *opaque);

static void peer_revoke(PoolSchedVm *sv, void *opaque)
{
    PoolPeer *h = container_of(sv, PoolPeer, sv);
    PvgpuPoolMsg m = { .type = PVGPU_POOL_REVOKE };

    m.u.grant.seq = sv->seq;
    m.u.grant.budget_ns = sv->budget_ns;
    peer_send(h, &m);
}

static void peer_hello(PoolPeer *p, const PvgpuPoolMsg *m)
{
    PvgpuPoolMsg r = { .type = PVGPU_POOL_REFUSE };
    const char *name = m->u.hello.name;
    PoolVm *vm = vm_find(name);
    uint32_t reservation, others;

    if (vm && vm->peer &&
        (vm->peer->dead || (p->pid && vm->peer->pid == p->pid))) {
        /*
         * The same QEMU again (it left a pool that did not answer, say),
         * before this end of its old connection was seen: that one goes
         * now, or the VM would be refused for its own name
         */
        PoolPeer *old = vm->peer;

        if (!old->dead) {
            old->why = g_strdup("replaced by a new connection of its QEMU");
            old->dead = true;
        }
        QTAILQ_REMOVE(&pool.peers, old, next);
        peer_free(old);
        pool_reweigh();
        pump();
        vm = vm_find(name);
    }
    if (vm && vm->peer) {
        snprintf(r.u.refuse.reason, sizeof(r.u.refuse.reason),
                 "a VM named %s is already in the pool", name);
        goto refuse;
    }
    /* the pool's setting for the name wins over what the device asks */
    reservation = vm && vm->configured ? vm->set.reservation
                                       : m->u.hello.reservation_pct;
    p->sv = (PoolSchedVm) {
        .set = vm ? vm->set : POOL_VM_DEFAULT_SETTINGS,
    };
    p->sv.set.reservation = reservation;
    if (!pool_sched_join(pool.sched, &p->sv, get_clock())) {
        others = pool_sched_reserved(pool.sched, NULL);
        snprintf(r.u.refuse.reason, sizeof(r.u.refuse.reason),
                 "reservation of %u%% does not fit: %u%% of 100%% is "
                 "reserved", reservation, others);
        goto refuse;
    }
    p->joined = true;

    vm = vm_get(name);
    vm->set.reservation = reservation;
    vm->peer = p;
    p->vm = vm;
    memset(p->hist_gpu, 0, sizeof(p->hist_gpu));

    r = (PvgpuPoolMsg) { .type = PVGPU_POOL_WELCOME };
    r.u.welcome.vm_id = p->pid;
    r.u.welcome.quantum_ns = pool.quantum_us * 1000;
    peer_send(p, &r);
    peer_send_limits(p);
    info_report("VM %s (pid %d) joined", name, p->pid);
    qapi_event_send_pvgpu_pool_join(name, p->pid);
    return;

refuse:
    peer_send(p, &r);
    if (g_strcmp0(p->refusal, r.u.refuse.reason)) {
        /* said once, not at each of the device's retries */
        warn_report("VM %s (pid %d) refused: %s", name, p->pid,
                    r.u.refuse.reason);
        qapi_event_send_pvgpu_pool_leave(name, r.u.refuse.reason);
        g_free(p->refusal);
        p->refusal = g_strdup(r.u.refuse.reason);
    }
    /*
     * Kept connected (a dropped device would reconnect and be refused
     * again every second), but it has no name and gets nothing; it may
     * say HELLO again (a device does every PVGPU_POOL_RETRY_MS)
     */
    p->refused = true;
}

/*
 * A message that follows the pool's own grants: the RETURN of the grant
 * a member holds, and the one DEMAND of a member that went idle.  At most
 * one of each per grant the pool gave, so they are as frequent as the
 * pool makes them (a member alone with short submissions returns and
 * demands once per submission: thousands a second on a fast GPU) and do
 * not count against the flood limit; everything else does.
 */
static bool peer_answers_grant(PoolPeer *p, const PvgpuPoolMsg *m)
{
    if (!p->joined) {
        return false;
    }
    switch (m->type) {
    case PVGPU_POOL_RETURN:
        return p->sv.state == POOL_VM_GRANTED && m->u.ret.seq == p->sv.seq;
    case PVGPU_POOL_DEMAND:
        return p->sv.state == POOL_VM_IDLE;
    default:
        return false;
    }
}

static void peer_message(PoolPeer *p, const PvgpuPoolMsg *m)
{
    if (p->refused) {
        if (m->type != PVGPU_POOL_HELLO) {
            peer_fail(p, "%s after it was refused",
                      pvgpu_pool_msg_name(m->type));
            return;
        }
        /* it asks again: capacity may have been freed meanwhile */
        p->refused = false;
    }
    if (!p->vm && m->type != PVGPU_POOL_HELLO) {
        peer_fail(p, "%s before HELLO", pvgpu_pool_msg_name(m->type));
        return;
    }
    switch (m->type) {
    case PVGPU_POOL_HELLO:
        if (p->vm) {
            peer_fail(p, "second HELLO");
            return;
        }
        peer_hello(p, m);
        return;
    case PVGPU_POOL_DEMAND:
        pool_sched_demand(pool.sched, &p->sv, get_clock(), peer_revoke, NULL);
        pump();
        return;
    case PVGPU_POOL_RETURN:
        if (m->u.ret.seq > p->sv.seq) {
            peer_fail(p, "RETURN of a grant never given");
            return;
        }
        if (p->sv.state != POOL_VM_GRANTED || m->u.ret.seq != p->sv.seq) {
            /*
             * A grant the pool took back after its timeout: not charged
             * again, but a VM still busy waits for its next one
             */
            if (m->u.ret.busy) {
                pool_sched_demand(pool.sched, &p->sv, get_clock(),
                                  peer_revoke, NULL);
                pump();
            }
            return;
        }
        timer_del(p->grant_timer);
        pool_sched_end(pool.sched, &p->sv, m->u.ret.used_ns, m->u.ret.busy,
                       get_clock(), peer_revoke, NULL);
        pump();
        return;
    case PVGPU_POOL_STATS:
        p->stats = *m;
        return;
    case PVGPU_POOL_LIMIT_HIT:
        /* the wire's order is QAPI's */
        QEMU_BUILD_BUG_ON((int)PVGPU_POOL_WIRE__MAX !=
                          (int)PVGPU_POOL_LIMIT__MAX);
        qapi_event_send_pvgpu_pool_limit(p->vm->name, m->u.limit_hit.limit,
                                         m->u.limit_hit.value);
        return;
    default:
        peer_fail(p, "sent %s, a message of the pool",
                  pvgpu_pool_msg_name(m->type));
        return;
    }
}

static gboolean peer_readable(QIOChannel *ioc, GIOCondition cond,
                              gpointer opaque)
{
    PoolPeer *p = opaque;
    int64_t now = get_clock();
    uint8_t buf[PVGPU_POOL_MAX_MSG_SIZE];
    PvgpuPoolMsg m;
    const char *why;
    ssize_t n;
    int ret;

    n = qio_channel_read(ioc, (char *)buf, pvgpu_pool_reader_room(&p->in),
                         NULL);
    if (n == QIO_CHANNEL_ERR_BLOCK) {
        return G_SOURCE_CONTINUE;
    }
    if (n <= 0) {
        p->watch = 0;
        peer_fail(p, "disconnected");
        return G_SOURCE_REMOVE;
    }
    pvgpu_pool_reader_add(&p->in, buf, n);

    while (!p->dead && (ret = pvgpu_pool_reader_next(&p->in, &m, &why))) {
        if (ret < 0) {
            peer_fail(p, "malformed message: %s", why);
            break;
        }
        /* token bucket: a flooding peer is disconnected */
        p->tokens = MIN(PEER_MSG_RATE, p->tokens +
                        (double)(now - p->bucket_ns) * PEER_MSG_RATE /
                        NANOSECONDS_PER_SECOND);
        p->bucket_ns = now;
        if (!peer_answers_grant(p, &m)) {
            if (p->tokens < 1) {
                peer_fail(p, "more than %d messages a second",
                          PEER_MSG_RATE);
                break;
            }
            p->tokens -= 1;
        }
        peer_message(p, &m);
    }
    if (p->dead) {
        p->watch = 0;
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

static void peer_free(PoolPeer *p)
{
    if (p->watch) {
        g_source_remove(p->watch);
    }
    if (p->joined) {
        /* a grant held is charged what it used, at most its budget */
        pool_sched_leave(pool.sched, &p->sv, get_clock());
        p->joined = false;
    }
    if (p->vm) {
        info_report("VM %s (pid %d) left: %s", p->vm->name, p->pid, p->why);
        qapi_event_send_pvgpu_pool_leave(p->vm->name, p->why);
        p->vm->peer = NULL;
        vm_put(p->vm);
    } else {
        warn_report("peer pid %d dropped: %s", p->pid, p->why);
    }
    qio_channel_close(QIO_CHANNEL(p->sioc), NULL);
    object_unref(OBJECT(p->sioc));
    timer_free(p->grant_timer);
    g_free(p->refusal);
    g_free(p->why);
    g_free(p);
}

static void reap_bh(void *opaque)
{
    PoolPeer *p, *next;
    bool any = false;

    QTAILQ_FOREACH_SAFE(p, &pool.peers, next, next) {
        if (p->dead) {
            QTAILQ_REMOVE(&pool.peers, p, next);
            peer_free(p);
            any = true;
        }
    }
    if (any) {
        pool_reweigh();
        pump();
    }
}

static void peer_accept(QIONetListener *listener, QIOChannelSocket *sioc,
                        gpointer opaque)
{
    PoolPeer *p = g_new0(PoolPeer, 1);
    struct ucred cred;
    socklen_t len = sizeof(cred);

    p->sioc = sioc;
    object_ref(OBJECT(sioc));
    p->grant_timer = timer_new_ns(QEMU_CLOCK_REALTIME, grant_timer_cb, p);
    p->bucket_ns = get_clock();
    p->tokens = PEER_MSG_RATE;
    /* the kernel's word for who connected, not the peer's */
    if (getsockopt(sioc->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        p->pid = cred.pid;
    }
    qio_channel_set_name(QIO_CHANNEL(sioc), "pvgpu-pool-peer");
    qio_channel_set_blocking(QIO_CHANNEL(sioc), false, NULL);
    p->watch = qio_channel_add_watch(QIO_CHANNEL(sioc), G_IO_IN | G_IO_HUP,
                                     peer_readable, p, NULL);
    QTAILQ_INSERT_TAIL(&pool.peers, p, next);
}

/* --- scheduling ------------------------------------------------------ */

/* Give the GPU to the next VMs, while fewer than --concurrent hold it */
static void pump(void)
{
    int64_t now = get_clock();
    PvgpuPoolMsg m = { .type = PVGPU_POOL_GRANT };
    PoolSchedVm *sv;
    uint64_t wait;

    while ((sv = pool_sched_next_grant(pool.sched, now, &wait))) {
        PoolPeer *p = container_of(sv, PoolPeer, sv);

        m.u.grant.seq = sv->seq;
        m.u.grant.budget_ns = sv->budget_ns;
        timer_mod(p->grant_timer, now + sv->budget_ns + GRANT_SLACK_NS);
        peer_send(p, &m);
    }
    if (wait) {
        timer_mod(pool.pump_timer, now + wait);
    }
}

static void pump_timer_cb(void *opaque)
{
    pump();
}

static void grant_timer_cb(void *opaque)
{
    PoolPeer *p = opaque;

    if (p->sv.state != POOL_VM_GRANTED) {
        return;
    }
    warn_report("VM %s kept its grant of %" PRIu64 " us for %" PRId64
                " us: taken back", p->vm->name, p->sv.budget_ns / 1000,
                (get_clock() - p->sv.grant_ns) / 1000);
    pool_sched_end(pool.sched, &p->sv, p->sv.budget_ns, false, get_clock(),
                   peer_revoke, NULL);
    pump();
}

/* Every 100 ms: the shares over the last second; each second, tell VMs */
static void tick_timer_cb(void *opaque)
{
    unsigned cur = pool.ticks % (WINDOW_TICKS + 1);
    unsigned old = (pool.ticks + 1) % (WINDOW_TICKS + 1);
    uint64_t total = 0;
    PoolPeer *p;

    QTAILQ_FOREACH(p, &pool.peers, next) {
        if (!p->vm) {
            continue;
        }
        p->hist_gpu[cur] = p->sv.gpu_ns;
        p->hist_frames[cur] = p->stats.u.stats.frames;
        total += p->hist_gpu[cur] - p->hist_gpu[old];
    }
    QTAILQ_FOREACH(p, &pool.peers, next) {
        PvgpuPoolMsg m = { .type = PVGPU_POOL_SHARE };

        if (!p->vm) {
            continue;
        }
        p->share = total ? 100.0 * (p->hist_gpu[cur] - p->hist_gpu[old]) /
                           total : 0;
        p->fps = p->hist_frames[old] <= p->hist_frames[cur] ?
                 p->hist_frames[cur] - p->hist_frames[old] : 0;
        if (pool.ticks % WINDOW_TICKS == 0) {
            m.u.share.share_ppm = p->share * 10000;
            m.u.share.weight = p->sv.eff_weight;
            m.u.share.gpu_ns = p->sv.gpu_ns;
            peer_send(p, &m);
        }
    }
    pool.ticks++;
    timer_mod(pool.tick_timer, get_clock() + TICK_NS);
}

/* --- QMP ------------------------------------------------------------- */

static void policy_apply(void)
{
    static const PvgpuSchedPolicy map[] = {
        [PVGPU_POOL_POLICY_BEST_EFFORT] = PVGPU_SCHED_BEST_EFFORT,
        [PVGPU_POOL_POLICY_EQUAL_SHARE] = PVGPU_SCHED_EQUAL_SHARE,
        [PVGPU_POOL_POLICY_WEIGHTED] = PVGPU_SCHED_WEIGHTED,
    };

    pool_sched_set_policy(pool.sched, map[pool.policy],
                          pool.quantum_us * 1000, pool.batch_quanta);
}

static bool check_range(const char *param, uint64_t v, uint64_t min,
                        uint64_t max, Error **errp)
{
    if (v < min || v > max) {
        error_setg(errp, QERR_INVALID_PARAMETER_VALUE, param,
                   g_strdup_printf("%" PRIu64 " to %" PRIu64, min, max));
        return false;
    }
    return true;
}

PvgpuPoolInfo *qmp_query_pvgpu_pool(Error **errp)
{
    PvgpuPoolInfo *info = g_new0(PvgpuPoolInfo, 1);
    PvgpuPoolVmInfoList **tail = &info->vms;
    PoolVm *vm;

    info->policy = pool.policy;
    info->quantum_us = pool.quantum_us;
    info->batch_quanta = pool.batch_quanta;
    info->reserved = reserved_except(NULL);
    info->concurrent = pool.concurrent;
    QTAILQ_FOREACH(vm, &pool.vms, next) {
        PvgpuPoolVmInfo *v = g_new0(PvgpuPoolVmInfo, 1);
        PoolPeer *p = vm->peer;

        settings_to_qapi(vm, qapi_PvgpuPoolVmInfo_base(v));
        if (p && !p->dead) {
            const PvgpuPoolStats *st = &p->stats.u.stats;
            PvgpuPoolContextInfoList **ctail = &v->contexts;

            v->connected = true;
            v->pid = p->pid;
            v->effective_weight = p->sv.eff_weight;
            v->gpu_ns = p->sv.gpu_ns;
            v->share = p->share;
            v->grants = p->sv.grants;
            v->granted = p->sv.state == POOL_VM_GRANTED;
            v->queued = st->queued;
            v->fence_p50_us = st->fence_p50_ns / 1000;
            v->fence_p99_us = st->fence_p99_ns / 1000;
            v->fps = p->fps;
            v->hostmem = st->hostmem;
            v->resources = st->resources;
            for (uint32_t i = 0; i < st->ncontexts; i++) {
                PvgpuPoolContextInfo *c = g_new0(PvgpuPoolContextInfo, 1);

                c->ctx_id = st->ctx[i].ctx_id;
                c->gpu_ns = st->ctx[i].gpu_ns;
                c->queued = st->ctx[i].queued;
                c->fence_p99_us = st->ctx[i].fence_p99_ns / 1000;
                QAPI_LIST_APPEND(ctail, c);
            }
            info->gpu_ns += p->sv.gpu_ns;
        }
        QAPI_LIST_APPEND(tail, v);
    }
    return info;
}

void qmp_pvgpu_pool_set_vm(const char *name,
                           bool has_weight, uint32_t weight,
                           bool has_cap, uint32_t cap,
                           bool has_priority, uint32_t priority,
                           bool has_reservation, uint32_t reservation,
                           bool has_max_hostmem, uint64_t max_hostmem,
                           bool has_max_contexts, uint32_t max_contexts,
                           bool has_max_resources, uint32_t max_resources,
                           bool has_max_fps, uint32_t max_fps,
                           Error **errp)
{
    PoolVm *vm;

    if (!pvgpu_pool_name_valid(name, PVGPU_POOL_NAME_LEN)) {
        error_setg(errp, QERR_INVALID_PARAMETER_VALUE, "name",
                   "a printable name of 1 to 63 characters");
        return;
    }
    if ((has_weight && !check_range("weight", weight, 1,
                                    PVGPU_SCHED_MAX_WEIGHT, errp)) ||
        (has_cap && !check_range("cap", cap, 0, 100, errp)) ||
        (has_priority && !check_range("priority", priority, 0,
                                      PVGPU_SCHED_NR_CLASSES - 1, errp)) ||
        (has_reservation && !check_range("reservation", reservation, 0, 100,
                                         errp)) ||
        (has_max_fps && !check_range("max-fps", max_fps, 0, 1000, errp))) {
        return;
    }
    vm = vm_find(name);
    if (has_reservation && vm && vm->peer &&
        reserved_except(vm) + reservation > 100) {
        error_setg(errp, "Parameter 'reservation': %u%% does not fit, %u%% "
                   "of 100%% is reserved by the other VMs", reservation,
                   reserved_except(vm));
        return;
    }
    vm = vm_get(name);
    vm->configured = true;
    vm->set.weight = has_weight ? weight : vm->set.weight;
    vm->set.cap = has_cap ? cap : vm->set.cap;
    vm->set.priority = has_priority ? priority : vm->set.priority;
    vm->set.reservation = has_reservation ? reservation
                                          : vm->set.reservation;
    if (has_max_hostmem) {
        vm->limits.max_hostmem = max_hostmem;
    }
    if (has_max_contexts) {
        vm->limits.max_contexts = max_contexts;
    }
    if (has_max_resources) {
        vm->limits.max_resources = max_resources;
    }
    if (has_max_fps) {
        vm->limits.max_fps = max_fps;
    }
    pool_reweigh();
    if (vm->peer) {
        peer_send_limits(vm->peer);
    }
    state_save(errp);
    pump();
}

void qmp_pvgpu_pool_set_policy(bool has_policy, PvgpuPoolPolicy policy,
                               bool has_quantum_us, uint64_t quantum_us,
                               bool has_batch_quanta, uint32_t batch_quanta,
                               Error **errp)
{
    if (has_quantum_us &&
        !check_range("quantum-us", quantum_us,
                     PVGPU_SCHED_MIN_QUANTUM_NS / 1000,
                     PVGPU_SCHED_MAX_QUANTUM_NS / 1000, errp)) {
        return;
    }
    if (has_batch_quanta &&
        !check_range("batch-quanta", batch_quanta, 1,
                     PVGPU_SCHED_MAX_BATCH_QUANTA, errp)) {
        return;
    }
    pool.policy = has_policy ? policy : pool.policy;
    pool.quantum_us = has_quantum_us ? quantum_us : pool.quantum_us;
    pool.batch_quanta = has_batch_quanta ? batch_quanta : pool.batch_quanta;
    policy_apply();
    state_save(errp);
    pump();
}

/* --- main ------------------------------------------------------------ */

static void help(void)
{
    printf(
"Usage: %s [OPTION]...\n"
"Share one host GPU's time between VMs whose pvgpu devices join the pool.\n"
"\n"
"  -h, --help             show this help and exit\n"
"  -V, --version          show the version and exit\n"
"  --socket PATH          where VMs join (default " DEFAULT_SOCKET ")\n"
"  --qmp PATH             serve QMP on this Unix socket; may be repeated\n"
"                         (default: the VM socket's path + \".qmp\")\n"
"  --state FILE           where settings are kept across restarts\n"
"                         (default: the VM socket's path + \".state\")\n"
"  --no-state             keep no settings across restarts\n"
"  --policy POLICY        best-effort, equal-share or weighted (default)\n"
"  --quantum-us N         scheduling quantum (default %llu)\n"
"  --batch-quanta N       grant length in quanta while only VMs that are\n"
"                         always busy wait (default %u; longer grants\n"
"                         switch VMs less often, shares even out slower)\n"
"  --concurrent N         VMs that may hold the GPU at once (default 1:\n"
"                         exact accounting; more keeps a GPU that runs\n"
"                         several VMs' work in parallel busier)\n"
"\n"
"A VM joins with\n"
"  -chardev socket,id=pool0,path=PATH,reconnect-ms=1000\n"
"  -device pvgpu-pci,pool=pool0\n"
"See docs/pvgpu-pool.rst.\n",
           g_get_prgname(), PVGPU_SCHED_DEFAULT_QUANTUM_NS / 1000,
           PVGPU_SCHED_DEFAULT_BATCH_QUANTA);
}

/* One daemon per socket: the lock is held while the process lives */
static bool socket_lock(const char *path, Error **errp)
{
    g_autofree char *lock = g_strdup_printf("%s.lock", path);
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot open %s", lock);
        return false;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        error_setg(errp, "another pvgpu-poold serves %s", path);
        close(fd);
        return false;
    }
    return true;
}

int main(int argc, char *argv[])
{
    enum { OPT_SOCKET = 256, OPT_QMP, OPT_STATE, OPT_NO_STATE, OPT_POLICY,
           OPT_QUANTUM, OPT_BATCH, OPT_CONCURRENT };
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { "socket", required_argument, NULL, OPT_SOCKET },
        { "qmp", required_argument, NULL, OPT_QMP },
        { "state", required_argument, NULL, OPT_STATE },
        { "no-state", no_argument, NULL, OPT_NO_STATE },
        { "policy", required_argument, NULL, OPT_POLICY },
        { "quantum-us", required_argument, NULL, OPT_QUANTUM },
        { "batch-quanta", required_argument, NULL, OPT_BATCH },
        { "concurrent", required_argument, NULL, OPT_CONCURRENT },
        { }
    };
    const char *socket_path = DEFAULT_SOCKET;
    g_autoptr(GPtrArray) qmp_paths = g_ptr_array_new_with_free_func(g_free);
    bool no_state = false, has_policy = false, has_quantum = false;
    int policy = 0;
    uint64_t quantum = 0;
    unsigned batch = 0;
    SocketAddress addr = { .type = SOCKET_ADDRESS_TYPE_UNIX };
    QIONetListener *listener;
    Error *err = NULL;
    int c;

    signal(SIGPIPE, SIG_IGN);
    error_init(argv[0]);
    qemu_init_exec_dir(argv[0]);
    /* error_report() takes the monitor's lock: set up before options */
    os_setup_signal_handling();
    module_call_init(MODULE_INIT_QOM);
    qemu_add_opts(&qemu_chardev_opts);
    monitor_init_globals();

    while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            help();
            return EXIT_SUCCESS;
        case 'V':
            printf("pvgpu-poold (QEMU %s)\n", QEMU_FULL_VERSION);
            return EXIT_SUCCESS;
        case OPT_SOCKET:
            socket_path = optarg;
            break;
        case OPT_QMP:
            g_ptr_array_add(qmp_paths, g_strdup(optarg));
            break;
        case OPT_STATE:
            pool.state_path = g_strdup(optarg);
            break;
        case OPT_NO_STATE:
            no_state = true;
            break;
        case OPT_POLICY:
            policy = qapi_enum_parse(&PvgpuPoolPolicy_lookup, optarg, -1,
                                     NULL);
            if (policy < 0) {
                error_report("--policy: %s is not best-effort, equal-share "
                             "or weighted", optarg);
                return EXIT_FAILURE;
            }
            has_policy = true;
            break;
        case OPT_QUANTUM:
            if (qemu_strtou64(optarg, NULL, 10, &quantum) ||
                quantum < PVGPU_SCHED_MIN_QUANTUM_NS / 1000 ||
                quantum > PVGPU_SCHED_MAX_QUANTUM_NS / 1000) {
                error_report("--quantum-us: %s is not %llu to %llu", optarg,
                             PVGPU_SCHED_MIN_QUANTUM_NS / 1000,
                             PVGPU_SCHED_MAX_QUANTUM_NS / 1000);
                return EXIT_FAILURE;
            }
            has_quantum = true;
            break;
        case OPT_BATCH:
            if (qemu_strtoui(optarg, NULL, 10, &batch) ||
                batch < 1 || batch > PVGPU_SCHED_MAX_BATCH_QUANTA) {
                error_report("--batch-quanta: %s is not 1 to %u", optarg,
                             PVGPU_SCHED_MAX_BATCH_QUANTA);
                return EXIT_FAILURE;
            }
            break;
        case OPT_CONCURRENT:
            if (qemu_strtoui(optarg, NULL, 10, &pool.concurrent) ||
                pool.concurrent < 1 || pool.concurrent > 16) {
                error_report("--concurrent: %s is not 1 to 16", optarg);
                return EXIT_FAILURE;
            }
            break;
        default:
            error_report("try --help");
            return EXIT_FAILURE;
        }
    }
    if (optind < argc) {
        error_report("unexpected argument %s; try --help", argv[optind]);
        return EXIT_FAILURE;
    }
    if (!pool.state_path && !no_state) {
        pool.state_path = g_strdup_printf("%s.state", socket_path);
    }
    if (no_state) {
        g_clear_pointer(&pool.state_path, g_free);
    }
    if (!qmp_paths->len) {
        g_ptr_array_add(qmp_paths, g_strdup_printf("%s.qmp", socket_path));
    }

    qmp_init_marshal(&qmp_commands);
    QTAILQ_INIT(&qmp_cap_negotiation_commands);
    qmp_register_command(&qmp_cap_negotiation_commands, "qmp_capabilities",
                         qmp_marshal_qmp_capabilities, QCO_ALLOW_PRECONFIG,
                         0);
    qemu_init_main_loop(&error_fatal);

    pool.sched = pool_sched_new(pool.concurrent);
    if (!state_load(&err)) {
        error_report_err(err);
        return EXIT_FAILURE;
    }
    if (has_policy) {
        pool.policy = policy;
    }
    if (has_quantum) {
        pool.quantum_us = quantum;
    }
    if (batch) {
        pool.batch_quanta = batch;
    }
    policy_apply();

    if (!socket_lock(socket_path, &err)) {
        error_report_err(err);
        return EXIT_FAILURE;
    }
    /* the lock says no other daemon owns the path: a socket there is stale */
    unlink(socket_path);
    addr.u.q_unix.path = (char *)socket_path;
    listener = qio_net_listener_new();
    qio_net_listener_set_name(listener, "pvgpu-pool-listener");
    if (qio_net_listener_open_sync(listener, &addr, 16, &err) < 0) {
        error_report_err(err);
        return EXIT_FAILURE;
    }
    qio_net_listener_set_client_func(listener, peer_accept, NULL, NULL);

    for (guint i = 0; i < qmp_paths->len; i++) {
        g_autofree char *label = g_strdup_printf("qmp%u", i);
        g_autofree char *spec = g_strdup_printf("unix:%s,server=on,wait=off",
                                                (char *)qmp_paths->pdata[i]);
        Chardev *chr;

        unlink(qmp_paths->pdata[i]);
        chr = qemu_chr_new(label, spec, NULL);
        if (!chr) {
            error_report("--qmp %s: cannot listen there",
                         (char *)qmp_paths->pdata[i]);
            return EXIT_FAILURE;
        }
        monitor_init_qmp(chr, false, &error_fatal);
    }

    pool.reap_bh = qemu_bh_new(reap_bh, NULL);
    pool.pump_timer = timer_new_ns(QEMU_CLOCK_REALTIME, pump_timer_cb, NULL);
    pool.tick_timer = timer_new_ns(QEMU_CLOCK_REALTIME, tick_timer_cb, NULL);
    timer_mod(pool.tick_timer, get_clock() + TICK_NS);
    info_report("pool on %s, policy %s, quantum %" PRIu64 " us, grants of "
                "up to %" PRIu32 " quanta, state %s", socket_path,
                PvgpuPoolPolicy_str(pool.policy), pool.quantum_us,
                pool.batch_quanta, pool.state_path ?: "not kept");

    while (!exit_requested) {
        main_loop_wait(false);
    }

    qio_net_listener_disconnect(listener);
    object_unref(OBJECT(listener));
    unlink(socket_path);
    monitor_cleanup();
    qemu_chr_cleanup();
    return EXIT_SUCCESS;
}
