"""Task-specific models the task libraries lack, one sub-package per task.

Each sub-package registers its models, datasets, transforms, metrics and hooks on import.
"""
from . import pointcloud, pose, sr, yolo  # noqa: F401
