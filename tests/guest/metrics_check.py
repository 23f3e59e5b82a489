"""What a Prometheus scrape of pvgpu (scripts/pvgpu-metrics) must look
like: the text format 0.0.4 read strictly, promtool's verdict, and the
per-context families of guests that render.  Used by tests/metrics-test.py
and tests/guest/pool-guest.py."""

# Copyright (c) 2026 pvgpu authors
# SPDX-License-Identifier: GPL-2.0-or-later

import os
import re
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
EXPORTER = os.path.join(REPO, 'scripts', 'pvgpu-metrics')

# what a scrape of a rendering guest must have for each of its contexts
CONTEXT_FAMILIES = [
    'pvgpu_context_info', 'pvgpu_context_weight', 'pvgpu_context_cap_ratio',
    'pvgpu_context_priority', 'pvgpu_context_gpu_seconds_total',
    'pvgpu_context_submissions_total', 'pvgpu_context_queued_submissions',
    'pvgpu_context_inflight_submissions',
    'pvgpu_context_fence_latency_p50_seconds',
    'pvgpu_context_fence_latency_p99_seconds',
    'pvgpu_context_batch_time_p50_seconds',
    'pvgpu_context_batch_time_p99_seconds', 'pvgpu_context_resources',
    'pvgpu_context_errors_total',
]
POOL_CONTEXT_FAMILIES = [
    'pvgpu_pool_context_gpu_seconds_total',
    'pvgpu_pool_context_queued_submissions',
    'pvgpu_pool_context_fence_latency_p99_seconds',
]


def find_promtool():
    """promtool from PATH, else from PVGPU_CACHE/bin; None if absent."""
    cache = os.environ.get('PVGPU_CACHE') or os.path.join(
        os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'),
        'pvgpu')
    for path in (shutil.which('promtool'),
                 os.path.join(cache, 'bin', 'promtool')):
        if path and os.access(path, os.X_OK):
            return path
    return None


def run_exporter(*args, env=None, timeout=60):
    """Run scripts/pvgpu-metrics once; return the CompletedProcess."""
    return subprocess.run([sys.executable, EXPORTER, *args],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=env)


def promtool_check(text, promtool):
    """promtool check metrics on @text: a list of what it found."""
    r = subprocess.run([promtool, 'check', 'metrics'], input=text,
                       capture_output=True, text=True, timeout=60)
    out = (r.stdout + r.stderr).strip()
    if r.returncode != 0 or out:
        return [f'promtool (exit {r.returncode}): {out}']
    return []


# --- the text format, read strictly ----------------------------------------

NAME_RE = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
UNESCAPE = {'\\\\': '\\', '\\"': '"', '\\n': '\n'}


