"""L2ViT: presets, the backbone contract, the official key layout, and the block pattern."""
import re

import pytest
import torch

from plugins.backbones.l2vit import L2ViT, LinearGlobalBlock, LocalWindowBlock
from plugins.utils.checkpoint import load_pretrained
from plugins.utils.converters import get_converter

from .contract import (check_gradients_reach_every_parameter, check_official_layout_loads)


def test_blocks_alternate_local_window_and_linear_global_attention():
    backbone = L2ViT('small')
    assert [len(s.blocks) for s in backbone.stages] == [2, 2, 18, 2]
    for stage in backbone.stages:
        for j, block in enumerate(stage.blocks):
            assert isinstance(block, LinearGlobalBlock if j % 2 else LocalWindowBlock)
            if j % 2:
                assert block.attn.denom_min == 100 and block.attn.with_lcm
            else:
                assert block.attn.relative_position_bias_table is None
                assert block.attn.shift_size == (0, 0)


def test_lcm_acts_on_the_residual_stream_after_the_attention():
    """The LGA block: x1 = x + Attn(LN1(x)); x2 = x1 + LCM(LN3(x1)); out = x2 + MLP(LN2(x2))."""
    torch.manual_seed(0)
    block = LinearGlobalBlock(32, 2).eval()
    x = torch.randn(2, 32, 9, 11)
    with torch.no_grad():
        x0 = block.cpe1(x)
        x1 = x0 + block.attn.attention(block.norm1(x0.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
        x2 = x1 + block.attn.lcm(block.attn.lcm_norm(x1.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
        t = x2.permute(0, 2, 3, 1)
        expected = (t + block.mlp(block.norm2(t))).permute(0, 3, 1, 2)
        torch.testing.assert_close(block(x), expected)


def test_output_norms_exist_only_for_returned_stages():
    """As the official ``norm{i} for i in out_indices``: no parameter without a gradient (DDP)."""
    backbone = L2ViT('tiny', out_indices=(1, 2, 3))
    assert isinstance(backbone.stages[0].norm, torch.nn.Identity)
    assert all(isinstance(s.norm, torch.nn.LayerNorm) for s in backbone.stages[1:])
    check_gradients_reach_every_parameter(backbone, size=(64, 64))


def official_state_dict(backbone, detection=True):
    """The same weights under the official key names (the mmdet / mmseg backbone with ``norm{i}``
    when ``detection``, else the ImageNet model with its ``norm`` and ``head``)."""
    inverse = [
        (r'^stages\.0\.downsample\.proj\.', lambda m: 'downsample_layers.0.proj.proj.'),
        (r'^stages\.(\d)\.downsample\.conv\.', lambda m: f'downsample_layers.{m.group(1)}.proj.'),
        (r'^stages\.(\d)\.downsample\.norm\.', lambda m: f'downsample_layers.{m.group(1)}.norm.'),
        (r'^stages\.(\d)\.blocks\.(\d+)\.', lambda m: f'stages.{m.group(1)}.{m.group(2)}.'),
        (r'\.cpe([12])\.', lambda m: f'.cpe.{int(m.group(1)) - 1}.'),
        (r'\.attn\.lcm_norm\.', lambda m: '.norm3.'),
        (r'\.attn\.lcm\.', lambda m: '.local_mp.'),
        (r'^stages\.(\d)\.norm\.', lambda m: f'norm{m.group(1)}.'),
    ]
    out = {}
    for key, value in backbone.state_dict().items():
        for pattern, repl in inverse:
            key = re.sub(pattern, repl, key)
        if detection or not re.match(r'norm\d', key):
            out[key] = value.clone()
    if not detection:
        dim = backbone.stage_channels[-1]
        out.update({'norm.weight': torch.ones(dim), 'norm.bias': torch.zeros(dim),
                    'head.weight': torch.randn(1000, dim), 'head.bias': torch.zeros(1000)})
    return out


def test_official_key_layout_loads_through_the_converter(tmp_path):
    official = official_state_dict(L2ViT('tiny'))
    assert 'downsample_layers.0.proj.proj.1.running_var' in official
    assert 'downsample_layers.0.norm.weight' in official
    assert 'downsample_layers.2.proj.weight' in official and 'norm3.bias' in official
    assert 'stages.2.3.attn.temperature' in official and 'stages.2.3.norm3.weight' in official
    assert 'stages.2.3.local_mp.bn.running_mean' in official
    assert 'stages.2.4.cpe.1.proj.weight' in official and 'stages.1.1.mlp.fc2.bias' in official
    check_official_layout_loads(lambda **kw: L2ViT('tiny', **kw), official_state_dict, tmp_path)


def test_official_imagenet_checkpoint_reports_head_and_output_norms(tmp_path):
    path = tmp_path / 'L2ViT-Tiny-checkpoint-best-ema.pth'
    torch.save(dict(model=official_state_dict(L2ViT('tiny'), detection=False)), path)
    report = load_pretrained(L2ViT('tiny'), str(path), convert=get_converter('l2vit'))
    assert sorted(report['unexpected']) == ['head.bias', 'head.weight', 'norm.bias',
                                           'norm.weight']
    assert sorted(report['missing']) == sorted(f'stages.{i}.norm.{p}' for i in range(4)
                                               for p in ('weight', 'bias'))


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match='one entry per stage'):
        L2ViT(dict(embed_dims=[96, 192], depths=[2, 2, 2], num_heads=[3, 6]))
    with pytest.raises(ValueError, match='divisible'):
        L2ViT(dict(embed_dims=[96, 192, 384, 768], depths=[2, 2, 2, 2], num_heads=[5, 6, 12, 24]))
