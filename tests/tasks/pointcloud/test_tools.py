"""One train step and one test step of the point cloud demo config through the tools; configs."""
import glob
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'condaformer', '*.py')))
DEMO = 'configs/condaformer/condaformer_demo-semseg.py'


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_condaformer_config_builds_and_runs(path):
    cfg = Config.fromfile(path)
    assert cfg.custom_imports['imports'] == ['plugins'] and 'default_scope' not in cfg
    assert cfg.default_hooks.visualization.type == 'PointCloudVisualizationHook'
    model = MODELS.build(cfg.model).eval()
    g = torch.Generator().manual_seed(0)
    coord = torch.rand(300, 3, generator=g) * 3
    voxel = model.backbone.voxel_size
    in_channels = cfg.model.backbone.in_channels
    data = dict(inputs=[dict(coord=coord, grid_coord=torch.floor(coord / voxel).long(),
                             feat=torch.randn(300, in_channels, generator=g))])
    with torch.no_grad():
        out = model(**model.data_preprocessor(data), mode='tensor')
    assert out.shape == (300, cfg.model.head.num_classes) and torch.isfinite(out).all()


def test_real_configs_match_the_presets():
    from plugins.tasks.pointcloud.reference import condaformer_presets
    presets = condaformer_presets()
    for name, preset in (('condaformer_scannet-semseg.py', 'scannet'),
                         ('condaformer-small_s3dis-area5-semseg.py', 's3dis')):
        cfg = Config.fromfile(osp.join(ROOT, 'configs', 'condaformer', name))
        assert cfg.model.backbone.arch == preset
        assert cfg.model.head.num_classes == presets[preset]['num_classes']
        assert cfg.model.backbone.in_channels == presets[preset]['in_channels']
        assert cfg.voxel_size == presets[preset]['arch']['voxel_size']


def pipeline_step(pipeline, name):
    return next(t for t in pipeline if t['type'] == name)


@pytest.mark.parametrize('name,num_copies,per_batch', [
    ('condaformer_scannet-semseg.py', 13, 4), ('condaformer-small_s3dis-area5-semseg.py', 12, 6)])
def test_paper_configs_test_with_the_official_protocol_and_train_in_mixed_precision(
        name, num_copies, per_batch):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'condaformer', name))
    test = pipeline_step(cfg.test_dataloader.dataset.pipeline, 'PointTestTimeAug')
    assert test['mode'] == 'fragments' and len(test['augments']) == num_copies
    angles = [aug[0]['angle'][0] for aug in test['augments'][:12]]
    assert angles == [0, 0.5, 1, 1.5] * 3
    val = pipeline_step(cfg.val_dataloader.dataset.pipeline, 'PointTestTimeAug')
    assert val['mode'] == 'first' and not val.get('augments')
    assert cfg.model.test_cfg.views_per_batch == per_batch
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'


def test_demo_config_tests_in_the_light_mode_and_fp32():
    cfg = Config.fromfile(osp.join(ROOT, DEMO))
    test = pipeline_step(cfg.test_dataloader.dataset.pipeline, 'PointTestTimeAug')
    assert test['mode'] == 'first' and not test.get('augments')
    assert cfg.optim_wrapper.type == 'OptimWrapper' and 'loss_scale' not in cfg.optim_wrapper


def test_amp_configs_fall_back_to_bfloat16_autocast_without_a_gpu(monkeypatch):
    from plugins.utils.tools import enable_amp
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'condaformer',
                                   'condaformer-small_s3dis-area5-semseg.py'))
    enable_amp(cfg)
    assert cfg.optim_wrapper.type == 'CPUAutocastOptimWrapper'
    assert 'loss_scale' not in cfg.optim_wrapper and cfg.optim_wrapper.dtype == 'bfloat16'


@pytest.mark.slow
def test_train_then_test_demo_config_through_the_tools(tmp_path):
    from plugins.datasets.pointcloud_demo import make_pointcloud_demo
    data = tmp_path / 'pointcloud'
    make_pointcloud_demo(str(data), seed=0, rooms_per_area=1, areas=(1, 5))
    env = dict(os.environ, OMP_NUM_THREADS='1')
    common = ['--cfg-options', f'train_dataloader.dataset.data_root={data}',
              'train_dataloader.dataset.split=[Area_1]', 'train_dataloader.batch_size=1',
              f'val_dataloader.dataset.data_root={data}',
              f'test_dataloader.dataset.data_root={data}']
    work = tmp_path / 'work'
    subprocess.run([sys.executable, 'tools/train.py', DEMO, '--work-dir', str(work), *common,
                    'train_cfg.max_iters=1', 'train_cfg.val_interval=1',
                    'default_hooks.checkpoint.interval=1'],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    ckpt = work / 'iter_1.pth'
    assert ckpt.is_file()
    show = tmp_path / 'show'
    result = subprocess.run([sys.executable, 'tools/test.py', DEMO, str(ckpt), '--work-dir',
                             str(work), '--show-dir', str(show), *common],
                            cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    log = result.stdout + result.stderr
    assert 'pcd/mIoU:' in log and 'pcd/mAcc:' in log and 'pcd/OA:' in log
    files = sorted(os.listdir(show))
    assert files == ['room_0_gt.ply', 'room_0_gt.png', 'room_0_pred.ply', 'room_0_pred.png']
    with open(show / 'room_0_pred.ply', 'rb') as f:
        assert f.read(3) == b'ply'
    assert cv2.imread(str(show / 'room_0_pred.png')).ndim == 3


def test_top_view_shows_the_highest_point_of_each_pixel():
    from plugins.tasks.pointcloud.hooks import draw_top_view
    g = np.random.RandomState(0)
    floor = np.c_[g.rand(4000, 2) * 4, np.zeros(4000)]  # a 4 m x 4 m floor
    box = np.c_[1 + g.rand(1000, 2), np.ones(1000)]  # the 1 m x 1 m top of a box at 1 m
    red, blue = (255, 0, 0), (0, 0, 255)
    rgb = np.array([red] * 4000 + [blue] * 1000, np.uint8)
    image = draw_top_view(np.r_[floor, box], rgb, size=200)
    height, width = image.shape[:2]
    assert max(height, width) == 200 and abs(height - width) <= 4

    def colour_at(x, y):
        return tuple(image[int((1 - y / 4) * (height - 1)), int(x / 4 * (width - 1))])

    assert colour_at(1.5, 1.5) == blue and colour_at(3, 3) == red and colour_at(0.5, 3.5) == red
    legend = draw_top_view(np.r_[floor, box], rgb, ('floor', 'box'), np.array([red, blue]),
                           size=200)
    assert legend.shape[0] > height and (legend[height:] == blue).all(-1).any()
