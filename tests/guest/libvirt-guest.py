#!/usr/bin/env python3
#
# Copyright (c) 2026 pvgpu authors
# SPDX-License-Identifier: GPL-2.0-or-later

"""The pvgpu test guest (scripts/mkguest.sh) under libvirt, the way
docs/pvgpu-libvirt.rst tells an operator to run it: a <video> device of
model virtio whose driver a <qemu:override> turns into pvgpu-pci.  The
test starts its own libvirtd (nothing needs to run before, systemd need
not be PID 1), creates a transient TCG domain with direct kernel boot,
reads the guest's serial port, runs query-pvgpu through
"virsh qemu-monitor-command", takes "virsh screenshot", saves and
restores the running guest, destroys it and stops the daemon.  Prints
TAP.

The daemon is private: it runs in a mount namespace of its own in which
/etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/cache/libvirt and
/var/log/libvirt are directories of the test's temporary directory, so
its qemu.conf (QEMU as root, no security driver, no cgroups: QEMU must
read the build tree under /root) and its state never touch the host's,
and a libvirtd the host runs is neither used nor disturbed.  Its sockets
are in the temporary directory too; virsh reaches them with
qemu:///system?socket=...  Needs root, libvirtd, virsh and unshare
(scripts/setup.sh installs them); libvirtd wants the libvirt-qemu user to
exist even when qemu.conf names another (libvirt-daemon-system makes it).
Of those five directories, any that is missing (libvirt-daemon-system
makes them all) is made as a mount point and removed at the end.

  tests/guest/libvirt-guest.py --qemu build/qemu-system-x86_64 \
      --guest "$(scripts/mkguest.sh)" [--keep]"""

import argparse
import json
import os
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
import zlib

from harness import Serial, Tap

# where a privileged libvirtd keeps its configuration and state; each is
# bind-mounted from the test's directory inside the daemon's namespace
LIBVIRT_DIRS = ('/etc/libvirt', '/run/libvirt', '/var/lib/libvirt',
                '/var/cache/libvirt', '/var/log/libvirt')

QEMU_CONF = '''\
# the test's private libvirtd: QEMU runs as root and unconfined so that it
# reads the build tree and the guest under /root; no cgroups and no mount
# namespace per VM, so that it also runs in a chroot or a container
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
'''

DOMAIN = '''\
<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{name}</name>
  <memory unit='MiB'>512</memory>
  <memoryBacking>
    <source type='memfd'/>
    <access mode='shared'/>
  </memoryBacking>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{guest}/vmlinuz</kernel>
    <initrd>{guest}/initrd.img</initrd>
    <cmdline>console=ttyS0 console=tty0 loglevel=4 panic=-1</cmdline>
  </os>
  <features>
    <acpi/>
  </features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <devices>
    <emulator>{qemu}</emulator>
    <controller type='usb' model='none'/>
    <serial type='unix'>
      <source mode='bind' path='{serial}'/>
    </serial>
    <video>
      <model type='virtio' heads='1' primary='yes'/>
      <alias name='ua-gpu0'/>
    </video>
    <memballoon model='none'/>
  </devices>
  <qemu:override>
    <qemu:device alias='ua-gpu0'>
      <qemu:frontend>
        <qemu:property name='driver' type='string' value='pvgpu-pci'/>
      </qemu:frontend>
    </qemu:device>
  </qemu:override>
</domain>
'''

WIDTH, HEIGHT = 1280, 800       # the device's default mode, which the
                                # guest's console takes


class Running:
    """Stands in for a QEMU Popen in harness.connect(): libvirt owns QEMU,
    the connection timeout alone bounds the wait."""
    returncode = None

    def poll(self):
        return None


