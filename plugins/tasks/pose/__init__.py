"""Group Pose (ICCV 2023) as a trainable mmpose 1.x model.

Importing this package registers, in mmengine's root ``MODELS``: ``GroupPoseEstimator``,
``GroupPoseHead``, ``GroupPoseDecoder``, ``GroupPoseMatcher``, ``GroupPoseFocalLoss``,
``VisibleKeypointL1Loss``, ``KeypointOKSLoss``; in ``TRANSFORMS``: ``GroupPoseRandomResize``,
``GroupPoseRandomSizeCrop``, ``GroupPoseKeepLabelledPeople``; and in mmpose's ``KEYPOINT_CODECS``:
``GroupPoseLabel``. See ``configs/grouppose/`` and ``docs/pose.md``.
"""
from ...utils import mmpose_compat  # noqa: F401  (mmpose's visualizer without torchvision)
from . import losses, matcher, codec, decoder, head, transforms, estimator  # noqa: F401
