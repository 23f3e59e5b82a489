#!/usr/bin/env python3
#
# Copyright (c) 2026 pvgpu authors
# SPDX-License-Identifier: GPL-2.0-or-later

r"""Two Debian guests with Mesa (scripts/mkguest-gl.sh) share one GPU
through a pvgpu pool: pvgpu-poold is started, the guests join it at pool
weights 1:3 and both render glmark2's heaviest scene through virgl.
While both render, query-pvgpu-pool must report about 25 % / 75 %; once
the first guest is done, about 100 % for the other.  Each guest's screen
is saved while both render.  Prints TAP.

  tests/guest/pool-guest.py --qemu build/qemu-system-x86_64 \
      --guest "$(scripts/mkguest-gl.sh)" --screenshot pvgpu-pool"""

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time

from harness import QMP, Serial, Tap, gl_guest_cmd, poold_beside
from metrics_check import check_scrape, run_exporter

NAMES = ('pool-a', 'pool-b')


class Guest:
    def __init__(self, args, tmp, name, pool_sock, seconds):
        self.name = name
        self.qmp_path = os.path.join(tmp, f'{name}.qmp')
        # a second QMP socket, for scripts/pvgpu-metrics
        self.metrics_qmp = os.path.join(tmp, f'{name}.metrics.qmp')
        ser_path = os.path.join(tmp, f'{name}.serial')
        self.log_path = os.path.join(tmp, f'{name}.log')
        append = ['console=ttyS0', 'loglevel=4', 'panic=-1',
                  'drm.edid_firmware=edid/800x600.bin',
                  f'pvgpu.glmark2={args.scene}:duration={seconds}',
                  'pvgpu.kmscube=0', f'pvgpu.timeout={seconds + 120}']
        cmd = gl_guest_cmd(
            args.qemu, args.guest, append,
            'pvgpu-pci,id=gpu0,xres=800,yres=600,pool=pool0', ser_path,
            [self.qmp_path, self.metrics_qmp],
            extra=['-name', name, '-chardev',
                   f'socket,id=pool0,path={pool_sock},reconnect-ms=500'] +
            args.qemu_arg)
        print('# ' + shlex.join(cmd), flush=True)
        self.err = open(os.path.join(tmp, f'{name}.stderr'), 'wb')
        self.qemu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stderr=self.err)
        self.serial = Serial(ser_path, self.qemu, self.log_path, echo=False)
        self.qmp = QMP(self.qmp_path, self.qemu)
        self.started = None
        self.done = None
        self.state = None       # its pool state while both rendered

    def poll(self):
        """Read what the guest said; note when glmark2 starts and ends."""
        # all of it: a guest whose serial port backs up loses its output
        # when it powers off
        before = -1
        while not self.serial.eof and before != self.serial.log.tell():
            before = self.serial.log.tell()
            self.serial._read(0.01)
        for r in self.serial.reports:
            if r.startswith('glmark2-start') and self.started is None:
                self.started = time.monotonic()
                print(f'# {self.name}: glmark2 started', flush=True)
            if r.startswith('glmark2-done') and self.done is None:
                self.done = time.monotonic()
                print(f'# {self.name}: {r}', flush=True)

    def rendering(self, now, warmup):
        return (self.started is not None and self.done is None and
                now - self.started >= warmup)

    def report(self, prefix):
        found = self.serial.find(prefix)
        return found[-1] if found else None

    def pool_state(self):
        info = self.qmp.cmd('query-pvgpu')[0]
        return info.get('pool', {}).get('state')

    def stop(self):
        if self.qemu.poll() is None:
            self.qemu.kill()
            self.qemu.wait()


