/*
 * Unit tests for the pvgpu pool protocol, without QEMU
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <glib.h>
#include <stdio.h>
#include <string.h>

#include "hw/display/pvgpu-pool-proto.h"

static void roundtrip(const PvgpuPoolMsg *m)
{
    uint8_t buf[PVGPU_POOL_MAX_MSG_SIZE];
    size_t len = pvgpu_pool_msg_encode(m, buf, sizeof(buf));
    PvgpuPoolMsg d;
    const char *why;

    g_assert_cmpuint(len, >=, PVGPU_POOL_HDR_SIZE);
    /* every prefix is "not yet" */
    for (size_t i = 0; i < len; i++) {
        g_assert_cmpint(pvgpu_pool_msg_decode(buf, i, &d, &why), ==, 0);
    }
    g_assert_cmpint(pvgpu_pool_msg_decode(buf, len, &d, &why), ==, len);
    g_assert_null(why);
    g_assert_cmpint(d.type, ==, m->type);
    /* the encoding of what was decoded is the same bytes */
    {
        uint8_t again[PVGPU_POOL_MAX_MSG_SIZE];

        g_assert_cmpuint(pvgpu_pool_msg_encode(&d, again, sizeof(again)), ==,
                         len);
        g_assert(memcmp(buf, again, len) == 0);
    }
}

static void test_roundtrip(void)
{
    PvgpuPoolMsg m = { .type = PVGPU_POOL_HELLO };

    m.u.hello.version = PVGPU_POOL_PROTO_VERSION;
    m.u.hello.pid = 4242;
    m.u.hello.reservation_pct = 30;
    strcpy(m.u.hello.name, "vm-1");
    roundtrip(&m);

    m = (PvgpuPoolMsg) { .type = PVGPU_POOL_DEMAND };
    roundtrip(&m);
    m = (PvgpuPoolMsg) { .type = PVGPU_POOL_RETURN };
    m.u.ret.seq = 7;
    m.u.ret.busy = 1;
    m.u.ret.used_ns = 1ull << 40;
    roundtrip(&m);

    m = (PvgpuPoolMsg) { .type = PVGPU_POOL_STATS };
    m.u.stats.hostmem = 123456789;
    m.u.stats.frames = 60;
    m.u.stats.fence_p99_ns = 8000000;
    for (uint32_t n = 0; n <= PVGPU_POOL_MAX_CONTEXTS; n += 21) {
        m.u.stats.ncontexts = n;
        for (uint32_t i = 0; i < n; i++) {
            m.u.stats.ctx[i].ctx_id = i + 1;
            m.u.stats.ctx[i].gpu_ns = i * 1000ull;
        }
        roundtrip(&m);
    }
    m.u.stats.ncontexts = PVGPU_POOL_MAX_CONTEXTS;
    roundtrip(&m);

    m = (PvgpuPoolMsg) { .type = PVGPU_POOL_LIMIT_HIT };
    m.u.limit_hit.limit = PVGPU_POOL_WIRE_CONTEXTS;
    m.u.limit_hit.value = 4;
    roundtrip(&m);
    m = (PvgpuPoolMsg) { .type = PVGPU_POOL_WELCOME };
    m.u.welcome.quantum_ns = 2000000;
    roundtrip(&m);
    m = (PvgpuPoolMsg) { .type = PVGPU_POOL_REFUSE };
    strcpy(m.u.refuse.reason, "no room");
    roundtrip(&m);
    m = (PvgpuPoolMsg) { .type = PVGPU_POOL_LIMITS };
    m.u.limits.max_hostmem = 1ull << 33;
    m.u.limits.max_fps = 30;
    roundtrip(&m);
    m = (PvgpuPoolMsg) { .type = PVGPU_POOL_GRANT };
    m.u.grant.seq = 1;
    m.u.grant.budget_ns = 32000000;
    roundtrip(&m);
    m.type = PVGPU_POOL_REVOKE;
    roundtrip(&m);
    m = (PvgpuPoolMsg) { .type = PVGPU_POOL_SHARE };
    m.u.share.share_ppm = 1000000;
    roundtrip(&m);
}

