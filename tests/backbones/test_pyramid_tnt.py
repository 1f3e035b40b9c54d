"""PyramidTNT: the official key layout through the converter, inner blocks, resizing of the
query-key biases, word aggregation of odd grids (parity with the official code, run outside the
repository, is in the docstring of plugins/backbones/pyramid_tnt.py)."""
import re

import pytest
import torch
import torch.nn.functional as F

from plugins.backbones.pyramid_tnt import (PyramidTNT, WordAggregation,
                                          resize_attention_bias)

from .contract import check_official_layout_loads

SMALL_PTNT = dict(PyramidTNT.arch_zoo['tiny'], depths=[1, 2, 1, 1])


def official_pyramid_state_dict(backbone):
    """The same weights under the official pyramid_tnt.py keys."""
    out = {}
    for key, value in backbone.state_dict().items():
        key = re.sub(r'^stages\.0\.(patch_embed\.|outer_pos$|inner_pos$)', r'\1', key)
        key = re.sub(r'^stages\.(\d)\.(word|sentence)_merge\.conv\.',
                     lambda m: f'{m.group(2)}_merges.{int(m.group(1)) - 1}.conv.0.', key)
        key = re.sub(r'^stages\.(\d)\.(word|sentence)_merge\.',
                     lambda m: f'{m.group(2)}_merges.{int(m.group(1)) - 1}.', key)
        key = re.sub(r'^stages\.3\.norm\.', 'norm.', key)
        out[key] = value.clone()
    return out


def test_official_pyramid_layout_loads_through_the_converter(tmp_path):
    official = official_pyramid_state_dict(PyramidTNT(SMALL_PTNT))
    for key in ('patch_embed.common_conv.0.weight', 'patch_embed.outer_convs.7.running_var',
                'outer_pos', 'inner_pos', 'word_merges.0.conv.0.weight',
                'sentence_merges.2.norm.bias', 'stages.1.relative_pos',
                'stages.1.blocks.1.outer_attn.kv.weight', 'stages.0.blocks.0.inner_norm1.weight',
                'stages.0.blocks.0.outer_attn.linear.weight', 'norm.weight'):
        assert key in official, key
    check_official_layout_loads(lambda **kw: PyramidTNT(SMALL_PTNT, **kw),
                                official_pyramid_state_dict, tmp_path, size=(64, 80))


def test_only_the_first_blocks_of_a_stage_have_an_inner_transformer():
    """Block 0 of every stage, and block 1 where a stage has more than 6 blocks."""
    with torch.device('meta'):
        tiny, small = PyramidTNT('tiny'), PyramidTNT('small')
    assert [[b.has_inner for b in s.blocks] for s in tiny.stages] == [
        [True, False], [True] + [False] * 5, [True, False, False], [True, False]]
    assert [b.has_inner for b in small.stages[1].blocks] == [True, True] + [False] * 6


def test_attention_bias_is_kept_on_the_pretraining_grid_and_resized_elsewhere():
    backbone = PyramidTNT(SMALL_PTNT)  # 192: query grid 24x24, keys pooled by 4: 6x6
    bias = backbone.stages[0].relative_pos
    assert torch.equal(backbone.attention_bias(0, (24, 24)), bias)
    got = backbone.attention_bias(0, (13, 7))  # keys: 13 // 4 x max(7 // 4, 1) = 3 x 1
    assert got.shape == (1, 2, 13 * 7, 3)
    per_query = F.interpolate(bias.reshape(2, 24, 24, 36).permute(0, 3, 1, 2), size=(13, 7),
                              mode='bicubic', align_corners=False)  # h k qy qx
    per_key = F.interpolate(per_query.reshape(2, 6, 6, 91).permute(0, 3, 1, 2), size=(3, 1),
                            mode='bicubic', align_corners=False)  # h q ky kx
    torch.testing.assert_close(got, per_key.reshape(1, 2, 91, 3))
    assert resize_attention_bias(bias, (24, 24), (6, 6), (24, 24), (6, 6)) is bias


def test_word_aggregation_of_an_odd_grid_merges_2x2_sentences_as_the_official_code():
    """The official merge: pad the sentence grid to even, put the 4x4 words of sentences
    (2i, 2j), (2i+1, 2j) below each other and those of column 2j+1 beside them, convolve each
    8x8 block alone."""
    merge = WordAggregation(6, 10)
    H, W = 3, 5
    words = torch.randn(2 * H * W, 16, 6)
    x = F.pad(merge.norm(words).view(2, H, W, 4, 4, 6), (0, 0, 0, 0, 0, 0, 0, 1, 0, 1))
    blocks = torch.cat([torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2]], 3),
                        torch.cat([x[:, 0::2, 1::2], x[:, 1::2, 1::2]], 3)], 4)
    expected = merge.conv(blocks.reshape(-1, 8, 8, 6).permute(0, 3, 1, 2))
    torch.testing.assert_close(merge(words, (H, W)), expected.flatten(2).transpose(1, 2))


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match='4 entries each'):
        PyramidTNT(dict(SMALL_PTNT, depths=[1, 1, 1]))
