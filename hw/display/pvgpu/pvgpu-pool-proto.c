/*
 * pvgpu pool protocol: encoding and checking (see pvgpu-pool-proto.h)
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <assert.h>
#include <string.h>

#include "hw/display/pvgpu-pool-proto.h"

#define STATS_FIXED     52
#define STATS_CTX       24

/* Payload length of each type; STATS is STATS_FIXED plus its array */
static const struct {
    const char *name;
    uint32_t len;
} types[] = {
    [PVGPU_POOL_HELLO] = { "HELLO", 12 + PVGPU_POOL_NAME_LEN },
    [PVGPU_POOL_DEMAND] = { "DEMAND", 0 },
    [PVGPU_POOL_RETURN] = { "RETURN", 16 },
    [PVGPU_POOL_STATS] = { "STATS", STATS_FIXED },
    [PVGPU_POOL_LIMIT_HIT] = { "LIMIT_HIT", 12 },
    [PVGPU_POOL_WELCOME] = { "WELCOME", 12 },
    [PVGPU_POOL_REFUSE] = { "REFUSE", PVGPU_POOL_REASON_LEN },
    [PVGPU_POOL_LIMITS] = { "LIMITS", 20 },
    [PVGPU_POOL_GRANT] = { "GRANT", 12 },
    [PVGPU_POOL_REVOKE] = { "REVOKE", 12 },
    [PVGPU_POOL_SHARE] = { "SHARE", 16 },
};

const char *pvgpu_pool_msg_name(PvgpuPoolMsgType type)
{
    if (type < sizeof(types) / sizeof(types[0]) && types[type].name) {
        return types[type].name;
    }
    return "unknown";
}

bool pvgpu_pool_name_valid(const char *s, size_t size)
{
    size_t n = strnlen(s, size);

    if (n == 0 || n == size) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x20 || s[i] > 0x7e) {
            return false;
        }
    }
    return true;
}

/* Little-endian cursor over a buffer whose size was checked before */
typedef struct Cursor {
    uint8_t *p;
    const uint8_t *q;
} Cursor;

static void put32(Cursor *c, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        *c->p++ = v >> (8 * i);
    }
}

static void put64(Cursor *c, uint64_t v)
{
    put32(c, v);
    put32(c, v >> 32);
}

static void putstr(Cursor *c, const char *s, size_t size)
{
    size_t n = strnlen(s, size);

    memcpy(c->p, s, n);
    memset(c->p + n, 0, size - n);
    c->p += size;
}

static uint32_t get32(Cursor *c)
{
    uint32_t v = 0;

    for (int i = 0; i < 4; i++) {
        v |= (uint32_t)*c->q++ << (8 * i);
    }
    return v;
}

static uint64_t get64(Cursor *c)
{
    uint64_t lo = get32(c);

    return lo | (uint64_t)get32(c) << 32;
}

static void getstr(Cursor *c, char *s, size_t size)
{
    memcpy(s, c->q, size);
    c->q += size;
}

static uint32_t payload_len(const PvgpuPoolMsg *m)
{
    uint32_t len = types[m->type].len;

    if (m->type == PVGPU_POOL_STATS) {
        len += m->u.stats.ncontexts * STATS_CTX;
    }
    return len;
}

/* The checks a message passes after decoding, and before encoding */
static const char *msg_check(const PvgpuPoolMsg *m)
{
    switch (m->type) {
    case PVGPU_POOL_HELLO:
        if (m->u.hello.version != PVGPU_POOL_PROTO_VERSION) {
            return "unsupported protocol version";
        }
        if (!pvgpu_pool_name_valid(m->u.hello.name,
                                   sizeof(m->u.hello.name))) {
            return "name empty, unterminated or not printable";
        }
        if (m->u.hello.reservation_pct > 100) {
            return "reservation above 100%";
        }
        return NULL;
    case PVGPU_POOL_RETURN:
        return m->u.ret.busy > 1 ? "busy is not 0 or 1" : NULL;
    case PVGPU_POOL_STATS:
        return m->u.stats.ncontexts > PVGPU_POOL_MAX_CONTEXTS ?
               "too many contexts" : NULL;
    case PVGPU_POOL_LIMIT_HIT:
        return m->u.limit_hit.limit >= PVGPU_POOL_WIRE__MAX ?
               "unknown limit" : NULL;
    case PVGPU_POOL_REFUSE:
        return pvgpu_pool_name_valid(m->u.refuse.reason,
                                     sizeof(m->u.refuse.reason)) ?
               NULL : "reason empty, unterminated or not printable";
    case PVGPU_POOL_SHARE:
        return m->u.share.share_ppm > 1000000 ? "share above 100%" : NULL;
    case PVGPU_POOL_DEMAND:
    case PVGPU_POOL_WELCOME:
    case PVGPU_POOL_LIMITS:
    case PVGPU_POOL_GRANT:
    case PVGPU_POOL_REVOKE:
        return NULL;
    }
    return "unknown message type";
}

