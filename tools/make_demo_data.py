"""Generate the demo data sets, in the real formats of each task (deterministic, seconds).

    python tools/make_demo_data.py --out data/demo                # every task
    python tools/make_demo_data.py --out data/demo --tasks coco ade20k

Each task's set goes to ``<out>/<task>``; point the demo configs' ``data_root`` there (they do).
"""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a clone

import plugins  # noqa: E402,F401  (imports every generator)
from plugins.datasets.registry import DEMO_GENERATORS  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='data/demo', help='root folder of the demo sets')
    parser.add_argument('--tasks', nargs='+', default=sorted(DEMO_GENERATORS),
                        help=f'which sets (default: all of {sorted(DEMO_GENERATORS)})')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.tasks) - set(DEMO_GENERATORS))
    if unknown:
        parser.error(f'unknown task(s) {unknown}; known: {sorted(DEMO_GENERATORS)}')
    for task in args.tasks:
        start = time.time()
        DEMO_GENERATORS[task](osp.join(args.out, task), args.seed)
        print(f'[demo data] {task}: {osp.join(args.out, task)} ({time.time() - start:.1f} s)')


if __name__ == '__main__':
    main()
