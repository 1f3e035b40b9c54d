"""Group Pose (ICCV 2023) as a trainable mmpose 1.x model.

Importing this package registers, in mmengine's root ``MODELS``: ``GroupPoseHead``,
``GroupPoseDecoder``, ``GroupPoseMatcher``, ``GroupPoseFocalLoss``, ``VisibleKeypointL1Loss``,
``KeypointOKSLoss``; and in mmpose's ``KEYPOINT_CODECS``: ``GroupPoseLabel``. Use them with
mmpose's ``BottomupPoseEstimator`` (see ``configs/grouppose/``).
"""
from ...utils import mmpose_compat  # noqa: F401  (mmpose's visualizer without torchvision)
from . import losses, matcher, codec, decoder, head  # noqa: F401
