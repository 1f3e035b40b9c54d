"""BiFormer: presets, the backbone contract, and loading the official release's key layout."""
import re

import pytest
import torch

from plugins.backbones.biformer import BiFormer
from plugins.utils.checkpoint import load_pretrained
from plugins.utils.converters import get_converter

from .contract import (check_official_layout_loads, check_output_shapes)


def test_detection_size_with_the_detection_regions():
    check_output_shapes(BiFormer('t', n_win=16, out_indices=(0, 3)), (800, 1216))


def test_regions_per_side_is_not_a_size_constraint():
    for n_win in (5, 8, 16):
        check_output_shapes(BiFormer('t', n_win=n_win), (45, 71))


def official_state_dict(backbone, detection=True):
    """The same weights under the official key names (``BiFormer_mm`` when ``detection``, else
    the ImageNet model with its BatchNorm ``norm`` and ``head``)."""
    inverse = [
        (r'^stages\.(\d)\.downsample\.', lambda m: f'downsample_layers.{m.group(1)}.'),
        (r'^stages\.(\d)\.blocks\.(\d+)\.', lambda m: f'stages.{m.group(1)}.{m.group(2)}.'),
        (r'^stages\.(\d)\.norm\.', lambda m: f'extra_norms.{m.group(1)}.'),
        (r'\.mlp\.fc1\.', lambda m: '.mlp.0.'),
        (r'\.mlp\.fc2\.', lambda m: '.mlp.3.'),
    ]
    out = {}
    for key, value in backbone.state_dict().items():
        for pattern, repl in inverse:
            key = re.sub(pattern, repl, key)
        if detection or not key.startswith('extra_norms'):
            out[key] = value.clone()
    if not detection:
        dim = backbone.stage_channels[-1]
        out.update({'norm.weight': torch.ones(dim), 'norm.bias': torch.zeros(dim),
                    'head.weight': torch.randn(1000, dim), 'head.bias': torch.zeros(1000)})
    return out


def test_official_key_layout_loads_through_the_converter(tmp_path):
    official = official_state_dict(BiFormer('t'))
    assert 'downsample_layers.0.3.weight' in official and 'extra_norms.3.bias' in official
    assert 'stages.2.7.attn.qkv.qkv.weight' in official and 'stages.3.1.attn.lepe.weight' in official
    assert 'stages.0.1.mlp.3.weight' in official and 'stages.1.0.pos_embed.weight' in official
    check_official_layout_loads(lambda **kw: BiFormer('t', **kw), official_state_dict, tmp_path)


def test_imagenet_checkpoint_reports_head_and_output_norms(tmp_path):
    official = official_state_dict(BiFormer('t'), detection=False)
    path = tmp_path / 'biformer_tiny_best.pth'
    torch.save(dict(model=official), path)
    report = load_pretrained(BiFormer('t'), str(path), convert=get_converter('biformer'))
    assert sorted(report['unexpected']) == ['head.bias', 'head.weight', 'norm.bias',
                                           'norm.weight']
    assert sorted(report['missing']) == sorted(f'stages.{i}.norm.{p}' for i in range(4)
                                               for p in ('weight', 'bias'))


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match='topk'):
        BiFormer(dict(embed_dims=[64, 128, 256, 512], depths=[1, 1, 1, 1], topks=[1, 4, 0, -2],
                      mlp_ratio=3, head_dim=32))
