import pytest
from mmengine.registry import DefaultScope


@pytest.fixture(autouse=True)
def mmdet_scope():
    """Every test here builds mmdet parts (TaskAlignedAssigner, losses) as an mmdet config would:
    under mmdet's scope, whatever scope an earlier test of the session left (mmpose's
    register_all_modules sets its own)."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield
