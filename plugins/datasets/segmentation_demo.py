"""Generated semantic segmentation data in the ADE20K folder layout.

Outdoor-like scenes (sky, building, tree, grass, road, water: real ADE20K classes and label ids)
with class-specific textures, written as ``images/{training,validation}/*.jpg`` and
``annotations/{training,validation}/*.png`` holding ADE20K's label ids (0 = other, ids from 1),
so mmseg's ``ADE20KDataset`` (``reduce_zero_label=True``) reads them as it reads ADE20K.
"""
import os
import os.path as osp

import cv2
import numpy as np

from .registry import register_demo

# ADE20K (SceneParsing, 150 classes) label ids, 1-based as stored in the annotation PNGs
ADE_IDS = dict(building=2, sky=3, tree=5, grass=10, road=7, water=22)
SCENE_CLASSES = ('building', 'sky', 'tree', 'road', 'grass', 'water')


def _texture(rng, kind: str, height: int, width: int) -> np.ndarray:
    base = dict(sky=(200, 150, 90), building=(90, 100, 140), tree=(40, 110, 40),
                grass=(60, 170, 80), road=(110, 110, 110), water=(140, 80, 30))[kind]
    base = np.array(base, np.float32) + rng.uniform(-25, 25, 3)
    noise_scale = dict(sky=4, building=10, tree=30, grass=18, road=8, water=12)[kind]
    img = np.broadcast_to(base, (height, width, 3)).copy()
    img += rng.normal(0, noise_scale, size=(height, width, 1))
    if kind == 'building':  # rows of windows
        img[::8, :, :] *= 0.6
        img[:, ::8, :] *= 0.6
    if kind == 'water':  # horizontal ripples
        img *= (1 + 0.15 * np.sin(np.arange(height) * 1.3))[:, None, None]
    return img


def make_scene(rng, height: int, width: int):
    """One image (H x W x 3 uint8) and its ADE20K-id label map (H x W uint8)."""
    label = np.full((height, width), ADE_IDS['sky'], np.uint8)
    horizon = int(height * rng.uniform(0.35, 0.6))
    ground = 'water' if rng.rand() < 0.3 else 'grass'
    label[horizon:] = ADE_IDS[ground]
    if ground == 'grass' and rng.rand() < 0.7:  # a road in perspective
        cx, top_w, bottom_w = rng.uniform(0.3, 0.7) * width, rng.uniform(4, 12), rng.uniform(
            0.3, 0.6) * width
        road = np.array([[cx - top_w, horizon], [cx + top_w, horizon],
                         [cx + bottom_w / 2, height], [cx - bottom_w / 2, height]], np.int32)
        cv2.fillPoly(label, [road], int(ADE_IDS['road']))
    for _ in range(rng.randint(0, 4)):  # buildings standing on the horizon
        w, h = rng.randint(width // 10, width // 4), rng.randint(height // 8, horizon)
        x = rng.randint(0, width - w)
        label[horizon - h:horizon, x:x + w] = ADE_IDS['building']
    for _ in range(rng.randint(0, 5)):  # trees: a trunk-less crown
        r = rng.randint(height // 16, height // 7)
        cx, cy = rng.randint(0, width), horizon - rng.randint(0, r + 1)
        cv2.circle(label, (cx, cy), r, int(ADE_IDS['tree']), -1)
    image = np.zeros((height, width, 3), np.float32)
    for kind in SCENE_CLASSES:
        region = label == ADE_IDS[kind]
        if region.any():
            image[region] = _texture(rng, kind, height, width)[region]
    image = cv2.GaussianBlur(image, (3, 3), 0)
    return np.clip(image, 0, 255).astype(np.uint8), label


@register_demo('ade20k')
def make_ade20k_demo(out_dir: str, seed: int = 0, num_train: int = 300, num_val: int = 60,
                     size=(128, 128)) -> None:
    """The ADE20K-layout demo set (``size`` = H, W of every image)."""
    for split, count, split_seed in (('training', num_train, seed),
                                     ('validation', num_val, seed + 1)):
        rng = np.random.RandomState(split_seed)
        img_dir = osp.join(out_dir, 'images', split)
        ann_dir = osp.join(out_dir, 'annotations', split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(count):
            image, label = make_scene(rng, *size)
            name = f'ADE_{split[:5]}_{i:08d}'
            cv2.imwrite(osp.join(img_dir, name + '.jpg'), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(osp.join(ann_dir, name + '.png'), label)
