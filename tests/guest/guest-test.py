#!/usr/bin/env python3
#
# Copyright (c) 2026 pvgpu authors
# SPDX-License-Identifier: GPL-2.0-or-later

"""Boot the pvgpu test guest (scripts/mkguest.sh) headless and check, as an
operator would, that the stock virtio_gpu driver drives pvgpu: the
driver binds, DRM and fbcon come up, screendump shows the text console,
then the guest's demo pattern, and QEMU's VNC server shows the cursor
the guest set through DRM's cursor ioctl.  Prints TAP."""

import argparse
import os
import subprocess
import sys
import tempfile
import time

from harness import QMP, QemuExited, Serial, Tap, Vnc, check_power_off

BARS = [0xffffff, 0xffff00, 0x00ffff, 0x00ff00,
        0xff00ff, 0xff0000, 0x0000ff, 0x000000]


def read_ppm(path):
    with open(path, 'rb') as f:
        data = f.read()
    fields = []
    pos = 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    assert fields[0] == b'P6' and fields[3] == b'255'
    w, h = int(fields[1]), int(fields[2])
    return w, h, data[pos + 1:pos + 1 + w * h * 3]


def pixel(img, x, y):
    w, _, px = img
    i = (y * w + x) * 3
    return px[i] << 16 | px[i + 1] << 8 | px[i + 2]