/* Nothing invalid is encoded: the same checks as decoding */
static void test_encode_refuses(void)
{
    uint8_t buf[PVGPU_POOL_MAX_MSG_SIZE];
    PvgpuPoolMsg m = { .type = PVGPU_POOL_HELLO };

    m.u.hello.version = PVGPU_POOL_PROTO_VERSION;
    g_assert_cmpuint(pvgpu_pool_msg_encode(&m, buf, sizeof(buf)), ==, 0);
    strcpy(m.u.hello.name, "bad\tname");
    g_assert_cmpuint(pvgpu_pool_msg_encode(&m, buf, sizeof(buf)), ==, 0);
    strcpy(m.u.hello.name, "ok");
    m.u.hello.reservation_pct = 101;
    g_assert_cmpuint(pvgpu_pool_msg_encode(&m, buf, sizeof(buf)), ==, 0);
    m.u.hello.reservation_pct = 100;
    g_assert_cmpuint(pvgpu_pool_msg_encode(&m, buf, 20), ==, 0);
    g_assert_cmpuint(pvgpu_pool_msg_encode(&m, buf, sizeof(buf)), >, 0);
    m = (PvgpuPoolMsg) { .type = PVGPU_POOL_STATS };
    m.u.stats.ncontexts = PVGPU_POOL_MAX_CONTEXTS + 1;
    g_assert_cmpuint(pvgpu_pool_msg_encode(&m, buf, sizeof(buf)), ==, 0);
    m = (PvgpuPoolMsg) { .type = 99 };
    g_assert_cmpuint(pvgpu_pool_msg_encode(&m, buf, sizeof(buf)), ==, 0);
}

static long decode_hex(const char *hex, const char **why)
{
    uint8_t buf[PVGPU_POOL_MAX_MSG_SIZE] = { 0 };
    size_t n = 0;
    PvgpuPoolMsg m;

    for (; hex[0] && hex[1]; hex += 2) {
        unsigned v;

        g_assert(sscanf(hex, "%2x", &v) == 1);
        buf[n++] = v;
    }
    return pvgpu_pool_msg_decode(buf, n, &m, why);
}

static void test_malformed(void)
{
    const char *why;

    /* unknown type 999 */
    g_assert_cmpint(decode_hex("e703000000000000", &why), ==, -1);
    g_assert_cmpstr(why, ==, "unknown message type");
    /* type 0, type 6 (between the ranges) */
    g_assert_cmpint(decode_hex("0000000000000000", &why), ==, -1);
    g_assert_cmpint(decode_hex("0600000000000000", &why), ==, -1);
    /* reserved header bits */
    g_assert_cmpint(decode_hex("0200010000000000", &why), ==, -1);
    g_assert_cmpstr(why, ==, "reserved header bits set");
    /* DEMAND with a payload */
    g_assert_cmpint(decode_hex("0200000004000000", &why), ==, -1);
    g_assert_cmpstr(why, ==, "wrong payload length for its type");
    /* a huge length is refused before waiting for it */
    g_assert_cmpint(decode_hex("04000000ffffffff", &why), ==, -1);
    /* RETURN with busy 2 */
    g_assert_cmpint(decode_hex("0300000010000000" "01000000" "02000000"
                               "0000000000000000", &why), ==, -1);
    g_assert_cmpstr(why, ==, "busy is not 0 or 1");
    /* STATS whose count disagrees with its length */
    g_assert_cmpint(decode_hex("0400000034000000"
                               "0000000000000000" "0000000000000000"
                               "0000000000000000" "0000000000000000"
                               "0000000000000000" "00000000" "00000000"
                               "01000000", &why), ==, -1);
    g_assert_cmpstr(why, ==, "context count does not match the length");
}