size_t pvgpu_pool_msg_encode(const PvgpuPoolMsg *m, uint8_t *buf,
                             size_t size)
{
    Cursor c = { .p = buf };
    uint32_t len;

    if (msg_check(m)) {
        return 0;
    }
    len = payload_len(m);
    if (size < PVGPU_POOL_HDR_SIZE + len) {
        return 0;
    }
    put32(&c, m->type);         /* le16 type, le16 zero */
    put32(&c, len);
    switch (m->type) {
    case PVGPU_POOL_HELLO:
        put32(&c, m->u.hello.version);
        put32(&c, m->u.hello.pid);
        put32(&c, m->u.hello.reservation_pct);
        putstr(&c, m->u.hello.name, sizeof(m->u.hello.name));
        break;
    case PVGPU_POOL_DEMAND:
        break;
    case PVGPU_POOL_RETURN:
        put32(&c, m->u.ret.seq);
        put32(&c, m->u.ret.busy);
        put64(&c, m->u.ret.used_ns);
        break;
    case PVGPU_POOL_STATS:
        put64(&c, m->u.stats.hostmem);
        put64(&c, m->u.stats.submissions);
        put64(&c, m->u.stats.frames);
        put64(&c, m->u.stats.fence_p50_ns);
        put64(&c, m->u.stats.fence_p99_ns);
        put32(&c, m->u.stats.resources);
        put32(&c, m->u.stats.queued);
        put32(&c, m->u.stats.ncontexts);
        for (uint32_t i = 0; i < m->u.stats.ncontexts; i++) {
            const PvgpuPoolContextStats *cs = &m->u.stats.ctx[i];

            put32(&c, cs->ctx_id);
            put32(&c, cs->queued);
            put64(&c, cs->gpu_ns);
            put64(&c, cs->fence_p99_ns);
        }
        break;
    case PVGPU_POOL_LIMIT_HIT:
        put32(&c, m->u.limit_hit.limit);
        put64(&c, m->u.limit_hit.value);
        break;
    case PVGPU_POOL_WELCOME:
        put32(&c, m->u.welcome.vm_id);
        put64(&c, m->u.welcome.quantum_ns);
        break;
    case PVGPU_POOL_REFUSE:
        putstr(&c, m->u.refuse.reason, sizeof(m->u.refuse.reason));
        break;
    case PVGPU_POOL_LIMITS:
        put64(&c, m->u.limits.max_hostmem);
        put32(&c, m->u.limits.max_contexts);
        put32(&c, m->u.limits.max_resources);
        put32(&c, m->u.limits.max_fps);
        break;
    case PVGPU_POOL_GRANT:
    case PVGPU_POOL_REVOKE:
        put32(&c, m->u.grant.seq);
        put64(&c, m->u.grant.budget_ns);
        break;
    case PVGPU_POOL_SHARE:
        put32(&c, m->u.share.share_ppm);
        put32(&c, m->u.share.weight);
        put64(&c, m->u.share.gpu_ns);
        break;
    }
    return c.p - buf;
}

