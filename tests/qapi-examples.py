#!/usr/bin/env python3
"""Check every QMP example in pvgpu's QAPI schemas against the running code.

Every ".. qmp-example::" of qapi/pvgpu.json and qapi/pvgpu-pool.json is
read and
  - each command's arguments, each reply's return value and each event's
    data are validated against the schema the running program reports
    (query-qmp-schema): every required member present, no unknown
    member, every value of its type or enum;
  - each command is then sent to the running program (QEMU with a pvgpu
    device, or pvgpu-poold) and must succeed, or fail only where the
    example needs guest state this test has not got (see NEEDS_GUEST).
Prints TAP.

    tests/qapi-examples.py --qemu build/qemu-system-x86_64 \\
        [--poold build/contrib/pvgpu-pool/pvgpu-poold]
"""

# Copyright (c) 2026 pvgpu authors
# SPDX-License-Identifier: GPL-2.0-or-later

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                'guest'))
from harness import QMP, Tap, poold_beside  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMAS = {'qemu': 'qapi/pvgpu.json', 'poold': 'qapi/pvgpu-pool.json'}
# an example that can only succeed with a guest's state: the error the
# test expects instead
NEEDS_GUEST = {
    'pvgpu-set-context': "Parameter 'ctx-id': device has no context",
}


def examples(path):
    """Yield (definition name, [(direction, message)]) for each example."""
    lines = open(path).read().split('\n')
    i = 0
    while i < len(lines):
        if not lines[i].startswith('# .. qmp-example::'):
            i += 1
            continue
        block = []
        i += 1
        while i < len(lines) and lines[i].startswith('#') and \
                lines[i] != '##':
            block.append(lines[i][1:])
            i += 1
        # the definition the comment documents follows it
        while i < len(lines) and not lines[i].startswith('{'):
            i += 1
        m = re.match(r"\{ '(command|event)': '([^']+)'", lines[i])
        msgs, cur = [], None
        for line in block:
            text = line.strip()
            if text.startswith('->') or text.startswith('<-'):
                cur = [text[:2], text[2:]]
                msgs.append(cur)
            elif cur and text:
                cur[1] += ' ' + text
        yield (m.group(1), m.group(2)), [(d, json.loads(t)) for d, t in msgs]


class Schema:
    """A program's QAPI schema, from query-qmp-schema."""

    def __init__(self, infos):
        self.by_name = {i['name']: i for i in infos}

    def check(self, value, tname, where):
        """Return the mismatches of @value against type @tname."""
        t = self.by_name[tname]
        meta = t['meta-type']
        if meta == 'builtin':
            ok = {
                'string': lambda v: isinstance(v, str),
                'int': lambda v: isinstance(v, int) and
                not isinstance(v, bool),
                'number': lambda v: isinstance(v, (int, float)) and
                not isinstance(v, bool),
                'boolean': lambda v: isinstance(v, bool),
                'null': lambda v: v is None,
                'value': lambda v: True,
            }.get(t['json-type'], lambda v: True)(value)
            return [] if ok else [f'{where}: {value!r} is not a '
                                  f"{t['json-type']}"]
        if meta == 'enum':
            return [] if value in t['values'] else \
                [f'{where}: {value!r} is not one of {t["values"]}']
        if meta == 'array':
            if not isinstance(value, list):
                return [f'{where}: not an array']
            return [e for n, v in enumerate(value)
                    for e in self.check(v, t['element-type'],
                                        f'{where}[{n}]')]
        if meta == 'object':
            if not isinstance(value, dict):
                return [f'{where}: not an object']
            errs = []
            members = {m['name']: m for m in t['members']}
            for name, m in members.items():
                if name not in value and 'default' not in m:
                    errs.append(f'{where}: required member {name!r} '
                                'missing')
            for name, v in value.items():
                if name not in members:
                    errs.append(f'{where}: unknown member {name!r}')
                else:
                    errs += self.check(v, members[name]['type'],
                                       f'{where}.{name}')
            return errs
        if meta == 'alternate':
            for m in t['members']:
                if not self.check(value, m['type'], where):
                    return []
            return [f'{where}: {value!r} matches no alternative']
        return [f'{where}: cannot check meta-type {meta}']


