"""Generated semantic segmentation data in the ADE20K folder layout, hard enough to tell models
apart.

Outdoor scenes of six real ADE20K classes (building, sky, tree, road, grass, water; ADE20K's label
ids), written as ``images/{training,validation}/*.jpg`` and
``annotations/{training,validation}/*.png`` (0 = other, ids from 1), so mmseg's ``ADE20KDataset``
(``reduce_zero_label=True``) reads them as it reads ADE20K. What makes them hard:

- **Shared textures and colours.** Every surface is a crop of a real photograph that ships with
  scikit-image (brick, gravel, grass, the moon, a page of text, a cat's fur, ...), zoomed and
  tinted. Each photograph feeds at least two classes, and the tints overlap (an overcast sky and
  concrete, water and blue glass, dry grass and a dirt road), so a patch alone rarely tells its
  class: the layout and the context do.
- **Occlusion and clutter.** Objects are painted far to near: trees hide buildings and roads;
  cars, poles, wires and signs (label 0, "other", ignored by the metric as in ADE20K) hide parts
  of every class.
- **Scale.** The horizon moves, objects shrink with distance, textures are zoomed 0.5x to 2x.
- **Lighting.** Global gain and white balance, a brightness ramp across the image, cast shadows.
- **Thin structures.** Tree trunks and the branches of bare trees, one to three pixels wide.
"""
import functools
import os
import os.path as osp

import cv2
import numpy as np

from .registry import register_demo
from .sr_demo import load_photograph

# ADE20K (SceneParsing, 150 classes) label ids, 1-based as stored in the annotation PNGs
ADE_IDS = dict(building=2, sky=3, tree=5, grass=10, road=7, water=22)
SCENE_CLASSES = ('building', 'sky', 'tree', 'road', 'grass', 'water')
OTHER = 0  # clutter: "other" in ADE20K, ignored by the metric

# the photographs each class takes its texture from: every photograph feeds two classes or more
TEXTURES = dict(
    sky=('moon', 'hubble_deep_field', 'coffee', 'retina'),
    water=('moon', 'retina', 'hubble_deep_field', 'gravel'),
    building=('brick', 'page', 'text', 'camera', 'coins'),
    road=('gravel', 'page', 'brick', 'moon', 'text'),
    grass=('grass', 'immunohistochemistry', 'gravel', 'coins', 'chelsea'),
    tree=('grass', 'immunohistochemistry', 'chelsea', 'coffee', 'camera'),
    other=('brick', 'coins', 'chelsea', 'camera', 'coffee', 'immunohistochemistry'),
)
# tints (RGB) each class draws from, overlapping across classes
TINTS = dict(
    sky=((110, 160, 220), (195, 200, 205), (225, 180, 140)),
    water=((60, 100, 150), (120, 140, 150), (45, 70, 90), (100, 150, 200)),
    building=((150, 150, 150), (160, 95, 75), (190, 180, 160), (95, 120, 150)),
    road=((110, 110, 110), (80, 80, 85), (150, 140, 115)),
    grass=((70, 140, 60), (145, 145, 80), (60, 100, 50)),
    tree=((45, 100, 45), (85, 125, 55), (150, 105, 50), (70, 75, 50)),
    other=((200, 40, 40), (40, 40, 40), (220, 220, 220), (60, 80, 170), (150, 140, 115)),
)


@functools.lru_cache(maxsize=None)
def _photograph(name: str) -> np.ndarray:
    """A photograph as float32 grey levels scaled to zero mean and unit deviation."""
    img = load_photograph(name).astype(np.float32)
    grey = img.mean(2) if img.ndim == 3 else img
    return (grey - grey.mean()) / (grey.std() + 1e-6)


def _texture(rng, kind: str, height: int, width: int) -> np.ndarray:
    """An H x W x 3 float image: a zoomed, flipped crop of one of the class's photographs,
    tinted."""
    photo = _photograph(TEXTURES[kind][rng.randint(len(TEXTURES[kind]))])
    zoom = rng.uniform(0.5, 2.0)
    ch = min(max(int(height / zoom), 8), photo.shape[0])
    cw = min(max(int(width / zoom), 8), photo.shape[1])
    top, left = rng.randint(photo.shape[0] - ch + 1), rng.randint(photo.shape[1] - cw + 1)
    crop = photo[top:top + ch, left:left + cw]
    crop = crop[::-1] if rng.rand() < 0.5 else crop
    crop = crop[:, ::-1] if rng.rand() < 0.5 else crop
    crop = cv2.resize(np.ascontiguousarray(crop), (width, height), interpolation=cv2.INTER_LINEAR)
    tints = TINTS[kind]
    tint = np.asarray(tints[rng.randint(len(tints))], np.float32) + rng.uniform(-25, 25, 3)
    return tint + rng.uniform(12, 40) * crop[..., None]


