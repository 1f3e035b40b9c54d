"""Access to ``reference.yaml``: parameter counts and paper results of the SR networks."""
import functools
import os.path as osp

import yaml

PATH = osp.join(osp.dirname(__file__), 'reference.yaml')


@functools.lru_cache()
def load_reference() -> dict:
    with open(PATH) as f:
        return yaml.safe_load(f)


def sr_presets(architecture: str) -> dict:
    """``{preset: {upscale, params, [arch]}}`` of ``'CATANet'`` or ``'DLGSANet'``."""
    return load_reference()[architecture]['presets']


@functools.lru_cache()
def release_index() -> dict:
    """URL -> release of every SR preset that records one (its ``release`` entry)."""
    from ...backbones.reference import index_releases
    return index_releases(load_reference())
