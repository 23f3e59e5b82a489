#
# Talking to a QEMU the guest tests started: its QMP socket, the guest's
# serial port, where the guests report in lines "PVGPU: ...", and its VNC
# server (for the cursor); TAP output and the power-off checks.  Shared by
# guest-test.py and gl-guest.py.
#
# Copyright (c) 2026 pvgpu authors
# SPDX-License-Identifier: GPL-2.0-or-later

import json
import os
import socket
import struct
import subprocess
import time


class QemuExited(Exception):
    pass


def poold_beside(qemu):
    """pvgpu-poold as scripts/build.sh builds it, beside QEMU @qemu"""
    return os.path.join(os.path.dirname(qemu), 'contrib', 'pvgpu-pool',
                        'pvgpu-poold')


def gl_guest_cmd(qemu, guest, append, device, ser_path, qmp_paths,
                 memory='1G', smp=1, display='none', extra=(),
                 shared_ram=False):
    """The QEMU command line of a Mesa guest (scripts/mkguest-gl.sh):
    its kernel booted directly with @append, its root filesystem
    read-only on virtio-blk, @device, the serial port on the Unix socket
    @ser_path (QEMU waits for the test to connect) and a QMP server on
    each of @qmp_paths; then @extra.  @shared_ram: the guest's RAM is a
    shared memfd, which a render process (render-process=on) maps."""
    guest = os.path.abspath(guest)
    ram = []
    if shared_ram:
        ram = ['-object', f'memory-backend-memfd,id=ram,size={memory},'
                          'share=on', '-machine', 'memory-backend=ram']
    cmd = [qemu, '-M', 'q35', '-accel', 'tcg', '-m', memory] + ram + [
           '-smp', str(smp), '-nodefaults', '-no-user-config',
           '-display', display,
           '-kernel', os.path.join(guest, 'vmlinuz'),
           '-initrd', os.path.join(guest, 'initrd.img'),
           '-append', ' '.join(append),
           '-drive', f"file={os.path.join(guest, 'rootfs.ext4')},"
                     'format=raw,if=none,id=rootfs,readonly=on',
           '-device', 'virtio-blk-pci,drive=rootfs',
           '-device', device,
           '-chardev', f'socket,id=ser,path={ser_path},server=on,wait=on',
           '-serial', 'chardev:ser']
    for path in qmp_paths:
        cmd += ['-qmp', f'unix:{path},server=on,wait=off']
    return cmd + ['-no-reboot'] + list(extra)


def connect(path, qemu, timeout=60):
    """Connect to a QEMU server socket once QEMU has created it."""
    deadline = time.monotonic() + timeout
    while True:
        if qemu.poll() is not None:
            raise QemuExited(f'QEMU exited with status {qemu.returncode}')
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.connect(path)
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class QMP:
    def __init__(self, path, qemu):
        self.sock = connect(path, qemu)
        self.sock.settimeout(30)
        self.f = self.sock.makefile('rw')
        json.loads(self.f.readline())           # greeting
        self.cmd('qmp_capabilities')

    def raw(self, msg):
        """Send QMP message @msg; return the reply, return or error."""
        self.f.write(json.dumps(msg) + '\n')
        self.f.flush()
        while True:
            line = self.f.readline()
            if not line:
                raise EOFError('QMP connection closed')
            rsp = json.loads(line)
            if 'return' in rsp or 'error' in rsp:
                return rsp

    def cmd(self, _command, **args):
        rsp = self.raw({'execute': _command, 'arguments': args})
        if 'error' in rsp:
            raise RuntimeError(f"{_command}: {rsp['error']['desc']}")
        return rsp['return']


class Serial:
    """The guest's serial port: logs everything, collects PVGPU lines."""

    def __init__(self, path, qemu, logpath, echo=True):
        self.sock = connect(path, qemu)
        self.buf = b''
        self.log = open(logpath, 'wb')
        self.reports = []       # every PVGPU line, in order
        self.pending = []       # not yet returned by wait_for
        self.eof = False
        self.echo = echo

    def _read(self, timeout):
        self.sock.settimeout(max(timeout, 0.01))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return
        except OSError:
            data = b''
        if not data:
            self.eof = True
            return
        self.log.write(data)
        self.log.flush()
        self.buf += data
        while b'\n' in self.buf:
            line, self.buf = self.buf.split(b'\n', 1)
            text = line.decode(errors='replace').strip('\r')
            pos = text.find('PVGPU: ')
            if pos >= 0:
                report = text[pos + len('PVGPU: '):].strip()
                self.reports.append(report)
                self.pending.append(report)
                if self.echo:
                    print(f'# guest: {report}', flush=True)

    def wait_for(self, prefixes, timeout):
        """Return the first new report starting with one of prefixes, or
        None on timeout or when the guest's serial port closes."""
        if isinstance(prefixes, str):
            prefixes = (prefixes,)
        deadline = time.monotonic() + timeout
        while True:
            while self.pending:
                r = self.pending.pop(0)
                if r.startswith(tuple(prefixes)):
                    return r
            left = deadline - time.monotonic()
            if left <= 0 or self.eof:
                return None
            self._read(min(left, 1.0))

    def find(self, prefix):
        return [r for r in self.reports if r.startswith(prefix)]

    def send(self, line):
        self.sock.sendall(line.encode() + b'\n')


