"""Attention toolkit for the OpenMMLab stack.

``import plugins`` (or ``custom_imports=dict(imports=['plugins'])`` in a config) registers every
op-backed module of the toolkit in mmengine's root registries, so the unprefixed type names work
from mmdet, mmseg and mmpose configs alike. Importing has no other side effect.
"""
from . import ops  # noqa: F401  (pure tensor functions, no registration)
from . import mixers, blocks, backbones, necks, tasks, datasets  # noqa: F401
from .utils import checkpoint as _checkpoint  # noqa: F401  (safe torch.load allow-list)

__version__ = '0.1.0'
