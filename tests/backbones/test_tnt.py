"""TNT: official / timm key layouts through the converter, parity with timm, resizing of the
sentence position embedding."""
import re

import pytest
import torch
import torch.nn.functional as F

from benchmarks.peers import import_timm
from plugins.backbones.tnt import TNT
from plugins.utils.checkpoint import CheckpointError, load_pretrained
from plugins.utils.converters import get_converter

from .contract import check_official_layout_loads

timm = import_timm()
needs_timm = pytest.mark.skipif(timm is None, reason='timm is not installed')
SMALL_TNT = dict(TNT.arch_zoo['small'], depth=4)


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
    with pytest.raises(CheckpointError, match=r'tensors have other shapes \(.*file \(.*40'):
        load_pretrained(TNT(SMALL_TNT), str(path), convert=get_converter('tnt'))
    report = load_pretrained(TNT(SMALL_TNT), str(path), convert=get_converter('tnt'),
                             strict=False)
    mismatched = {k: (a, b) for k, a, b in report['mismatched']}
    assert mismatched['stages.0.embed.inner_pos'] == ((1, 16, 40), (1, 16, 24))


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


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match='multiple of 4'):
        TNT(dict(SMALL_TNT, depth=6))
    with pytest.raises(ValueError, match='multiple of inner_stride'):
        TNT(SMALL_TNT, patch_size=16, inner_stride=5)
