import os
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


@pytest.fixture(scope='session')
def repo_root():
    return ROOT


@pytest.fixture(scope='session')
def demo_data(tmp_path_factory):
    """The coco and ade20k demo sets, small, generated once per test session."""
    from plugins.datasets.detection_demo import make_coco_demo
    from plugins.datasets.segmentation_demo import make_ade20k_demo
    root = tmp_path_factory.mktemp('demo')
    make_coco_demo(str(root / 'coco'), seed=0, num_train=8, num_val=4)
    make_ade20k_demo(str(root / 'ade20k'), seed=0, num_train=8, num_val=4)
    return root