def read_image(path):
    """(format, width, height, lit): lit tells whether any pixel is not
    black.  Reads the PNG (8-bit RGB or RGBA, not interlaced) or PPM that
    virsh screenshot saves."""
    with open(path, 'rb') as f:
        data = f.read()
    if data.startswith(b'\x89PNG\r\n\x1a\n'):
        pos = 8
        idat = b''
        w = h = ctype = None
        while pos < len(data):
            length, kind = struct.unpack('>I4s', data[pos:pos + 8])
            body = data[pos + 8:pos + 8 + length]
            if kind == b'IHDR':
                w, h, depth, ctype, _, _, interlace = struct.unpack(
                    '>IIBBBBB', body)
                if depth != 8 or ctype not in (2, 6) or interlace:
                    raise ValueError(f'PNG depth {depth} colour type {ctype}'
                                     f' interlace {interlace}')
            elif kind == b'IDAT':
                idat += body
            elif kind == b'IEND':
                break
            pos += 12 + length
        raw = zlib.decompress(idat)
        stride = 1 + w * (3 if ctype == 2 else 4)
        if len(raw) != stride * h:
            raise ValueError(f'PNG data {len(raw)} bytes, not {stride * h}')
        # a black image stays all zero under every PNG filter; skip each
        # row's filter byte (and for RGBA, alpha is not looked at: rare)
        lit = any(raw[r * stride + 1:(r + 1) * stride].strip(b'\0')
                  for r in range(h))
        return 'png', w, h, lit
    if data.startswith(b'P6'):
        fields = data.split(maxsplit=4)
        w, h = int(fields[1]), int(fields[2])
        return 'ppm', w, h, bool(fields[4][:w * h * 3].strip(b'\0'))
    raise ValueError(f'neither PNG nor PPM: {data[:8]!r}')


