"""Parameters and FLOPs of a config's model (or of its backbone alone) at an input size.

    python tools/analysis/get_flops.py CONFIG --shape 800 1216 [--backbone-only]

FLOPs are counted by mmengine's analyser (one multiply-add = one FLOP, the convention of the
papers' tables; neighborhood attention at its k x k cost, see plugins/utils/flops.py) on a
forward pass in ``mode='tensor'`` (no post-processing).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import torch  # noqa: E402
from mmengine.registry import MODELS, DefaultScope  # noqa: E402

import plugins  # noqa: E402,F401
from plugins.utils.flops import count_flops  # noqa: E402
from plugins.utils.tools import DictAction, load_config  # noqa: E402


class TensorMode(torch.nn.Module):
    """Calls an OpenMMLab model in ``mode='tensor'`` so the analyser sees a plain forward."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x, mode='tensor')


def count(config, shape, backbone_only=False, cfg_options=None):
    """Return (params, flops) of the config's model (or backbone) on a 1 x 3 x H x W input."""
    cfg = load_config(config, cfg_options)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmengine')):
        if backbone_only:
            model = MODELS.build(cfg.model.backbone)
        else:
            model = TensorMode(MODELS.build(cfg.model))
    model.eval()
    channels = cfg.model.get('backbone', {}).get('in_channels', 3)
    params = sum(p.numel() for p in model.parameters())
    return params, count_flops(model, (torch.rand(1, channels, *shape), ))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1216], metavar=('H', 'W'))
    parser.add_argument('--backbone-only', action='store_true')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    params, flops = count(args.config, args.shape, args.backbone_only, args.cfg_options)
    what = 'backbone of ' if args.backbone_only else ''
    print(f'{what}{args.config} at {args.shape[0]}x{args.shape[1]}: '
          f'{params / 1e6:.2f} M parameters, {flops / 1e9:.2f} GFLOPs')


if __name__ == '__main__':
    main()
