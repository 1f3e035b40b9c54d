"""STViT: presets, the backbone contract, the official key layout, the block structure.

Parity with the official code (hhb072/STViT ``models/stvit.py``, run outside the repository beside
this module with the same weights converted by the ``stvit`` converter; eval, the official random
initialisation with randomised BatchNorm statistics / affines and LayerNorm affines, batch 2, the
four stage outputs at 224x224 and 97x131). float64: max abs diff 2.1e-12 (Large, layer scales
drawn around 0.1, outputs of magnitude ~1000): the computations are the same. fp32, max abs diff
(max |output|) per stage 1-4 at 224x224: Small 1.2e-6 (4), 6.4e-6 (8), 6.9e-5 (117), 6.9e-5 (85);
Base 2.4e-6 (7), 1.1e-5 (17), 4.8e-4 (163), 3.5e-4 (170); Large 2.2e-6 (5), 1.5e-5 (18),
7.4e-4 (431), 5.6e-4 (205). Relative to the outputs' magnitude that is <= 3e-6 everywhere:
fp32 rounding of the super token association (stages 1-2) grown by the random-weight residual
depth-wise convolutions of stage 3 (outputs 10-25x larger than the stage-2 ones); stages 1-2 of
every preset and all of Small are within 1e-4 absolute.
"""
import re

import pytest
import torch

from plugins.backbones.reference import reference_numbers
from plugins.backbones.stvit import STViT, SuperTokenBlock
from plugins.mixers.super_token import SuperTokenAttention
from plugins.utils.checkpoint import load_pretrained
from plugins.utils.converters import get_converter

from .contract import check_official_layout_loads

# the official classifier: 1x1 conv to 1024 (+ bias), BN(1024), linear 1024 -> 1000
_HEAD = {'small': 512, 'base': 512, 'large': 640}


def _official_count(backbone, arch):
    last = _HEAD[arch]
    head = last * 1024 + 1024 + 2 * 1024 + 1024 * 1000 + 1000
    return (sum(p.numel() for p in backbone.parameters()) + head) / 1e6


@pytest.mark.parametrize('arch', ['small', 'base', 'large'])
def test_parameter_count_with_the_official_classifier(arch):
    with torch.device('meta'):
        backbone = STViT(arch)
    ref = reference_numbers('STViT', arch)
    with_head = _official_count(backbone, arch)
    assert abs(with_head - ref['official_params_m']) / ref['official_params_m'] < 0.001
    assert abs(with_head - ref['paper_params_m']) / ref['paper_params_m'] < 0.02


@pytest.mark.parametrize('arch,heads,layer_scale', [
    ('small', [1, 2, 5, 8], [False] * 4),
    ('base', [2, 3, 6, 8], [False, False, True, True]),
    ('large', [2, 3, 7, 10], [False, False, True, True]),
])
def test_super_token_attention_early_global_attention_late(arch, heads, layer_scale):
    backbone = STViT(arch)
    for i, stage in enumerate(backbone.stages):
        for block in stage.blocks:
            assert isinstance(block.attn, SuperTokenAttention)
            assert block.attn.stoken_size == ((8, 8), (4, 4), (1, 1), (1, 1))[i]
            assert block.attn.num_heads == heads[i] and block.attn.n_iter == 1
            assert (block.gamma_1 is not None) == layer_scale[i]
            if layer_scale[i]:
                assert torch.all(block.gamma_1 == 1e-6) and torch.all(block.gamma_2 == 1e-6)


def test_block_is_position_conv_then_attention_then_conv_ffn():
    """x = x + DWConv(x); x = x + g1 * STA(LN(x)); x = x + g2 * ConvFFN(BN(x))."""
    torch.manual_seed(0)
    block = SuperTokenBlock(16, 2, 4, layer_scale=0.5).eval()
    x = torch.randn(2, 16, 11, 9)
    with torch.no_grad():
        x0 = x + block.pos_embed.conv(x)
        x1 = x0 + block.gamma_1 * block.attn(block.norm1(x0))
        h = block.mlp.act(block.mlp.fc1(block.norm2(x1)))
        expected = x1 + block.gamma_2 * block.mlp.fc2(h + block.mlp.conv.conv(h))
        torch.testing.assert_close(block(x), expected)


