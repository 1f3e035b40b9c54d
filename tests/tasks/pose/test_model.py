"""Group Pose in mmpose: configs build, any backbone plugs in, one train and one predict step on
the generated data (through mmpose's own dataset, pipeline and CocoMetric), bad annotations."""
import copy
import glob
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DATASETS, METRICS, MODELS, DefaultScope, init_default_scope

from plugins.tasks.pose.reference import load_reference

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CONFIG_DIR = osp.join(ROOT, 'configs', 'grouppose')
CONFIGS = sorted(osp.basename(p) for p in glob.glob(osp.join(CONFIG_DIR, '*.py')))
DEMO = 'grouppose_r18_demo-coco.py'


@pytest.fixture(scope='module')
def pose_data(tmp_path_factory):
    from plugins.datasets.pose_demo import make_pose_demo
    root = tmp_path_factory.mktemp('pose')
    make_pose_demo(str(root), seed=0, num_train=20, num_val=4)
    return str(root) + '/'


def load(name, data_root=None) -> Config:
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
    cfg.model.backbone.init_cfg = None            # no download in tests
    if 'backbone' in cfg.model.backbone:          # a wrapper (MEDUSA): its wrapped backbone too
        cfg.model.backbone.backbone.init_cfg = None
    if data_root is not None:
        for loader in (cfg.train_dataloader, cfg.val_dataloader):
            loader.dataset.data_root = data_root
        cfg.val_evaluator.ann_file = data_root + 'annotations/person_keypoints_val2017.json'
    return cfg


def build_model(cfg):
    init_default_scope('mmpose')
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def batch(cfg, split, n):
    loader = cfg.train_dataloader if split == 'train' else cfg.val_dataloader
    dataset = DATASETS.build(loader.dataset)
    return pseudo_collate([dataset[i] for i in range(n)]), dataset


def test_coco_config_holds_the_paper_settings():
    ref = load_reference()['settings']
    cfg = load('grouppose_r50_8xb2-60e_coco.py')
    head = cfg.model.head
    assert (head.embed_dims, head.num_heads, head.feedforward_channels) == (
        ref['hidden_dim'], ref['nheads'], ref['dim_feedforward'])
    assert (head.num_encoder_layers, head.num_decoder_layers) == (ref['enc_layers'],
                                                                 ref['dec_layers'])
    assert (head.num_queries, head.codec.num_select, head.num_keypoints) == (
        ref['num_queries'], ref['num_select'], ref['num_body_points'])
    assert (head.num_feature_levels, head.num_points) == (ref['num_feature_levels'],
                                                         ref['dec_n_points'])
    assert (head.loss_cls.loss_weight, head.loss_keypoint.loss_weight,
            head.loss_oks.loss_weight) == (ref['cls_loss_coef'], ref['keypoints_loss_coef'],
                                           ref['oks_loss_coef'])
    assert (head.matcher.cost_class, head.matcher.cost_keypoint, head.matcher.cost_oks) == (
        ref['set_cost_class'], ref['set_cost_keypoints'], ref['set_cost_oks'])
    opt = cfg.optim_wrapper
    assert opt.optimizer.lr == ref['lr'] and opt.clip_grad.max_norm == ref['clip_max_norm']
    assert opt.optimizer.lr * opt.paramwise_cfg.custom_keys['backbone'].lr_mult == pytest.approx(
        ref['lr_backbone'])
    assert cfg.train_cfg.max_epochs == ref['epochs']
    assert head.num_classes == ref['num_classes']
    plain, crop = cfg.train_dataloader.dataset.pipeline[3]['transforms']
    assert plain[0]['scales'] == crop[2]['scales'] == ref['data_aug_scales']
    assert plain[0]['max_size'] == crop[2]['max_size'] == ref['data_aug_max_size']
    assert crop[0]['scales'] == ref['data_aug_scales2_resize']
    assert [crop[1]['min_size'], crop[1]['max_size']] == ref['data_aug_scales2_crop']
    test_resize = cfg.val_dataloader.dataset.pipeline[1]
    assert test_resize['scales'] == [max(ref['data_aug_scales'])]
    assert test_resize['max_size'] == ref['data_aug_max_size']
    assert cfg.param_scheduler[0].milestones == [ref['lr_drop']]
    assert load_reference()['results']['coco_val2017']['ResNet-50']['AP'] == 72.0


