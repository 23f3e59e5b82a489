/*
 * Unit tests for pvgpu's request dependencies, without QEMU
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <glib.h>

#include "hw/display/pvgpu-deps.h"

/* Keys are kept once; kinds with the same id are different keys. */
static void test_keys(void)
{
    PvgpuDeps d = { 0 };

    for (uint32_t i = 0; i < 100; i++) {
        pvgpu_deps_add(&d, PVGPU_DEP_RESOURCE, i % 10);
    }
    g_assert_cmpuint(d.n, ==, 10);
    pvgpu_deps_add(&d, PVGPU_DEP_CONTEXT, 3);
    pvgpu_deps_add(&d, PVGPU_DEP_SCANOUT, 3);
    pvgpu_deps_add(&d, PVGPU_DEP_CONTEXT, UINT32_MAX);
    g_assert_cmpuint(d.n, ==, 13);
    g_assert(pvgpu_deps_has(&d, PVGPU_DEP_RESOURCE, 3));
    g_assert(pvgpu_deps_has(&d, PVGPU_DEP_CONTEXT, 3));
    g_assert(pvgpu_deps_has(&d, PVGPU_DEP_SCANOUT, 3));
    g_assert(!pvgpu_deps_has(&d, PVGPU_DEP_SCANOUT, 4));
    g_assert(!pvgpu_deps_has(&d, PVGPU_DEP_RESOURCE, UINT32_MAX));
    pvgpu_deps_clear(&d);
    g_assert_cmpuint(d.n, ==, 0);
    g_assert(!pvgpu_deps_has(&d, PVGPU_DEP_RESOURCE, 3));
    pvgpu_deps_clear(&d);
}

/* What an earlier held request touches holds back what touches it too. */
static void test_set(void)
{
    PvgpuDepSet *set = pvgpu_dep_set_new();
    PvgpuDeps a = { 0 }, b = { 0 }, all = { 0 }, none = { 0 };

    pvgpu_deps_add(&a, PVGPU_DEP_RESOURCE, 7);
    pvgpu_deps_add(&a, PVGPU_DEP_CONTEXT, 1);
    pvgpu_deps_add(&b, PVGPU_DEP_CONTEXT, 2);
    pvgpu_deps_add_all(&all);
    /* empty: nothing is held back, not even work on everything */
    g_assert(!pvgpu_dep_set_overlaps(set, &a));
    g_assert(!pvgpu_dep_set_overlaps(set, &all));
    pvgpu_dep_set_add(set, &b);
    g_assert(!pvgpu_dep_set_overlaps(set, &a));
    g_assert(pvgpu_dep_set_overlaps(set, &b));
    g_assert(pvgpu_dep_set_overlaps(set, &all));
    g_assert(!pvgpu_dep_set_overlaps(set, &none));
    pvgpu_deps_add(&b, PVGPU_DEP_RESOURCE, 7);
    g_assert(pvgpu_dep_set_overlaps(set, &b));
    pvgpu_dep_set_add(set, &all);
    g_assert(pvgpu_dep_set_overlaps(set, &a));
    g_assert(pvgpu_dep_set_overlaps(set, &none));
    pvgpu_dep_set_free(set);
    pvgpu_deps_clear(&a);
    pvgpu_deps_clear(&b);
}

/*
 * Queued work counted per context: a barrier conflicts with anyone's, a
 * context's own work only with other contexts'; a key is free again once
 * its last queued item is taken out.
 */
