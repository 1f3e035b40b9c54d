"""Generated COCO-format instance segmentation data (boxes and polygon masks).

Three shape classes with random colours, sizes and positions on a textured background, laid out
like COCO (``train2017/``, ``val2017/``, ``annotations/instances_{split}2017.json``) so that mmdet's
``CocoDataset`` and ``CocoMetric`` (pycocotools) read it as they read COCO.
"""
import json
import os
import os.path as osp

import cv2
import numpy as np

from .registry import register_demo

SHAPE_CLASSES = ('circle', 'rectangle', 'triangle')


def textured_background(rng: np.random.RandomState, height: int, width: int) -> np.ndarray:
    """A smooth random colour field plus pixel noise (uint8, H x W x 3)."""
    coarse = rng.uniform(40, 150, size=(4, 4, 3)).astype(np.float32)
    field = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    field += rng.normal(0, 12, size=field.shape)
    return np.clip(field, 0, 255).astype(np.uint8)


def _shape_polygon(rng, kind: str, cx: float, cy: float, size: float) -> np.ndarray:
    if kind == 'circle':
        angles = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        return np.stack([cx + size / 2 * np.cos(angles), cy + size / 2 * np.sin(angles)], 1)
    if kind == 'rectangle':
        aspect = rng.uniform(0.55, 1.8)
        w, h = size * np.sqrt(aspect), size / np.sqrt(aspect)
        return np.array([[cx - w / 2, cy - h / 2], [cx + w / 2, cy - h / 2],
                         [cx + w / 2, cy + h / 2], [cx - w / 2, cy + h / 2]])
    start = rng.uniform(0, 2 * np.pi)
    angles = start + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3])
    return np.stack([cx + size / 1.7 * np.cos(angles), cy + size / 1.7 * np.sin(angles)], 1)


def _bright_colour(rng) -> tuple:
    hsv = np.uint8([[[rng.randint(0, 180), rng.randint(150, 256), rng.randint(170, 256)]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def make_image(rng, height: int, width: int, max_objects: int, size_range):
    """One image and its instances [(class index, polygon (N, 2), bbox xywh, area)]."""
    image = textured_background(rng, height, width)
    boxes, instances = [], []
    for _ in range(rng.randint(1, max_objects + 1)):
        for _attempt in range(20):
            kind = rng.randint(len(SHAPE_CLASSES))
            size = rng.uniform(*size_range)
            cx, cy = rng.uniform(size * 0.7, width - size * 0.7), rng.uniform(
                size * 0.7, height - size * 0.7)
            poly = _shape_polygon(rng, SHAPE_CLASSES[kind], cx, cy, size)
            poly[:, 0] = poly[:, 0].clip(0, width - 1)
            poly[:, 1] = poly[:, 1].clip(0, height - 1)
            x0, y0 = poly.min(0)
            x1, y1 = poly.max(0)
            box = np.array([x0, y0, x1, y1])
            if all(box[2] < b[0] - 3 or b[2] < box[0] - 3 or box[3] < b[1] - 3 or b[3] < box[1] - 3
                   for b in boxes):
                break
        else:
            continue
        mask = np.zeros((height, width), np.uint8)
        cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
        image[mask > 0] = _bright_colour(rng)
        boxes.append(box)
        instances.append((kind, poly, [float(x0), float(y0), float(x1 - x0 + 1),
                                       float(y1 - y0 + 1)], float(mask.sum())))
    return image, instances


def write_coco_split(out_dir: str, split: str, num_images: int, seed: int, size=(192, 192),
                     max_objects: int = 4, size_range=(22, 72)) -> str:
    """Write ``{split}2017/*.jpg`` and ``annotations/instances_{split}2017.json``."""
    rng = np.random.RandomState(seed)
    img_dir = osp.join(out_dir, f'{split}2017')
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        image, instances = make_image(rng, size[0], size[1], max_objects, size_range)
        name = f'{image_id:06d}.jpg'
        cv2.imwrite(osp.join(img_dir, name), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        images.append(dict(id=image_id, file_name=name, height=size[0], width=size[1]))
        for kind, poly, bbox, area in instances:
            annotations.append(dict(id=len(annotations) + 1, image_id=image_id,
                                    category_id=kind + 1, bbox=bbox, area=area, iscrowd=0,
                                    segmentation=[poly.round(2).flatten().tolist()]))
    categories = [dict(id=i + 1, name=n, supercategory='shape')
                  for i, n in enumerate(SHAPE_CLASSES)]
    path = osp.join(out_dir, 'annotations', f'instances_{split}2017.json')
    with open(path, 'w') as f:
        json.dump(dict(images=images, annotations=annotations, categories=categories), f)
    return path


@register_demo('coco')
def make_coco_demo(out_dir: str, seed: int = 0, num_train: int = 400, num_val: int = 80) -> None:
    """The COCO-format demo set: ``num_train`` + ``num_val`` images of 192x192."""
    write_coco_split(out_dir, 'train', num_train, seed)
    write_coco_split(out_dir, 'val', num_val, seed + 1)