def official_state_dict(backbone, with_head=False):
    """The same weights under the official key names (``patch_embed``, ``layers.i.blocks.j``,
    the down-sampling at the end of the previous stage, ``norm1.norm``, ``mlp2``, the constant
    unfold / fold kernels of the super token blocks)."""
    inverse = [
        (r'^stages\.0\.downsample\.proj\.', lambda m: 'patch_embed.proj.'),
        (r'^stages\.(\d)\.downsample\.', lambda m: f'layers.{int(m.group(1)) - 1}.downsample.'),
        (r'^stages\.(\d)\.blocks\.(\d+)\.', lambda m: f'layers.{m.group(1)}.blocks.{m.group(2)}.'),
        (r'\.norm1\.', lambda m: '.norm1.norm.'),
        (r'\.mlp\.', lambda m: '.mlp2.'),
    ]
    out = {}
    for key, value in backbone.state_dict().items():
        for pattern, repl in inverse:
            key = re.sub(pattern, repl, key)
        out[key] = value.clone()
        if key.endswith('.pos_embed.conv.weight'):
            block = key[:-len('pos_embed.conv.weight')]
            eye = torch.eye(9).reshape(9, 1, 3, 3)
            out[f'{block}attn.unfold.weights'] = eye
            out[f'{block}attn.fold.weights'] = eye.clone()
    if with_head:
        dim = backbone.stage_channels[-1]
        out.update({'proj.weight': torch.randn(1024, dim, 1, 1), 'proj.bias': torch.zeros(1024),
                    'norm.weight': torch.ones(1024), 'norm.bias': torch.zeros(1024),
                    'norm.running_mean': torch.zeros(1024), 'norm.running_var': torch.ones(1024),
                    'norm.num_batches_tracked': torch.tensor(0),
                    'head.weight': torch.randn(1000, 1024), 'head.bias': torch.zeros(1000)})
    return out


def test_official_key_layout_loads_through_the_converter(tmp_path):
    official = official_state_dict(STViT('small'))
    assert 'patch_embed.proj.11.running_var' in official
    assert 'layers.1.downsample.proj.0.weight' in official
    assert 'layers.0.blocks.2.attn.stoken_refine.qkv.weight' in official
    assert 'layers.0.blocks.2.attn.unfold.weights' in official
    assert 'layers.3.blocks.0.norm1.norm.weight' in official
    assert 'layers.3.blocks.0.mlp2.conv.conv.weight' in official
    check_official_layout_loads(lambda **kw: STViT('small', **kw), official_state_dict, tmp_path)


def test_layer_scales_load_through_the_converter(tmp_path):
    model = STViT('base', out_indices=(3,))
    official = official_state_dict(model)
    assert 'layers.2.blocks.13.gamma_1' in official and 'layers.1.blocks.0.gamma_1' not in official
    converted = get_converter('stvit')(official)
    assert set(converted) == set(model.state_dict())


def test_official_imagenet_checkpoint_reports_the_classifier(tmp_path):
    path = tmp_path / 'stvit-small-224.pth'
    torch.save(dict(model=official_state_dict(STViT('small'), with_head=True)), path)
    report = load_pretrained(STViT('small'), str(path), convert=get_converter('stvit'))
    assert sorted(report['unexpected']) == sorted(
        ['proj.weight', 'proj.bias', 'head.weight', 'head.bias', 'norm.weight', 'norm.bias',
         'norm.running_mean', 'norm.running_var', 'norm.num_batches_tracked'])
    assert not report['missing'] and not report['mismatched']


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match='one entry per stage'):
        STViT(dict(embed_dims=[64, 128], depths=[3, 5], num_heads=[1, 2], stoken_sizes=[8, 4, 1],
                   layer_scale=[None, None]))
    with pytest.raises(ValueError, match='divisible'):
        STViT(dict(embed_dims=[64, 128, 320, 512], depths=[1, 1, 1, 1], num_heads=[3, 2, 5, 8],
                   stoken_sizes=[8, 4, 1, 1], layer_scale=[None] * 4))
