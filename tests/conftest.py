import copy
import os.path as osp
import sys

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

import plugins  # noqa: E402,F401


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _default_scope_per_test():
    """Each test starts from the default scope the session had before it: a Runner or a
    ``register_all_modules`` (mmpose's sets its scope) inside one test does not leak into the
    next, so no test passes or fails by the order it runs in."""
    from mmengine.registry import DefaultScope
    saved = copy.copy(DefaultScope._instance_dict)
    yield
    DefaultScope._instance_dict = saved


@pytest.fixture(scope='session')
def repo_root():
    return ROOT


@pytest.fixture(scope='session')
def demo_root(tmp_path_factory):
    """Root of the small demo sets of every task, each generated when a test first needs it
    (``tests/demo_step.py``)."""
    return tmp_path_factory.mktemp('demo_sets')


@pytest.fixture(scope='session')
def demo_data(demo_root):
    """The small coco and ade20k demo sets (``demo_data / 'coco'``, ``demo_data / 'ade20k'``)."""
    from tests.demo_step import ensure_demo_set
    for task in ('coco', 'ade20k'):
        ensure_demo_set(demo_root, task)
    return demo_root
