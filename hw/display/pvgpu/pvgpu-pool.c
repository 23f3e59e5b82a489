/*
 * pvgpu pool client (see pvgpu-pool.h, docs/pvgpu-pool.rst)
 *
 * The grant is a gate on the device's scheduled work: while the device
 * is a member, its render thread pulls work only while it holds a grant
 * with budget left, and hands the grant back (RETURN) when the budget is
 * spent or it has nothing left to run.  Messages go out from the main
 * loop: the render thread only flips the gate and schedules a bottom
 * half.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qemu/thread.h"
#include "qemu/timer.h"
#include "chardev/char.h"
#include "hw/display/pvgpu-pool.h"
#include "trace.h"

struct PvgpuPool {
    CharBackend *chr;
    char *name;
    uint32_t reservation;
    const PvgpuPoolOps *ops;
    void *opaque;

    /* main loop only */
    PvgpuPoolMemberState state;
    char *reason;
    uint8_t in[PVGPU_POOL_MAX_MSG_SIZE];
    size_t in_len;
    QEMUBH *bh;
    QEMUTimer *stats_timer;
    PvgpuPoolMsg limits;
    double share;
    uint32_t weight;

    /* the gate: lock guards what the render thread touches */
    QemuMutex lock;
    bool gated;                 /* a member: work waits for grants */
    bool granted;
    uint32_t seq;
    uint64_t budget_ns, used_ns;
    uint64_t grants;
    bool ret_pending;           /* a grant ended: RETURN to send */
    uint32_t ret_seq;
    uint64_t ret_used;
    bool ret_busy;
    bool demanded;              /* the pool knows we want a grant */
    bool want;                  /* work queued since */
};

static void pool_send(PvgpuPool *p, const PvgpuPoolMsg *m)
{
    uint8_t buf[PVGPU_POOL_MAX_MSG_SIZE];
    size_t len = pvgpu_pool_msg_encode(m, buf, sizeof(buf));

    assert(len);
    trace_pvgpu_pool_send(pvgpu_pool_msg_name(m->type));
    /* small messages to a local socket; a failure shows as CLOSED */
    qemu_chr_fe_write_all(p->chr, buf, len);
}

/* Main loop: send what the gate has to say */
static void pool_bh(void *opaque)
{
    PvgpuPool *p = opaque;
    PvgpuPoolMsg ret = { .type = PVGPU_POOL_RETURN };
    bool send_ret = false, send_demand = false;

    qemu_mutex_lock(&p->lock);
    if (p->gated && p->ret_pending) {
        ret.u.ret.seq = p->ret_seq;
        ret.u.ret.used_ns = p->ret_used;
        ret.u.ret.busy = p->ret_busy || p->want;
        p->demanded = ret.u.ret.busy;
        send_ret = true;
    } else if (p->gated && !p->granted && !p->demanded && p->want) {
        p->demanded = true;
        send_demand = true;
    }
    p->ret_pending = false;
    p->want = false;
    qemu_mutex_unlock(&p->lock);

    if (send_ret) {
        pool_send(p, &ret);
    }
    if (send_demand) {
        PvgpuPoolMsg m = { .type = PVGPU_POOL_DEMAND };

        pool_send(p, &m);
    }
}

/* Leave or join the gate; the render thread pulls if it opened */
static void pool_set_gated(PvgpuPool *p, bool gated)
{
    qemu_mutex_lock(&p->lock);
    p->gated = gated;
    p->granted = false;
    p->ret_pending = false;
    p->demanded = false;
    /* joining: whatever is queued needs a grant */
    p->want = gated;
    qemu_mutex_unlock(&p->lock);
    if (gated) {
        qemu_bh_schedule(p->bh);
    } else {
        p->ops->wake(p->opaque);
    }
}

static void pool_set_state(PvgpuPool *p, PvgpuPoolMemberState state,
                           const char *reason)
{
    if (state != p->state) {
        trace_pvgpu_pool_state(p->name, PvgpuPoolMemberState_str(state),
                               reason ?: "");
    }
    p->state = state;
    g_free(p->reason);
    p->reason = g_strdup(reason);
    pool_set_gated(p, state == PVGPU_POOL_MEMBER_STATE_MEMBER);
}

