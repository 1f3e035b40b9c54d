"""Every config under configs/ builds its model and runs one forward pass on a small input.

The configs of the toolkit's own tasks (super-resolution, point cloud, Group Pose) are covered by
the config tests of those tasks, which know their inputs; this file covers the mmdet, mmseg and
mmpose (top-down) configs. The demo twins train an iteration in ``test_demo_configs.py`` (a build,
a forward and a backward): a forward here would add nothing but time.
"""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
OWN_TASK_DIRS = ('sr', 'condaformer', 'grouppose')
CONFIGS = sorted(
    osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p and osp.relpath(p, osp.join(ROOT, 'configs')).split(osp.sep)[0]
    not in OWN_TASK_DIRS)
FULL_CONFIGS = [p for p in CONFIGS if 'demo' not in osp.basename(p)]


def dummy_batch(scope, height, width):
    image = torch.randint(0, 255, (3, height, width), dtype=torch.uint8)
    meta = dict(img_shape=(height, width), ori_shape=(height, width), scale_factor=(1., 1.),
                pad_shape=(height, width), input_size=(width, height),
                input_center=(width / 2, height / 2), input_scale=(width, height), flip=False,
                flip_indices=list(range(17)))
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample as Sample
    elif scope == 'mmseg':
        from mmseg.structures import SegDataSample as Sample
    else:
        from mmpose.structures import PoseDataSample as Sample
    return dict(inputs=[image], data_samples=[Sample(metainfo=meta)])


@pytest.mark.parametrize('path', FULL_CONFIGS)
def test_config_builds_and_runs_a_forward_pass(path):
    cfg = Config.fromfile(osp.join(ROOT, path))
    scope = cfg.get('default_scope', 'mmengine')
    height, width = (64, 48) if scope == 'mmpose' else (64, 96)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model).eval()
        with torch.no_grad():
            data = model.data_preprocessor(dummy_batch(scope, height, width), training=False)
            out = model(**data, mode='tensor')
    tensors = [t for t in (out if isinstance(out, (list, tuple)) else [out])
               if torch.is_tensor(t)] or [t for o in out for t in o if torch.is_tensor(t)]
    assert tensors and all(torch.isfinite(t).all() for t in tensors)


def test_every_real_dataset_config_has_a_demo_twin():
    names = [osp.basename(p) for p in CONFIGS]
    for path in FULL_CONFIGS:
        stem = osp.basename(path).split('_')[0:2]
        assert any('demo' in n and n.split('_')[0:2] == stem for n in names), path
