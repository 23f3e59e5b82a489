#!/usr/bin/env python3
#
# Copyright (c) 2026 pvgpu authors
# SPDX-License-Identifier: GPL-2.0-or-later

r"""Boot the GL test guest (scripts/mkguest-gl.sh) on a virtio-gpu device and
run 3D workloads in it: the guest's PID 1 (tests/guest/init-gl) reports
the driver binding, the DRM features and the GL renderer, runs
glmark2-es2-drm and kmscube and reports their numbers in "PVGPU:" lines
on the serial port.  Prints TAP; --json writes the numbers.

  xvfb-run -a -s '-screen 0 1024x768x24' tests/guest/gl-guest.py \
      --qemu build/qemu-system-x86_64 --guest "$(scripts/mkguest-gl.sh)" \
      --device virtio-gpu-gl-pci,xres=800,yres=600 --display sdl,gl=on

QEMU's virtio-gpu-gl needs a GL display (sdl,gl=on under Xvfb here, as
there is no /dev/dri for egl-headless).  Every wait has a timeout."""

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time

from harness import (QMP, QemuExited, Serial, Tap, check_power_off,
                     gl_guest_cmd)


def kv(text):
    """'a=1 b=x y' -> {'a': '1', 'b': 'x y'}: values run to the next key."""
    out = {}
    for m in re.finditer(r'(\S+?)=(.*?)(?=\s+\S+?=|$)', text):
        out[m.group(1)] = m.group(2)
    return out


def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def parse(reports):
    """Turn the guest's PVGPU lines into a dict."""
    res = {'gpu_driver': None, 'gpu_pci': None, 'drm_card': None,
           'modes': None, 'drm_features': None, 'virgl_3d': None,
           'gl': {}, 'glmark2': {'scenes': [], 'score': None,
                                 'renderer': None, 'surface': None,
                                 'rc': None, 'seconds': None,
                                 'errors': []},
           'kmscube': {'frames': None, 'seconds': None, 'fps': None,
                       'renderer': None, 'rc': None,
                       'wall_seconds': None}}
    g = res['glmark2']
    k = res['kmscube']
    for r in reports:
        word, _, rest = r.partition(' ')
        if word == 'gpu-driver':
            res['gpu_driver'] = rest
        elif word == 'gpu-pci':
            res['gpu_pci'] = rest
        elif word == 'drm-card':
            res['drm_card'] = rest
        elif word == 'modes':
            res['modes'] = rest
        elif word == 'drm-features':
            res['drm_features'] = rest
        elif word == 'virgl-3d':
            res['virgl_3d'] = rest == 'enabled'
        elif word in ('gbm-backend', 'egl-version', 'egl-vendor',
                      'gl-vendor', 'gl-renderer', 'gl-version',
                      'persistent-buffer'):
            res['gl'][word.replace('-', '_')] = rest
        elif word == 'glmark2-renderer':
            g['renderer'] = rest
        elif word == 'glmark2-surface':
            g['surface'] = rest
        elif word == 'glmark2-scene':
            name, _, fields = rest.partition(' ')
            opts = fields.split(' options=', 1)
            f = kv(opts[0])
            g['scenes'].append({
                'name': name,
                'options': opts[1] if len(opts) > 1 else '',
                'fps': num(f.get('fps')),
                'frametime_ms': num(f.get('frametime-ms'))})
        elif word == 'glmark2-score':
            g['score'] = num(rest)
        elif word == 'glmark2-error':
            g['errors'].append(rest)
        elif word == 'glmark2-done':
            f = kv(rest)
            g['rc'] = f.get('rc')
            g['seconds'] = num(f.get('seconds'))
        elif word == 'kmscube-renderer':
            k['renderer'] = rest
        elif word == 'kmscube':
            f = kv(rest)
            k['frames'] = num(f.get('frames'))
            k['seconds'] = num(f.get('seconds'))
            k['fps'] = num(f.get('fps'))
        elif word == 'kmscube-done':
            f = kv(rest)
            k['rc'] = f.get('rc')
            k['wall_seconds'] = num(f.get('seconds'))
    if k['frames'] is not None:
        k['frames'] = int(k['frames'])
    return res