static void test_counts(void)
{
    PvgpuDepCounts *c = pvgpu_dep_counts_new();
    PvgpuDeps ctx1 = { 0 }, ctx2 = { 0 }, shared = { 0 }, res9 = { 0 };
    PvgpuDeps all = { 0 };

    pvgpu_deps_add(&ctx1, PVGPU_DEP_CONTEXT, 1);
    pvgpu_deps_add(&ctx2, PVGPU_DEP_CONTEXT, 2);
    /* context 2's work on a resource context 1 also has attached */
    pvgpu_deps_add(&shared, PVGPU_DEP_CONTEXT, 2);
    pvgpu_deps_add(&shared, PVGPU_DEP_CONTEXT, 1);
    pvgpu_deps_add(&res9, PVGPU_DEP_RESOURCE, 9);
    pvgpu_deps_add_all(&all);

    g_assert(pvgpu_dep_counts_empty(c));
    g_assert(!pvgpu_dep_counts_conflict(c, false, 0, &all));
    pvgpu_dep_counts_add(c, 1, &ctx1);
    pvgpu_dep_counts_add(c, 1, &ctx1);
    g_assert(!pvgpu_dep_counts_empty(c));
    /* barriers */
    g_assert(pvgpu_dep_counts_conflict(c, false, 0, &ctx1));
    g_assert(pvgpu_dep_counts_conflict(c, false, 0, &shared));
    g_assert(!pvgpu_dep_counts_conflict(c, false, 0, &ctx2));
    g_assert(!pvgpu_dep_counts_conflict(c, false, 0, &res9));
    g_assert(pvgpu_dep_counts_conflict(c, false, 0, &all));
    /* context work */
    g_assert(!pvgpu_dep_counts_conflict(c, true, 1, &ctx1));
    g_assert(!pvgpu_dep_counts_conflict(c, true, 2, &ctx2));
    g_assert(pvgpu_dep_counts_conflict(c, true, 2, &shared));
    pvgpu_dep_counts_add(c, 2, &shared);
    g_assert(pvgpu_dep_counts_conflict(c, true, 1, &ctx1));

    /* taken out one by one; the last one of a key frees it */
    g_assert(pvgpu_dep_counts_remove(c, 2, &shared));
    g_assert(!pvgpu_dep_counts_conflict(c, true, 1, &ctx1));
    g_assert(!pvgpu_dep_counts_remove(c, 1, &ctx1));
    g_assert(pvgpu_dep_counts_conflict(c, false, 0, &ctx1));
    g_assert(pvgpu_dep_counts_remove(c, 1, &ctx1));
    g_assert(!pvgpu_dep_counts_conflict(c, false, 0, &ctx1));
    g_assert(pvgpu_dep_counts_empty(c));

    /* queued work on everything conflicts with anything */
    pvgpu_dep_counts_add(c, 0, &all);
    g_assert(pvgpu_dep_counts_conflict(c, true, 2, &res9));
    pvgpu_dep_counts_add(c, 3, &res9);
    pvgpu_dep_counts_clear(c);
    g_assert(pvgpu_dep_counts_empty(c));
    g_assert(!pvgpu_dep_counts_conflict(c, false, 0, &res9));
    pvgpu_dep_counts_free(c);
    pvgpu_deps_clear(&ctx1);
    pvgpu_deps_clear(&ctx2);
    pvgpu_deps_clear(&shared);
    pvgpu_deps_clear(&res9);
}

/*
 * Random work in and out: the counts agree with a brute-force look at
 * what is queued.
 */
static void test_counts_random(void)
{
    PvgpuDepCounts *c = pvgpu_dep_counts_new();
    struct {
        uint32_t owner;
        PvgpuDeps d;
    } q[64];
    unsigned n = 0;
    GRand *r = g_rand_new_with_seed(42);

    for (int step = 0; step < 20000; step++) {
        PvgpuDeps probe = { 0 };
        uint32_t owner = g_rand_int_range(r, 1, 5);
        bool expect = false, expect_other = false;

        for (int k = g_rand_int_range(r, 0, 4); k > 0; k--) {
            pvgpu_deps_add(&probe, g_rand_int_range(r, 0, 3),
                           g_rand_int_range(r, 0, 6));
        }
        for (unsigned i = 0; i < n; i++) {
            for (unsigned k = 0; k < probe.n; k++) {
                for (unsigned j = 0; j < q[i].d.n; j++) {
                    if (q[i].d.keys[j] == probe.keys[k]) {
                        expect = true;
                        expect_other |= q[i].owner != owner;
                    }
                }
            }
        }
        g_assert_cmpint(pvgpu_dep_counts_conflict(c, false, 0, &probe), ==,
                        expect);
        g_assert_cmpint(pvgpu_dep_counts_conflict(c, true, owner, &probe),
                        ==, expect_other);
        if (n < G_N_ELEMENTS(q) && (n == 0 || g_rand_boolean(r))) {
            q[n].owner = owner;
            q[n].d = probe;
            pvgpu_dep_counts_add(c, owner, &probe);
            n++;
        } else {
            unsigned i = g_rand_int_range(r, 0, n);

            pvgpu_dep_counts_remove(c, q[i].owner, &q[i].d);
            pvgpu_deps_clear(&q[i].d);
            q[i] = q[--n];
            pvgpu_deps_clear(&probe);
        }
        g_assert_cmpint(pvgpu_dep_counts_empty(c), ==, n == 0);
    }
    while (n) {
        pvgpu_deps_clear(&q[--n].d);
    }
    g_rand_free(r);
    pvgpu_dep_counts_free(c);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/pvgpu-deps/keys", test_keys);
    g_test_add_func("/pvgpu-deps/set", test_set);
    g_test_add_func("/pvgpu-deps/counts", test_counts);
    g_test_add_func("/pvgpu-deps/counts-random", test_counts_random);
    return g_test_run();
}
