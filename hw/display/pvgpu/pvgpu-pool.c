/*
 * pvgpu pool client (see pvgpu-pool.h, docs/pvgpu-pool.rst)
 *
 * The grant is a gate on all of the device's renderer work: while the
 * device is a member, its render thread pulls scheduled work and the main
 * loop dispatches control commands only while it holds a grant whose
 * time is not up.  A grant is measured in wall-clock time from its
 * arrival: with every member's work gated, the holder has the GPU to
 * itself, so its time is its GPU time, whatever part of it a renderer
 * does where (llvmpipe renders a frame when it is read back, not when it
 * is submitted).  The grant goes back (RETURN) when its time is up and
 * nothing runs, or when the device has nothing left to run.  A pool that
 * stops talking (PVGPU_POOL_SILENCE_MS) is left as a closed one is: a
 * hung daemon must not stall its members, nor fill their sockets until
 * the main loop blocks in a write.  Everything but pvgpu_pool_may_run()
 * runs in the main loop.
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

    PvgpuPoolMemberState state;
    char *reason;
    PvgpuPoolReader in;
    QEMUTimer *stats_timer;
    QEMUTimer *grant_timer;     /* the grant's time is up */
    QEMUTimer *retry_timer;     /* refused: ask again */
    PvgpuPoolBounds limits;     /* the latest LIMITS */
    double share;
    uint32_t weight;
    bool demanded;              /* the pool knows we want a grant */
    uint32_t seq;
    int64_t start_ns;           /* when the grant came */
    uint64_t grants;
    int64_t heard_ms;           /* when the pool last sent anything */

    /* the gate, read by the render thread */
    QemuMutex lock;
    bool gated;                 /* a member: work waits for grants */
    bool granted;
    int64_t deadline_ns;        /* the grant's time is up then */
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

/* Ask the device how busy it is, and act on it */
static void pool_poll(PvgpuPool *p)
{
    unsigned running, waiting;

    p->ops->load(p->opaque, &running, &waiting);
    pvgpu_pool_update(p, running, waiting);
}

static void pool_grant_timer(void *opaque)
{
    pool_poll(opaque);
}

/* Leave or join the gate; the device runs what it holds if it opened */
static void pool_set_gated(PvgpuPool *p, bool gated)
{
    qemu_mutex_lock(&p->lock);
    p->gated = gated;
    p->granted = false;
    qemu_mutex_unlock(&p->lock);
    p->demanded = false;
    timer_del(p->grant_timer);
    if (gated) {
        /* joining: whatever waits needs a grant */
        pool_poll(p);
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
        if (p->state == PVGPU_POOL_MEMBER_STATE_JOINING ||
            p->state == PVGPU_POOL_MEMBER_STATE_REFUSED) {
            info_report("pvgpu: %s joined its GPU pool", p->name);
            pool_set_state(p, PVGPU_POOL_MEMBER_STATE_MEMBER, NULL);
            timer_mod(p->stats_timer,
                      qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 1000);
        }
        return;
    case PVGPU_POOL_REFUSE:
        if (p->state != PVGPU_POOL_MEMBER_STATE_REFUSED ||
            g_strcmp0(p->reason, m->u.refuse.reason)) {
            warn_report("pvgpu: the GPU pool refused %s: %s; asking again "
                        "every %d s", p->name, m->u.refuse.reason,
                        PVGPU_POOL_RETRY_MS / 1000);
        }
        pool_set_state(p, PVGPU_POOL_MEMBER_STATE_REFUSED,
                       m->u.refuse.reason);
        timer_mod(p->retry_timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) +
                                  PVGPU_POOL_RETRY_MS);
        return;
    case PVGPU_POOL_LIMITS:
        p->limits = m->u.limits;
        p->ops->limits_changed(p->opaque);
        return;
    case PVGPU_POOL_GRANT: {
        int64_t now = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);

        if (!p->gated || p->granted) {
            return;
        }
        p->seq = m->u.grant.seq;
        p->start_ns = now;
        p->demanded = false;
        p->grants++;
        qemu_mutex_lock(&p->lock);
        p->granted = true;
        p->deadline_ns = now + MIN(m->u.grant.budget_ns, INT64_MAX / 2);
        qemu_mutex_unlock(&p->lock);
        timer_mod(p->grant_timer, p->deadline_ns);
        p->ops->wake(p->opaque);
        /* a grant for work that ran in the previous one goes back now */
        pool_poll(p);
        return;
    }
    case PVGPU_POOL_REVOKE:
        if (p->granted && p->seq == m->u.grant.seq) {
            qemu_mutex_lock(&p->lock);
            p->deadline_ns = MIN(p->deadline_ns,
                                 p->start_ns + (int64_t)MIN(
                                     m->u.grant.budget_ns, INT64_MAX / 2));
            qemu_mutex_unlock(&p->lock);
            timer_mod(p->grant_timer, p->deadline_ns);
        }
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

    return pvgpu_pool_reader_room(&p->in);
}

static void pool_read(void *opaque, const uint8_t *buf, int size)
{
    PvgpuPool *p = opaque;
    PvgpuPoolMsg m;
    const char *why;
    int ret;

    p->heard_ms = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    pvgpu_pool_reader_add(&p->in, buf, size);
    while ((ret = pvgpu_pool_reader_next(&p->in, &m, &why))) {
        if (ret < 0) {
            warn_report("pvgpu: %s: malformed message from the GPU pool "
                        "(%s); leaving it", p->name, why);
            p->in.len = 0;
            qemu_chr_fe_disconnect(p->chr);
            return;
        }
        pool_message(p, &m);
    }
}

