#
# Talking to a QEMU the guest tests started: its QMP socket and the
# guest's serial port, where the guests report in lines "PVGPU: ...";
# TAP output and the power-off checks.  Shared by guest-test.py and
# gl-guest.py.
#
# Copyright (c) 2026 pvgpu authors
# SPDX-License-Identifier: GPL-2.0-or-later

import json
import socket
import subprocess
import time


class QemuExited(Exception):
    pass


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

    def cmd(self, name, **args):
        self.f.write(json.dumps({'execute': name, 'arguments': args}) + '\n')
        self.f.flush()
        while True:
            line = self.f.readline()
            if not line:
                raise EOFError('QMP connection closed')
            rsp = json.loads(line)
            if 'return' in rsp:
                return rsp['return']
            if 'error' in rsp:
                raise RuntimeError(f"{name}: {rsp['error']['desc']}")


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
