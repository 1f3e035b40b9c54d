"""List every module the toolkit registers: kind, paper, and the configs that use it.

    python tools/list_plugins.py              # a table on the terminal
    python tools/list_plugins.py --markdown   # the table of docs/plugins.md

The "in MixerFormer" column of the mixers is read from docs/mixer-status.json, which
tools/analysis/mixer_status.py writes (the check that tests/backbones/test_mixerformer.py runs).
"""
import argparse
import glob
import inspect
import json
import math
import os.path as osp
import re
import sys
from collections import defaultdict

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)  # run from a clone

import plugins  # noqa: E402,F401
from plugins.registry import DATASETS, HOOKS, METRICS, MODELS, TRANSFORMS  # noqa: E402

KINDS = {'backbones': 'backbone', 'mixers': 'mixer', 'blocks': 'block', 'necks': 'neck'}
MIXER_STATUS = osp.join(ROOT, 'docs', 'mixer-status.json')


def paper_of(cls) -> str:
    """The paper named in the first line of the module's docstring ('NAME: "Title" (...)')."""
    doc = inspect.getmodule(cls).__doc__ or ''
    first = ' '.join(doc.strip().split('\n\n')[0].split())
    match = re.search(r'"([^"]+)"\s*\(([^)]*)\)', first)
    return f'{match.group(1)} ({match.group(2)})' if match else first[:80]


def kind_of(cls) -> str:
    parts = cls.__module__.split('.')
    if parts[1] == 'tasks':
        return f'task: {parts[2]}'
    return KINDS.get(parts[1], parts[1])


def config_index():
    uses = defaultdict(list)
    for path in sorted(glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)):
        text = open(path).read()
        for name in set(re.findall(r"type\s*=\s*'([\w.]+)'", text)):
            uses[name].append(osp.relpath(path, osp.join(ROOT, 'configs')))
    return uses


def mixer_statuses() -> dict:
    """name -> the MixerFormer check's result (empty before mixer_status.py has run)."""
    if not osp.exists(MIXER_STATUS):
        return {}
    with open(MIXER_STATUS) as f:
        return json.load(f)['mixers']


def mixer_status_text(name: str, statuses: dict) -> str:
    result = statuses.get(name)
    if result is None:
        return 'not checked yet'
    if result['status'] == 'pass':
        sizes = sorted(result['outputs'], key=lambda s: math.prod(map(int, s.split('x'))))
        return 'works (' + ', '.join(s.replace('x', '×') for s in sizes) + ')'
    return f"fails: {result['reason']}".replace('|', '\\|')


def collect():
    uses = config_index()
    statuses = mixer_statuses()
    rows = []
    for registry in (MODELS, DATASETS, TRANSFORMS, METRICS, HOOKS):
        for name, cls in sorted(registry.module_dict.items()):
            if not cls.__module__.startswith('plugins.'):
                continue
            kind = kind_of(cls)
            rows.append(dict(name=name, kind=kind, registry=registry.name,
                             paper=paper_of(cls), configs=uses.get(name, []),
                             mixerformer=mixer_status_text(name, statuses)
                             if kind == 'mixer' else ''))
    order = ['backbone', 'mixer', 'block', 'neck']
    rows.sort(key=lambda r: (order.index(r['kind']) if r['kind'] in order else len(order),
                             r['kind'], r['name']))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--markdown', action='store_true', help='print a markdown table')
    args = parser.parse_args(argv)
    rows = collect()
    if args.markdown:
        print('| name | kind | registry | paper | configs | in MixerFormer |')
        print('|---|---|---|---|---|---|')
        for r in rows:
            configs = '<br>'.join(f'`{c}`' for c in r['configs']) or '—'
            print(f"| `{r['name']}` | {r['kind']} | {r['registry']} | {r['paper']} | {configs} "
                  f"| {r['mixerformer']} |")
        return
    for r in rows:
        print(f"{r['name']:<32} {r['kind']:<18} {len(r['configs']):>3} configs  {r['paper']}")


if __name__ == '__main__':
    main()
