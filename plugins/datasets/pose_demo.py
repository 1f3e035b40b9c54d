"""Generated COCO-keypoints data: stick figures with the 17 COCO keypoints.

Each image holds a few stick figures facing the camera (head with eyes and ears, shoulders, arms,
hips, legs) in random poses and sizes on a textured background. Limbs are coloured by side and
each joint by its type, so that a small network trained from scratch for minutes can tell the
keypoints apart. Some figures stand partly behind an occluder: their hidden keypoints are labelled
``v = 1`` (occluded), the others ``v = 2``; keypoints outside the image are ``v = 0``. A few
training images hold only a crowd region (``iscrowd = 1``, no keypoints), and a few validation
images hold nobody. Laid out as COCO (``{train,val}2017/``,
``annotations/person_keypoints_{train,val}2017.json``) for mmpose's ``CocoDataset`` and
``CocoMetric``.
"""
import json
import os
import os.path as osp

import cv2
import numpy as np

from .detection_demo import textured_background
from .registry import register_demo

KEYPOINT_NAMES = ('nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear', 'left_shoulder',
                  'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist',
                  'left_hip', 'right_hip', 'left_knee', 'right_knee', 'left_ankle',
                  'right_ankle')
# COCO's skeleton, 1-based as in the annotation files
SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8],
            [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]
_LIMBS = [(5, 7), (7, 9), (11, 13), (13, 15), (6, 8), (8, 10), (12, 14), (14, 16),
          (5, 6), (11, 12), (5, 11), (6, 12)]