static void pool_message(PvgpuPool *p, const PvgpuPoolMsg *m)
{
    trace_pvgpu_pool_recv(pvgpu_pool_msg_name(m->type));
    switch (m->type) {
    case PVGPU_POOL_WELCOME:
        if (p->state == PVGPU_POOL_MEMBER_STATE_JOINING) {
            info_report("pvgpu: %s joined its GPU pool", p->name);
            pool_set_state(p, PVGPU_POOL_MEMBER_STATE_MEMBER, NULL);
            timer_mod(p->stats_timer,
                      qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 1000);
        }
        return;
    case PVGPU_POOL_REFUSE:
        warn_report("pvgpu: the GPU pool refused %s: %s", p->name,
                    m->u.refuse.reason);
        pool_set_state(p, PVGPU_POOL_MEMBER_STATE_REFUSED,
                       m->u.refuse.reason);
        return;
    case PVGPU_POOL_LIMITS:
        p->limits = *m;
        p->ops->limits_changed(p->opaque);
        return;
    case PVGPU_POOL_GRANT:
        qemu_mutex_lock(&p->lock);
        if (p->gated) {
            p->granted = true;
            p->seq = m->u.grant.seq;
            p->budget_ns = m->u.grant.budget_ns;
            p->used_ns = 0;
            p->demanded = false;
            p->grants++;
        }
        qemu_mutex_unlock(&p->lock);
        p->ops->wake(p->opaque);
        return;
    case PVGPU_POOL_REVOKE:
        qemu_mutex_lock(&p->lock);
        if (p->granted && p->seq == m->u.grant.seq) {
            p->budget_ns = MIN(p->budget_ns, m->u.grant.budget_ns);
        }
        qemu_mutex_unlock(&p->lock);
        /*
         * Spent already: the grant ends at the completion of what runs,
         * or at the render thread's next pull if nothing does
         */
        p->ops->wake(p->opaque);
        return;
    case PVGPU_POOL_SHARE:
        p->share = m->u.share.share_ppm / 10000.0;
        p->weight = m->u.share.weight;
        return;
    default:
        /* a message of a device: the peer is not a pool */
        warn_report("pvgpu: %s: the GPU pool sent %s; leaving it", p->name,
                    pvgpu_pool_msg_name(m->type));
        qemu_chr_fe_disconnect(p->chr);
        return;
    }
}

static int pool_can_read(void *opaque)
{
    PvgpuPool *p = opaque;

    return sizeof(p->in) - p->in_len;
}

static void pool_read(void *opaque, const uint8_t *buf, int size)
{
    PvgpuPool *p = opaque;
    size_t off = 0;

    assert(size <= sizeof(p->in) - p->in_len);
    memcpy(p->in + p->in_len, buf, size);
    p->in_len += size;
    for (;;) {
        PvgpuPoolMsg m;
        const char *why;
        long len = pvgpu_pool_msg_decode(p->in + off, p->in_len - off, &m,
                                         &why);

        if (len == 0) {
            break;
        }
        if (len < 0) {
            warn_report("pvgpu: %s: malformed message from the GPU pool "
                        "(%s); leaving it", p->name, why);
            p->in_len = 0;
            qemu_chr_fe_disconnect(p->chr);
            return;
        }
        off += len;
        pool_message(p, &m);
    }
    memmove(p->in, p->in + off, p->in_len - off);
    p->in_len -= off;
}

static void pool_event(void *opaque, QEMUChrEvent event)
{
    PvgpuPool *p = opaque;
    PvgpuPoolMsg m = { .type = PVGPU_POOL_HELLO };

    switch (event) {
    case CHR_EVENT_OPENED:
        p->in_len = 0;
        pool_set_state(p, PVGPU_POOL_MEMBER_STATE_JOINING, NULL);
        m.u.hello.version = PVGPU_POOL_PROTO_VERSION;
        m.u.hello.pid = getpid();
        m.u.hello.reservation_pct = p->reservation;
        pstrcpy(m.u.hello.name, sizeof(m.u.hello.name), p->name);
        pool_send(p, &m);
        break;
    case CHR_EVENT_CLOSED:
        if (p->state == PVGPU_POOL_MEMBER_STATE_MEMBER) {
            warn_report("pvgpu: %s: lost its GPU pool; scheduling on its "
                        "own", p->name);
        }
        if (p->state != PVGPU_POOL_MEMBER_STATE_REFUSED) {
            pool_set_state(p, PVGPU_POOL_MEMBER_STATE_DISCONNECTED, NULL);
        }
        timer_del(p->stats_timer);
        memset(&p->limits, 0, sizeof(p->limits));
        p->ops->limits_changed(p->opaque);
        break;
    default:
        break;
    }
}

static void pool_stats_timer(void *opaque)
{
    PvgpuPool *p = opaque;
    PvgpuPoolMsg m = { .type = PVGPU_POOL_STATS };

    if (p->state != PVGPU_POOL_MEMBER_STATE_MEMBER) {
        return;
    }
    p->ops->stats(p->opaque, &m);
    pool_send(p, &m);
    timer_mod(p->stats_timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 1000);
}

PvgpuPool *pvgpu_pool_new(CharBackend *chr, const char *name,
                          uint32_t reservation_pct, const PvgpuPoolOps *ops,
                          void *opaque)
{
    PvgpuPool *p = g_new0(PvgpuPool, 1);

    p->chr = chr;
    p->name = g_strdup(name);
    p->reservation = reservation_pct;
    p->ops = ops;
    p->opaque = opaque;
    p->state = PVGPU_POOL_MEMBER_STATE_DISCONNECTED;
    p->limits.type = PVGPU_POOL_LIMITS;
    qemu_mutex_init(&p->lock);
    p->bh = qemu_bh_new(pool_bh, p);
    p->stats_timer = timer_new_ms(QEMU_CLOCK_REALTIME, pool_stats_timer, p);
    qemu_chr_fe_set_handlers(chr, pool_can_read, pool_read, pool_event, NULL,
                             p, NULL, true);
    return p;
}

