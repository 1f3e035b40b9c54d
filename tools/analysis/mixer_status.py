"""Does every registered token mixer work inside MixerFormer? The status column of docs/plugins.md.

    python tools/analysis/mixer_status.py                          # print the status of each
    python tools/analysis/mixer_status.py --out docs/mixer-status.json

For each mixer of the registry (``registered_mixers()``, no hand-written list), :func:`check_mixer`
builds a small MixerFormer (one block per stage) with the mixer's defaults, runs a training
forward and backward on a 97x131 image (every mixer parameter must get a finite gradient, auxiliary
losses included) and an inference forward on 192x320; each output must have the backbone's
``ceil(H / stride)`` shape and finite values. tests/backbones/test_mixerformer.py asserts the same
check for every mixer; ``tools/list_plugins.py --markdown`` shows the JSON written here.
"""
import argparse
import json
import math
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

import plugins  # noqa: E402,F401
from plugins.backbones.mixerformer import MixerFormer, registered_mixers  # noqa: E402
from plugins.utils.auxiliary_loss import collect_auxiliary_losses  # noqa: E402

STATUS_JSON = osp.join(ROOT, 'docs', 'mixer-status.json')
#: One block per stage, narrow stages (head dim 16): the check is about fitting, not capacity.
SMALL_ARCH = dict(depths=[1, 1, 1, 1], embed_dims=[16, 32, 48, 64], num_heads=[1, 2, 3, 4])
TRAIN_SIZE, INFER_SIZE = (97, 131), (192, 320)


def _failure(result: dict, step: str, err: Exception) -> dict:
    first_line = str(err).strip().splitlines()[0] if str(err).strip() else ''
    result.update(status='fail', reason=f'{step}: {type(err).__name__}: {first_line}'[:300])
    return result


def _check_outputs(model, outs, size) -> str:
    """'' if every map has shape (C_i, ceil(H / s_i), ceil(W / s_i)) and finite values."""
    for out, channels, stride in zip(outs, model.out_channels, model.strides):
        expected = (channels, math.ceil(size[0] / stride), math.ceil(size[1] / stride))
        if tuple(out.shape[1:]) != expected:
            return f'{size[0]}x{size[1]}: output {tuple(out.shape[1:])}, expected {expected}'
        if not torch.isfinite(out).all():
            return f'{size[0]}x{size[1]}: non-finite values at stride {stride}'
    return ''


def check_mixer(mixer, arch=SMALL_ARCH) -> dict:
    """Build MixerFormer with ``mixer`` (a registered name or a config dict), train one step's
    forward and backward at 97x131, infer at 192x320. Returns ``dict(status='pass' | 'fail',
    reason, outputs={'HxW': ['Cxhxw' of each stage]}, auxiliary_losses=[names])``."""
    cfg = dict(type=mixer) if isinstance(mixer, str) else dict(mixer)
    result = dict(status='pass', reason='', outputs={}, auxiliary_losses=[])
    torch.manual_seed(0)
    try:
        model = MixerFormer(arch, mixers=cfg)
    except Exception as err:  # noqa: BLE001  (every failure is a status, with its reason)
        return _failure(result, 'build', err)
    mixer_params = {f'{name}': p for name, p in model.named_parameters() if '.token_mixer.' in name}
    for size, training in ((TRAIN_SIZE, True), (INFER_SIZE, False)):
        model.train(training)
        try:
            with torch.set_grad_enabled(training):
                outs = model(torch.randn(1, 3, *size))
                if training:
                    auxiliary = collect_auxiliary_losses(model)
                    result['auxiliary_losses'] = sorted(auxiliary)
                    loss = sum(o.float().square().mean() for o in outs)
                    (loss + sum(auxiliary.values())).backward()
        except Exception as err:  # noqa: BLE001
            return _failure(result, f'{size[0]}x{size[1]} {"train" if training else "eval"}',
                            err)
        problem = _check_outputs(model, outs, size)
        if problem:
            result.update(status='fail', reason=problem)
            return result
        result['outputs'][f'{size[0]}x{size[1]}'] = ['x'.join(map(str, o.shape[1:]))
                                                     for o in outs]
    no_grad = [n for n, p in mixer_params.items() if p.requires_grad and
               (p.grad is None or not torch.isfinite(p.grad).all())]
    if no_grad:
        result.update(status='fail', reason=f'no finite gradient reaches {len(no_grad)} mixer '
                                            f'parameters, e.g. {no_grad[:3]}')
    return result


def check_all() -> dict:
    return {name: check_mixer(name) for name in registered_mixers()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', help='write the statuses as JSON (docs/mixer-status.json)')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    statuses = check_all()
    for name, res in statuses.items():
        print(f"{name:<34} {res['status']:<5} {res['reason']}")
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(about=__doc__.splitlines()[0], arch=SMALL_ARCH, mixers=statuses), f,
                      indent=1, sort_keys=True)
            f.write('\n')


if __name__ == '__main__':
    main()
