/*
 * pvgpu-glinfo: print which GL implementation a DRM device gets.
 *
 * Opens a DRM node (default /dev/dri/card0, the node glmark2-es2-drm and
 * kmscube use), creates a GBM device on it, an EGL display on that and a
 * surfaceless OpenGL ES 2 context, and prints GL_VENDOR, GL_RENDERER and
 * GL_VERSION, one "NAME value" line each.  On a virtio-gpu with virgl the
 * renderer contains "virgl"; without 3D Mesa falls back to llvmpipe.
 *
 * The guest's root filesystem has eglinfo (mesa-utils-bin 8.5.0), but that
 * version creates no context, so it cannot tell GL_RENDERER.
 *
 * Built on the host (Debian 12, same libraries as the guest's rootfs) by
 * scripts/mkguest-gl.sh.  Links only libEGL and libgbm; the GL entry
 * points come from eglGetProcAddress.
 *
 * Copyright (c) 2026 pvgpu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <EGL/egl.h>
#include <EGL/eglext.h>
#include <fcntl.h>
#include <gbm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GL_VENDOR   0x1F00
#define GL_RENDERER 0x1F01
#define GL_VERSION  0x1F02

typedef const unsigned char *(*get_string_fn)(unsigned int name);

static int fail(const char *what)
{
    fprintf(stderr, "pvgpu-glinfo: %s failed (EGL error 0x%x)\n", what,
            eglGetError());
    return 1;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "/dev/dri/card0";
    static const EGLint ctx_attrs[] = {
        EGL_CONTEXT_CLIENT_VERSION, 2, EGL_NONE
    };
    static const EGLint cfg_attrs[] = {
        EGL_RENDERABLE_TYPE, EGL_OPENGL_ES2_BIT, EGL_NONE
    };
    EGLDisplay dpy;
    EGLContext ctx;
    EGLConfig cfg = (EGLConfig)0;      /* EGL_NO_CONFIG_KHR */
    EGLint major, minor, n;
    struct gbm_device *gbm;
    get_string_fn get_string;
    int fd;

    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    gbm = gbm_create_device(fd);
    if (!gbm) {
        fprintf(stderr, "pvgpu-glinfo: gbm_create_device(%s) failed\n", path);
        return 1;
    }
    printf("gbm-backend %s\n", gbm_device_get_backend_name(gbm));

    dpy = eglGetPlatformDisplay(EGL_PLATFORM_GBM_KHR, gbm, NULL);
    if (dpy == EGL_NO_DISPLAY) {
        return fail("eglGetPlatformDisplay(GBM)");
    }
    if (!eglInitialize(dpy, &major, &minor)) {
        return fail("eglInitialize");
    }
    printf("egl-version %d.%d\n", major, minor);
    printf("egl-vendor %s\n", eglQueryString(dpy, EGL_VENDOR));
    if (!eglBindAPI(EGL_OPENGL_ES_API)) {
        return fail("eglBindAPI");
    }

    /* Prefer a config-less context; fall back to any ES2 config. */
    if (!strstr(eglQueryString(dpy, EGL_EXTENSIONS),
                "EGL_KHR_no_config_context") &&
        !strstr(eglQueryString(dpy, EGL_EXTENSIONS),
                "EGL_MESA_configless_context")) {
        if (!eglChooseConfig(dpy, cfg_attrs, &cfg, 1, &n) || n < 1) {
            return fail("eglChooseConfig");
        }
    }
    ctx = eglCreateContext(dpy, cfg, EGL_NO_CONTEXT, ctx_attrs);
    if (ctx == EGL_NO_CONTEXT) {
        return fail("eglCreateContext");
    }
    if (!eglMakeCurrent(dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, ctx)) {
        return fail("eglMakeCurrent (surfaceless)");
    }

    get_string = (get_string_fn)eglGetProcAddress("glGetString");
    if (!get_string) {
        return fail("eglGetProcAddress(glGetString)");
    }
    printf("gl-vendor %s\n", get_string(GL_VENDOR));
    printf("gl-renderer %s\n", get_string(GL_RENDERER));
    printf("gl-version %s\n", get_string(GL_VERSION));
    fflush(stdout);

    eglMakeCurrent(dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
    eglDestroyContext(dpy, ctx);
    eglTerminate(dpy);
    gbm_device_destroy(gbm);
    close(fd);
    return 0;
}
