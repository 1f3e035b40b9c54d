"""Access to ``reference.yaml``: ConDaFormer presets (official settings) and paper numbers."""
import functools
import os.path as osp

import yaml

PATH = osp.join(osp.dirname(__file__), 'reference.yaml')


@functools.lru_cache()
def load_reference() -> dict:
    with open(PATH) as f:
        return yaml.safe_load(f)


def condaformer_presets() -> dict:
    """``{name: {arch, in_channels, num_classes, ...}}`` of ``'scannet'``, ``'s3dis'``, ``'demo'``."""
    return load_reference()['presets']