void pvgpu_pool_free(PvgpuPool *p)
{
    qemu_chr_fe_set_handlers(p->chr, NULL, NULL, NULL, NULL, NULL, NULL,
                             true);
    timer_free(p->stats_timer);
    qemu_bh_delete(p->bh);
    qemu_mutex_destroy(&p->lock);
    g_free(p->reason);
    g_free(p->name);
    g_free(p);
}

/* The grant is over: RETURN it (from the bottom half); lock held */
static void grant_end(PvgpuPool *p, unsigned queued)
{
    p->granted = false;
    p->ret_pending = true;
    p->ret_seq = p->seq;
    p->ret_used = p->used_ns;
    p->ret_busy = queued;
    qemu_bh_schedule(p->bh);
}

bool pvgpu_pool_may_run(PvgpuPool *p, unsigned queued, unsigned running)
{
    bool ok;

    qemu_mutex_lock(&p->lock);
    if (p->gated && p->granted && !running &&
        (p->used_ns >= p->budget_ns || !queued)) {
        /*
         * Nothing runs whose completion would end it: spent (a REVOKE
         * came), or nothing to spend it on (the work it was asked for ran
         * in an earlier grant)
         */
        grant_end(p, queued);
    }
    ok = !p->gated || (p->granted && p->used_ns < p->budget_ns);
    qemu_mutex_unlock(&p->lock);
    return ok;
}

void pvgpu_pool_charge(PvgpuPool *p, uint64_t gpu_ns, unsigned queued)
{
    qemu_mutex_lock(&p->lock);
    if (p->gated && p->granted) {
        p->used_ns += gpu_ns;
        /* spent, or nothing left to spend it on: hand the GPU on */
        if (p->used_ns >= p->budget_ns || !queued) {
            grant_end(p, queued);
        }
    }
    qemu_mutex_unlock(&p->lock);
}

void pvgpu_pool_demand(PvgpuPool *p)
{
    bool ask;

    qemu_mutex_lock(&p->lock);
    ask = p->gated && !p->granted && !p->demanded;
    if (ask) {
        p->want = true;
    }
    qemu_mutex_unlock(&p->lock);
    if (ask) {
        pool_bh(p);
    }
}

uint64_t pvgpu_pool_bound(PvgpuPool *p, PvgpuSetting which)
{
    switch (which) {
    case PVGPU_SETTING_MAX_HOSTMEM:
        return p->limits.u.limits.max_hostmem;
    case PVGPU_SETTING_MAX_CONTEXTS:
        return p->limits.u.limits.max_contexts;
    case PVGPU_SETTING_MAX_RESOURCES:
        return p->limits.u.limits.max_resources;
    case PVGPU_SETTING_MAX_FPS:
        return p->limits.u.limits.max_fps;
    default:
        return 0;
    }
}

void pvgpu_pool_limit_hit(PvgpuPool *p, PvgpuSetting which, uint64_t value)
{
    PvgpuPoolMsg m = { .type = PVGPU_POOL_LIMIT_HIT };

    if (p->state != PVGPU_POOL_MEMBER_STATE_MEMBER) {
        return;
    }
    switch (which) {
    case PVGPU_SETTING_MAX_HOSTMEM:
        m.u.limit_hit.limit = PVGPU_POOL_WIRE_HOSTMEM;
        break;
    case PVGPU_SETTING_MAX_CONTEXTS:
        m.u.limit_hit.limit = PVGPU_POOL_WIRE_CONTEXTS;
        break;
    case PVGPU_SETTING_MAX_RESOURCES:
        m.u.limit_hit.limit = PVGPU_POOL_WIRE_RESOURCES;
        break;
    default:
        return;
    }
    m.u.limit_hit.value = value;
    pool_send(p, &m);
}

PvgpuPoolMember *pvgpu_pool_info(PvgpuPool *p)
{
    PvgpuPoolMember *m = g_new0(PvgpuPoolMember, 1);

    m->chardev = g_strdup(p->chr->chr ? p->chr->chr->label : "");
    m->name = g_strdup(p->name);
    m->state = p->state;
    m->reason = g_strdup(p->reason);
    m->share = p->share;
    m->weight = p->weight;
    qemu_mutex_lock(&p->lock);
    m->granted = p->granted;
    m->grants = p->grants;
    qemu_mutex_unlock(&p->lock);
    m->max_hostmem = p->limits.u.limits.max_hostmem;
    m->max_contexts = p->limits.u.limits.max_contexts;
    m->max_resources = p->limits.u.limits.max_resources;
    m->max_fps = p->limits.u.limits.max_fps;
    return m;
}
