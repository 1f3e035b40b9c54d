"""Every demo config (``configs/**/*demo*.py``, discovered, not listed) trains one iteration on
generated data through its own runner, loop, hooks and optimizer, in the test process, with a
finite loss and a gradient reaching every trainable backbone parameter."""
import glob
import math
import os.path as osp

import pytest
from plugins.utils.tools import build_runner

from .demo_step import ROOT, demo_step_config, unformatted_config_text

DEMO_CONFIGS = sorted(
    osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'configs', '**', '*demo*.py'),
                                            recursive=True)
    if '_base_' not in p)


def backbone_of(model):
    model = getattr(model, 'module', model)
    return getattr(model, 'backbone', None) or getattr(model, 'generator', None) or model


def test_demo_configs_are_found():
    assert len(DEMO_CONFIGS) >= 40, DEMO_CONFIGS


@pytest.mark.parametrize('config', DEMO_CONFIGS)
def test_demo_config_trains_one_iteration(config, demo_root, tmp_path):
    with unformatted_config_text():
        runner = build_runner(demo_step_config(config, demo_root, tmp_path))
        backbone = backbone_of(runner.model)
        reached = set()
        for name, param in backbone.named_parameters():
            if param.requires_grad:
                param.register_post_accumulate_grad_hook(lambda p, name=name: reached.add(name))
        runner.train()
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert math.isfinite(loss), loss
    missed = [n for n, p in backbone.named_parameters() if p.requires_grad and n not in reached]
    assert not missed, f'no gradient reached {len(missed)} backbone parameters, e.g. {missed[:5]}'