def _paint(rng, image, label, mask, kind: str) -> None:
    if mask.any():
        image[mask] = _texture(rng, kind, *mask.shape)[mask]
        label[mask] = OTHER if kind == 'other' else ADE_IDS[kind]


def _mask(shape, draw) -> np.ndarray:
    canvas = np.zeros(shape, np.uint8)
    draw(canvas)
    return canvas > 0


def _blob(rng, shape, cx, cy, radius):
    """A crown-like blob: the union of a few circles around (cx, cy)."""
    def draw(canvas):
        for _ in range(rng.randint(3, 7)):
            r = max(int(radius * rng.uniform(0.5, 0.9)), 1)
            dx, dy = rng.uniform(-0.6, 0.6, 2) * radius
            cv2.circle(canvas, (int(cx + dx), int(cy + dy)), r, 1, -1)
    return _mask(shape, draw)


def _branches(rng, canvas, x, y, length, angle, width, depth):
    """A trunk and its branches as lines (thin structures), recursively."""
    x2, y2 = x + length * np.cos(angle), y - length * np.sin(angle)
    cv2.line(canvas, (int(x), int(y)), (int(x2), int(y2)), 1, max(int(width), 1))
    if depth > 0:
        for turn in (-1, 1):
            _branches(rng, canvas, x2, y2, length * rng.uniform(0.5, 0.75),
                      angle + turn * rng.uniform(0.3, 0.8), width * 0.6, depth - 1)


