#!/usr/bin/env python3
#
# Copyright (c) 2026 pvgpu authors
# SPDX-License-Identifier: GPL-2.0-or-later

"""Report of scripts/bench-gl.sh: median fps per scene over the rounds, for
pvgpu, pvgpu with a render process and virtio-gpu-gl, and the ratios
pvgpu / virtio-gpu-gl and render process / pvgpu.  Reads the gl-guest.py
--json files DIRECTORY/pvgpu-N.json, DIRECTORY/process-N.json and
DIRECTORY/gl-N.json, N = 1 to ROUNDS."""

import argparse
import json
import math
import os
import statistics


def load(directory, prefix, rounds):
    runs = []
    for i in range(1, rounds + 1):
        with open(os.path.join(directory, f'{prefix}-{i}.json')) as f:
            runs.append(json.load(f))
    return runs


def per_scene(runs):
    fps = {}
    for r in runs:
        for s in r['glmark2']['scenes']:
            fps.setdefault(s['name'], []).append(s['fps'])
        fps.setdefault('kmscube', []).append(r['kmscube']['fps'])
    return {k: statistics.median(v) for k, v in fps.items()}, fps


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('directory', metavar='DIRECTORY',
                    help="bench-gl.sh's results")
    ap.add_argument('rounds', metavar='ROUNDS', type=int,
                    help='rounds bench-gl.sh ran')
    args = ap.parse_args()
    directory, rounds = args.directory, args.rounds
    pv, pv_all = per_scene(load(directory, 'pvgpu', rounds))
    pr, pr_all = per_scene(load(directory, 'process', rounds))
    gl, gl_all = per_scene(load(directory, 'gl', rounds))
    ratios, pratios = [], []
    print(f'{"scene":<14} {"pvgpu fps":>10} {"virtio-gpu-gl fps":>18} '
          f'{"ratio":>7} {"process fps":>12} {"/ pvgpu":>8}   (median of '
          f'{rounds} rounds; all rounds)')
    for scene in pv:
        ratio = pv[scene] / gl[scene] if gl.get(scene) else float('nan')
        pratio = pr[scene] / pv[scene] if pr.get(scene) else float('nan')
        ratios.append(ratio)
        pratios.append(pratio)
        print(f'{scene:<14} {pv[scene]:>10.1f} {gl.get(scene, 0):>18.1f} '
              f'{ratio:>7.2f} {pr.get(scene, 0):>12.1f} {pratio:>8.2f}   '
              f'pvgpu {pv_all[scene]} process {pr_all.get(scene)} '
              f'gl {gl_all.get(scene)}')
    geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    pgeo = math.exp(sum(math.log(r) for r in pratios) / len(pratios))
    print(f'{"overall":<14} {"":>10} {"":>18} {geo:>7.2f} {"":>12} '
          f'{pgeo:>8.2f}   (geometric means)')
    print(f'lowest scene ratio {min(ratios):.2f}; render process / in QEMU '
          f'lowest {min(pratios):.2f}')


if __name__ == '__main__':
    main()