long pvgpu_pool_msg_decode(const uint8_t *buf, size_t len, PvgpuPoolMsg *m,
                           const char **why)
{
    Cursor c = { .q = buf };
    uint32_t word, plen, type;

    *why = NULL;
    if (len < PVGPU_POOL_HDR_SIZE) {
        return 0;
    }
    word = get32(&c);
    plen = get32(&c);
    type = word & 0xffff;
    if (word >> 16) {
        *why = "reserved header bits set";
        return -1;
    }
    if (type >= sizeof(types) / sizeof(types[0]) || !types[type].name) {
        *why = "unknown message type";
        return -1;
    }
    if (type == PVGPU_POOL_STATS ?
        plen < STATS_FIXED || (plen - STATS_FIXED) % STATS_CTX ||
        (plen - STATS_FIXED) / STATS_CTX > PVGPU_POOL_MAX_CONTEXTS :
        plen != types[type].len) {
        *why = "wrong payload length for its type";
        return -1;
    }
    if (len < PVGPU_POOL_HDR_SIZE + plen) {
        return 0;
    }

    memset(m, 0, sizeof(*m));
    m->type = type;
    switch (m->type) {
    case PVGPU_POOL_HELLO:
        m->u.hello.version = get32(&c);
        m->u.hello.pid = get32(&c);
        m->u.hello.reservation_pct = get32(&c);
        getstr(&c, m->u.hello.name, sizeof(m->u.hello.name));
        break;
    case PVGPU_POOL_DEMAND:
        break;
    case PVGPU_POOL_RETURN:
        m->u.ret.seq = get32(&c);
        m->u.ret.busy = get32(&c);
        m->u.ret.used_ns = get64(&c);
        break;
    case PVGPU_POOL_STATS:
        m->u.stats.hostmem = get64(&c);
        m->u.stats.submissions = get64(&c);
        m->u.stats.frames = get64(&c);
        m->u.stats.fence_p50_ns = get64(&c);
        m->u.stats.fence_p99_ns = get64(&c);
        m->u.stats.resources = get32(&c);
        m->u.stats.queued = get32(&c);
        m->u.stats.ncontexts = get32(&c);
        if (m->u.stats.ncontexts != (plen - STATS_FIXED) / STATS_CTX) {
            *why = "context count does not match the length";
            return -1;
        }
        for (uint32_t i = 0; i < m->u.stats.ncontexts; i++) {
            PvgpuPoolContextStats *cs = &m->u.stats.ctx[i];

            cs->ctx_id = get32(&c);
            cs->queued = get32(&c);
            cs->gpu_ns = get64(&c);
            cs->fence_p99_ns = get64(&c);
        }
        break;
    case PVGPU_POOL_LIMIT_HIT:
        m->u.limit_hit.limit = get32(&c);
        m->u.limit_hit.value = get64(&c);
        break;
    case PVGPU_POOL_WELCOME:
        m->u.welcome.vm_id = get32(&c);
        m->u.welcome.quantum_ns = get64(&c);
        break;
    case PVGPU_POOL_REFUSE:
        getstr(&c, m->u.refuse.reason, sizeof(m->u.refuse.reason));
        break;
    case PVGPU_POOL_LIMITS:
        m->u.limits.max_hostmem = get64(&c);
        m->u.limits.max_contexts = get32(&c);
        m->u.limits.max_resources = get32(&c);
        m->u.limits.max_fps = get32(&c);
        break;
    case PVGPU_POOL_GRANT:
    case PVGPU_POOL_REVOKE:
        m->u.grant.seq = get32(&c);
        m->u.grant.budget_ns = get64(&c);
        break;
    case PVGPU_POOL_SHARE:
        m->u.share.share_ppm = get32(&c);
        m->u.share.weight = get32(&c);
        m->u.share.gpu_ns = get64(&c);
        break;
    }
    *why = msg_check(m);
    return *why ? -1 : (long)(PVGPU_POOL_HDR_SIZE + plen);
}

size_t pvgpu_pool_reader_room(const PvgpuPoolReader *r)
{
    return sizeof(r->buf) - r->len;
}

void pvgpu_pool_reader_add(PvgpuPoolReader *r, const void *data, size_t n)
{
    assert(n <= pvgpu_pool_reader_room(r));
    memcpy(r->buf + r->len, data, n);
    r->len += n;
}

int pvgpu_pool_reader_next(PvgpuPoolReader *r, PvgpuPoolMsg *m,
                           const char **why)
{
    long len = pvgpu_pool_msg_decode(r->buf, r->len, m, why);

    if (len <= 0) {
        /* a message longer than the buffer is malformed: never waits */
        return len < 0 ? -1 : 0;
    }
    memmove(r->buf, r->buf + len, r->len - len);
    r->len -= len;
    return 1;
}