DEFAULT_SCENES = ('build:use-vbo=true:duration=3,texture:duration=3,'
                  'shading:duration=3')


def main():
    ap = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--qemu', required=True)
    ap.add_argument('--guest', required=True,
                    help='directory with vmlinuz, initrd.img, rootfs.ext4 '
                         '(scripts/mkguest-gl.sh prints it)')
    ap.add_argument('--device', default='virtio-gpu-gl-pci,xres=800,yres=600')
    ap.add_argument('--display', default='none',
                    help="QEMU -display, e.g. none or sdl,gl=on")
    ap.add_argument('--json', help='write the results here')
    ap.add_argument('--mode', default='800x600',
                    help='display mode pinned with drm.edid_firmware '
                         '(a kernel built-in EDID: 800x600, 1024x768, '
                         '1280x1024, 1600x1200, 1680x1050, 1920x1080)')
    ap.add_argument('--scenes', default=DEFAULT_SCENES,
                    help='comma separated glmark2 -b benchmarks, or none')
    ap.add_argument('--kmscube-frames', type=int, default=120,
                    help='kmscube frame count (0 skips kmscube)')
    ap.add_argument('--memory', default='1G')
    ap.add_argument('--smp', type=int, default=1)
    ap.add_argument('--boot-timeout', type=float, default=300)
    ap.add_argument('--workload-timeout', type=float, default=300,
                    help='limit for each guest workload, in seconds')
    ap.add_argument('--timeout', type=float, default=1500,
                    help='limit for the whole run, in seconds')
    ap.add_argument('--serial-log', help='keep the serial log here')
    ap.add_argument('--screenshot',
                    help='save a PNG of the display (QMP screendump) this '
                         'long into glmark2: PATH[:SECONDS], default 6 s.  '
                         "QEMU cannot screendump virtio-gpu-gl's GL "
                         "scanouts ('no surface')")
    ap.add_argument('--qemu-arg', action='append', default=[],
                    help='extra QEMU argument (repeatable)')
    ap.add_argument('--render-process', action='store_true',
                    help='guest RAM a shared memfd and render-process=on: '
                         'virglrenderer runs in pvgpu-render; checks it')
    ap.add_argument('--crash-renderer', type=float, metavar='SECONDS',
                    help='with --render-process: crash the render process '
                         '(SIGSEGV) this long into glmark2, then check that '
                         'QEMU and the guest run on, the loss reported')
    args = ap.parse_args()

    start = time.monotonic()
    deadline = start + args.timeout

    def left(limit):
        return max(0.0, min(limit, deadline - time.monotonic()))

    guest = os.path.abspath(args.guest)
    for f in ('vmlinuz', 'initrd.img', 'rootfs.ext4'):
        if not os.path.exists(os.path.join(guest, f)):
            print(f'Bail out! {guest}/{f} missing: run scripts/mkguest-gl.sh')
            return 1
    device = args.device
    if not re.search(r'(^|,)id=', device):
        device += ',id=gpu0'
    if args.crash_renderer is not None and not args.render_process:
        ap.error('--crash-renderer needs --render-process')
    if args.render_process:
        device += ',render-process=on'
    gpu_id = re.search(r'(?:^|,)id=([^,]+)', device).group(1)
    nscenes = 0 if args.scenes == 'none' else len(args.scenes.split(','))
    if args.scenes != 'none' and (' ' in args.scenes or not args.scenes):
        ap.error('--scenes: comma separated, no spaces')

    tap = Tap()
    tmp = tempfile.mkdtemp(prefix='pvgpu-gl-guest-')
    qmp_path = os.path.join(tmp, 'qmp.sock')
    ser_path = os.path.join(tmp, 'serial.sock')
    log_path = args.serial_log or os.path.join(tmp, 'serial.log')
    err_path = os.path.join(tmp, 'qemu.stderr')
    append = ['console=ttyS0', 'loglevel=4', 'panic=-1',
              f'drm.edid_firmware=edid/{args.mode}.bin',
              f'pvgpu.glmark2={args.scenes}',
              f'pvgpu.kmscube={args.kmscube_frames}',
              f'pvgpu.timeout={int(args.workload_timeout)}']
    cmd = gl_guest_cmd(args.qemu, guest, append, device, ser_path,
                       [qmp_path], memory=args.memory, smp=args.smp,
                       display=args.display, extra=args.qemu_arg,
                       shared_ram=args.render_process)
    print('# ' + shlex.join(cmd), flush=True)
    errf = open(err_path, 'wb')
    qemu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stderr=errf)
    serial = None
    qmp = None
    times = {}
    res = parse([])
    try:
        serial = Serial(ser_path, qemu, log_path)
        try:
            qmp = QMP(qmp_path, qemu)
        except (OSError, ValueError, RuntimeError) as e:
            print(f'# no QMP: {e}', flush=True)

        r = serial.wait_for(('init-gl', 'stage1-failed'),
                            left(args.boot_timeout))
        times['boot'] = time.monotonic() - start
        if not tap.check(r is not None and r.startswith('init-gl'),
                         'guest booted to init-gl on the ext4 root',
                         f"{times['boot']:.1f} s" if r else
                         'no init-gl report' if r is None else r):
            raise SystemExit

        r = serial.wait_for('glinfo-done', left(180))
        res = parse(serial.reports)
        tap.check(res['gpu_driver'] == 'virtio_gpu',
                  'virtio_gpu bound to the GPU',
                  f"{res['gpu_driver']} on {res['gpu_pci']}")
        tap.check(res['drm_card'] is not None and
                  res['drm_card'].endswith(' virtio_gpu'),
                  'DRM device card0 is driven by virtio_gpu',
                  str(res['drm_card']))
        first_mode = (res['modes'] or '').split(' ')[1:2]
        tap.check(first_mode == [args.mode],
                  f'connector offers {args.mode} first (pinned EDID)',
                  str(res['modes']))
        tap.check(res['virgl_3d'] is True,
                  'virtio_gpu reports virgl 3D acceleration',
                  f"features: {res['drm_features']}")
        if 'hostmem=' in args.device:
            feats = (res['drm_features'] or '').split()
            tap.check('+resource_blob' in feats and '+host_visible' in feats,
                      'virtio_gpu maps blobs through the hostmem BAR',
                      f"features: {res['drm_features']}")
        renderer = res['gl'].get('gl_renderer')
        tap.check(r is not None and renderer is not None and
                  'virgl' in renderer,
                  'GL_RENDERER contains virgl',
                  f'GL_RENDERER "{renderer}", GL_VERSION '
                  f"\"{res['gl'].get('gl_version')}\""
                  if renderer else (r or 'no glinfo report'))
        if 'hostmem=' in args.device:
            # Mesa offers persistent buffers only with host-visible memory
            # and backs them with host blobs mapped into the BAR
            pb = res['gl'].get('persistent_buffer')
            tap.check(pb == 'ok',
                      'a persistently mapped GL buffer round-trips through '
                      'the GPU (host blob, MAP_BLOB)', f'persistent-buffer {pb}')

        rp_pid = 0
        if args.render_process:
            info = qmp.cmd('query-pvgpu')[0] if qmp else {}
            rp_pid = info.get('render-process', {}).get('pid', 0)
            tap.check(rp_pid > 0 and info.get('virgl') is True,
                      'virglrenderer runs in a render process',
                      f"query-pvgpu render-process "
                      f"{info.get('render-process')}, virgl "
                      f"{info.get('virgl')}")

        if nscenes and args.crash_renderer is not None:
            if serial.wait_for('glmark2-start', left(60)) and rp_pid:
                time.sleep(min(args.crash_renderer, left(60)))
                os.kill(rp_pid, signal.SIGSEGV)
                print(f'# sent SIGSEGV to the render process {rp_pid}',
                      flush=True)
            r = serial.wait_for('glmark2-done',
                                left(args.workload_timeout + 60))
            g = parse(serial.reports)['glmark2']
            tap.check(r is not None and qemu.poll() is None,
                      'QEMU and the guest ran on after the render process '
                      'crashed', f"glmark2 rc {g['rc']}" if r
                      else 'no glmark2-done report')
            info = qmp.cmd('query-pvgpu')[0] if qmp else {}
            why = info.get('virgl-unavailable', '')
            tap.check(info.get('virgl') is False and
                      'was killed by signal' in why,
                      'query-pvgpu reports 3D lost and why', why)
            nscenes = 0

        if nscenes:
            if args.screenshot and qmp:
                path, _, delay = args.screenshot.partition(':')
                if serial.wait_for('glmark2-start', left(60)):
                    time.sleep(min(float(delay or 6), left(60)))
                    try:
                        qmp.cmd('screendump', device=gpu_id, format='png',
                                filename=os.path.abspath(path))
                        print(f'# screenshot saved to {path}', flush=True)
                    except (RuntimeError, OSError, EOFError) as e:
                        print(f'# screendump failed: {e}', flush=True)
            r = serial.wait_for('glmark2-done',
                                left(args.workload_timeout + 60))
            res = parse(serial.reports)
            g = res['glmark2']
            times['glmark2'] = g['seconds']
            tap.check(r is not None and g['rc'] == '0',
                      'glmark2-es2-drm ran and exited 0',
                      f"rc {g['rc']}, {g['seconds']} s, score {g['score']}, "
                      f"{g['surface']}" if r else 'no glmark2-done report')
            tap.check((g['surface'] or '').split(' ')[0] == args.mode,
                      f'glmark2 rendered at {args.mode}',
                      f"surface {g['surface']}")
            wanted = args.scenes.split(',')
            for i, want in enumerate(wanted):
                name = want.split(':')[0]
                got = g['scenes'][i] if i < len(g['scenes']) else None
                ok = (got is not None and got['name'] == name and
                      got['fps'] is not None and got['fps'] > 0)
                tap.check(ok, f'glmark2 scene {want} rendered frames',
                          f"{got['fps']:g} fps, {got['frametime_ms']} ms "
                          f"per frame" if got and got['fps'] is not None
                          else 'no result')

        if args.kmscube_frames > 0:
            r = serial.wait_for('kmscube-done',
                                left(args.workload_timeout + 60))
            res = parse(serial.reports)
            k = res['kmscube']
            times['kmscube'] = k['wall_seconds']
            # kmscube starts its clock after the first frame (shader
            # compilation), so it reports one frame less than -c asked for
            tap.check(r is not None and k['rc'] == '0' and
                      k['frames'] == args.kmscube_frames - 1,
                      f'kmscube rendered {args.kmscube_frames} frames',
                      f"{k['frames']} frames in {k['seconds']} s "
                      f"({k['fps']} fps), rc {k['rc']}" if r
                      else 'no kmscube-done report')

        check_power_off(tap, serial, qemu, left(120), left(60))
    except SystemExit:
        pass
    except (QemuExited, OSError, EOFError) as e:
        tap.check(False, 'QEMU and the guest ran to the end', repr(e))
    finally:
        if qemu.poll() is None:
            if qmp:
                try:
                    qmp.cmd('quit')
                except Exception:
                    pass
                try:
                    qemu.wait(10)
                except subprocess.TimeoutExpired:
                    pass
            if qemu.poll() is None:
                qemu.kill()
                qemu.wait()
        errf.close()
        with open(err_path, 'rb') as f:
            err = f.read().decode(errors='replace').strip()
        if err:
            lines = err.splitlines()
            if len(lines) > 40:
                lines = lines[:20] + ['...'] + lines[-20:]
            print('# qemu stderr: ' + '\n# '.join(lines), flush=True)
        if serial:
            res = parse(serial.reports)
        if (tap.failed or not tap.results) and os.path.exists(log_path):
            with open(log_path, 'rb') as f:
                tail = f.read()[-4000:].decode(errors='replace')
            print('# serial log tail:\n# ' + tail.replace('\n', '\n# '))
    total = time.monotonic() - start
    print(f'# total {total:.1f} s', flush=True)
    print(f'1..{len(tap.results)}')

    if args.json:
        out = {'device': args.device, 'display': args.display,
               'mode': args.mode, 'qemu': args.qemu,
               'command': cmd, 'boot_seconds': times.get('boot'),
               'total_seconds': round(total, 1),
               'passed': len(tap.results) - tap.failed,
               'failed': tap.failed, 'tap': tap.results}
        out.update(res)
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=2)
            f.write('\n')
    return 1 if tap.failed or not tap.results else 0


if __name__ == '__main__':
    sys.exit(main())
