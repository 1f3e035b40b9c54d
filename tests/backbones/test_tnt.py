"""TNT and PyramidTNT: official / timm key layouts through the converters, parity with timm,
position-embedding and query-key-bias resizing, PyramidTNT's word aggregation and inner blocks."""
import re

import pytest
import torch
import torch.nn.functional as F

from benchmarks.peers import import_timm
from plugins.backbones.tnt import TNT, PyramidTNT, WordAggregation, resize_attention_bias
from plugins.utils.checkpoint import CheckpointError, load_pretrained
from plugins.utils.converters import get_converter

from .contract import check_official_layout_loads

timm = import_timm()
needs_timm = pytest.mark.skipif(timm is None, reason='timm is not installed')
SMALL_TNT = dict(TNT.arch_zoo['small'], depth=4)
SMALL_PTNT = dict(PyramidTNT.arch_zoo['tiny'], depths=[1, 2, 1, 1])


def official_tnt_state_dict(backbone):
    """The same weights under the official tnt.py keys (flat ``blocks.{i}``, top-level
    embeddings, ``norm``), with its unused ``outer_tokens`` and a classifier."""
    per = len(backbone.stages[0].blocks)
    out = {}
    for key, value in backbone.state_dict().items():
        key = re.sub(r'^stages\.(\d+)\.blocks\.(\d+)\.',
                     lambda m: f'blocks.{int(m.group(1)) * per + int(m.group(2))}.', key)
        key = re.sub(r'^stages\.0\.embed\.|^stages\.\d+\.(?=norm\.)', '', key)
        out[key] = value.clone()
    grid, dim = out['outer_pos'].shape[1] - 1, backbone.stage_channels[-1]
    out.update({'outer_tokens': torch.zeros(1, grid, dim), 'head.weight': torch.randn(1000, dim),
                'head.bias': torch.zeros(1000)})
    return out


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


def randomized_timm(name, **kwargs):
    """timm's model with random LayerNorm affines (so that norms and biases matter)."""
    torch.manual_seed(0)
    model = timm.create_model(name, **kwargs).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if re.search(r'norm\w*\.(weight|bias)$', name):
                shift = .5 if name.endswith('weight') else -.5
                p.copy_(torch.rand(p.shape, generator=g) + shift)
    return model


def test_official_tnt_layout_loads_through_the_converter(tmp_path):
    official = official_tnt_state_dict(TNT(SMALL_TNT))
    for key in ('patch_embed.proj.weight', 'inner_pos', 'outer_pos', 'cls_token',
                'proj_norm1.weight', 'blocks.3.inner_attn.qk.weight', 'blocks.2.proj.weight',
                'blocks.0.outer_mlp.fc2.bias', 'norm.bias'):
        assert key in official
    assert official['inner_pos'].shape == (1, 16, 24)
    check_official_layout_loads(lambda **kw: TNT(SMALL_TNT, **kw), official_tnt_state_dict,
                                tmp_path)
    path = tmp_path / 'tnt_s.pth'
    torch.save(dict(state_dict=official), path)
    report = load_pretrained(TNT(SMALL_TNT), str(path), convert=get_converter('tnt'))
    assert report['missing'] == [] and sorted(report['unexpected']) == ['head.bias',
                                                                        'head.weight']


def test_a_checkpoint_of_another_preset_is_refused_with_the_shapes(tmp_path):
    path = tmp_path / 'tnt.pth'
    torch.save(official_tnt_state_dict(TNT(dict(SMALL_TNT, inner_dims=40))), path)
    try:
        text = ' '.join(load_pretrained(TNT(SMALL_TNT), str(path),
                                        convert=get_converter('tnt'))['mismatched'])
    except (CheckpointError, ValueError, RuntimeError) as err:
        text = str(err)
    assert 'inner_pos' in text and '40' in text and '24' in text


@needs_timm
@pytest.mark.parametrize('size', [(224, 224), (96, 160)])
def test_tnt_equals_timm_with_the_same_weights(size):
    """timm's tnt_s_patch16_224 weights through the converter (timm's 4-D ``pixel_pos``, its
    names): every stage within 1e-4 (the full TNT-S / B: <= 3.8e-6, see tnt.py). timm takes only
    the size it is built for: at 96x160 it is built there, with the sentence position embedding
    that ours resizes."""
    ref = randomized_timm('tnt_s_patch16_224', depth=4)  # TNT-S with one block per stage
    ours = TNT(SMALL_TNT).eval()
    report = ours.load_state_dict(get_converter('tnt')(ref.state_dict()), strict=False)
    assert report.missing_keys == [] and sorted(report.unexpected_keys) == ['head.bias',
                                                                           'head.weight']
    grid = (size[0] // 16, size[1] // 16)
    if size != (224, 224):
        state = ref.state_dict()
        pos = state['patch_pos']
        grid_pos = F.interpolate(pos[:, 1:].reshape(1, 14, 14, -1).permute(0, 3, 1, 2),
                                 size=grid, mode='bicubic', align_corners=False)
        state['patch_pos'] = torch.cat([pos[:, :1], grid_pos.flatten(2).transpose(1, 2)], dim=1)
        ref = timm.create_model('tnt_s_patch16_224', depth=4, img_size=size).eval()
        ref.load_state_dict(state)
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        final, inter = ref.forward_intermediates(x, indices=[0, 1, 2, 3])
        expected = inter[:3] + [final[:, 1:].transpose(1, 2).reshape(1, -1, *grid)]
        for a, b in zip(ours(x), expected):
            assert a.shape == b.shape
            assert (a - b).abs().max() <= 1e-4


def test_sentence_position_embedding_is_resized_and_the_class_position_kept():
    embed = TNT(SMALL_TNT).stages[0].embed
    x = torch.randn(1, 3, 80, 48)  # a 5x3 grid
    pos = embed.outer_pos.detach().clone()
    grid = F.interpolate(pos[:, 1:].reshape(1, 14, 14, -1).permute(0, 3, 1, 2), size=(5, 3),
                         mode='bicubic', align_corners=False).flatten(2).transpose(1, 2)
    with torch.no_grad():
        zero = {'outer_pos': torch.zeros_like(pos)}
        _, with_pos, _ = embed(x)
        embed.load_state_dict(zero, strict=False)
        _, without, _ = embed(x)
    torch.testing.assert_close(with_pos - without, torch.cat([pos[:, :1], grid], dim=1))


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
    with pytest.raises(ValueError, match='multiple of 4'):
        TNT(dict(SMALL_TNT, depth=6))
    with pytest.raises(ValueError, match='multiple of inner_stride'):
        TNT(SMALL_TNT, patch_size=16, inner_stride=5)
    with pytest.raises(ValueError, match='4 entries each'):
        PyramidTNT(dict(SMALL_PTNT, depths=[1, 1, 1]))
