"""Convert an official release's checkpoint to the toolkit's key layout.

    python tools/convert_checkpoint.py van van_tiny_754.pth.tar van-b0_converted.pth
    python tools/convert_checkpoint.py --list

``init_cfg=dict(type='Pretrained', checkpoint=...)`` accepts the official file directly (the same
converter runs on load); converting once ahead saves the work at every start and drops what the
release stores beside its weights (optimizer state, training arguments).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a clone

import torch  # noqa: E402

import plugins  # noqa: E402,F401  (registers every converter)
from plugins.utils.checkpoint import (CheckpointError, extract_state_dict,  # noqa: E402
                                      load_checkpoint_file)
from plugins.utils.converters import CONVERTERS  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('arch', nargs='?', help=f'architecture, one of {sorted(CONVERTERS)}')
    parser.add_argument('src', nargs='?', help='the official checkpoint')
    parser.add_argument('dst', nargs='?', help='where to write the converted checkpoint')
    parser.add_argument('--list', action='store_true', help='list the known architectures')
    args = parser.parse_args(argv)
    if args.list:
        print('\n'.join(sorted(CONVERTERS)))
        return
    if not (args.arch and args.src and args.dst):
        parser.error('give ARCH SRC DST (or --list)')
    if args.arch not in CONVERTERS:
        parser.error(f'no converter for {args.arch!r}; known: {sorted(CONVERTERS)}')
    if osp.abspath(args.src) == osp.abspath(args.dst):
        parser.error('dst must differ from src: the original checkpoint is never overwritten')
    try:
        state = extract_state_dict(load_checkpoint_file(args.src))
    except CheckpointError as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(2)
    converted = CONVERTERS[args.arch](state)
    torch.save(dict(state_dict=converted, meta=dict(converted_from=osp.basename(args.src),
                                                    converter=args.arch)), args.dst)
    print(f'{len(converted)} tensors converted with {args.arch!r}: {args.dst}')


if __name__ == '__main__':
    main()