/* Random bytes never crash the decoder; what it accepts re-encodes */
static void test_random(void)
{
    GRand *r = g_rand_new_with_seed(42);
    uint8_t buf[PVGPU_POOL_MAX_MSG_SIZE];
    unsigned accepted = 0;

    for (int i = 0; i < 200000; i++) {
        size_t n = g_rand_int_range(r, 0, sizeof(buf));
        PvgpuPoolMsg m;
        const char *why;
        long len;

        for (size_t j = 0; j < n; j++) {
            buf[j] = g_rand_int(r);
        }
        /* plausible headers often enough to reach the payload checks */
        if (n >= 8 && g_rand_boolean(r)) {
            static const uint8_t types[] = { 1, 2, 3, 4, 5, 16, 17, 18, 19,
                                             20, 21 };
            static const uint8_t lens[] = { 76, 0, 16, 52, 12, 12, 128, 20,
                                            12, 12, 16 };
            int t = g_rand_int_range(r, 0, sizeof(types));

            buf[0] = types[t];
            buf[1] = buf[2] = buf[3] = 0;
            buf[4] = lens[t];
            buf[5] = buf[6] = buf[7] = 0;
        }
        len = pvgpu_pool_msg_decode(buf, n, &m, &why);
        g_assert(len >= -1 && len <= (long)n);
        g_assert((len < 0) == (why != NULL));
        if (len > 0) {
            uint8_t again[PVGPU_POOL_MAX_MSG_SIZE];

            accepted++;
            g_assert_cmpuint(pvgpu_pool_msg_encode(&m, again, sizeof(again)),
                             ==, len);
        }
    }
    g_assert_cmpuint(accepted, >, 1000);
    g_rand_free(r);
}

/* A stream of messages fed a byte at a time comes out whole, in order */
static void test_reader(void)
{
    PvgpuPoolReader r = { 0 };
    uint8_t stream[4 * PVGPU_POOL_MAX_MSG_SIZE];
    size_t n = 0, fed = 0;
    unsigned got = 0;
    PvgpuPoolMsg m = { .type = PVGPU_POOL_GRANT }, out;
    const char *why;

    for (uint32_t i = 0; i < 3; i++) {
        m.u.grant.seq = i;
        n += pvgpu_pool_msg_encode(&m, stream + n, sizeof(stream) - n);
    }
    m = (PvgpuPoolMsg) { .type = PVGPU_POOL_STATS };
    m.u.stats.ncontexts = PVGPU_POOL_MAX_CONTEXTS;
    n += pvgpu_pool_msg_encode(&m, stream + n, sizeof(stream) - n);
    while (fed < n) {
        g_assert_cmpuint(pvgpu_pool_reader_room(&r), >, 0);
        pvgpu_pool_reader_add(&r, stream + fed++, 1);
        while (pvgpu_pool_reader_next(&r, &out, &why) == 1) {
            if (got < 3) {
                g_assert_cmpint(out.type, ==, PVGPU_POOL_GRANT);
                g_assert_cmpuint(out.u.grant.seq, ==, got);
            } else {
                g_assert_cmpint(out.type, ==, PVGPU_POOL_STATS);
            }
            got++;
        }
    }
    g_assert_cmpuint(got, ==, 4);
    g_assert_cmpuint(r.len, ==, 0);
    /* garbage is refused, not waited for */
    pvgpu_pool_reader_add(&r, "\xff\xff\0\0\0\0\0\0", 8);
    g_assert_cmpint(pvgpu_pool_reader_next(&r, &out, &why), ==, -1);
    g_assert_nonnull(why);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/pvgpu-pool-proto/roundtrip", test_roundtrip);
    g_test_add_func("/pvgpu-pool-proto/encode-refuses", test_encode_refuses);
    g_test_add_func("/pvgpu-pool-proto/malformed", test_malformed);
    g_test_add_func("/pvgpu-pool-proto/random", test_random);
    g_test_add_func("/pvgpu-pool-proto/reader", test_reader);
    return g_test_run();
}
