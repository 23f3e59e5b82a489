/*
 * pvgpu-glinfo: print which GL implementation a DRM device gets.
 *
 * Opens a DRM node (default /dev/dri/card0, the node glmark2-es2-drm and
 * kmscube use), creates a GBM device on it, an EGL display on that and a
 * surfaceless OpenGL ES 3 context, and prints GL_VENDOR, GL_RENDERER and
 * GL_VERSION, one "NAME value" line each.  On a virtio-gpu with virgl the
 * renderer contains "virgl"; without 3D Mesa falls back to llvmpipe.
 *
 * Then, with an ES 3 context, it checks a persistently mapped buffer
 * (GL_EXT_buffer_storage): Mesa's virgl driver offers those only when the
 * device has host-visible memory, and backs them with host blobs the
 * guest maps (RESOURCE_MAP_BLOB).  The program writes through the mapping,
 * lets the GPU copy the buffer, reads the copy back and prints
 * "persistent-buffer ok", "... unsupported" or "... mismatch at N".
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
#define GL_EXTENSIONS 0x1F03
#define GL_COPY_READ_BUFFER  0x8F36
#define GL_COPY_WRITE_BUFFER 0x8F37
#define GL_STATIC_COPY       0x88E6
#define GL_MAP_READ_BIT      0x0001
#define GL_MAP_WRITE_BIT     0x0002
#define GL_MAP_PERSISTENT_BIT_EXT 0x0040
#define GL_MAP_COHERENT_BIT_EXT   0x0080

typedef const unsigned char *(*get_string_fn)(unsigned int name);
typedef void (*gen_buffers_fn)(int n, unsigned int *buffers);
typedef void (*bind_buffer_fn)(unsigned int target, unsigned int buffer);
typedef void (*buffer_storage_fn)(unsigned int target, long size,
                                  const void *data, unsigned int flags);
typedef void (*buffer_data_fn)(unsigned int target, long size,
                               const void *data, unsigned int usage);
typedef void *(*map_range_fn)(unsigned int target, long offset, long length,
                              unsigned int access);
typedef unsigned char (*unmap_fn)(unsigned int target);
typedef void (*copy_sub_fn)(unsigned int rtarget, unsigned int wtarget,
                            long roff, long woff, long size);
typedef void (*finish_fn)(void);

#define PERSISTENT_SIZE (256 * 1024)

/* Write through a persistent mapping, copy on the GPU, read the copy */
static void check_persistent_buffer(get_string_fn get_string)
{
    buffer_storage_fn storage =
        (buffer_storage_fn)eglGetProcAddress("glBufferStorageEXT");
    gen_buffers_fn gen = (gen_buffers_fn)eglGetProcAddress("glGenBuffers");
    bind_buffer_fn bind = (bind_buffer_fn)eglGetProcAddress("glBindBuffer");
    buffer_data_fn data =
        (buffer_data_fn)eglGetProcAddress("glBufferData");
    map_range_fn map = (map_range_fn)eglGetProcAddress("glMapBufferRange");
    unmap_fn unmap = (unmap_fn)eglGetProcAddress("glUnmapBuffer");
    copy_sub_fn copy =
        (copy_sub_fn)eglGetProcAddress("glCopyBufferSubData");
    finish_fn finish = (finish_fn)eglGetProcAddress("glFinish");
    const char *ext = (const char *)get_string(GL_EXTENSIONS);
    unsigned int buf[2];
    unsigned char *p;

    if (!ext || !strstr(ext, "GL_EXT_buffer_storage") || !storage) {
        printf("persistent-buffer unsupported\n");
        return;
    }
    gen(2, buf);
    bind(GL_COPY_READ_BUFFER, buf[0]);
    storage(GL_COPY_READ_BUFFER, PERSISTENT_SIZE, NULL,
            GL_MAP_READ_BIT | GL_MAP_WRITE_BIT | GL_MAP_PERSISTENT_BIT_EXT |
            GL_MAP_COHERENT_BIT_EXT);
    p = map(GL_COPY_READ_BUFFER, 0, PERSISTENT_SIZE,
            GL_MAP_READ_BIT | GL_MAP_WRITE_BIT | GL_MAP_PERSISTENT_BIT_EXT |
            GL_MAP_COHERENT_BIT_EXT);
    if (!p) {
        printf("persistent-buffer map-failed\n");
        return;
    }
    for (int i = 0; i < PERSISTENT_SIZE; i++) {
        p[i] = (unsigned char)(i * 7 + i / 4096);
    }
    bind(GL_COPY_WRITE_BUFFER, buf[1]);
    data(GL_COPY_WRITE_BUFFER, PERSISTENT_SIZE, NULL, GL_STATIC_COPY);
    copy(GL_COPY_READ_BUFFER, GL_COPY_WRITE_BUFFER, 0, 0, PERSISTENT_SIZE);
    finish();
    p = map(GL_COPY_WRITE_BUFFER, 0, PERSISTENT_SIZE, GL_MAP_READ_BIT);
    if (!p) {
        printf("persistent-buffer readback-failed\n");
        return;
    }
    for (int i = 0; i < PERSISTENT_SIZE; i++) {
        if (p[i] != (unsigned char)(i * 7 + i / 4096)) {
            printf("persistent-buffer mismatch at %d\n", i);
            unmap(GL_COPY_WRITE_BUFFER);
            return;
        }
    }
    unmap(GL_COPY_WRITE_BUFFER);
    printf("persistent-buffer ok\n");
}

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
        EGL_CONTEXT_CLIENT_VERSION, 3, EGL_NONE
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
    check_persistent_buffer(get_string);
    fflush(stdout);

    eglMakeCurrent(dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
    eglDestroyContext(dpy, ctx);
    eglTerminate(dpy);
    gbm_device_destroy(gbm);
    close(fd);
    return 0;
}