class Vnc:
    """A minimal RFB 3.8 client for QEMU's VNC server, enough to read the
    cursor it sends with the RichCursor pseudo-encoding: no security,
    shared session, raw encoding, the server's own pixel format."""

    RAW = 0
    RICH_CURSOR = -239

    def __init__(self, path, qemu, timeout=30):
        self.sock = connect(path, qemu, timeout)
        self.deadline = time.monotonic() + timeout
        version = self._recv(12)
        if not version.startswith(b'RFB 003.'):
            raise RuntimeError(f'not an RFB server: {version!r}')
        self.sock.sendall(b'RFB 003.008\n')
        types = self._recv(self._recv(1)[0])
        if not types:
            raise RuntimeError('VNC server refused: ' + self._reason())
        if 1 not in types:
            raise RuntimeError(f'VNC server wants security types {list(types)}'
                               ', not None (1)')
        self.sock.sendall(b'\x01')
        if struct.unpack('>I', self._recv(4))[0] != 0:
            raise RuntimeError('VNC security failed: ' + self._reason())
        self.sock.sendall(b'\x01')              # ClientInit: shared
        (self.width, self.height, self.bpp, _, big_endian, true_colour,
         self.rmax, self.gmax, self.bmax, self.rshift, self.gshift,
         self.bshift, name_len) = struct.unpack('>HHBBBBHHHBBB3xI',
                                                self._recv(24))
        self.name = self._recv(name_len).decode(errors='replace')
        if self.bpp != 32 or not true_colour:
            raise RuntimeError(f'VNC pixel format {self.bpp} bpp, true '
                               f'colour {true_colour}: only 32 bpp handled')
        self.byteorder = 'big' if big_endian else 'little'
        encodings = (self.RAW, self.RICH_CURSOR)
        self.sock.sendall(struct.pack(f'>BxH{len(encodings)}i', 2,
                                      len(encodings), *encodings))
        self.sock.sendall(struct.pack('>BBHHHH', 3, 0, 0, 0,
                                      self.width, self.height))

    def _recv(self, n):
        data = bytearray()
        while len(data) < n:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f'VNC: timed out reading {n} bytes')
            self.sock.settimeout(left)
            chunk = self.sock.recv(min(n - len(data), 1 << 20))
            if not chunk:
                raise EOFError('VNC connection closed')
            data += chunk
        return bytes(data)

    def _reason(self):
        return self._recv(struct.unpack('>I', self._recv(4))[0]).decode(
            errors='replace')

    def rgb(self, pixel):
        """A pixel in the server's format as 0xRRGGBB (8 bits each)."""
        v = int.from_bytes(pixel, self.byteorder)
        return ((v >> self.rshift & self.rmax) * 255 // self.rmax << 16 |
                (v >> self.gshift & self.gmax) * 255 // self.gmax << 8 |
                (v >> self.bshift & self.bmax) * 255 // self.bmax)

    def cursors(self, timeout):
        """Yield each cursor the server defines until timeout passes, as
        a dict: hot_x, hot_y, width, height, pixels (0xRRGGBB, row by row)
        and mask (one bit a pixel, rows padded to bytes, MSB first)."""
        self.deadline = time.monotonic() + timeout
        try:
            yield from self._cursors()
        except TimeoutError:
            return

    def _cursors(self):
        bpp = self.bpp // 8
        while True:
            msg = self._recv(1)[0]
            if msg == 0:                        # FramebufferUpdate
                nrects = struct.unpack('>xH', self._recv(3))[0]
                for _ in range(nrects):
                    x, y, w, h, enc = struct.unpack('>HHHHi', self._recv(12))
                    if enc == self.RAW:
                        self._recv(w * h * bpp)
                    elif enc == self.RICH_CURSOR:
                        data = self._recv(w * h * bpp)
                        mask = self._recv((w + 7) // 8 * h)
                        yield {'hot_x': x, 'hot_y': y, 'width': w,
                               'height': h, 'mask': mask,
                               'pixels': [self.rgb(data[i:i + bpp])
                                          for i in range(0, len(data), bpp)]}
                    else:
                        raise RuntimeError(f'VNC: encoding {enc} not asked')
            elif msg == 1:                      # SetColourMapEntries
                n = struct.unpack('>xHH', self._recv(5))[1]
                self._recv(n * 6)
            elif msg == 2:                      # Bell
                pass
            elif msg == 3:                      # ServerCutText
                self._recv(struct.unpack('>3xI', self._recv(7))[0])
            else:
                raise RuntimeError(f'VNC: unexpected message type {msg}')

    def close(self):
        self.sock.close()


class Tap:
    """TAP lines on stdout; results kept for reports."""

    def __init__(self):
        self.results = []

    @property
    def failed(self):
        return sum(1 for r in self.results if not r['ok'])

    def check(self, ok, what, detail=''):
        ok = bool(ok)
        self.results.append({'ok': ok, 'name': what, 'detail': detail})
        print(f"{'ok' if ok else 'not ok'} {len(self.results)} - {what}"
              + (f' # {detail}' if detail else ''), flush=True)
        return ok


def check_power_off(tap, serial, qemu, off_timeout, exit_timeout):
    """The guest reports powering off, then QEMU exits with status 0."""
    tap.check(serial.wait_for('powering-off', off_timeout) is not None,
              'guest powers off')
    try:
        qemu.wait(exit_timeout)
    except subprocess.TimeoutExpired:
        pass
    tap.check(qemu.returncode == 0, 'QEMU exited cleanly',
              f'exit status {qemu.returncode}')