def main():
    ap = argparse.ArgumentParser(
        description="Check the QMP examples of pvgpu's QAPI schemas against "
                    'the running QEMU and pvgpu-poold; prints TAP.')
    ap.add_argument('--qemu', required=True)
    ap.add_argument('--poold',
                    help='pvgpu-poold (default: built beside --qemu)')
    args = ap.parse_args()
    poold = args.poold or poold_beside(args.qemu)
    tap = Tap()
    tmp = tempfile.mkdtemp(prefix='pvgpu-qapi-')
    procs = []
    try:
        qmp_path = os.path.join(tmp, 'qemu.qmp')
        qemu = subprocess.Popen(
            [args.qemu, '-M', 'q35', '-accel', 'tcg', '-S', '-nodefaults',
             '-display', 'none', '-device', 'pvgpu-pci,id=gpu0',
             '-qmp', f'unix:{qmp_path},server=on,wait=off'],
            stdin=subprocess.DEVNULL)
        procs.append(qemu)
        sock = os.path.join(tmp, 'pool.sock')
        daemon = subprocess.Popen([poold, '--socket', sock, '--no-state',
                                   '--qmp', sock + '.qmp'],
                                  stdin=subprocess.DEVNULL)
        procs.append(daemon)
        targets = {'qemu': QMP(qmp_path, qemu),
                   'poold': QMP(sock + '.qmp', daemon)}
        for who, path in SCHEMAS.items():
            qmp = targets[who]
            schema = Schema(qmp.cmd('query-qmp-schema'))
            count = 0
            for (kind, name), msgs in examples(os.path.join(REPO, path)):
                count += 1
                info = schema.by_name.get(name)
                if not tap.check(info is not None and
                                 info['meta-type'] == kind,
                                 f'{path}: {kind} {name} exists'):
                    continue
                errs, sent = [], None
                for d, msg in msgs:
                    if d == '->':
                        sent = msg
                        errs += schema.check(msg.get('arguments', {}),
                                             info['arg-type'],
                                             f'{name} arguments')
                    elif 'return' in msg:
                        errs += schema.check(msg['return'], info['ret-type'],
                                             f'{name} return')
                    elif 'event' in msg:
                        errs += [] if msg['event'] == name else \
                            [f"event named {msg['event']}"]
                        errs += schema.check(msg['data'], info['arg-type'],
                                             f'{name} data')
                    else:
                        errs.append(f'{name}: reply without return: {msg}')
                tap.check(not errs and msgs,
                          f'{path}: the example of {name} matches the '
                          'schema',
                          '; '.join(errs) if msgs else 'no messages')
                if sent is None:
                    continue
                reply = qmp.raw(sent)
                expect = NEEDS_GUEST.get(name)
                if expect:
                    desc = reply.get('error', {}).get('desc', '')
                    tap.check(expect in desc,
                              f'{path}: {name} as in the example is '
                              f'refused without a guest: "{expect}"', desc)
                else:
                    tap.check('return' in reply,
                              f'{path}: {name} as in the example succeeds',
                              reply.get('error', {}).get('desc', ''))
                    if 'return' in reply and kind == 'command':
                        errs = schema.check(reply['return'], info['ret-type'],
                                            f'{name} reply')
                        tap.check(not errs, f'{path}: {name} replies as the '
                                  'schema says', '; '.join(errs))
            tap.check(count > 0, f'{path} has examples', str(count))
    except Exception as e:          # report, never hang
        tap.check(False, 'the run completed', repr(e))
    finally:
        for p in procs:
            p.kill()
            p.wait()
    print(f'1..{len(tap.results)}')
    return 1 if tap.failed else 0


if __name__ == '__main__':
    sys.exit(main())
