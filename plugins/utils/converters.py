"""Checkpoint key converters, one per architecture, found by name.

A converter maps an official release's state dict (original key names) to the toolkit's layout;
it returns a state dict that is already in the toolkit's layout unchanged, so converting twice is
harmless. ``tools/convert_checkpoint.py`` and each model's ``init_cfg=dict(type='Pretrained')``
use the same function.
"""
import re
from collections import OrderedDict
from typing import Callable, Dict

CONVERTERS: Dict[str, Callable[[dict], dict]] = {}


def register_converter(arch: str):
    """Decorator: register ``fn(state_dict) -> state_dict`` as the converter of ``arch``."""

    def wrap(fn):
        if arch in CONVERTERS:
            raise KeyError(f'a checkpoint converter for {arch!r} is already registered')
        CONVERTERS[arch] = fn
        return fn

    return wrap


def get_converter(arch: str) -> Callable[[dict], dict]:
    if arch not in CONVERTERS:
        raise KeyError(f'no checkpoint converter for {arch!r}; known: {sorted(CONVERTERS)}')
    return CONVERTERS[arch]


_FLAT_BLOCK = re.compile(r'^blocks\.(\d+)\.')


def group_isotropic_blocks(state_dict: dict, num_stages: int = 4) -> dict:
    """The flat ``blocks.{i}.`` keys of an isotropic model (the ViT layout of timm and of the
    official ConViT / TNT) -> the toolkit's isotropic stages ``stages.{g}.blocks.{j}.``:
    ``num_stages`` consecutive groups of ``depth / num_stages`` blocks (``depth`` read from the
    keys). Other keys, the toolkit's included, are left alone."""
    indices = [int(m.group(1)) for m in map(_FLAT_BLOCK.match, state_dict) if m]
    if not indices:
        return state_dict
    depth = max(indices) + 1
    if depth % num_stages:
        raise ValueError(f'the checkpoint has {depth} blocks, which do not split into '
                         f'{num_stages} equal stages')
    per = depth // num_stages

    def rename(match):
        i = int(match.group(1))
        return f'stages.{i // per}.blocks.{i % per}.'

    return OrderedDict((_FLAT_BLOCK.sub(rename, k), v) for k, v in state_dict.items())
