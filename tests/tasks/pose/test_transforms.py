"""The official Group Pose data pipeline: test-time resize, crop, resize, people filter."""
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import MODELS, TRANSFORMS, init_default_scope

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
PAPER = osp.join(ROOT, 'configs', 'grouppose', 'grouppose_r50_8xb2-60e_coco.py')


def image(h, w):
    """Pixels that tell where they came from: channel 0 = y, channel 1 = x (mod 256)."""
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing='ij')
    return np.stack([ys % 256, xs % 256, (ys // 256) * 16 + xs // 256], -1).astype(np.uint8)


@pytest.mark.parametrize('size,expected', [((480, 640), (800, 1066)), ((300, 1000), (400, 1333)),
                                           ((800, 600), (1066, 800))])
def test_paper_test_pipeline_resizes_to_short_800_long_1333_without_padding(size, expected):
    cfg = Config.fromfile(PAPER)
    init_default_scope('mmpose')
    steps = [TRANSFORMS.build(t) for t in cfg.val_dataloader.dataset.pipeline[1:]]
    h, w = size
    results = dict(img=image(h, w), img_shape=(h, w), ori_shape=(h, w), id=0, img_id=0,
                   img_path='x.jpg')
    for step in steps:
        results = step(results)
    sample = results['data_samples']
    assert tuple(results['inputs'].shape[-2:]) == expected
    preprocessor = MODELS.build(cfg.model.data_preprocessor)
    batch = preprocessor(dict(inputs=[results['inputs']], data_samples=[sample]))
    assert tuple(batch['inputs'].shape[-2:]) == expected           # batch 1: no padding
    meta = batch['data_samples'][0].metainfo
    # a prediction at normalised (0.25, 0.75) of the input lands there in the original image
    point = np.array([0.25, 0.75]) * meta['input_size']
    back = point / meta['input_size'] * meta['input_scale'] + meta['input_center'] \
        - 0.5 * meta['input_scale']
    np.testing.assert_allclose(back, [0.25 * w, 0.75 * h], rtol=1e-6)


def test_crop_clamps_keypoints_keeps_their_visibility_and_resets_the_area():
    img = image(100, 120)
    kpts = np.array([[[5, 5], [50, 40], [110, 90]], [[100, 95], [105, 98], [118, 99]]],
                    np.float32)
    results = dict(img=img, img_shape=(100, 120), keypoints=kpts.copy(),
                   keypoints_visible=np.array([[1, 1, 0], [1, 1, 1]], np.float32),
                   bbox=np.array([[2, 2, 115, 95], [98, 92, 119, 99]], np.float32),
                   area=np.array([5000., 100.], np.float32), iscrowd=[0, 0], id=[7, 8])
    np.random.seed(3)
    out = TRANSFORMS.build(dict(type='GroupPoseRandomSizeCrop', min_size=40, max_size=60))(
        results)
    crop_h, crop_w = out['img'].shape[:2]
    top, left = int(out['img'][0, 0, 0]), int(out['img'][0, 0, 1])
    assert 40 <= crop_h <= 60 and 40 <= crop_w <= 60 and (top, left) != (0, 0)
    # the second person's box lies outside the crop: dropped with all its fields
    box = np.clip(np.minimum(np.array([[2, 2], [115, 95]]) - [left, top], [crop_w, crop_h]),
                  0, None)
    assert out['id'] == [7] and out['iscrowd'] == [0] and len(out['keypoints']) == 1
    np.testing.assert_allclose(out['bbox'][0], box.reshape(-1))
    np.testing.assert_allclose(out['area'], [np.prod(box[1] - box[0])])   # the clipped box
    want = np.clip(np.minimum(kpts[0] - [left, top], [crop_w, crop_h]), 0, None)
    np.testing.assert_allclose(out['keypoints'][0], want)
    np.testing.assert_array_equal(out['keypoints_visible'], [[1, 1, 0]])  # visibility kept
    assert out['input_size'] == (crop_w, crop_h)
    np.testing.assert_allclose(out['input_center'] - out['input_scale'] / 2, [left, top])


def test_resize_scales_keypoints_boxes_and_areas_with_the_official_size_rule():
    results = dict(img=image(60, 90), img_shape=(60, 90),
                   keypoints=np.array([[[30., 20.]]], np.float32),
                   keypoints_visible=np.ones((1, 1), np.float32),
                   bbox=np.array([[9., 6., 45., 30.]], np.float32), area=np.array([100.]))
    out = TRANSFORMS.build(dict(type='GroupPoseRandomResize', scales=[40]))(results)
    assert out['img'].shape[:2] == (40, 60) and out['img_shape'] == (40, 60)
    np.testing.assert_allclose(out['keypoints'], [[[20., 40 / 3]]], rtol=1e-6)
    np.testing.assert_allclose(out['bbox'], [[6., 4., 30., 20.]], rtol=1e-6)
    np.testing.assert_allclose(out['area'], [100. * (60 / 90) * (40 / 60)], rtol=1e-6)


def test_people_filter_drops_crowds_and_unlabelled_people_and_skips_empty_images():
    step = TRANSFORMS.build(dict(type='GroupPoseKeepLabelledPeople'))
    results = dict(keypoints=np.zeros((3, 2, 2), np.float32),
                   keypoints_visible=np.array([[1, 0], [0, 0], [1, 1]], np.float32),
                   iscrowd=[0, 0, 1], area=np.array([1., 2., 3.], np.float32), id=[1, 2, 3])
    out = step(results)
    assert out['id'] == [1] and out['area'].tolist() == [1.0]
    assert step(dict(keypoints=np.zeros((1, 2, 2)), keypoints_visible=np.zeros((1, 2)),
                     iscrowd=[0])) is None
    kept = TRANSFORMS.build(dict(type='GroupPoseKeepLabelledPeople', skip_empty=False))(
        dict(keypoints=np.zeros((1, 2, 2)), keypoints_visible=np.zeros((1, 2)), iscrowd=[0]))
    assert len(kept['keypoints']) == 0


def test_crop_branch_of_the_official_pipeline_gives_targets_in_the_unit_square():
    """The crop branch of the official RandomChoice, then the codec: targets stay in [0, 1],
    labelled keypoints keep their weight and the OKS area is the clipped box / input area."""
    cfg = Config.fromfile(PAPER)
    init_default_scope('mmpose')
    crop_branch = cfg.train_dataloader.dataset.pipeline[3]['transforms'][1]
    steps = [TRANSFORMS.build(t) for t in crop_branch] + [
        TRANSFORMS.build(dict(type='GenerateTarget', encoder=cfg.codec))]
    kpts = np.random.RandomState(0).uniform([0, 0], [640, 480], (2, 17, 2)).astype(np.float32)
    results = dict(img=image(480, 640), img_shape=(480, 640), ori_shape=(480, 640),
                   keypoints=kpts, keypoints_visible=np.ones((2, 17), np.float32),
                   bbox=np.array([[0, 0, 640, 480], [10, 10, 630, 470]], np.float32),
                   area=np.array([2e4, 1e4], np.float32), iscrowd=[0, 0])
    np.random.seed(0)
    for step in steps:
        results = step(results)
    labels = results['keypoint_labels']
    assert labels.min() >= 0 and labels.max() <= 1 and results['keypoint_weights'].all()
    h, w = results['img_shape']
    box = results['bbox'][0]
    np.testing.assert_allclose(results['area_labels'][0],
                               (box[2] - box[0]) * (box[3] - box[1]) / (w * h), rtol=1e-5)
