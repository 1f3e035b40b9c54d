"""Checkpoint key converters, one per architecture, found by name.

A converter maps an official release's state dict (original key names) to the toolkit's layout;
it returns a state dict that is already in the toolkit's layout unchanged, so converting twice is
harmless. ``tools/convert_checkpoint.py`` and each model's ``init_cfg=dict(type='Pretrained')``
use the same function.
"""
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