def console_stats(img):
    w, h, px = img
    colours = set()
    lit = 0
    for i in range(0, len(px), 3 * 7):          # sample every 7th pixel
        c = px[i] << 16 | px[i + 1] << 8 | px[i + 2]
        colours.add(c)
        lit += c != 0
    return lit / (len(px) // (3 * 7)), len(colours)


def demo_matches(img):
    w, h, _ = img
    y = h // 3
    for i, colour in enumerate(BARS):
        if pixel(img, (2 * i + 1) * w // 16, y) != colour:
            return False
    # grey ramp: dark on the left, light on the right
    ramp_y = h * 5 // 6
    return pixel(img, 0, ramp_y) == 0 and pixel(img, w - 1, ramp_y) == 0xffffff


# contrib/pvgpu-cursor.c's cursor: 64x64, hot spot (5,7), opaque
CURSOR_SIZE = 64
CURSOR_HOT = (5, 7)


def cursor_pattern(x, y):
    """contrib/pvgpu-cursor.c's pattern(), without its alpha (0xff)."""
    return (x * 4) << 16 | (y * 4) << 8 | (x // 32 + 2 * (y // 32)) * 0x55


def cursor_checks(cur):
    """[(ok, detail)] for the size and hot spot, the pixels and the mask
    of a cursor from Vnc.cursors(), against contrib/pvgpu-cursor.c's."""
    w, h = cur['width'], cur['height']
    shape = f"{w}x{h} hot spot ({cur['hot_x']},{cur['hot_y']})"
    if (w, h) != (CURSOR_SIZE, CURSOR_SIZE):
        return [(False, shape), (False, shape), (False, shape)]
    bad = [(i % w, i // w, p) for i, p in enumerate(cur['pixels'])
           if p != cursor_pattern(i % w, i // w)]
    pixels = ''
    if bad:
        x, y, p = bad[0]
        pixels = (f'{len(bad)} pixels differ, first ({x},{y}) '
                  f'{p:06x} != {cursor_pattern(x, y):06x}')
    clear = sum(8 - bin(b).count('1') for b in cur['mask'])
    return [((cur['hot_x'], cur['hot_y']) == CURSOR_HOT, shape),
            (not bad, pixels),
            (not clear, f'{clear} pixels transparent' if clear else '')]


def main():
    ap = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--qemu', required=True)
    ap.add_argument('--guest', required=True,
                    help='directory with vmlinuz and initrd.img')
    ap.add_argument('--screenshot', help='save the demo frame as PNG here')
    ap.add_argument('--timeout', type=float, default=180)
    ap.add_argument('--device', default='pvgpu-pci')
    args = ap.parse_args()

    tap = Tap()
    tmp = tempfile.mkdtemp(prefix='pvgpu-guest-')
    qmp_path = os.path.join(tmp, 'qmp.sock')
    ser_path = os.path.join(tmp, 'serial.sock')
    log_path = os.path.join(tmp, 'serial.log')
    vnc_path = os.path.join(tmp, 'vnc.sock')
    cmd = [args.qemu, '-M', 'q35', '-accel', 'tcg', '-m', '512',
           '-nodefaults', '-no-user-config', '-display', 'none',
           '-vnc', f'unix:{vnc_path}',
           '-kernel', os.path.join(args.guest, 'vmlinuz'),
           '-initrd', os.path.join(args.guest, 'initrd.img'),
           '-append', 'console=ttyS0 console=tty0 loglevel=4 panic=-1',
           '-device', f'{args.device},id=gpu0',
           '-chardev', f'socket,id=ser,path={ser_path},server=on,wait=on',
           '-serial', 'chardev:ser',
           '-qmp', f'unix:{qmp_path},server=on,wait=off', '-no-reboot']
    print('# ' + ' '.join(cmd), flush=True)
    qemu = subprocess.Popen(cmd, stderr=subprocess.PIPE)
    start = time.monotonic()
    try:
        serial = Serial(ser_path, qemu, log_path, echo=False)
        qmp = QMP(qmp_path, qemu)

        ready = serial.wait_for('console-ready', args.timeout)
        boot = time.monotonic() - start
        reports = serial.reports
        for r in reports:
            print(f'# guest: {r}', flush=True)
        if not tap.check(ready is not None, 'guest booted to console-ready',
                         f'{boot:.1f} s'):
            raise SystemExit
        tap.check('gpu-driver virtio_gpu' in reports,
                  'virtio_gpu bound to the pvgpu device')
        tap.check(any(r.startswith('drm-card card0 virtio')
                      and r.endswith(' virtio_gpu') for r in reports),
                  'DRM device card0 is driven by virtio_gpu')
        tap.check(any(r.startswith('fb0 virtio_gpudrmfb') for r in reports),
                  'fbdev emulation fb0 came up')
        tap.check(any(r.startswith('vtcon 1 ') and
                      r.endswith('frame buffer device') for r in reports),
                  'fbcon bound to the console')
        tap.check(any(r.startswith('modes') and r.endswith(' 1280x800')
                      for r in reports), 'connector offers 1280x800 first')
        feats = ' '.join(r for r in reports if r.startswith('features:'))
        want = '-virgl' if 'virgl=off' in args.device else '+virgl'
        tap.check(want in feats and '+edid' in feats and
                  '+resource_blob' in feats,
                  f'guest driver negotiated {want} +edid +resource_blob',
                  feats)

        info = qmp.cmd('query-pvgpu')[0]
        so = info['scanouts'][0]
        tap.check(so['enabled'] and so['width'] == 1280 and
                  so['height'] == 800,
                  'query-pvgpu: guest set scanout 0 to 1280x800', str(so))
        tap.check(info['resources'] >= 1 and info['hostmem-used'] > 0,
                  'query-pvgpu: resources accounted',
                  f"{info['resources']} resources, "
                  f"{info['hostmem-used']} bytes")

        shot = os.path.join(tmp, 'console.ppm')
        stats = (0, 0)
        for _ in range(50):
            qmp.cmd('screendump', filename=shot, device='gpu0')
            img = read_ppm(shot)
            stats = console_stats(img)
            if img[0] == 1280 and 0.002 < stats[0] < 0.6 and stats[1] >= 2:
                break
            time.sleep(0.2)
        tap.check(img[0] == 1280 and img[1] == 800,
                  'screendump is the 1280x800 guest frame',
                  f'{img[0]}x{img[1]}')
        tap.check(0.002 < stats[0] < 0.6 and stats[1] >= 2,
                  'screendump shows console text, not a blank frame',
                  f'{stats[0] * 100:.1f}% lit, {stats[1]} colours')

        serial.send('draw')
        drawn = serial.wait_for('demo-drawn', 60)
        tap.check(drawn is not None, 'guest demo drew on /dev/fb0',
                  drawn or ', '.join(serial.reports))
        ok = False
        for _ in range(50):
            qmp.cmd('screendump', filename=shot, device='gpu0')
            img = read_ppm(shot)
            if demo_matches(img):
                ok = True
                break
            time.sleep(0.2)
        tap.check(ok, 'screendump shows the demo pattern pixel-exact')
        if args.screenshot:
            qmp.cmd('screendump', filename=os.path.abspath(args.screenshot),
                    device='gpu0', format='png')
            print(f'# screenshot saved to {args.screenshot}', flush=True)

        # the cursor: VNC (console 0 = scanout 0) sends each cursor QEMU
        # is given as a RichCursor; connected first, it sees them all
        result = [(False, 'VNC sent no cursor')] * 3
        seen = []
        try:
            vnc = Vnc(vnc_path, qemu)
        except (OSError, EOFError, RuntimeError, QemuExited) as e:
            vnc = None
            result = [(False, f'VNC: {e}')] * 3
        serial.send('cursor')
        done = serial.wait_for(('cursor-set', 'cursor-failed'), 60)
        cursor_set = done is not None and done.startswith('cursor-set')
        tap.check(cursor_set,
                  'guest set a 64x64 cursor with DRM_IOCTL_MODE_CURSOR2',
                  done or 'no answer')
        try:
            for cur in vnc.cursors(30 if cursor_set else 1) if vnc else ():
                result = cursor_checks(cur)
                seen.append('; '.join(d for _, d in result if d))
                if all(ok for ok, _ in result):
                    break
        except (OSError, EOFError, RuntimeError) as e:
            result = [(False, f'VNC: {e}')] * 3
        if vnc:
            vnc.close()
        if len(seen) > 1:
            print('# VNC cursors: ' + ' | '.join(seen), flush=True)
        tap.check(result[0][0], 'VNC cursor is 64x64 with hot spot (5,7)',
                  result[0][1])
        tap.check(result[1][0], "VNC cursor's pixels are the guest's pattern",
                  result[1][1])
        tap.check(result[2][0], "VNC cursor's mask is opaque everywhere",
                  result[2][1])

        serial.send('quit')
        check_power_off(tap, serial, qemu, 30, 30)
    except SystemExit:
        pass
    finally:
        if qemu.poll() is None:
            qemu.kill()
            qemu.wait()
        err = qemu.stderr.read().decode(errors='replace').strip()
        if err:
            print('# qemu stderr: ' + err.replace('\n', '\n# '), flush=True)
        if tap.failed or not tap.results:
            with open(log_path, 'rb') as f:
                tail = f.read()[-3000:].decode(errors='replace')
            print('# serial log tail:\n# ' + tail.replace('\n', '\n# '))
    print(f'1..{len(tap.results)}')
    return 1 if tap.failed or not tap.results else 0


if __name__ == '__main__':
    sys.exit(main())
