"""The registries the toolkit registers into: mmengine's root ones.

A module registered in the root registry is found from every child scope (mmdet, mmseg, mmpose)
by its unprefixed name, and by mmcv's ``build_plugin_layer``. Names must not clash with any name
registered by mmcv, mmdet, mmseg or mmpose (tests/test_registry.py proves they do not).
"""
from mmengine.registry import (DATASETS, HOOKS, METRICS, MODELS, TASK_UTILS,  # noqa: F401
                               TRANSFORMS, VISUALIZERS)