class Libvirtd:
    """A libvirtd of the test's own, in a mount namespace of its own."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.root = os.path.join(tmp, 'libvirt')
        self.sockdir = os.path.join(tmp, 'sock')
        self.pidfile = os.path.join(tmp, 'libvirtd.pid')
        self.log = os.path.join(tmp, 'libvirtd.log')
        self.uri = ('qemu:///system?socket=' +
                    os.path.join(self.sockdir, 'libvirt-sock'))
        self.pid = None
        self.made = []          # mount points this test had to create

    def start(self, timeout=60):
        os.makedirs(self.sockdir, mode=0o700)
        binds = []
        for d in LIBVIRT_DIRS:
            src = os.path.join(self.root, d.strip('/').replace('/', '-'))
            os.makedirs(src)
            if not os.path.isdir(d):
                os.makedirs(d)
                self.made.append(d)
            binds.append(f'mount --bind {shlex.quote(src)} {shlex.quote(d)}')
        etc = os.path.join(self.root, 'etc-libvirt')
        conf = os.path.join(etc, 'libvirtd.conf')
        with open(conf, 'w') as f:
            f.write(f'unix_sock_dir = "{self.sockdir}"\n'
                    'unix_sock_rw_perms = "0700"\n'
                    'unix_sock_ro_perms = "0700"\n'
                    'auth_unix_rw = "none"\n'
                    'auth_unix_ro = "none"\n'
                    f'log_outputs = "3:file:{self.log}"\n')
        with open(os.path.join(etc, 'qemu.conf'), 'w') as f:
            f.write(QEMU_CONF)
        script = ' && '.join(binds + [
            f'exec libvirtd --daemon --pid-file {shlex.quote(self.pidfile)} '
            f'--config {shlex.quote(conf)}'])
        cmd = ['unshare', '--mount', '--propagation', 'private',
               'sh', '-c', script]
        print('# ' + shlex.join(cmd), flush=True)
        with open(os.path.join(self.tmp, 'libvirtd.stderr'), 'wb') as err:
            rc = subprocess.call(cmd, stdin=subprocess.DEVNULL,
                                 stdout=err, stderr=err)
        if rc != 0:
            return f'libvirtd --daemon exited with status {rc}: ' + \
                self.tail(os.path.join(self.tmp, 'libvirtd.stderr'))
        deadline = time.monotonic() + timeout
        while True:
            try:
                with open(self.pidfile) as f:
                    self.pid = int(f.read().strip())
            except (OSError, ValueError):
                pass
            if self.pid:
                r = self.virsh('list', timeout=30, quiet=True)
                if r.returncode == 0:
                    return None
            if time.monotonic() > deadline:
                return 'libvirtd does not answer: ' + self.tail(self.log)
            time.sleep(0.2)

    def virsh(self, *args, timeout=120, quiet=False):
        cmd = ['virsh', '-c', self.uri] + list(args)
        if not quiet:
            print('# ' + shlex.join(['virsh'] + list(args)), flush=True)
        try:
            return subprocess.run(cmd, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as e:
            return subprocess.CompletedProcess(
                cmd, 124, e.stdout or '', f'timed out after {timeout} s')

    def stop(self, timeout=30):
        """SIGTERM (libvirtd leaves running domains alone: destroy them
        first), then SIGKILL; True if it is gone."""
        if not self.pid:
            return True
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.1)
        os.kill(self.pid, signal.SIGKILL)
        return False

    def cleanup(self):
        for d in reversed(self.made):
            try:
                os.rmdir(d)
            except OSError:
                pass

    @staticmethod
    def tail(path, n=2000):
        try:
            with open(path, 'rb') as f:
                return f.read()[-n:].decode(errors='replace').strip()
        except OSError:
            return '(no log)'


def first_line(text):
    return ' '.join(text.split())[:400]


def main():
    ap = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--qemu', required=True)
    ap.add_argument('--guest', required=True,
                    help='directory with vmlinuz and initrd.img')
    ap.add_argument('--timeout', type=float, default=180,
                    help='seconds the guest may take to boot')
    ap.add_argument('--keep', action='store_true',
                    help='keep the temporary directory (logs, XML)')
    args = ap.parse_args()

    # test.sh's timeout sends SIGTERM: clean up all the same
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

    tap = Tap()
    if os.geteuid() != 0:
        tap.check(False, 'runs as root', 'libvirtd and unshare need root')
        print(f'1..{len(tap.results)}')
        return 1
    missing = [t for t in ('libvirtd', 'virsh', 'unshare')
               if not shutil.which(t)]
    if not tap.check(not missing, 'libvirtd, virsh and unshare are installed',
                     'missing: ' + ' '.join(missing) if missing else ''):
        print(f'1..{len(tap.results)}')
        return 1

    tmp = tempfile.mkdtemp(prefix='pvgpu-libvirt-')
    daemon = Libvirtd(tmp)
    name = f'pvgpu-libvirt-{os.getpid()}'
    ser_path = os.path.join(tmp, 'serial.sock')
    qemu_log = os.path.join(daemon.root, 'var-log-libvirt', 'qemu',
                            name + '.log')
    created = False
    try:
        err = daemon.start()
        ver = subprocess.run(['libvirtd', '--version'], capture_output=True,
                             text=True).stdout.split()
        if not tap.check(err is None,
                         "a private libvirtd started (own config and state)",
                         err or f"pid {daemon.pid}, "
                         f"libvirt {ver[-1] if ver else '?'}"):
            raise SystemExit

        xml = DOMAIN.format(name=name, qemu=os.path.abspath(args.qemu),
                            guest=os.path.abspath(args.guest),
                            serial=ser_path)
        xml_path = os.path.join(tmp, 'domain.xml')
        with open(xml_path, 'w') as f:
            f.write(xml)
        r = daemon.virsh('create', xml_path)
        created = r.returncode == 0
        if not tap.check(created, 'virsh create: a transient TCG domain '
                         'with pvgpu as its video device',
                         first_line(r.stderr)):
            raise SystemExit
        serial = Serial(ser_path, Running(), os.path.join(tmp, 'serial.log'),
                        echo=False)
        start = time.monotonic()

        # libvirt placed the device where it places its own video device
        dom = ET.fromstring(daemon.virsh('dumpxml', name).stdout)
        addr = dom.find('./devices/video/address')
        want = (f"0x{int(addr.get('slot'), 16):x}" +
                (f".0x{int(addr.get('function'), 16):x}"
                 if int(addr.get('function'), 16) else '')
                if addr is not None else None)
        dev = None
        for ln in Libvirtd.tail(qemu_log, 100000).splitlines():
            if '"driver":"pvgpu-pci"' in ln:
                dev = json.loads(ln[ln.index('{'):ln.rindex('}') + 1])
        tap.check(want and dev and dev.get('addr') == want and
                  dev.get('id') == 'ua-gpu0',
                  'libvirt gave pvgpu-pci the PCI address of its <video>',
                  f'<video> at slot {want}, QEMU: -device {dev}')

        ready = serial.wait_for('console-ready', args.timeout)
        for r in serial.reports:
            print(f'# guest: {r}', flush=True)
        if not tap.check(ready is not None, 'guest booted to console-ready',
                         f'{time.monotonic() - start:.1f} s'):
            raise SystemExit
        tap.check('gpu-driver virtio_gpu' in serial.reports,
                  'virtio_gpu bound to the pvgpu device')

        def query(when):
            r = daemon.virsh('qemu-monitor-command', name,
                             '{"execute":"query-pvgpu"}')
            try:
                info = json.loads(r.stdout)['return']
            except (ValueError, KeyError):
                return tap.check(False, f'virsh qemu-monitor-command '
                                 f'query-pvgpu {when}',
                                 first_line(r.stderr or r.stdout))
            so = [s for i in info for s in i['scanouts']
                  if i['id'] == 'ua-gpu0' and s['scanout-id'] == 0]
            # what is saved: a 3D guest (Linux negotiates virgl and makes
            # a context for fbcon) without GL state, which can migrate
            dev = [i for i in info if i['id'] == 'ua-gpu0']
            tap.check(dev and dev[0]['virgl'] and dev[0]['contexts'] and
                      dev[0]['migratable'],
                      f'query-pvgpu {when}: 3D, with a context without GL '
                      'state, migratable',
                      str({k: dev[0].get(k) for k in
                           ('virgl', 'contexts', 'migratable',
                            'migration-blocker')} if dev else info))
            # the domain's memfd memory gives it a render process
            rp = dev[0].get('render-process', {}) if dev else {}
            tap.check(rp.get('pid', 0) > 0,
                      f'query-pvgpu {when}: virglrenderer in a render '
                      'process', str(rp))
            return tap.check(so and so[0]['enabled'] and
                             (so[0]['width'], so[0]['height']) ==
                             (WIDTH, HEIGHT),
                             f'virsh qemu-monitor-command query-pvgpu {when}'
                             f': ua-gpu0, scanout 0 at {WIDTH}x{HEIGHT}',
                             str(so[0] if so else info))

        def screenshot(when):
            shot = os.path.join(tmp, 'screenshot-' +
                                when.replace(' ', '-') + '.img')
            r = daemon.virsh('screenshot', name, shot)
            detail = first_line(r.stderr)
            ok = False
            if r.returncode == 0:
                try:
                    fmt, w, h, lit = read_image(shot)
                    ok = (w, h) == (WIDTH, HEIGHT) and lit
                    detail = f"{fmt} {w}x{h}{'' if lit else ', all black'}"
                except (OSError, ValueError, zlib.error) as e:
                    detail = str(e)
            return tap.check(ok, f'virsh screenshot {when}: the '
                             f'{WIDTH}x{HEIGHT} console, not blank', detail)

        query('after boot')
        screenshot('after boot')

        # save and restore the running guest at its text console
        save = os.path.join(tmp, 'saved.img')
        r = daemon.virsh('save', name, save)
        if tap.check(r.returncode == 0, 'virsh save of the running guest',
                     first_line(r.stderr)):
            r = daemon.virsh('restore', save)
            if tap.check(r.returncode == 0, 'virsh restore',
                         first_line(r.stderr)):
                query('after restore')
                screenshot('after restore')
                # the restored guest runs on: it answers on its serial port
                serial = Serial(ser_path, Running(),
                                os.path.join(tmp, 'serial-restored.log'),
                                echo=False)
                serial.send('draw')
                drawn = serial.wait_for(('demo-drawn', 'demo-failed'), 60)
                tap.check(drawn and drawn.startswith('demo-drawn'),
                          'restored guest draws on its framebuffer',
                          drawn or 'no answer in 60 s')
            else:
                created = False
        r = daemon.virsh('destroy', name)
        gone = daemon.virsh('domstate', name).returncode != 0
        if created:
            tap.check(r.returncode == 0 and gone,
                      'virsh destroy: the domain is gone',
                      first_line(r.stderr))
        created = not gone
    except SystemExit:
        pass
    finally:
        if created:
            daemon.virsh('destroy', name)
        if tap.failed:
            for path in (qemu_log, daemon.log,
                         os.path.join(tmp, 'serial.log')):
                print(f'# {os.path.basename(path)} tail:\n# ' +
                      daemon.tail(path, 3000).replace('\n', '\n# '))
        if daemon.pid:
            tap.check(daemon.stop(), 'libvirtd stopped')
        daemon.cleanup()
        if args.keep:
            print(f'# kept {tmp}')
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f'1..{len(tap.results)}')
    return 1 if tap.failed or not tap.results else 0


if __name__ == '__main__':
    sys.exit(main())
