"""Transforms and data sets of SR."""
import os

import cv2
import numpy as np
import pytest
from mmengine.registry import DATASETS, TRANSFORMS


def pair(scale=2, h=24, w=30):
    """LR noise and its HR as blocks of scale x scale equal pixels: every geometric transform
    applied to both keeps ``gt[::scale, ::scale] == lq`` exactly when they stay aligned."""
    rng = np.random.RandomState(0)
    lq = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
    gt = np.repeat(np.repeat(lq, scale, 0), scale, 1)
    return dict(gt=gt, lq=lq, scale=scale)


def test_paired_crop_keeps_lr_and_hr_aligned():
    results = TRANSFORMS.build(dict(type='SRPairedRandomCrop', lq_patch_size=8))(pair(3))
    assert results['lq'].shape == (8, 8, 3) and results['gt'].shape == (24, 24, 3)
    np.testing.assert_array_equal(results['gt'][::3, ::3], results['lq'])


def test_paired_crop_accepts_the_hr_size_too():
    results = TRANSFORMS.build(dict(type='SRPairedRandomCrop', gt_patch_size=16))(pair(2))
    assert results['lq'].shape == (8, 8, 3)


def test_paired_crop_degrades_on_the_fly_without_lr():
    results = pair(2)
    results['lq'] = None
    results = TRANSFORMS.build(dict(type='SRPairedRandomCrop', lq_patch_size=10))(results)
    assert results['gt'].shape == (20, 20, 3) and results['lq'].shape == (10, 10, 3)


@pytest.mark.parametrize('transform', [dict(type='SRRandomFlip', hflip_prob=1, vflip_prob=1),
                                       dict(type='SRRandomTranspose', prob=1)])
def test_flips_and_transposes_move_lr_and_hr_together(transform):
    results = TRANSFORMS.build(transform)(pair(2))
    np.testing.assert_array_equal(results['gt'][::2, ::2], results['lq'])


def test_degradation_aligns_hr_with_lr_and_makes_missing_lr():
    results = pair(2)
    results['gt'] = np.pad(results['gt'], ((0, 1), (0, 3), (0, 0)))  # HR not a multiple
    out = TRANSFORMS.build(dict(type='SRBicubicDegradation'))(dict(results))
    assert out['gt'].shape[:2] == (48, 60)
    out = TRANSFORMS.build(dict(type='SRBicubicDegradation'))(dict(results, lq=None))
    assert out['lq'].shape[:2] == (24, 31)


def test_pack_gives_chw_tensors_and_metainfo():
    packed = TRANSFORMS.build(dict(type='PackSRInputs'))(dict(pair(2), img_name='a',
                                                              dataset_name='Set5'))
    assert tuple(packed['inputs'].shape) == (3, 24, 30)
    assert tuple(packed['data_samples'].gt_img.shape) == (3, 48, 60)
    assert packed['data_samples'].dataset_name == 'Set5'


def write_set(root, names, size=(24, 20), lq_tmpl=None, scale=2):
    os.makedirs(os.path.join(root, 'HR'), exist_ok=True)
    for n in names:
        cv2.imwrite(os.path.join(root, 'HR', f'{n}.png'), np.zeros(size + (3,), np.uint8))
        if lq_tmpl:
            d = os.path.join(root, f'LR_bicubic/X{scale}')
            os.makedirs(d, exist_ok=True)
            cv2.imwrite(os.path.join(d, lq_tmpl.format(n, scale=scale) + '.png'),
                        np.zeros((size[0] // scale, size[1] // scale, 3), np.uint8))


def test_benchmark_dataset_reads_several_sets_with_and_without_lr(tmp_path):
    write_set(str(tmp_path / 'Set5'), ['baby', 'bird'], lq_tmpl='{}x{scale}')
    write_set(str(tmp_path / 'Manga109'), ['AisazuNihaIrarenai'], lq_tmpl='{}_LRBI_x{scale}')
    write_set(str(tmp_path / 'Urban100'), ['img_001'])  # HR only
    ds = DATASETS.build(dict(type='SRBenchmarkDataset', scale=2, data_root=str(tmp_path),
                             sets=['Set5', 'Manga109', 'Urban100'], lazy_init=False,
                             pipeline=[dict(type='LoadSRPair'),
                                       dict(type='SRBicubicDegradation'),
                                       dict(type='PackSRInputs')]))
    assert len(ds) == 4
    names = [ds.get_data_info(i)['dataset_name'] for i in range(4)]
    assert names == ['Set5', 'Set5', 'Manga109', 'Urban100']
    assert ds.get_data_info(2)['lq_path'].endswith('AisazuNihaIrarenai_LRBI_x2.png')
    assert ds.get_data_info(3)['lq_path'] is None
    assert tuple(ds[3]['inputs'].shape) == (3, 12, 10)


def test_div2k_layout(tmp_path):
    root = tmp_path / 'DIV2K'
    os.makedirs(root / 'DIV2K_train_HR')
    os.makedirs(root / 'DIV2K_train_LR_bicubic' / 'X4')
    cv2.imwrite(str(root / 'DIV2K_train_HR' / '0001.png'), np.zeros((32, 32, 3), np.uint8))
    cv2.imwrite(str(root / 'DIV2K_train_LR_bicubic' / 'X4' / '0001x4.png'),
                np.zeros((8, 8, 3), np.uint8))
    ds = DATASETS.build(dict(type='DIV2KDataset', scale=4, data_root=str(root), repeat=3,
                             pipeline=[]))
    assert len(ds) == 3 and ds.get_data_info(0)['lq_path'].endswith('0001x4.png')


def test_missing_lr_file_is_a_clear_error(tmp_path):
    write_set(str(tmp_path), ['a'])
    os.makedirs(tmp_path / 'LR_bicubic' / 'X2')
    with pytest.raises(FileNotFoundError, match='no LR image'):
        DATASETS.build(dict(type='SRFolderDataset', scale=2, data_root=str(tmp_path),
                            lq_folder='LR_bicubic/X{scale}', pipeline=[]))
