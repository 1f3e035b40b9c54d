"""InLine-PVT and InLine-Swin: presets, the backbone contract, the official key layout, the block
pattern.

Parity with the official code (LeapLabTHU/InLine ``models/inline_pvt.py`` / ``inline_swin.py``, run
outside the repository beside these modules with the same weights converted by the ``inline``
converter; fp32, eval, random official initialisation with randomised LayerNorm affines and
residual-predictor weights, 2x3x224x224, the four stage outputs, output norms off), max abs diff
over the stages: InLine-PVT T 7.9e-6, S 8.2e-6, M 9.4e-6, L 7.6e-6; InLine-Swin T 2.3e-6,
S 2.8e-6, B 4.1e-6 (stage outputs of magnitude ~5).
"""
import re

import pytest
import torch

from plugins.backbones.inline import InLinePVT, InLineSwin, InLineTransformerBlock
from plugins.mixers.inline_attention import InLineAttention
from plugins.mixers.window import ShiftedWindowAttention
from plugins.utils.checkpoint import load_pretrained
from plugins.utils.converters import get_converter

from .contract import (check_official_layout_loads, check_output_shapes)


@pytest.mark.parametrize('size', [(97, 131), (300, 250)])
def test_swin_any_input_size_gives_ceil_of_stride(size):
    """(300, 250): stage 4 is 10x8, larger than a window: padded, shifted windows."""
    backbone = InLineSwin('tiny')
    check_output_shapes(backbone, size, channels=[96, 192, 384, 768])


def test_pvt_blocks_use_global_inline_attention():
    backbone = InLinePVT('small')
    assert [len(s.blocks) for s in backbone.stages] == [3, 4, 6, 3]
    assert all(isinstance(b.attn, InLineAttention) and b.norm1.eps == 1e-6
               for s in backbone.stages for b in s.blocks)
    assert [b.attn.num_heads for b in (s.blocks[0] for s in backbone.stages)] == [2, 4, 10, 16]
    assert [s.grid for s in backbone.stages] == [56, 28, 14, 7]


@pytest.mark.parametrize('arch,pattern', [
    ('tiny', ['II', 'II', 'IIIIII', 'SS']),
    ('small', ['II', 'II', 'S' * 18, 'SS']),
    ('base', ['II', 'II', 'II' + 'S' * 16, 'SS']),
])
def test_swin_attention_pattern_is_the_official_attn_type(arch, pattern):
    """IIIS (T), IISS (S), IIMS2 (B: two InLine blocks, then softmax, in stage 3)."""
    backbone = InLineSwin(arch)
    for stage, expected in zip(backbone.stages, pattern):
        kinds = ''.join('I' if isinstance(b.attn, InLineAttention) else 'S' for b in stage.blocks)
        assert kinds == expected
        for j, block in enumerate(stage.blocks):
            if isinstance(block.attn, ShiftedWindowAttention):
                assert block.attn.window_size == (7, 7)
                assert block.attn.shift_size == ((3, 3) if j % 2 else (0, 0))


def test_window_block_does_not_shift_a_map_that_fits_one_window():
    """Swin's rule (the official stage 4 at 224: a 7x7 map, window 7, no shift)."""
    torch.manual_seed(0)
    block = InLineTransformerBlock(32, 2, window_size=7, shift_size=3).eval()
    x = torch.randn(1, 32, 7, 6)
    with torch.no_grad():
        expected = block.attn(x, shift_size=0)
        assert torch.equal(block._attend(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2), expected)
        assert not torch.allclose(block.attn(x), expected)  # the shift would change it
        big = torch.randn(1, 32, 9, 7)
        torch.testing.assert_close(block._attend(big.permute(0, 2, 3, 1)).permute(0, 3, 1, 2),
                                   block.attn(big))


def test_position_embedding_is_the_grid_at_the_pretraining_size_and_resized_elsewhere():
    stage = InLinePVT('tiny').stages[1]
    torch.nn.init.normal_(stage.pos_embed)
    grid = stage.pos_embed.view(1, 28, 28, -1)
    assert torch.equal(stage.position_embedding(28, 28), grid)
    resized = stage.position_embedding(14, 40)
    assert resized.shape == (1, 14, 40, 128)
    expected = torch.nn.functional.interpolate(grid.permute(0, 3, 1, 2), size=(14, 40),
                                               mode='bilinear', align_corners=False)
    torch.testing.assert_close(resized, expected.permute(0, 2, 3, 1))


def test_output_norms_exist_only_for_returned_stages():
    backbone = InLineSwin('tiny', out_indices=(1, 2, 3))
    assert isinstance(backbone.stages[0].norm, torch.nn.Identity)
    assert all(isinstance(s.norm, torch.nn.LayerNorm) for s in backbone.stages[1:])


def official_pvt_state_dict(backbone, with_head=False):
    """The same weights under the official ``inline_pvt`` key names."""
    inverse = [
        (r'^stages\.(\d)\.patch_embed\.', lambda m: f'patch_embed{int(m.group(1)) + 1}.'),
        (r'^stages\.(\d)\.pos_embed$', lambda m: f'pos_embed{int(m.group(1)) + 1}'),
        (r'^stages\.(\d)\.blocks\.(\d+)\.', lambda m: f'block{int(m.group(1)) + 1}.{m.group(2)}.'),
    ]
    out = {}
    for key, value in backbone.state_dict().items():
        for pattern, repl in inverse:
            key = re.sub(pattern, repl, key)
        out[key] = value.clone()
    if with_head:
        out.update({'head.weight': torch.randn(1000, 512), 'head.bias': torch.zeros(1000)})
    return out