def main():
    ap = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--qemu', required=True)
    ap.add_argument('--poold',
                    help='pvgpu-poold (default: built beside --qemu)')
    ap.add_argument('--guest', required=True,
                    help='directory with vmlinuz, initrd.img, rootfs.ext4 '
                         '(scripts/mkguest-gl.sh prints it)')
    ap.add_argument('--scene', default='terrain',
                    help='the glmark2 scene both guests render')
    ap.add_argument('--seconds', type=int, default=25,
                    help="how long the first guest renders; the second "
                         "renders this long and 15 s more")
    ap.add_argument('--screenshot',
                    help='save each guest\'s screen as PREFIX-NAME.png')
    ap.add_argument('--timeout', type=float, default=900)
    ap.add_argument('--qemu-arg', action='append', default=[],
                    help='extra QEMU argument for both guests (repeatable)')
    args = ap.parse_args()
    poold = args.poold or poold_beside(args.qemu)
    deadline = time.monotonic() + args.timeout
    tap = Tap()
    tmp = tempfile.mkdtemp(prefix='pvgpu-pool-guest-')
    sock = os.path.join(tmp, 'pool.sock')
    # a QMP socket serves one client at a time: one for this script, the
    # default one for scripts/pvgpu-pool
    pool_qmp_path = sock + '.qmp'
    own_qmp_path = sock + '.test.qmp'
    daemon = subprocess.Popen([poold, '--socket', sock, '--no-state',
                               '--qmp', pool_qmp_path, '--qmp', own_qmp_path],
                              stdin=subprocess.DEVNULL)
    guests = []
    try:
        pool = QMP(own_qmp_path, daemon)
        pool.cmd('pvgpu-pool-set-vm', name=NAMES[0], weight=100)
        pool.cmd('pvgpu-pool-set-vm', name=NAMES[1], weight=300)
        guests = [Guest(args, tmp, NAMES[0], sock, args.seconds),
                  Guest(args, tmp, NAMES[1], sock, args.seconds + 15)]
        a, b = guests

        # both render; sample the pool's shares every half second
        both, alone, shot = [], [], False
        metrics = None      # what check_scrape() found while both rendered
        while time.monotonic() < deadline and b.done is None:
            for g in guests:
                g.poll()
                if g.qemu.poll() is not None and g.done is None:
                    while not g.serial.eof:
                        g.poll()
                    if g.done is None:
                        raise RuntimeError(f'{g.name}: QEMU exited with '
                                           f'{g.qemu.returncode} before '
                                           'glmark2 was done; its last '
                                           f'reports: {g.serial.reports[-3:]}')
            now = time.monotonic()
            vms = {v['name']: v for v in pool.cmd('query-pvgpu-pool')['vms']}
            sa = vms[NAMES[0]]['share'] if vms[NAMES[0]]['connected'] else 0
            sb = vms[NAMES[1]]['share'] if vms[NAMES[1]]['connected'] else 0
            if int(now * 2) % 10 == 0:
                print(f'# shares: {NAMES[0]} {sa:.1f} %, {NAMES[1]} '
                      f'{sb:.1f} %', flush=True)
            if a.rendering(now, 3) and b.rendering(now, 3):
                both.append((sa, sb))
                for g in guests:
                    g.state = g.state or g.pool_state()
                if len(both) == 4:
                    cli = subprocess.run(
                        [sys.executable, os.path.join(
                            os.path.dirname(os.path.abspath(__file__)),
                            '..', '..', 'scripts', 'pvgpu-pool'),
                         '--qmp', pool_qmp_path, 'show'],
                        capture_output=True, text=True, timeout=30)
                    print(''.join(f'# {line}\n' for line in
                                  cli.stdout.splitlines()), end='',
                          flush=True)
                    tap.check(cli.returncode == 0 and
                              all(n in cli.stdout for n in NAMES),
                              'scripts/pvgpu-pool shows both VMs',
                              cli.stderr.strip())
                if len(both) == 6:
                    argv = ['--pool', pool_qmp_path]
                    for g in guests:
                        argv += ['--vm', f'{g.name}={g.metrics_qmp}']
                    r = run_exporter(*argv)
                    metrics = check_scrape(r.stdout, NAMES)
                    if r.returncode != 0 or r.stderr:
                        metrics.append(f'exit {r.returncode}: '
                                       f'{r.stderr.strip()}')
                if args.screenshot and not shot and len(both) > 4:
                    for g in guests:
                        path = os.path.abspath(f'{args.screenshot}-{g.name}'
                                               '.png')
                        g.qmp.cmd('screendump', device='gpu0',
                                  format='png', filename=path)
                        print(f'# {g.name}: screen saved to {path}',
                              flush=True)
                    shot = True
            elif a.done and b.rendering(now, 0) and now - a.done > 2:
                alone.append(sb)
            time.sleep(0.5)

        tap.check(metrics == [], 'scripts/pvgpu-metrics while both '
                  'render: per-context metrics of both VMs, promtool passes',
                  'no scrape' if metrics is None else '; '.join(metrics[:5]))
        for g in guests:
            tap.check(g.report('virgl-3d') == 'virgl-3d enabled' and
                      'virgl' in (g.report('glmark2-renderer') or ''),
                      f'{g.name} renders through virgl on pvgpu',
                      str(g.report('glmark2-renderer')))
            tap.check(g.state == 'member',
                      f'{g.name} is a member of the pool', str(g.state))
        if both:
            ma = sum(s[0] for s in both) / len(both)
            mb = sum(s[1] for s in both) / len(both)
        else:
            ma = mb = 0
        tap.check(len(both) >= 6 and 15 <= ma <= 35 and 65 <= mb <= 85,
                  'weights 1:3, both rendering: shares about 25 % / 75 %',
                  f'{ma:.1f} % / {mb:.1f} % over {len(both) / 2:.1f} s')
        mean_alone = sum(alone) / len(alone) if alone else 0
        tap.check(len(alone) >= 4 and mean_alone >= 90,
                  f'{NAMES[0]} idle: {NAMES[1]} gets about 100 %',
                  f'{mean_alone:.1f} % over {len(alone) / 2:.1f} s')
        if args.screenshot:
            for g in guests:
                path = f'{args.screenshot}-{g.name}.png'
                tap.check(os.path.exists(path) and
                          os.path.getsize(path) > 1000,
                          f'{g.name} screen saved', path)
        for g in guests:
            off = g.serial.wait_for('powering-off',
                                    max(0, deadline - time.monotonic()))
            g.qemu.wait(max(1, min(60, deadline - time.monotonic())))
            tap.check(off is not None and g.qemu.returncode == 0,
                      f'{g.name} powers off, QEMU exits cleanly',
                      f'exit status {g.qemu.returncode}')
    except Exception as e:          # report, never hang
        import traceback
        traceback.print_exc(file=sys.stdout)
        tap.check(False, 'the run completed', repr(e))
    finally:
        for g in guests:
            g.stop()
        daemon.kill()
        daemon.wait()
    print(f'1..{len(tap.results)}')
    return 1 if tap.failed else 0


if __name__ == '__main__':
    sys.exit(main())
