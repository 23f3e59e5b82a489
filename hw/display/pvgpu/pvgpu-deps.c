/*
 * pvgpu dependencies: what a request touches, and what queued work touches
 *
 * Pure C on GLib, see pvgpu-deps.h.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <glib.h>
#include <string.h>
#include "hw/display/pvgpu-deps.h"

static uint64_t dep_key(PvgpuDepKind kind, uint32_t id)
{
    return ((uint64_t)kind << 32) | id;
}

bool pvgpu_deps_has(const PvgpuDeps *d, PvgpuDepKind kind, uint32_t id)
{
    uint64_t key = dep_key(kind, id);

    for (unsigned i = 0; i < d->n; i++) {
        if (d->keys[i] == key) {
            return true;
        }
    }
    return false;
}

void pvgpu_deps_add(PvgpuDeps *d, PvgpuDepKind kind, uint32_t id)
{
    if (pvgpu_deps_has(d, kind, id)) {
        return;
    }
    if (d->n == d->size) {
        d->size = d->size ? d->size * 2 : 4;
        d->keys = g_renew(uint64_t, d->keys, d->size);
    }
    d->keys[d->n++] = dep_key(kind, id);
}

void pvgpu_deps_add_all(PvgpuDeps *d)
{
    d->all = true;
}

void pvgpu_deps_clear(PvgpuDeps *d)
{
    g_free(d->keys);
    memset(d, 0, sizeof(*d));
}

/* --- sets ----------------------------------------------------------- */

struct PvgpuDepSet {
    bool all;
    GHashTable *keys;       /* of uint64_t, owned */
};

PvgpuDepSet *pvgpu_dep_set_new(void)
{
    PvgpuDepSet *set = g_new0(PvgpuDepSet, 1);

    set->keys = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free,
                                      NULL);
    return set;
}

void pvgpu_dep_set_free(PvgpuDepSet *set)
{
    if (set) {
        g_hash_table_destroy(set->keys);
        g_free(set);
    }
}

void pvgpu_dep_set_add(PvgpuDepSet *set, const PvgpuDeps *d)
{
    set->all |= d->all;
    for (unsigned i = 0; i < d->n; i++) {
        if (!g_hash_table_contains(set->keys, &d->keys[i])) {
            g_hash_table_add(set->keys, g_memdup2(&d->keys[i],
                                                  sizeof(uint64_t)));
        }
    }
}

bool pvgpu_dep_set_overlaps(const PvgpuDepSet *set, const PvgpuDeps *d)
{
    if (set->all || (d->all && g_hash_table_size(set->keys))) {
        return true;
    }
    for (unsigned i = 0; i < d->n; i++) {
        if (g_hash_table_contains(set->keys, &d->keys[i])) {
            return true;
        }
    }
    return false;
}

/* --- counts --------------------------------------------------------- */

/* One key's count, overall or for one owner */
typedef struct DepCount {
    uint64_t key;
    uint32_t owner;         /* in the per-owner table only */
    unsigned count;
} DepCount;

struct PvgpuDepCounts {
    GHashTable *total;      /* &DepCount.key -> DepCount */
    GHashTable *own;        /* DepCount (key, owner) -> DepCount */
    unsigned all;           /* queued work that touches everything */
    unsigned items;         /* queued work in all */
};

static guint own_hash(gconstpointer p)
{
    const DepCount *c = p;

    return g_int64_hash(&c->key) ^ (c->owner * 0x9e3779b9u);
}

static gboolean own_equal(gconstpointer a, gconstpointer b)
{
    const DepCount *x = a, *y = b;

    return x->key == y->key && x->owner == y->owner;
}

PvgpuDepCounts *pvgpu_dep_counts_new(void)
{
    PvgpuDepCounts *c = g_new0(PvgpuDepCounts, 1);

    c->total = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL,
                                     g_free);
    c->own = g_hash_table_new_full(own_hash, own_equal, NULL, g_free);
    return c;
}

void pvgpu_dep_counts_free(PvgpuDepCounts *c)
{
    if (c) {
        g_hash_table_destroy(c->total);
        g_hash_table_destroy(c->own);
        g_free(c);
    }
}

static void count_up(GHashTable *t, uint64_t key, uint32_t owner, bool own)
{
    DepCount probe = { .key = key, .owner = owner };
    DepCount *e = g_hash_table_lookup(t, own ? (gpointer)&probe
                                             : (gpointer)&probe.key);

    if (!e) {
        e = g_memdup2(&probe, sizeof(probe));
        g_hash_table_insert(t, own ? (gpointer)e : (gpointer)&e->key, e);
    }
    e->count++;
}

/* Returns whether the count reached zero (the entry is gone). */
static bool count_down(GHashTable *t, uint64_t key, uint32_t owner, bool own)
{
    DepCount probe = { .key = key, .owner = owner };
    DepCount *e = g_hash_table_lookup(t, own ? (gpointer)&probe
                                             : (gpointer)&probe.key);

    g_assert(e && e->count);
    if (--e->count) {
        return false;
    }
    g_hash_table_remove(t, own ? (gpointer)e : (gpointer)&e->key);
    return true;
}

void pvgpu_dep_counts_add(PvgpuDepCounts *c, uint32_t owner,
                          const PvgpuDeps *d)
{
    c->items++;
    c->all += d->all;
    for (unsigned i = 0; i < d->n; i++) {
        count_up(c->total, d->keys[i], owner, false);
        count_up(c->own, d->keys[i], owner, true);
    }
}

bool pvgpu_dep_counts_remove(PvgpuDepCounts *c, uint32_t owner,
                             const PvgpuDeps *d)
{
    bool freed = d->all;

    g_assert(c->items && c->all >= d->all);
    c->items--;
    c->all -= d->all;
    for (unsigned i = 0; i < d->n; i++) {
        freed |= count_down(c->total, d->keys[i], owner, false);
        count_down(c->own, d->keys[i], owner, true);
    }
    /* work on everything waits for the last queued item */
    return freed || c->items == 0;
}

bool pvgpu_dep_counts_conflict(const PvgpuDepCounts *c, bool has_owner,
                               uint32_t owner, const PvgpuDeps *d)
{
    if (c->all || (d->all && c->items)) {
        return true;
    }
    for (unsigned i = 0; i < d->n; i++) {
        DepCount probe = { .key = d->keys[i], .owner = owner };
        const DepCount *t = g_hash_table_lookup(c->total, &probe.key);
        const DepCount *o;

        if (!t) {
            continue;
        }
        if (!has_owner) {
            return true;
        }
        o = g_hash_table_lookup(c->own, &probe);
        if (t->count > (o ? o->count : 0)) {
            return true;
        }
    }
    return false;
}

bool pvgpu_dep_counts_empty(const PvgpuDepCounts *c)
{
    return c->items == 0;
}

void pvgpu_dep_counts_clear(PvgpuDepCounts *c)
{
    g_hash_table_remove_all(c->total);
    g_hash_table_remove_all(c->own);
    c->all = 0;
    c->items = 0;
}