@pytest.mark.parametrize('name', CONFIGS)
def test_every_config_builds_and_predicts(name):
    cfg = load(name)
    if 'demo' not in name:                   # the paper-size model: a smaller input keeps it fast
        cfg.model.head.num_encoder_layers = 1
        cfg.model.head.num_decoder_layers = 2
    model = build_model(cfg).eval()
    from mmpose.structures import PoseDataSample
    size = 96
    meta = dict(img_shape=(size, size), input_size=(size, size), ori_shape=(size, size),
                input_center=np.array([size / 2, size / 2]), input_scale=np.array([size, size]))
    data = dict(inputs=[torch.randint(0, 255, (3, size, size), dtype=torch.uint8)],
                data_samples=[PoseDataSample(metainfo=meta)])
    with torch.no_grad():
        out = model.test_step(data)[0].pred_instances
    k = cfg.model.head.num_keypoints
    assert len(out.keypoints) <= cfg.model.head.codec.num_select     # the person-class pairs
    assert out.keypoints.shape[1:] == (k, 2) and out.keypoint_scores.shape[1:] == (k, )
    assert np.isfinite(out.keypoints).all()


@pytest.mark.parametrize('name', ['grouppose_r50_8xb2-60e_coco.py',
                                  'grouppose_van-b0_8xb2-60e_coco.py'])
def test_resnet50_and_van_b0_plug_in_by_config(name, pose_data):
    cfg = load(name, pose_data)
    cfg.model.head.update(num_encoder_layers=1, num_decoder_layers=1, num_queries=10)
    choice = cfg.train_dataloader.dataset.pipeline[3]       # the official resize / crop
    choice.transforms = [[dict(type='GroupPoseRandomResize', scales=[96, 112], max_size=128)],
                         [dict(type='GroupPoseRandomSizeCrop', min_size=64, max_size=96)]]
    model = build_model(cfg)
    expected = {'grouppose_r50_8xb2-60e_coco.py': 'ResNet', 'grouppose_van-b0_8xb2-60e_coco.py':
                'VAN'}[name]
    assert type(model.backbone).__name__ == expected
    data, _ = batch(cfg, 'train', 2)
    losses = model(**model.data_preprocessor(data, training=True), mode='loss')
    total = sum(losses.values())
    total.backward()
    assert torch.isfinite(total)
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.backbone.parameters())


def test_one_train_step_lowers_nothing_to_nan_and_updates_weights(pose_data):
    cfg = load(DEMO, pose_data)
    model = build_model(cfg)
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    data, _ = batch(cfg, 'train', 4)
    before = copy.deepcopy(model.head.cls_heads[-1].weight.detach())
    log = model.train_step(data, optim)
    expected = {f'{p}{k}' for p in ('', 'd0.', 'd1.', 'enc.')
                for k in ('loss_cls', 'loss_kpt', 'loss_oks')}
    assert expected <= set(log) and all(np.isfinite(float(v)) for v in log.values())
    assert not torch.equal(before, model.head.cls_heads[-1].weight)


def test_one_predict_step_feeds_coco_metric(pose_data):
    cfg = load(DEMO, pose_data)
    model = build_model(cfg).eval()
    data, dataset = batch(cfg, 'val', 2)
    with torch.no_grad():
        samples = model.val_step(data)
    pred = samples[0].pred_instances
    assert len(pred.keypoints) <= 10 and pred.keypoints.shape[1:] == (17, 2)
    assert pred.keypoint_scores.shape == (len(pred.keypoints), 17)
    assert (np.diff(pred.keypoint_scores[:, 0]) <= 0).all()       # sorted by score
    with DefaultScope.overwrite_default_scope('mmpose'):
        metric = METRICS.build(cfg.val_evaluator)
    metric.dataset_meta = dataset.metainfo
    metric.process(data, [s.to_dict() for s in samples])
    result = metric.evaluate(2)
    assert 'coco/AP' in result and 0 <= result['coco/AP'] <= 1


def test_bad_annotations_train(pose_data, tmp_path):
    """Images whose only annotation is a crowd region, or a person with every keypoint
    unlabelled, give empty targets: the losses stay finite and backpropagate."""
    src = json.load(open(pose_data + 'annotations/person_keypoints_train2017.json'))
    images = src['images'][:2]
    anns = [dict(id=1, image_id=images[0]['id'], category_id=1, iscrowd=1, num_keypoints=0,
                 keypoints=[0] * 51, bbox=[5, 5, 40, 40], area=1600.,
                 segmentation=[[5, 5, 45, 5, 45, 45, 5, 45]]),
            dict(id=2, image_id=images[1]['id'], category_id=1, iscrowd=0, num_keypoints=0,
                 keypoints=[0] * 51, bbox=[10, 10, 30, 60], area=900.,
                 segmentation=[[10, 10, 40, 10, 40, 70, 10, 70]])]
    ann_file = tmp_path / 'bad.json'
    ann_file.write_text(json.dumps(dict(images=images, annotations=anns,
                                        categories=src['categories'])))
    cfg = load(DEMO, pose_data)
    cfg.train_dataloader.dataset.ann_file = str(ann_file)
    model = build_model(cfg)
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    data, dataset = batch(cfg, 'train', 2)
    assert all(len(s.gt_instance_labels.keypoint_labels) == 0 for s in data['data_samples'])
    log = model.train_step(data, optim)
    assert all(np.isfinite(float(v)) for v in log.values())