def _scene_objects(rng, height: int, width: int, horizon: int, ground: str):
    """(depth, kind, mask) of everything standing in the scene; larger depth = nearer."""
    shape = (height, width)
    objects = []
    if ground == 'grass' and rng.rand() < 0.7:  # a road in perspective, sometimes bending
        cx, top_w = rng.uniform(0.2, 0.8) * width, rng.uniform(2, 10)
        bottom_w, bend = rng.uniform(0.3, 0.8) * width, rng.uniform(-0.3, 0.3) * width
        mid = horizon + (height - horizon) * 0.5
        road = np.array([[cx - top_w, horizon], [cx + top_w, horizon],
                         [cx + bend + bottom_w / 4, mid], [cx + bottom_w / 2, height],
                         [cx - bottom_w / 2, height], [cx + bend - bottom_w / 4, mid]], np.int32)
        objects.append((horizon, 'road', _mask(shape, lambda c: cv2.fillPoly(c, [road], 1))))
    for _ in range(rng.randint(1, 6)):  # buildings on the horizon, some with a roof
        base = horizon + int(rng.uniform(0, 0.25) * (height - horizon))
        scale = 0.6 + (base - horizon) / max(height - horizon, 1)
        w = int(rng.uniform(0.12, 0.4) * width * scale)
        h = int(rng.uniform(0.3, 0.9) * horizon * scale) + 4
        x = rng.randint(-w // 2, width)
        box = _mask(shape, lambda c: cv2.rectangle(c, (x, base - h), (x + w, base), 1, -1))
        if rng.rand() < 0.4:
            roof = np.array([[x, base - h], [x + w, base - h], [x + w // 2, base - h - w // 3]],
                            np.int32)
            box |= _mask(shape, lambda c: cv2.fillPoly(c, [roof], 1))
        objects.append((base, 'building', box))
    for _ in range(rng.randint(1, 7)):  # trees: crowns on trunks, or bare branching trees
        base = horizon + int(rng.uniform(-0.05, 1.0) * (height - horizon))
        scale = 0.5 + 1.2 * (base - horizon) / max(height - horizon, 1)
        x = rng.uniform(0, width)
        trunk = rng.uniform(0.08, 0.2) * height * scale
        if rng.rand() < 0.2:  # bare tree: only thin lines
            tree = _mask(shape, lambda c: _branches(rng, c, x, base, trunk * 1.5, np.pi / 2 +
                                                    rng.uniform(-0.2, 0.2), 1 + 2 * scale,
                                                    rng.randint(2, 4)))
        else:
            radius = rng.uniform(0.07, 0.16) * height * scale
            tree = _mask(shape, lambda c: cv2.line(c, (int(x), base), (int(x), int(base - trunk)),
                                                   1, max(int(1 + scale), 1)))
            tree |= _blob(rng, shape, x, base - trunk - radius * 0.6, radius)
        objects.append((base, 'tree', tree))
    for _ in range(rng.randint(1, 6)):  # clutter: cars, poles with signs, wires, bushes
        base = horizon + int(rng.uniform(0, 1.0) * (height - horizon))
        scale = 0.4 + 1.2 * (base - horizon) / max(height - horizon, 1)
        x = int(rng.uniform(0, width))
        what = rng.randint(4)
        if what == 0:  # a car
            w, h = int(0.15 * width * scale) + 2, int(0.06 * height * scale) + 2
            draw = lambda c: (cv2.rectangle(c, (x, base - h), (x + w, base), 1, -1),  # noqa: E731
                              cv2.rectangle(c, (x + w // 4, base - 2 * h), (x + 3 * w // 4,
                                                                            base - h), 1, -1))
        elif what == 1:  # a pole with a sign
            top = int(base - 0.35 * height * scale)
            s = int(4 * scale) + 2
            draw = lambda c: (cv2.line(c, (x, base), (x, top), 1, 1),  # noqa: E731
                              cv2.rectangle(c, (x - s, top), (x + s, top + s), 1, -1))
        elif what == 2:  # a wire across the sky
            y0, y1 = rng.randint(0, max(horizon, 1), 2)
            sag = rng.uniform(2, 10)
            xs = np.linspace(0, width, 16)
            ys = y0 + (y1 - y0) * xs / width + sag * np.sin(np.pi * xs / width)
            pts = np.stack([xs, ys], 1).astype(np.int32)
            draw = lambda c: cv2.polylines(c, [pts], False, 1, 1)  # noqa: E731
            base = 0
        else:  # a bush or a person-sized blob
            radius = 0.04 * height * scale + 1
            objects.append((base, 'other', _blob(rng, shape, x, base - radius, radius)))
            continue
        objects.append((base, 'other', _mask(shape, draw)))
    return objects


def _light(rng, image: np.ndarray, horizon: int) -> np.ndarray:
    """Global gain and white balance, a brightness ramp and (often) a cast shadow."""
    height, width = image.shape[:2]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (xx / width - 0.5) * np.cos(angle) + (yy / height - 0.5) * np.sin(angle)
    image = image * (1 + rng.uniform(-0.6, 0.6) * ramp)[..., None]
    if rng.rand() < 0.6:  # a cast shadow over the lower part of the scene
        pts = np.stack([rng.uniform(-0.2, 1.2, 4) * width,
                        rng.uniform(horizon / height, 1.2, 4) * height], 1).astype(np.int32)
        shadow = _mask((height, width), lambda c: cv2.fillPoly(c, [cv2.convexHull(pts)], 1))
        image[shadow] *= rng.uniform(0.45, 0.75)
    image *= rng.uniform(0.65, 1.25) * rng.uniform(0.85, 1.15, 3)
    image += rng.normal(0, rng.uniform(2, 8), image.shape)
    return image


def make_scene(rng, height: int, width: int):
    """One image (H x W x 3 uint8, RGB) and its ADE20K-id label map (H x W uint8)."""
    image = np.zeros((height, width, 3), np.float32)
    label = np.zeros((height, width), np.uint8)
    horizon = int(height * rng.uniform(0.25, 0.7))
    sky = np.zeros((height, width), bool)
    sky[:horizon] = True
    _paint(rng, image, label, sky, 'sky')
    image[:horizon] *= np.linspace(rng.uniform(0.75, 1.0), rng.uniform(1.0, 1.2),
                                   horizon)[:, None, None]  # lighter towards the horizon
    ground = 'water' if rng.rand() < 0.3 else 'grass'
    below = ~sky
    _paint(rng, image, label, below, ground)
    if ground == 'grass' and rng.rand() < 0.35:  # a lake or a river in the grass
        lake = _blob(rng, (height, width), rng.uniform(0, width),
                     rng.uniform(horizon, height), rng.uniform(0.15, 0.35) * height) & below
        _paint(rng, image, label, lake, 'water')
    for _, kind, mask in sorted(_scene_objects(rng, height, width, horizon, ground),
                                key=lambda o: o[0]):
        _paint(rng, image, label, mask, kind)
    image = _light(rng, image, horizon)
    if rng.rand() < 0.5:
        image = cv2.GaussianBlur(image, (3, 3), 0)
    return np.clip(image, 0, 255).astype(np.uint8), label


@register_demo('ade20k')
def make_ade20k_demo(out_dir: str, seed: int = 0, num_train: int = 300, num_val: int = 60,
                     size=(128, 128)) -> None:
    """The ADE20K-layout demo set (``size`` = H, W of every image); deterministic."""
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
            cv2.imwrite(osp.join(img_dir, name + '.jpg'), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 92])
            cv2.imwrite(osp.join(ann_dir, name + '.png'), label)
