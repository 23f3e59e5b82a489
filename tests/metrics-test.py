#!/usr/bin/env python3
"""Test scripts/pvgpu-metrics, the Prometheus exporter, against running
programs: pvgpu-poold and three QEMUs without a guest (vm-a and vm-b in
the pool, vm-c alone with a 2D device).  The exporter's output must pass
`promtool check metrics` (skipped if promtool is absent) and a strict
reading of the text format 0.0.4 here (every family with one HELP and
one TYPE, its samples together, no series twice, counters and only
counters ending in _total); it must show what was set (a pool weight, a
pool bound on host memory, the devices' limits in bytes), report a
source that does not answer as pvgpu_up 0 and still export the rest,
write the same with --output and serve it with --listen.  --libvirt is
run against a stand-in virsh.  Per-context metrics need a guest with GL:
check_scrape() is what tests/guest/pool-guest.py can call on a scrape
taken while guests render; here it checks the QAPI example of
query-pvgpu.  Prints TAP.

    tests/metrics-test.py --qemu build/qemu-system-x86_64 \\
        [--poold build/contrib/pvgpu-pool/pvgpu-poold] [--promtool PATH]
"""

# Copyright (c) 2026 pvgpu authors
# SPDX-License-Identifier: GPL-2.0-or-later

import argparse
import http.client
import importlib.machinery
import importlib.util
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                'guest'))
from harness import QMP, Tap, poold_beside  # noqa: E402

from metrics_check import (EXPORTER, REPO, check_scrape,  # noqa: E402
                           find_promtool, parse, promtool_check,
                           run_exporter, series)

DOC = os.path.join(REPO, 'docs', 'pvgpu-metrics.rst')

def load(name, path):
    """Import a Python file whose name is not a module name."""
    loader = importlib.machinery.SourceFileLoader(name, path)
    spec = importlib.util.spec_from_loader(name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


# --- the test ---------------------------------------------------------------

def http_get(port, path):
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    try:
        conn.request('GET', path)
        r = conn.getresponse()
        return r.status, r.getheader('Content-Type') or '', \
            r.read().decode()
    finally:
        conn.close()


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def without_durations(text):
    """@text less what changes from one scrape to the next."""
    return ''.join(line for line in text.splitlines(True)
                   if not line.startswith('pvgpu_scrape_duration_seconds'))


def differ(a, b):
    """The first lines of @a and @b, durations aside, that differ."""
    la = without_durations(a).splitlines()
    lb = without_durations(b).splitlines()
    return [(x, y) for x, y in zip(la, lb) if x != y][:3] + \
        ([f'{len(la)} lines, not {len(lb)}'] if len(la) != len(lb) else [])


VIRSH = r'''#!{python}
# a stand-in for virsh: domains vm-c (QEMU's QMP socket {qmp}),
# plain (a QEMU without pvgpu) and broken (virsh fails)
import json, socket, sys
args = [a for a in sys.argv[1:] if a != '-q']
if args[:2] == ['list', '--name']:
    print('vm-c\nplain\nbroken\n')
    sys.exit(0)
assert args[:2] == ['qemu-monitor-command', '--domain'], args
dom, cmd = args[2], json.loads(args[3])
if dom == 'plain':
    print(json.dumps({{'id': 'libvirt-7', 'error': {{
        'class': 'CommandNotFound',
        'desc': 'The command query-pvgpu has not been found'}}}}))
    sys.exit(0)
if dom == 'broken':
    sys.stderr.write('error: Requested operation is not valid: '
                     'domain is not running\n')
    sys.exit(1)
s = socket.socket(socket.AF_UNIX)
s.connect({qmp!r})
f = s.makefile('rw')
f.readline()
for msg in ({{'execute': 'qmp_capabilities'}}, cmd):
    f.write(json.dumps(msg) + '\n')
    f.flush()
    while True:
        rsp = json.loads(f.readline())
        if 'event' not in rsp:
            break
rsp['id'] = 'libvirt-8'
print(json.dumps(rsp))
'''


def start_qemu(args, tmp, name, device, pool_sock=None, shared_ram=False):
    qmp = os.path.join(tmp, f'{name}.qmp')
    cmd = [args.qemu, '-M', 'q35', '-accel', 'tcg', '-S', '-nodefaults',
           '-display', 'none', '-name', name]
    if shared_ram:
        # a render process (render-process=auto) maps the guest's RAM
        cmd += ['-m', '256M', '-object',
                'memory-backend-memfd,id=ram,size=256M,share=on',
                '-machine', 'memory-backend=ram']
    if pool_sock:
        cmd += ['-chardev', f'socket,id=pool0,path={pool_sock},'
                            'reconnect-ms=500']
    cmd += ['-device', device, '-qmp', f'unix:{qmp},server=on,wait=off']
    print('# ' + ' '.join(cmd), flush=True)
    err = open(os.path.join(tmp, f'{name}.stderr'), 'wb')
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stderr=err), qmp


