"""Convert an official release's checkpoint to the toolkit's key layout.

    python tools/convert_checkpoint.py van van_tiny_754.pth.tar van-b0_converted.pth
    python tools/convert_checkpoint.py nat mask_rcnn_nat_tiny.pth nat_converted.pth  # detector
    python tools/convert_checkpoint.py --list

``init_cfg=dict(type='Pretrained', checkpoint=...)`` accepts the official file directly (the same
converter runs on load); converting once ahead saves the work at every start and drops what the
release stores beside its weights (optimizer state, training arguments). A detector's or
segmentor's checkpoint (keys under ``backbone.``, found by itself or given with ``--prefix``) has
its backbone keys converted and every other key kept as it is, so the output still loads with
``load_from``. The copy of the weights taken is the one the official evaluation loads (as
``init_cfg`` takes it; SG-Former's ``state_dict_ema``); ``--copy`` picks another (``params_ema``).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a clone

import torch  # noqa: E402

import plugins  # noqa: E402,F401  (registers every converter)
from plugins.utils.checkpoint import (MODEL_PREFIXES, STATE_DICT_KEYS,  # noqa: E402
                                      CheckpointError, cached_download, extract_state_dict,
                                      is_url, load_checkpoint_file)
from plugins.utils.converters import CONVERTERS  # noqa: E402


def official_copies(arch: str) -> tuple:
    """The copies of the weights, in order of preference, of the modules that use the ``arch``
    converter: the one their official evaluation loads first (SG-Former: ``state_dict_ema``)."""
    from mmengine.registry import MODELS
    found = {getattr(cls, 'checkpoint_copies', STATE_DICT_KEYS)
             for cls in MODELS.module_dict.values() if getattr(cls, 'converter', None) == arch}
    return found.pop() if len(found) == 1 else STATE_DICT_KEYS


def converts_a_backbone(arch: str) -> bool:
    """Whether the ``arch`` converter is a backbone's (a whole model's converter, Group Pose's or
    ConDaFormer's segmentor's, maps its ``backbone.`` keys itself)."""
    from mmengine.registry import MODELS
    return all(cls.__module__.startswith('plugins.backbones')
               for cls in MODELS.module_dict.values() if getattr(cls, 'converter', None) == arch)


def detect_prefix(state: dict, arch: str) -> str:
    """``backbone.`` when a backbone converter is given a whole model's file (its backbone keys
    under that prefix)."""
    if converts_a_backbone(arch):
        for prefix in MODEL_PREFIXES:
            if any(k.startswith(prefix) for k in state):
                return prefix
    return ''


def convert(state: dict, arch: str, prefix: str = ''):
    """Convert the keys under ``prefix`` with the ``arch`` converter, keep the others as they are.

    Returns the new state dict and the keys under ``prefix`` whose tensors the converter did not
    carry over (dropped, or replaced by a tensor made from them, such as a fused qkv)."""
    part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not part:
        raise CheckpointError(f'no key of the checkpoint starts with prefix {prefix!r}')
    converted = CONVERTERS[arch](part)
    kept = {id(v) for v in converted.values()}
    dropped = [prefix + k for k, v in part.items() if id(v) not in kept]
    out = {k: v for k, v in state.items() if not k.startswith(prefix)}
    out.update((prefix + k, v) for k, v in converted.items())
    return out, dropped


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('arch', nargs='?', help=f'architecture, one of {sorted(CONVERTERS)}')
    parser.add_argument('src', nargs='?',
                        help="the official checkpoint: a file, or the release's URL (downloaded "
                             "once into torch's hub cache)")
    parser.add_argument('dst', nargs='?', help='where to write the converted checkpoint')
    parser.add_argument('--prefix', default=None,
                        help="convert only the keys under this prefix, keeping the others (default: "
                             "'backbone.' when the file has such keys, else every key)")
    parser.add_argument('--copy', default=None,
                        help="which copy of the weights to take, e.g. 'state_dict_ema' (default: "
                             "the one the official evaluation loads, as init_cfg takes it)")
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
        src = cached_download(args.src) if is_url(args.src) else args.src
        state = extract_state_dict(load_checkpoint_file(src), copy=args.copy,
                                   preference=official_copies(args.arch))
        prefix = detect_prefix(state, args.arch) if args.prefix is None else args.prefix
        converted, dropped = convert(state, args.arch, prefix)
    except CheckpointError as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(2)
    torch.save(dict(state_dict=converted, meta=dict(converted_from=osp.basename(args.src),
                                                    converter=args.arch, prefix=prefix,
                                                    copy=state.copy)), args.dst)
    inside = sum(k.startswith(prefix) for k in converted)
    print(f'{inside} tensors under {prefix or "the root"!r} converted with {args.arch!r}'
          + (f', {len(converted) - inside} others kept as they are' if prefix else '')
          + (f' (from its {state.copy!r} copy)' if state.copy else '') + f': {args.dst}')
    if dropped:
        print(f'not carried over as they are ({len(dropped)}: dropped, or merged into new '
              f'tensors): {", ".join(dropped[:10])}' + (' ...' if len(dropped) > 10 else ''))


if __name__ == '__main__':
    main()
