/*
 * pvgpu pool protocol: the messages between a pvgpu device and pvgpu-poold
 *
 * Owns the wire format, and nothing else: framing, the fixed layout of
 * every message, and the checks a received message passes before either
 * side looks at it.  Pure C (no QEMU headers), like pvgpu-cmd.c, so that
 * tests/unit/ round-trips and fuzzes it.  docs/pvgpu-pool.rst describes
 * the exchange.
 *
 * A message is an 8-byte header (le16 type, le16 zero, le32 payload
 * length) and a payload whose length is fixed per type (STATS: fixed part
 * plus a counted array).  All integers are little-endian; strings are
 * fixed-size, NUL-terminated and printable ASCII.  Anything else is
 * malformed, and a malformed message ends the connection.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_DISPLAY_PVGPU_POOL_PROTO_H
#define HW_DISPLAY_PVGPU_POOL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PVGPU_POOL_PROTO_VERSION    1
#define PVGPU_POOL_NAME_LEN         64      /* with the NUL */
#define PVGPU_POOL_REASON_LEN       128     /* with the NUL */
#define PVGPU_POOL_MAX_CONTEXTS     64      /* per STATS message */
#define PVGPU_POOL_HDR_SIZE         8
#define PVGPU_POOL_MAX_MSG_SIZE     (PVGPU_POOL_HDR_SIZE + 64 + \
                                     PVGPU_POOL_MAX_CONTEXTS * 24)

/*
 * A member that has heard nothing from its pool for this long (the pool
 * sends SHARE every second) takes it for hung, disconnects and schedules
 * on its own until it can join again.
 */
#define PVGPU_POOL_SILENCE_MS   5000
/* A refused device asks again this often (capacity may have been freed) */
#define PVGPU_POOL_RETRY_MS     5000

typedef enum PvgpuPoolMsgType {
    /* device -> pool */
    PVGPU_POOL_HELLO = 1,       /* join: who I am */
    PVGPU_POOL_DEMAND,          /* I have scheduled work and no grant */
    PVGPU_POOL_RETURN,          /* my grant is over */
    PVGPU_POOL_STATS,           /* once a second: what I hold and do */
    PVGPU_POOL_LIMIT_HIT,       /* I refused a guest for a pool limit */
    /* pool -> device */
    PVGPU_POOL_WELCOME = 16,    /* joined */
    /* not admitted, and why; the device may say HELLO again later */
    PVGPU_POOL_REFUSE,
    PVGPU_POOL_LIMITS,          /* the pool's bounds on my own limits */
    PVGPU_POOL_GRANT,           /* you may use this much GPU time now */
    PVGPU_POOL_REVOKE,          /* shorten your grant */
    /*
     * once a second: your share; also the pool's heartbeat, a member that
     * hears nothing for PVGPU_POOL_SILENCE_MS leaves it
     */
    PVGPU_POOL_SHARE,
} PvgpuPoolMsgType;

/* What a LIMIT_HIT names (the order of QAPI's PvgpuPoolLimit) */
typedef enum PvgpuPoolWireLimit {
    PVGPU_POOL_WIRE_HOSTMEM,
    PVGPU_POOL_WIRE_CONTEXTS,
    PVGPU_POOL_WIRE_RESOURCES,
    PVGPU_POOL_WIRE__MAX,
} PvgpuPoolWireLimit;

typedef struct PvgpuPoolContextStats {
    uint32_t ctx_id;
    uint32_t queued;
    uint64_t gpu_ns;
    uint64_t fence_p99_ns;
} PvgpuPoolContextStats;

/* What a device reports once a second */
typedef struct PvgpuPoolStats {
    uint64_t hostmem;           /* bytes of resources held */
    uint64_t submissions;       /* scheduled work completed */
    uint64_t frames;            /* flushes presented */
    uint64_t fence_p50_ns;      /* of its worst context */
    uint64_t fence_p99_ns;
    uint32_t resources;
    uint32_t queued;
    uint32_t ncontexts;
    PvgpuPoolContextStats ctx[PVGPU_POOL_MAX_CONTEXTS];
} PvgpuPoolStats;

/* LIMITS: the pool's bounds on a VM's own limits; 0: the pool sets none */
typedef struct PvgpuPoolBounds {
    uint64_t max_hostmem;
    uint32_t max_contexts;
    uint32_t max_resources;
    uint32_t max_fps;
} PvgpuPoolBounds;

typedef struct PvgpuPoolMsg {
    PvgpuPoolMsgType type;
    union {
        struct {
            uint32_t version;
            uint32_t pid;
            uint32_t reservation_pct;   /* minimum share asked for */
            char name[PVGPU_POOL_NAME_LEN];
        } hello;
        struct {
            uint32_t seq;               /* of the grant */
            uint32_t busy;              /* still has work queued */
            uint64_t used_ns;           /* GPU time spent of the grant */
        } ret;
        PvgpuPoolStats stats;
        struct {
            uint32_t limit;             /* PvgpuPoolWireLimit */
            uint64_t value;             /* the limit that refused */
        } limit_hit;
        struct {
            uint32_t vm_id;
            uint64_t quantum_ns;
        } welcome;
        struct {
            char reason[PVGPU_POOL_REASON_LEN];
        } refuse;
        PvgpuPoolBounds limits;
        struct {
            uint32_t seq;
            uint64_t budget_ns;         /* GRANT: to spend; REVOKE: new total */
        } grant;
        struct {
            uint32_t share_ppm;         /* of the pool's GPU time, last 1 s */
            uint32_t weight;            /* effective, after reservations */
            uint64_t gpu_ns;            /* charged to the VM by the pool */
        } share;
    } u;
} PvgpuPoolMsg;

/*
 * Encode @m into @buf (PVGPU_POOL_MAX_MSG_SIZE bytes suffice).  Returns
 * the length, or 0 if @m is not valid (the same checks as decoding).
 */
size_t pvgpu_pool_msg_encode(const PvgpuPoolMsg *m, uint8_t *buf,
                             size_t size);

/*
 * Decode the message at the start of @buf.  Returns its length (> 0),
 * 0 if @len bytes do not hold all of it yet, or -1 if it is malformed;
 * then @why says why.
 */
long pvgpu_pool_msg_decode(const uint8_t *buf, size_t len, PvgpuPoolMsg *m,
                           const char **why);

/* Bytes received and not yet decoded, on either side of the socket */
typedef struct PvgpuPoolReader {
    uint8_t buf[PVGPU_POOL_MAX_MSG_SIZE];
    size_t len;
} PvgpuPoolReader;

/* How many more bytes @r takes now (never 0 after a message was taken) */
size_t pvgpu_pool_reader_room(const PvgpuPoolReader *r);
/* Append @n <= pvgpu_pool_reader_room() bytes */
void pvgpu_pool_reader_add(PvgpuPoolReader *r, const void *data, size_t n);
/*
 * Take the next whole message into @m: 1, or 0 if there is none yet, or
 * -1 if what @r holds is malformed (@why says why; the connection is
 * to be dropped).
 */
int pvgpu_pool_reader_next(PvgpuPoolReader *r, PvgpuPoolMsg *m,
                           const char **why);

const char *pvgpu_pool_msg_name(PvgpuPoolMsgType type);

/* A fixed-size string field: NUL-terminated, printable, not empty? */
bool pvgpu_pool_name_valid(const char *s, size_t size);

#endif /* HW_DISPLAY_PVGPU_POOL_PROTO_H */