def wait_connected(pool, names, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        vms = {v['name']: v for v in pool.cmd('query-pvgpu-pool')['vms']}
        if all(vms.get(n, {}).get('connected') for n in names):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def wait_device_pool(path, qemu, want, timeout=30):
    """Wait until the pool member of the device shows @want (a dict):
    the pool sends bounds at once, effective weights once a second."""
    deadline = time.monotonic() + timeout
    qmp = QMP(path, qemu)
    try:
        while True:
            pool = qmp.cmd('query-pvgpu')[0].get('pool', {})
            if all(pool.get(k) == v for k, v in want.items()):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
    finally:
        qmp.sock.close()        # one client at a time: the exporter's turn


def test_offline(check, promtool):
    """What needs no running program: the families, the docs, and the
    per-context metrics of the QAPI example of query-pvgpu."""
    exporter = load('pvgpu_metrics', EXPORTER)
    names = [f[0] for f in exporter.FAMILIES]
    check(len(names) == len(set(names)),
          'the exporter defines each family once')
    doc = open(DOC).read() if os.path.exists(DOC) else ''
    documented = set(re.findall(r'``(pvgpu_[a-z0-9_]+)``', doc))
    check(documented == set(names),
          'docs/pvgpu-metrics.rst lists every family and no other',
          f'undocumented: {sorted(set(names) - documented)}; '
          f'unknown: {sorted(documented - set(names))}')

    qapi = load('qapi_examples', os.path.join(REPO, 'tests',
                                              'qapi-examples.py'))
    example = None
    for (kind, name), msgs in qapi.examples(os.path.join(
            REPO, 'qapi', 'pvgpu.json')):
        if name == 'query-pvgpu':
            example = [m for d, m in msgs if d == '<-'][0]['return']
    text = exporter.vm_samples('vm-x', example).text()
    problems = check_scrape(text, ['vm-x'], promtool)
    check(not problems, "check_scrape() passes the QAPI example of "
          "query-pvgpu (a context, a pool-less device)",
          '; '.join(problems))
    fams, _ = parse(text)
    check(series(fams, 'pvgpu_context_fence_latency_p99_seconds',
                 vm='vm-x', device='gpu0', ctx='1') == [0.002621439] and
          series(fams, 'pvgpu_context_gpu_seconds_total', ctx='1') ==
          [0.081234567] and
          series(fams, 'pvgpu_context_batch_time_p99_seconds',
                 ctx='1') == [0.001376255],
          'nanoseconds are exported as seconds')
    problems = check_scrape(text, ['vm-x', 'vm-y'], promtool)
    check(any('vm-y' in p for p in problems),
          'check_scrape() reports a VM without contexts',
          '; '.join(problems))


def main():
    ap = argparse.ArgumentParser(
        description='Test scripts/pvgpu-metrics against pvgpu-poold and '
                    'QEMUs without a guest; prints TAP.')
    ap.add_argument('--qemu', required=True)
    ap.add_argument('--poold',
                    help='pvgpu-poold (default: built beside --qemu)')
    ap.add_argument('--promtool',
                    help='promtool (default: from PATH, else '
                         '$PVGPU_CACHE/bin/promtool)')
    args = ap.parse_args()
    poold = args.poold or poold_beside(args.qemu)
    promtool = args.promtool or find_promtool()
    print(f'# promtool: {promtool or "not found"}', flush=True)
    tap = Tap()

    def check(ok, what, detail=''):
        # the detail only for a failure, on the test point's line
        return tap.check(ok, what, '' if ok else
                         str(detail).replace('\n', '\\n'))

    tmp = tempfile.mkdtemp(prefix='pvgpu-metrics-')
    procs = []

    def promtool_point(text, what):
        if not promtool:
            print(f'ok {len(tap.results) + 1} - {what} # SKIP no promtool',
                  flush=True)
            tap.results.append({'ok': True, 'name': what, 'detail': 'SKIP'})
            return
        problems = promtool_check(text, promtool)
        check(not problems, what, '; '.join(problems))

    try:
        test_offline(check, promtool)

        sock = os.path.join(tmp, 'pool.sock')
        daemon = subprocess.Popen(
            [poold, '--socket', sock, '--no-state', '--qmp', sock + '.qmp',
             '--qmp', sock + '.qmp2', '--batch-quanta', '24'],
            stdin=subprocess.DEVNULL,
            stderr=open(os.path.join(tmp, 'poold.stderr'), 'wb'))
        procs.append(daemon)
        pool = QMP(sock + '.qmp', daemon)
        pool.cmd('pvgpu-pool-set-vm', name='vm-a', weight=300)
        pool.cmd('pvgpu-pool-set-vm', name='vm-b',
                 **{'max-hostmem': 64 << 20})
        in_pool = 'pvgpu-pci,id=gpu0,pool=pool0'
        qa, qmp_a = start_qemu(args, tmp, 'vm-a', in_pool, sock,
                               shared_ram=True)
        qb, qmp_b = start_qemu(args, tmp, 'vm-b', in_pool, sock)
        qc, qmp_c = start_qemu(args, tmp, 'vm-c',
                               'pvgpu-pci,id=gpu0,virgl=off,'
                               'sched-solo-inflight=5')
        procs += [qa, qb, qc]
        check(wait_connected(pool, ['vm-a', 'vm-b']),
              'vm-a and vm-b join the pool')
        check(wait_device_pool(qmp_a, qa, {'weight': 7500}) and
              wait_device_pool(qmp_b, qb, {'weight': 2500,
                                           'max-hostmem': 64 << 20}),
              "the devices have their effective weights, vm-b the pool's "
              'bound on host memory')
        QMP(qmp_c, qc).sock.close()     # vm-c's QMP socket is there

        sources = ['--pool', sock + '.qmp2', '--vm', f'vm-a={qmp_a}',
                   '--vm', f'vm-b={qmp_b}', '--vm', f'vm-c={qmp_c}']
        r = run_exporter(*sources)
        text = r.stdout
        check(r.returncode == 0 and not r.stderr,
              'the exporter reads a pool and three VMs',
              f'exit {r.returncode}: {r.stderr.strip()}')
        promtool_point(text, 'promtool check metrics passes')
        fams, problems = parse(text)
        check(not problems, 'the text format read strictly: every '
              'family has one HELP and one TYPE, samples together',
              '; '.join(problems[:5]))
        print(f'# {len(fams)} families, '
              f'{sum(len(f["samples"]) for f in fams.values())} samples',
              flush=True)
        src = 'pool:' + sock + '.qmp2'
        check(all(series(fams, 'pvgpu_up', source=s) == [1] for s in
                  (src, 'vm:vm-a', 'vm:vm-b', 'vm:vm-c')),
              'pvgpu_up is 1 for each source')
        check(series(fams, 'pvgpu_pool_vm_weight', source=src,
                     vm='vm-a') == [300] and
              series(fams, 'pvgpu_pool_vm_weight', vm='vm-b') == [100],
              'the pool weight of vm-a is 300 as set, vm-b 100')
        check(series(fams, 'pvgpu_pool_vm_connected', vm='vm-a') == [1]
              and series(fams, 'pvgpu_pool_vm_connected',
                         vm='vm-b') == [1],
              'both VMs connected to the pool')
        ew = {vm: series(fams, 'pvgpu_pool_vm_effective_weight_ratio',
                         vm=vm) for vm in ('vm-a', 'vm-b')}
        dew = {vm: series(fams, 'pvgpu_device_pool_effective_weight_ratio',
                          vm=vm) for vm in ('vm-a', 'vm-b')}
        check(ew == {'vm-a': [0.75], 'vm-b': [0.25]} and ew == dew,
              'effective weights 300:100 are ratios 0.75 and 0.25, from '
              'the pool and from the devices', f'{ew} {dew}')
        check(series(fams, 'pvgpu_pool_vm_max_hostmem_bytes',
                     vm='vm-b') == [64 << 20] and
              series(fams, 'pvgpu_device_pool_max_hostmem_bytes',
                     vm='vm-b', device='gpu0') == [64 << 20],
              "the pool's bound on vm-b's memory in bytes, from the "
              'pool and from the device')
        check(all(series(fams, 'pvgpu_device_max_hostmem_bytes', vm=vm,
                         device='gpu0') == [256 << 20]
                  for vm in ('vm-a', 'vm-b', 'vm-c')),
              "each device's host-memory limit in bytes (256 MiB)")
        check(series(fams, 'pvgpu_pool_quantum_seconds',
                     source=src) == [0.002] and
              series(fams, 'pvgpu_device_quantum_seconds',
                     vm='vm-a') == [0.002],
              'quanta in seconds')
        check(series(fams, 'pvgpu_device_batch_quanta',
                     vm='vm-a') == [16] and
              len(series(fams, 'pvgpu_device_context_switches_total',
                         vm='vm-a')) == 1,
              'batch turns in quanta and the context switch count')
        check(series(fams, 'pvgpu_device_switch_budget_ratio',
                     vm='vm-a') == [0.01] and
              series(fams, 'pvgpu_device_batch_turn_seconds',
                     vm='vm-a') == [0.032] and
              len(series(fams, 'pvgpu_device_switch_cost_seconds',
                         vm='vm-a')) == 1,
              'the switch budget as a ratio (default 1 %), the batch turn '
              '(16 quanta of 2 ms, nothing measured yet) in seconds')
        check(series(fams, 'pvgpu_device_solo_inflight',
                     vm='vm-a') == [0] and
              series(fams, 'pvgpu_device_solo_inflight', vm='vm-c') == [5],
              'submissions on the GPU while one context is alone: the '
              'default 0 (off), and 5 as set')
        check(series(fams, 'pvgpu_pool_batch_quanta', source=src) == [24],
              "the pool's grant length in quanta (--batch-quanta 24)")
        check(series(fams, 'pvgpu_device_pool_state', vm='vm-a',
                     state='member') == [1] and
              sum(series(fams, 'pvgpu_device_pool_state',
                         vm='vm-a')) == 1 and
              series(fams, 'pvgpu_device_pool_info', vm='vm-b',
                     pool_vm='vm-b', chardev='pool0') == [1] and
              not series(fams, 'pvgpu_device_pool_state', vm='vm-c'),
              "the devices' pool state: vm-a a member, vm-c none")
        check(series(fams, 'pvgpu_device_virgl', vm='vm-c') == [0] and
              series(fams, 'pvgpu_device_contexts', vm='vm-c') == [0],
              'vm-c: a 2D device without contexts')
        check(series(fams, 'pvgpu_device_render_process_up',
                     vm='vm-a') == [1] and
              series(fams, 'pvgpu_device_render_process_restarts_total',
                     vm='vm-a') == [0] and
              not series(fams, 'pvgpu_device_render_process_up', vm='vm-b'),
              "vm-a's render process is up; vm-b renders in QEMU")
        families = set(fams)

        # sources that do not answer, one with a name to escape
        odd = 'odd "name" \\ and\nnewline'
        r = run_exporter('--pool', os.path.join(tmp, 'nonexistent.qmp'),
                         *sources, '--vm',
                         f'{odd}={os.path.join(tmp, "nonexistent")}')
        dead, problems = parse(r.stdout)
        check(r.returncode == 0 and
              series(dead, 'pvgpu_up', source='pool:' +
                     os.path.join(tmp, 'nonexistent.qmp')) == [0] and
              series(dead, 'pvgpu_up', source='vm:' + odd) == [0] and
              series(dead, 'pvgpu_up', source='vm:vm-a') == [1] and
              'nonexistent' in r.stderr,
              'sources without a socket: pvgpu_up 0, an error on stderr',
              f'exit {r.returncode}: {r.stderr.strip()}')
        check(set(dead) == families and not problems,
              'the other sources are still exported',
              f'missing: {sorted(families - set(dead))}; '
              + '; '.join(problems[:3]))
        check('pvgpu_up{source="vm:odd \\"name\\" \\\\ and\\nnewline"} 0'
              in r.stdout.splitlines(),
              'label values escaped (quote, backslash, newline)')
        promtool_point(r.stdout, 'promtool check metrics passes with '
                       'sources down')

        # --output: atomically, the same text
        out = os.path.join(tmp, 'prom', 'pvgpu.prom')
        os.mkdir(os.path.dirname(out))
        r1 = run_exporter(*sources, '--output', out)
        r2 = run_exporter(*sources, '--output', out)
        mode = stat.S_IMODE(os.stat(out).st_mode) if os.path.exists(out) \
            else None
        check(r1.returncode == 0 and r2.returncode == 0 and
              not r1.stdout and
              without_durations(open(out).read()) ==
              without_durations(text) and
              os.listdir(os.path.dirname(out)) == ['pvgpu.prom'] and
              mode == 0o644,
              '--output writes the same text, mode 0644, no temporary '
              'file left', f'files {os.listdir(os.path.dirname(out))}, '
              f'mode {mode and oct(mode)}, {r1.stderr}{r2.stderr}')

        # --listen: a fresh scrape per GET /metrics, 404 elsewhere
        port = free_port()
        srv = subprocess.Popen([sys.executable, EXPORTER, *sources,
                                '--listen', f'127.0.0.1:{port}'],
                               stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
        procs.append(srv)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(('127.0.0.1', port), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline or srv.poll() is not None:
                    raise RuntimeError('--listen: nothing listens on '
                                       f'port {port}')
                time.sleep(0.1)
        status, ctype, body = http_get(port, '/metrics')
        status2, _, body2 = http_get(port, '/metrics')
        served, problems = parse(body)
        check(status == 200 and status2 == 200 and
              'version=0.0.4' in ctype and set(served) == families and
              not problems and
              without_durations(body) == without_durations(text),
              '--listen: GET /metrics answers 200 with the same '
              'families', f'{status} {ctype}; {problems[:3]}; '
              f'differs: {differ(body, text)}')
        codes = [http_get(port, p)[0] for p in ('/', '/metrics/x', '/foo')]
        check(codes == [404, 404, 404], '--listen: 404 elsewhere',
              str(codes))
        srv.terminate()
        srv.wait(10)

        # --libvirt, through a stand-in virsh
        bindir = os.path.join(tmp, 'bin')
        os.mkdir(bindir)
        with open(os.path.join(bindir, 'virsh'), 'w') as f:
            f.write(VIRSH.format(python=sys.executable, qmp=qmp_c))
        os.chmod(os.path.join(bindir, 'virsh'), 0o755)
        env = dict(os.environ, PATH=bindir + os.pathsep + os.environ['PATH'])
        r = run_exporter('--libvirt', env=env)
        lv, problems = parse(r.stdout)
        check(r.returncode == 0 and not problems and
              series(lv, 'pvgpu_up', source='libvirt:vm-c') == [1] and
              series(lv, 'pvgpu_device_virgl', vm='vm-c',
                     device='gpu0') == [0] and
              series(lv, 'pvgpu_up', source='libvirt:broken') == [0] and
              'plain' not in r.stdout and 'plain' not in r.stderr,
              '--libvirt: a domain with pvgpu exported, one without '
              'left out quietly, one that fails is pvgpu_up 0',
              f'exit {r.returncode}: {r.stderr.strip()}; {problems[:3]}')
        promtool_point(r.stdout, 'promtool check metrics passes for '
                       '--libvirt')

        r = run_exporter('--vm', 'vm-a', env=env)
        r2 = run_exporter(env=env)
        check(r.returncode == 2 and r2.returncode == 2 and
              not r.stdout and not r2.stdout,
              'a --vm without a socket, or no source at all, is '
              'refused with status 2')
    except Exception as e:          # report, never hang
        import traceback
        traceback.print_exc(file=sys.stdout)
        check(False, 'the run completed', repr(e))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f'1..{len(tap.results)}')
    return 1 if tap.failed else 0


if __name__ == '__main__':
    sys.exit(main())