def parse(text):
    """Read the text format 0.0.4.  Return (families, problems): families
    maps a name to {'help', 'type', 'samples': [(labels, value)]}."""
    fams, problems, done, current = {}, [], set(), None
    if not text.endswith('\n'):
        problems.append('the text does not end with a newline')
    for n, line in enumerate(text.splitlines(), 1):
        where = f'line {n}'
        if not line.strip():
            continue
        m = re.match(r'# (HELP|TYPE) (\S+)(?: (.*))?$', line)
        if m:
            kind, name, rest = m.group(1), m.group(2), m.group(3) or ''
            fam = fams.setdefault(name, {'help': None, 'type': None,
                                         'samples': []})
            key = kind.lower()
            if fam[key] is not None:
                problems.append(f'{where}: second {kind} of {name}')
            if kind == 'TYPE' and fam['samples']:
                problems.append(f'{where}: TYPE of {name} after its samples')
            if kind == 'TYPE' and rest not in ('counter', 'gauge',
                                               'histogram', 'summary',
                                               'untyped'):
                problems.append(f'{where}: unknown type {rest!r}')
            if kind == 'HELP' and not rest:
                problems.append(f'{where}: empty HELP of {name}')
            fam[key] = rest
            continue
        if line.startswith('#'):
            continue
        m = NAME_RE.match(line)
        if not m:
            problems.append(f'{where}: not a sample: {line!r}')
            continue
        name, pos, labels = m.group(0), m.end(), {}
        if line[pos:pos + 1] == '{':
            pos += 1
            while line[pos:pos + 1] != '}':
                lm = LABEL_RE.match(line, pos)
                if not lm:
                    problems.append(f'{where}: bad labels: {line!r}')
                    break
                value = re.sub(r'\\[\\"n]', lambda e: UNESCAPE[e.group(0)],
                               lm.group(2))
                if lm.group(1) in labels:
                    problems.append(f'{where}: label {lm.group(1)} twice')
                labels[lm.group(1)] = value
                pos = lm.end()
                if line[pos:pos + 1] == ',':
                    pos += 1
            else:
                pos += 1
        fields = line[pos:].split()
        try:
            if not 1 <= len(fields) <= 2 or line[pos:pos + 1] != ' ':
                raise ValueError
            value = float(fields[0])
        except ValueError:
            problems.append(f'{where}: bad value: {line!r}')
            continue
        if name != current:
            if name in done:
                problems.append(f'{where}: samples of {name} not together')
            if current:
                done.add(current)
            current = name
        fam = fams.setdefault(name, {'help': None, 'type': None,
                                     'samples': []})
        if (labels, value) in [(s[0], s[1]) for s in fam['samples']] or \
                labels in [s[0] for s in fam['samples']]:
            problems.append(f'{where}: series {name}{labels} twice')
        fam['samples'].append((labels, value))
    for name, fam in fams.items():
        if fam['help'] is None or fam['type'] is None:
            problems.append(f'{name}: no HELP or no TYPE')
        if not name.startswith('pvgpu_'):
            problems.append(f'{name}: not prefixed pvgpu_')
        if name != name.lower():
            problems.append(f'{name}: not snake_case')
        if (fam['type'] == 'counter') != name.endswith('_total'):
            which = 'without' if fam['type'] == 'counter' else 'with'
            problems.append(f'{name}: a {fam["type"]} {which} the _total '
                            'suffix')
        for unit in ('ms', 'us', 'ns', 'percent', 'milliseconds', 'kb',
                     'mb', 'mib', 'kib'):
            if f'_{unit}_' in name + '_':
                problems.append(f'{name}: not in base units ({unit})')
    return fams, problems


def series(fams, name, **want):
    """The values of family @name whose labels include @want."""
    return [v for labels, v in fams.get(name, {}).get('samples', [])
            if all(labels.get(k) == val for k, val in want.items())]


def check_scrape(text, vms, promtool=None):
    """Check a scrape taken while the guests of @vms (their vm labels)
    render: per-context families for each VM, with GPU time and
    submissions, and, if the scrape has a pool, the pool's per-context
    families; the format read strictly and by promtool (if found).
    Return a list of problems, empty if none."""
    fams, problems = parse(text)
    promtool = promtool or find_promtool()
    if promtool:
        problems += promtool_check(text, promtool)
    has_pool = any(n.startswith('pvgpu_pool_') for n in fams)
    for vm in vms:
        ctxs = {labels['ctx'] for labels, _ in
                fams.get('pvgpu_context_info', {}).get('samples', [])
                if labels.get('vm') == vm and 'ctx' in labels}
        if not ctxs:
            problems.append(f'{vm}: no pvgpu_context_info with a ctx label')
        for ctx in sorted(ctxs):
            for name in CONTEXT_FAMILIES:
                if not series(fams, name, vm=vm, ctx=ctx):
                    problems.append(f'{vm}: no {name}{{ctx="{ctx}"}}')
        if ctxs and not any(v > 0 for v in series(
                fams, 'pvgpu_context_gpu_seconds_total', vm=vm)):
            problems.append(f'{vm}: no context has GPU time')
        if ctxs and not any(v > 0 for v in series(
                fams, 'pvgpu_context_submissions_total', vm=vm)):
            problems.append(f'{vm}: no context has submissions')
        if has_pool:
            for name in POOL_CONTEXT_FAMILIES:
                if not series(fams, name, vm=vm):
                    problems.append(f'{vm}: no {name}')
    return problems
