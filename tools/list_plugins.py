"""List every module the toolkit registers: kind, paper, and the configs that use it.

    python tools/list_plugins.py              # a table on the terminal
    python tools/list_plugins.py --markdown   # the table of docs/plugins.md
"""
import argparse
import glob
import inspect
import os.path as osp
import re
import sys
from collections import defaultdict

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)  # run from a clone

import plugins  # noqa: E402,F401
from plugins.registry import DATASETS, HOOKS, METRICS, MODELS, TRANSFORMS  # noqa: E402

KINDS = {'backbones': 'backbone', 'mixers': 'mixer', 'blocks': 'block', 'necks': 'neck'}


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


def collect():
    uses = config_index()
    rows = []
    for registry in (MODELS, DATASETS, TRANSFORMS, METRICS, HOOKS):
        for name, cls in sorted(registry.module_dict.items()):
            if not cls.__module__.startswith('plugins.'):
                continue
            rows.append(dict(name=name, kind=kind_of(cls), registry=registry.name,
                             paper=paper_of(cls), configs=uses.get(name, [])))
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
        print('| name | kind | registry | paper | configs |')
        print('|---|---|---|---|---|')
        for r in rows:
            configs = '<br>'.join(f'`{c}`' for c in r['configs']) or '—'
            print(f"| `{r['name']}` | {r['kind']} | {r['registry']} | {r['paper']} | {configs} |")
        return
    for r in rows:
        print(f"{r['name']:<32} {r['kind']:<18} {len(r['configs']):>3} configs  {r['paper']}")


if __name__ == '__main__':
    main()
