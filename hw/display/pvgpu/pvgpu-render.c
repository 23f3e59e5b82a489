/*
 * pvgpu renderer interface: what the device calls, whichever backend
 * (pvgpu-virgl.c, pvgpu-pixman.c) a renderer is.  See pvgpu-render.h.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "hw/display/pvgpu-render.h"

void pvgpu_render_set_source(PvgpuRenderer *r, PvgpuRenderPullFn *pull,
                             PvgpuRenderRetireFn *retire, void *opaque)
{
    r->be->set_source(r, pull, retire, opaque);
}

void pvgpu_render_job_begin(PvgpuRenderJob *job)
{
    job->failed = false;
    job->iov_taken = false;
    job->cancelled = false;
    job->retired = false;
    job->sync = false;
}

void pvgpu_render_submit(PvgpuRenderer *r, PvgpuRenderJob *job)
{
    pvgpu_render_job_begin(job);
    r->be->submit(r, job);
}

bool pvgpu_render_run(PvgpuRenderer *r, PvgpuRenderJob *job)
{
    assert(!job->fence && !job->scheduled);
    pvgpu_render_job_begin(job);
    return r->be->run(r, job);
}

unsigned pvgpu_render_complete(PvgpuRenderer *r)
{
    return r->be->complete(r);
}

void pvgpu_render_kick(PvgpuRenderer *r)
{
    r->be->kick(r);
}

void pvgpu_render_reset(PvgpuRenderer *r, bool keep_memory)
{
    r->be->reset(r, keep_memory);
}

void pvgpu_render_free(PvgpuRenderer *r)
{
    pvgpu_render_free_later(r, 0);
}

void pvgpu_render_free_later(PvgpuRenderer *r, unsigned holds)
{
    if (r) {
        r->be->free_later(r, holds);
    }
}

void pvgpu_render_unhold(PvgpuRenderer *r)
{
    r->be->unhold(r);
}

unsigned pvgpu_render_capsets(PvgpuRenderer *r, const PvgpuCapset **capsets)
{
    return r->be->capsets(r, capsets);
}

const char *pvgpu_render_describe(PvgpuRenderer *r)
{
    return r->be->describe(r);
}

bool pvgpu_render_broken(PvgpuRenderer *r)
{
    g_autofree char *why = r->be->broken(r);

    return why != NULL;
}

char *pvgpu_render_broken_why(PvgpuRenderer *r)
{
    return r->be->broken(r);
}

bool pvgpu_render_process(PvgpuRenderer *r, int *pid, unsigned *restarts)
{
    return r->be->process && r->be->process(r, pid, restarts);
}

void pvgpu_render_job_clear(PvgpuRenderJob *job)
{
    for (unsigned i = 0; i < job->nreadbacks; i++) {
        PvgpuReadback *rb = &job->readbacks[i];

        g_free(rb->pixels);
        rb->pixels = NULL;
        if (rb->image) {
            pixman_image_unref(rb->image);
            rb->image = NULL;
        }
        /* only a readback that ran has a valid fd */
        if (rb->ok && rb->dmabuf.fd >= 0) {
            close(rb->dmabuf.fd);
            rb->dmabuf.fd = -1;
        }
    }
    job->nreadbacks = 0;
}