def official_swin_state_dict(backbone, with_head=False):
    """The same weights under the official ``InLineSwin`` key names: fused ``attn.qkv`` in the
    InLine blocks, the mergings at the end of the previous stage, Swin's buffers."""
    inverse = [
        (r'^stages\.0\.downsample\.', lambda m: 'patch_embed.'),
        (r'^stages\.(\d)\.downsample\.', lambda m: f'layers.{int(m.group(1)) - 1}.downsample.'),
        (r'^stages\.(\d)\.blocks\.(\d+)\.', lambda m: f'layers.{m.group(1)}.blocks.{m.group(2)}.'),
    ]
    state = backbone.state_dict()
    out = {}
    for key, value in state.items():
        if re.match(r'stages\.\d\.norm\.', key) or '.attn.kv.' in key:
            continue  # no per-stage output norms in the ImageNet model; kv goes into qkv
        if '.attn.q.' in key:
            value = torch.cat([value, state[key.replace('.attn.q.', '.attn.kv.')]])
            key = key.replace('.attn.q.', '.attn.qkv.')
        for pattern, repl in inverse:
            key = re.sub(pattern, repl, key)
        out[key] = value.clone()
        if key.endswith('relative_position_bias_table'):  # Swin's index buffer, recomputed here
            out[key.replace('bias_table', 'index')] = torch.zeros(49, 49, dtype=torch.long)
    if with_head:
        dim = backbone.stage_channels[-1]
        out.update({'norm.weight': torch.ones(dim), 'norm.bias': torch.zeros(dim),
                    'head.weight': torch.randn(1000, dim), 'head.bias': torch.zeros(1000)})
    return out


def test_pvt_official_key_layout_loads_through_the_converter(tmp_path):
    official = official_pvt_state_dict(InLinePVT('tiny'))
    assert 'pos_embed3' in official and 'patch_embed2.norm.bias' in official
    assert 'block3.1.attn.kv.weight' in official and 'block4.0.attn.residual.2.bias' in official
    check_official_layout_loads(lambda **kw: InLinePVT('tiny', **kw), official_pvt_state_dict,
                                tmp_path)


def test_swin_official_key_layout_loads_through_the_converter(tmp_path):
    official = official_swin_state_dict(InLineSwin('tiny'))
    assert 'layers.2.blocks.5.attn.qkv.weight' in official
    assert 'layers.2.blocks.5.attn.residual.0.weight' in official
    assert 'layers.3.blocks.1.attn.relative_position_bias_table' in official
    assert 'layers.3.blocks.1.attn.relative_position_index' in official
    assert 'layers.2.downsample.reduction.weight' in official
    assert 'patch_embed.proj.weight' in official
    converted = get_converter('inline')(official)
    assert converted['stages.2.blocks.5.attn.q.weight'].shape == (384, 384)
    assert converted['stages.2.blocks.5.attn.kv.weight'].shape == (768, 384)
    assert converted['stages.3.blocks.1.attn.qkv.weight'].shape == (2304, 768)
    check_official_layout_loads(lambda **kw: InLineSwin('tiny', out_norm=False, **kw),
                                official_swin_state_dict, tmp_path)


def test_official_imagenet_checkpoints_report_the_classifier(tmp_path):
    path = tmp_path / 'inline_pvt_t.pth'
    torch.save(dict(model=official_pvt_state_dict(InLinePVT('tiny'), with_head=True)), path)
    report = load_pretrained(InLinePVT('tiny'), str(path), convert=get_converter('inline'))
    assert sorted(report['unexpected']) == ['head.bias', 'head.weight']
    assert not report['missing'] and not report['mismatched']
    path = tmp_path / 'inline_swin_t.pth'
    torch.save(dict(model=official_swin_state_dict(InLineSwin('tiny'), with_head=True)), path)
    report = load_pretrained(InLineSwin('tiny'), str(path), convert=get_converter('inline'))
    assert sorted(report['unexpected']) == ['head.bias', 'head.weight', 'norm.bias',
                                           'norm.weight']
    assert sorted(report['missing']) == sorted(f'stages.{i}.norm.{p}' for i in range(4)
                                               for p in ('weight', 'bias'))


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match='one entry per stage'):
        InLinePVT(dict(embed_dims=[64, 128], depths=[2, 2, 2], num_heads=[2, 4],
                       mlp_ratios=[8, 8]))
    with pytest.raises(ValueError, match='within 0 and the depths'):
        InLineSwin(dict(embed_dims=[96, 192, 384, 768], depths=[2, 2, 6, 2],
                        num_heads=[3, 6, 12, 24], inline_blocks=[2, 3, 6, 0]))
    with pytest.raises(ValueError, match='divisible'):
        InLineSwin(dict(embed_dims=[96, 192, 384, 768], depths=[2, 2, 6, 2],
                        num_heads=[5, 6, 12, 24], inline_blocks=[2, 2, 6, 0]))
