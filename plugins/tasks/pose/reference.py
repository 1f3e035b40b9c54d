"""Access to ``reference.yaml``: the paper's settings and results of Group Pose."""
import functools
import os.path as osp

import yaml

PATH = osp.join(osp.dirname(__file__), 'reference.yaml')


@functools.lru_cache()
def load_reference() -> dict:
    with open(PATH) as f:
        return yaml.safe_load(f)['GroupPose']
