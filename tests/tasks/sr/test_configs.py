"""Every config in configs/sr builds its model and runs one forward pass on a small input."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CONFIGS = sorted(osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'configs', 'sr', '*.py')))


def test_there_are_sr_configs():
    assert len(CONFIGS) >= 16


@pytest.mark.parametrize('path', CONFIGS)
def test_sr_config_builds_and_runs(path):
    cfg = Config.fromfile(osp.join(ROOT, path))
    assert cfg.custom_imports['imports'] == ['plugins'] and 'default_scope' not in cfg
    model = MODELS.build(cfg.model).eval()
    scale = model.scale
    assert cfg.test_dataloader.dataset.get('scale', scale) == scale
    data = dict(inputs=[torch.randint(0, 256, (3, 14, 18), dtype=torch.uint8)])
    with torch.no_grad():
        out = model(**model.data_preprocessor(data), mode='tensor')
    assert out.shape == (1, 3, 14 * scale, 18 * scale) and torch.isfinite(out).all()


def test_every_div2k_config_has_a_demo_twin_or_shares_its_architecture():
    names = [osp.basename(p) for p in CONFIGS]
    demos = {n.split('_')[0] for n in names if 'demo' in n}
    for name in names:
        if 'div2k' in name:
            assert name.split('_')[0].split('-')[0] in {d.split('-')[0] for d in demos}, name