/* Ask to join: who we are, what we want reserved */
static void pool_hello(PvgpuPool *p)
{
    PvgpuPoolMsg m = { .type = PVGPU_POOL_HELLO };

    m.u.hello.version = PVGPU_POOL_PROTO_VERSION;
    m.u.hello.pid = getpid();
    m.u.hello.reservation_pct = p->reservation;
    pstrcpy(m.u.hello.name, sizeof(m.u.hello.name), p->name);
    pool_send(p, &m);
}

/* Refused: ask again (the state stays refused, with its reason, until
 * the pool answers) */
static void pool_retry_timer(void *opaque)
{
    PvgpuPool *p = opaque;

    if (p->state == PVGPU_POOL_MEMBER_STATE_REFUSED) {
        pool_hello(p);
    }
}

static void pool_event(void *opaque, QEMUChrEvent event)
{
    PvgpuPool *p = opaque;

    switch (event) {
    case CHR_EVENT_OPENED:
        p->in.len = 0;
        pool_set_state(p, PVGPU_POOL_MEMBER_STATE_JOINING, NULL);
        pool_hello(p);
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
        timer_del(p->retry_timer);
        memset(&p->limits, 0, sizeof(p->limits));
        p->ops->limits_changed(p->opaque);
        break;
    default:
        break;
    }
}

/* Once a second while a member: statistics, and is the pool alive? */
static void pool_stats_timer(void *opaque)
{
    PvgpuPool *p = opaque;
    PvgpuPoolMsg m = { .type = PVGPU_POOL_STATS };
    int64_t now = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);

    if (p->state != PVGPU_POOL_MEMBER_STATE_MEMBER) {
        return;
    }
    if (now - p->heard_ms > PVGPU_POOL_SILENCE_MS) {
        warn_report("pvgpu: %s: its GPU pool has not answered for %" PRId64
                    " ms; leaving it, scheduling on its own", p->name,
                    now - p->heard_ms);
        /* CHR_EVENT_CLOSED opens the gate; the chardev reconnects */
        qemu_chr_fe_disconnect(p->chr);
        return;
    }
    p->ops->stats(p->opaque, &m);
    pool_send(p, &m);
    timer_mod(p->stats_timer, now + 1000);
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
    qemu_mutex_init(&p->lock);
    p->stats_timer = timer_new_ms(QEMU_CLOCK_REALTIME, pool_stats_timer, p);
    p->grant_timer = timer_new_ns(QEMU_CLOCK_REALTIME, pool_grant_timer, p);
    p->retry_timer = timer_new_ms(QEMU_CLOCK_REALTIME, pool_retry_timer, p);
    qemu_chr_fe_set_handlers(chr, pool_can_read, pool_read, pool_event, NULL,
                             p, NULL, true);
    return p;
}

void pvgpu_pool_free(PvgpuPool *p)
{
    qemu_chr_fe_set_handlers(p->chr, NULL, NULL, NULL, NULL, NULL, NULL,
                             true);
    timer_free(p->stats_timer);
    timer_free(p->grant_timer);
    timer_free(p->retry_timer);
    qemu_mutex_destroy(&p->lock);
    g_free(p->reason);
    g_free(p->name);
    g_free(p);
}

bool pvgpu_pool_may_run(PvgpuPool *p)
{
    bool ok;

    qemu_mutex_lock(&p->lock);
    ok = !p->gated ||
         (p->granted &&
          qemu_clock_get_ns(QEMU_CLOCK_REALTIME) < p->deadline_ns);
    qemu_mutex_unlock(&p->lock);
    return ok;
}

void pvgpu_pool_update(PvgpuPool *p, unsigned running, unsigned waiting)
{
    int64_t now = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
    PvgpuPoolMsg m = { 0 };

    if (!p->gated) {
        return;
    }
    if (p->granted) {
        /* time up, or nothing left to use it for, and nothing running */
        if (running || (waiting && now < p->deadline_ns)) {
            return;
        }
        qemu_mutex_lock(&p->lock);
        p->granted = false;
        qemu_mutex_unlock(&p->lock);
        timer_del(p->grant_timer);
        m.type = PVGPU_POOL_RETURN;
        m.u.ret.seq = p->seq;
        m.u.ret.used_ns = now - p->start_ns;
        m.u.ret.busy = waiting > 0;
        p->demanded = waiting > 0;
        pool_send(p, &m);
    } else if (waiting && !p->demanded) {
        m.type = PVGPU_POOL_DEMAND;
        p->demanded = true;
        pool_send(p, &m);
    }
}

uint64_t pvgpu_pool_bound(PvgpuPool *p, PvgpuSetting which)
{
    switch (which) {
    case PVGPU_SETTING_MAX_HOSTMEM:
        return p->limits.max_hostmem;
    case PVGPU_SETTING_MAX_CONTEXTS:
        return p->limits.max_contexts;
    case PVGPU_SETTING_MAX_RESOURCES:
        return p->limits.max_resources;
    case PVGPU_SETTING_MAX_FPS:
        return p->limits.max_fps;
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
    m->max_hostmem = p->limits.max_hostmem;
    m->max_contexts = p->limits.max_contexts;
    m->max_resources = p->limits.max_resources;
    m->max_fps = p->limits.max_fps;
    return m;
}