def _joint_colours() -> np.ndarray:
    hues = (np.arange(17) * 180 // 17).astype(np.uint8)
    hsv = np.stack([hues, np.full(17, 230, np.uint8), np.full(17, 255, np.uint8)], -1)
    return cv2.cvtColor(hsv[None], cv2.COLOR_HSV2BGR)[0].astype(int)


JOINT_COLOURS = _joint_colours()


def stick_figure(rng: np.random.RandomState, cx: float, top: float, height: float) -> np.ndarray:
    """(17, 2) keypoints of a figure facing the camera: its left side on the image's right."""
    u = height / 8.0                                     # the head is about one eighth
    lean = rng.uniform(-0.15, 0.15)
    neck = np.array([cx, top + 1.3 * u])
    head = np.array([cx + lean * u, top + 0.6 * u])
    kpts = np.zeros((17, 2))
    kpts[0] = head + [0, 0.2 * u]
    kpts[1], kpts[2] = head + [0.25 * u, -0.1 * u], head + [-0.25 * u, -0.1 * u]
    kpts[3], kpts[4] = head + [0.5 * u, 0.05 * u], head + [-0.5 * u, 0.05 * u]
    shoulder = rng.uniform(0.8, 1.1) * u
    kpts[5], kpts[6] = neck + [shoulder, 0.3 * u], neck + [-shoulder, 0.3 * u]
    hip_y = neck[1] + rng.uniform(2.4, 2.8) * u
    hip = rng.uniform(0.5, 0.7) * u
    kpts[11], kpts[12] = [cx + hip + lean * u, hip_y], [cx - hip + lean * u, hip_y]
    for side, sign in ((0, 1), (1, -1)):                  # 0: left (image right), 1: right
        arm = [np.deg2rad(rng.uniform(-40, 160)), np.deg2rad(rng.uniform(-60, 120))]
        upper, lower = 1.5 * u, 1.3 * u
        elbow = kpts[5 + side] + upper * np.array([sign * np.sin(arm[0] * 0.5 + 0.3),
                                                   np.cos(arm[0] * 0.5 + 0.3)])
        angle = arm[0] * 0.5 + 0.3 + arm[1] * 0.6
        kpts[7 + side] = elbow
        kpts[9 + side] = elbow + lower * np.array([sign * np.sin(angle), np.cos(angle)])
        leg = np.deg2rad(rng.uniform(-5, 35))
        knee_bend = np.deg2rad(rng.uniform(0, 50))
        thigh, shin = 2.0 * u, 1.9 * u
        knee = kpts[11 + side] + thigh * np.array([sign * np.sin(leg), np.cos(leg)])
        kpts[13 + side] = knee
        kpts[15 + side] = knee + shin * np.array([sign * np.sin(leg - knee_bend),
                                                  np.cos(leg - knee_bend)])
    return kpts


def draw_figure(image: np.ndarray, kpts: np.ndarray, height: float, body_colour) -> None:
    thick = max(2, int(round(height / 30)))
    side_colour = {0: (255, 140, 40), 1: (40, 140, 255)}    # left limbs blue-ish, right orange
    for a, b in _LIMBS:
        if a in (5, 11) and b in (6, 12):
            colour = body_colour
        elif a % 2 == 1 and b % 2 == 1:
            colour = side_colour[0]
        elif a % 2 == 0 and b % 2 == 0:
            colour = side_colour[1]
        else:
            colour = body_colour
        cv2.line(image, tuple(np.round(kpts[a]).astype(int)), tuple(np.round(kpts[b]).astype(int)),
                 colour, thick, cv2.LINE_AA)
    neck = ((kpts[5] + kpts[6]) / 2).round().astype(int)
    cv2.line(image, tuple(neck), tuple(np.round(kpts[0]).astype(int)), body_colour, thick)
    head_r = max(3, int(round(np.linalg.norm(kpts[3] - kpts[4]) / 2)))
    cv2.circle(image, tuple(np.round((kpts[3] + kpts[4]) / 2).astype(int)), head_r, body_colour,
               -1, cv2.LINE_AA)
    dot = max(2, thick)
    for k in range(17):
        cv2.circle(image, tuple(np.round(kpts[k]).astype(int)), dot if k > 4 else max(1, dot - 1),
                   tuple(int(c) for c in JOINT_COLOURS[k]), -1, cv2.LINE_AA)


def make_image(rng, size: int, max_people: int, height_range):
    """One image and its people as (keypoints (17, 3) with v, bbox xywh, area)."""
    image = textured_background(rng, size, size)
    people, boxes = [], []
    for _ in range(rng.randint(1, max_people + 1)):
        for _attempt in range(20):
            height = rng.uniform(*height_range)
            cx = rng.uniform(0.15 * size, 0.85 * size)
            top = rng.uniform(-0.1 * height, size - 0.85 * height)
            kpts = stick_figure(rng, cx, top, height)
            x0, y0 = kpts.min(0) - height / 16
            x1, y1 = kpts.max(0) + height / 16
            box = np.array([x0, y0, x1, y1])
            if all(box[2] < b[0] or b[2] < box[0] or box[3] < b[1] or b[3] < box[1]
                   for b in boxes):
                break
        else:
            continue
        body = tuple(int(c) for c in rng.randint(200, 256, 3))
        draw_figure(image, kpts, height, body)
        vis = np.full(17, 2)
        if rng.rand() < 0.3:                              # an occluder over the lower body
            oy0 = rng.uniform(y0 + 0.45 * (y1 - y0), y0 + 0.7 * (y1 - y0))
            ox0, ox1 = x0 - rng.uniform(0, 5), x1 + rng.uniform(0, 5)
            colour = tuple(int(c) for c in rng.randint(30, 110, 3))
            cv2.rectangle(image, (int(ox0), int(oy0)), (int(ox1), int(y1 + 5)), colour, -1)
            hidden = kpts[:, 1] >= oy0
            vis[hidden] = 1
        outside = ((kpts[:, 0] < 0) | (kpts[:, 0] >= size) | (kpts[:, 1] < 0) |
                   (kpts[:, 1] >= size))
        vis[outside] = 0
        if (vis > 0).sum() < 3:
            continue
        boxes.append(box)
        kpts_v = np.concatenate([kpts, vis[:, None]], 1)
        kpts_v[vis == 0] = 0
        bx0, by0 = max(0., x0), max(0., y0)
        bw, bh = min(float(size), x1) - bx0, min(float(size), y1) - by0
        people.append((kpts_v, [bx0, by0, bw, bh], 0.6 * bw * bh))
    return image, people


def write_pose_split(out_dir: str, split: str, num_images: int, seed: int, size: int = 128,
                     max_people: int = 3, height_range=(56, 110)) -> str:
    """Write ``{split}2017/*.jpg`` and ``annotations/person_keypoints_{split}2017.json``."""
    rng = np.random.RandomState(seed)
    img_dir = osp.join(out_dir, f'{split}2017')
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        special = image_id % 20 == 0
        if special:                       # nobody: a crowd region (train) or nothing (val)
            image, people = textured_background(rng, size, size), []
        else:
            image, people = make_image(rng, size, max_people, height_range)
        name = f'{image_id:06d}.jpg'
        cv2.imwrite(osp.join(img_dir, name), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        images.append(dict(id=image_id, file_name=name, height=size, width=size))
        for kpts_v, bbox, area in people:
            x, y, w, h = bbox
            annotations.append(dict(
                id=len(annotations) + 1, image_id=image_id, category_id=1, iscrowd=0,
                keypoints=[round(float(v), 2) for v in kpts_v.flatten()],
                num_keypoints=int((kpts_v[:, 2] > 0).sum()), bbox=[round(v, 2) for v in bbox],
                area=round(float(area), 2),
                segmentation=[[x, y, x + w, y, x + w, y + h, x, y + h]]))
        if special and split == 'train':
            x, y, w, h = 10., 10., size / 3, size / 3
            annotations.append(dict(
                id=len(annotations) + 1, image_id=image_id, category_id=1, iscrowd=1,
                keypoints=[0] * 51, num_keypoints=0, bbox=[x, y, w, h], area=w * h,
                segmentation=[[x, y, x + w, y, x + w, y + h, x, y + h]]))
    categories = [dict(id=1, name='person', supercategory='person',
                       keypoints=list(KEYPOINT_NAMES), skeleton=SKELETON)]
    path = osp.join(out_dir, 'annotations', f'person_keypoints_{split}2017.json')
    with open(path, 'w') as f:
        json.dump(dict(images=images, annotations=annotations, categories=categories), f)
    return path


@register_demo('pose')
def make_pose_demo(out_dir: str, seed: int = 0, num_train: int = 600, num_val: int = 60) -> None:
    """The COCO-keypoints demo set: ``num_train`` + ``num_val`` images of 128 x 128."""
    write_pose_split(out_dir, 'train', num_train, seed)
    write_pose_split(out_dir, 'val', num_val, seed + 1)
