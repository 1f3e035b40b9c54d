"""Mamba-YOLO's detector (the demo config: MambaYOLO-T, its PAFPN, YOLOv8Head in mmdet's
SingleStageDetector) through mmdet's data pipeline: a training step and a prediction step."""
import os.path as osp

import pytest
import torch
from mmdet.registry import DATASETS, MODELS
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from tests.demo_step import ROOT, ensure_demo_set

CONFIG = 'configs/mamba_yolo/mamba-yolo-t_pafpn_demo-coco.py'


@pytest.fixture(scope='module')
def cfg(demo_root):
    folder = osp.join(ensure_demo_set(demo_root, 'coco'), '')
    cfg = Config.fromfile(osp.join(ROOT, CONFIG))
    cfg.train_dataloader.dataset.data_root = folder
    cfg.test_dataloader.dataset.data_root = folder
    return cfg


def build(cfg, what):
    with DefaultScope.overwrite_default_scope('mmdet'):
        return DATASETS.build(what) if 'pipeline' in what else MODELS.build(what)


def test_training_samples_have_the_image_scale_and_their_boxes_inside(cfg):
    dataset = build(cfg, cfg.train_dataloader.dataset)
    size = cfg.img_scale
    count = 0
    for i in range(6):   # the first four pass the cached mosaic alone, then mosaics
        sample = dataset[i % len(dataset)]
        assert tuple(sample['inputs'].shape) == (3, *size)
        boxes = sample['data_samples'].gt_instances.bboxes.tensor
        assert (boxes >= 0).all() and (boxes[:, 2:] <= boxes.new_tensor(size)).all()
        count += len(boxes)   # a crop may leave an image empty, as in Ultralytics
    assert count


def test_a_training_step_updates_the_detector_with_finite_losses(cfg):
    dataset = build(cfg, cfg.train_dataloader.dataset)
    model = build(cfg, cfg.model)
    model.init_weights()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    before = [p.detach().clone() for p in model.parameters()]
    log = model.train_step(pseudo_collate([dataset[0], dataset[1]]), optim)
    assert set(log) == {'loss', 'loss_cls', 'loss_bbox', 'loss_dfl'}
    assert all(torch.isfinite(v) for v in log.values())
    changed = {n.split('.')[0] for (n, p), b in zip(model.named_parameters(), before)
               if not torch.equal(p, b)}
    assert changed == {'backbone', 'neck', 'bbox_head'}


def test_a_prediction_step_gives_boxes_in_the_original_image(cfg):
    dataset = build(cfg, cfg.test_dataloader.dataset)
    model = build(cfg, cfg.model).eval()
    model.init_weights()
    results = model.test_step(pseudo_collate([dataset[0], dataset[1]]))
    for result in results:
        pred = result.pred_instances
        height, width = result.ori_shape
        assert len(pred.bboxes) <= cfg.model.test_cfg.max_per_img
        assert (pred.bboxes >= 0).all() and (pred.bboxes[:, 2] <= width).all()
        assert (pred.bboxes[:, 3] <= height).all()
        assert ((pred.labels >= 0) & (pred.labels < 3)).all()
        assert (pred.scores >= cfg.model.test_cfg.score_thr).all()
