"""Targets of Group Pose: people as normalised keypoints, and the inverse (top-k decoding).

``encode`` turns the pipeline's keypoints (pixels of the model input) into what the head learns:
keypoints divided by the input image size, a per-keypoint weight (labelled, ``v = 1`` or ``2``),
and the area divided by the image area (the OKS scale). People without any labelled keypoint and
crowd regions are dropped, as the official data loader does. As in the official code, a labelled
keypoint keeps its weight wherever it lies (its crop clamps keypoints to the border, visibility
kept); ``ignore_outside=True`` gives keypoints outside the input weight 0 instead.

``decode`` keeps the ``num_select`` highest (query, class) probabilities (the official
``PostProcess``: 50 of the 100 queries x 2 classes) and, of those, the person class's, with
their keypoints in pixels.

The codec is registered in mmpose's ``KEYPOINT_CODECS`` (the one mmpose registry with no parent in
mmengine's root), so ``GenerateTarget(encoder=dict(type='GroupPoseLabel'))`` builds it.
"""
from typing import Optional, Tuple

import numpy as np
from mmpose.codecs.base import BaseKeypointCodec
from mmpose.registry import KEYPOINT_CODECS


@KEYPOINT_CODECS.register_module()
class GroupPoseLabel(BaseKeypointCodec):
    """Normalised keypoint targets of Group Pose.

    Encoded (packed by ``PackPoseInputs`` into ``gt_instance_labels``):

    - ``keypoint_labels`` (M, K, 2): keypoints / (w, h) of the M kept people;
    - ``keypoint_weights`` (M, K): 1 for a labelled keypoint inside the image, else 0;
    - ``areas`` (M,): area / (w * h).

    Args:
        num_keypoints: K.
        num_select: how many (query, class) pairs ``decode`` ranks (paper: 50).
        ignore_outside: weight 0 for labelled keypoints outside the input (the official code
            keeps their weight).
    """

    auxiliary_encode_keys = {'img_shape', 'area', 'iscrowd'}
    label_mapping_table = dict(keypoint_labels='keypoint_labels',
                               keypoint_weights='keypoint_weights', area_labels='areas')

    def __init__(self, num_keypoints: int = 17, num_select: int = 50,
                 ignore_outside: bool = False):
        super().__init__()
        self.num_keypoints = num_keypoints
        self.num_select = num_select
        self.ignore_outside = ignore_outside

    def encode(self, keypoints: np.ndarray, keypoints_visible: Optional[np.ndarray] = None,
               img_shape: Tuple[int, int] = None, area: Optional[np.ndarray] = None,
               iscrowd: Optional[np.ndarray] = None) -> dict:
        """Args: keypoints (N, K, 2) in pixels; keypoints_visible (N, K); img_shape (h, w);
        area (N,) in pixels (when missing: 0.53 x the box of the labelled keypoints, the
        fallback mmpose uses for boxes); iscrowd (N,)."""
        if img_shape is None:
            raise ValueError('GroupPoseLabel.encode needs img_shape (h, w) of the model input')
        h, w = img_shape[:2]
        keypoints = np.asarray(keypoints, dtype=np.float32).reshape(-1, self.num_keypoints, 2)
        num = keypoints.shape[0]
        if keypoints_visible is None:
            keypoints_visible = np.ones((num, self.num_keypoints), dtype=np.float32)
        visible = np.asarray(keypoints_visible, dtype=np.float32).reshape(num, self.num_keypoints)
        weights = visible > 0
        if self.ignore_outside:
            weights &= ((keypoints[..., 0] >= 0) & (keypoints[..., 0] < w) &
                        (keypoints[..., 1] >= 0) & (keypoints[..., 1] < h))
        weights = weights.astype(np.float32)
        if area is None:
            area = self._area_from_keypoints(keypoints, weights)
        area = np.asarray(area, dtype=np.float32).reshape(-1)
        keep = weights.sum(-1) > 0
        if iscrowd is not None and len(iscrowd) == num:
            keep &= np.asarray(iscrowd).reshape(-1) == 0
        return dict(
            keypoint_labels=(keypoints[keep] / np.array([w, h], np.float32)).astype(np.float32),
            keypoint_weights=weights[keep],
            area_labels=(area[keep] / float(w * h)).astype(np.float32))

    @staticmethod
    def _area_from_keypoints(keypoints: np.ndarray, weights: np.ndarray) -> np.ndarray:
        areas = np.zeros(len(keypoints), np.float32)
        for i, (kpts, wts) in enumerate(zip(keypoints, weights)):
            if wts.sum() > 0:
                span = kpts[wts > 0].max(0) - kpts[wts > 0].min(0)
                areas[i] = max(span[0] * span[1] * 0.53, 1.0)
        return areas

    def decode(self, scores: np.ndarray, keypoints: np.ndarray,
               img_shape: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
        """People of one image: the top ``num_select`` (query, class) probabilities, those of the
        person class (the last).

        Args:
            scores: (Q, C) class probabilities (or (Q,) for one class).
            keypoints: (Q, K, 2) normalised.
            img_shape: (h, w) of the model input.
        Returns:
            keypoints (S, K, 2) in pixels and scores (S,), by decreasing score, S <= num_select.
        """
        h, w = img_shape[:2]
        scores = np.asarray(scores).reshape(len(keypoints), -1)
        num_classes = scores.shape[1]
        flat = scores.reshape(-1)
        order = np.argsort(-flat, kind='stable')[:self.num_select]
        order = order[order % num_classes == num_classes - 1]
        queries = order // num_classes
        pixels = keypoints[queries] * np.array([w, h], dtype=np.float32)
        return pixels.astype(np.float32), flat[order].astype(np.float32)
