"""YOLO-style one-stage detection on mmdet 3.x: what mmdet lacks to train Mamba-YOLO's detector.

Importing this package registers, in mmengine's root registries: ``YOLOv8Head`` (``MODELS``),
``YOLOTaskAlignedAssigner`` (``TASK_UTILS``) and ``YOLOParamSchedulerHook`` (``HOOKS``). The
detector is mmdet's ``SingleStageDetector`` with its ``DetDataPreprocessor``; the training
pipeline uses mmdet's ``CachedMosaic``, ``RandomAffine``, ``YOLOXHSVRandomAug``, the EMA mmdet's
``ExpMomentumEMA`` and the close-mosaic switch mmdet's ``PipelineSwitchHook`` (see
``configs/mamba_yolo/``).
"""
from . import assigner, head, hooks  # noqa: F401
