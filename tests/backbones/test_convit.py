"""ConViT: timm / official key layout, parity with timm, non-square relative positions against a
dense reference, position-embedding interpolation, class token placement."""
import re

import pytest
import torch
import torch.nn.functional as F

from benchmarks.peers import import_timm
from plugins.backbones.convit import ConViT
from plugins.mixers.gated_positional import relative_position_features
from plugins.utils.checkpoint import CheckpointError, load_pretrained
from plugins.utils.converters import get_converter

timm = import_timm()
needs_timm = pytest.mark.skipif(timm is None, reason='timm is not installed')


def official_state_dict(backbone):
    """The same weights under the official / timm keys (``patch_embed``, ``pos_embed``,
    ``cls_token``, flat ``blocks.{i}``, ``norm``, ``head``)."""
    per = len(backbone.stages[0].blocks)
    out = {}
    for key, value in backbone.state_dict().items():
        key = re.sub(r'^stages\.(\d+)\.blocks\.(\d+)\.',
                     lambda m: f'blocks.{int(m.group(1)) * per + int(m.group(2))}.', key)
        key = re.sub(r'^stages\.\d+\.(patch_embed\.|pos_embed$|cls_token$|norm\.)', r'\1', key)
        out[key] = value.clone()
    dim = backbone.stage_channels[-1]
    out.update({'head.weight': torch.randn(1000, dim), 'head.bias': torch.zeros(1000)})
    return out


def randomized_timm(name, **kwargs):
    """timm's model with random LayerNorm affines, gates and positional weights (so that each of
    them matters in the comparison)."""
    torch.manual_seed(0)
    model = timm.create_model(name, **kwargs).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if re.search(r'norm\d?\.(weight|bias)$', name):
                shift = .5 if name.endswith('weight') else -.5
                p.copy_(torch.rand(p.shape, generator=g) + shift)
            elif name.endswith('gating_param'):
                p.copy_(torch.randn(p.shape, generator=g))
            elif name.endswith('pos_proj.weight'):
                p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model


def from_timm(model, preset):
    ours = ConViT(preset).eval()
    report = ours.load_state_dict(get_converter('convit')(model.state_dict()), strict=False)
    assert report.missing_keys == [] and sorted(report.unexpected_keys) == ['head.bias',
                                                                           'head.weight']
    return ours


def test_official_layout_loads_through_the_converter(tmp_path):
    source = ConViT('tiny').eval()
    official = official_state_dict(source)
    assert 'blocks.11.attn.qkv.weight' in official and 'blocks.9.attn.pos_proj.bias' in official
    assert official['pos_embed'].shape == (1, 196, 192) and 'cls_token' in official
    path = tmp_path / 'convit_tiny.pth'
    torch.save(dict(model=official), path)
    target = ConViT('tiny', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    target.init_weights()
    x = torch.randn(1, 3, 48, 80)
    with torch.no_grad():
        for a, b in zip(source(x), target.eval()(x)):
            assert torch.equal(a, b)
    assert torch.equal(target.stages[3].cls_token, official['cls_token'])  # joins at block 10


def test_a_checkpoint_of_another_preset_is_refused_with_the_shapes(tmp_path):
    small = dict(ConViT.arch_zoo['tiny'], depth=4, local_layers=3)  # one block per stage
    path = tmp_path / 'convit.pth'
    torch.save(official_state_dict(ConViT(dict(small, embed_dims=256))), path)
    try:
        text = ' '.join(load_pretrained(ConViT(small), str(path),
                                        convert=get_converter('convit'))['mismatched'])
    except (CheckpointError, ValueError, RuntimeError) as err:
        text = str(err)
    assert 'pos_embed' in text and '256' in text and '192' in text


@needs_timm
def test_equals_timm_with_the_same_weights():
    """All four stages (blocks 3, 6, 9, 12; the last through the final LayerNorm) at 224x224
    within 1e-4 (measured <= 2.4e-6)."""
    ref = randomized_timm('convit_tiny')
    ours = from_timm(ref, 'tiny')
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        final, inter = ref.forward_intermediates(x, indices=[2, 5, 8, 11])
        expected = inter[:3] + [final[:, 1:].transpose(1, 2).reshape(2, -1, 14, 14)]
        for a, b in zip(ours(x), expected):
            assert (a - b).abs().max() <= 1e-4


@needs_timm
def test_non_square_input_matches_a_dense_reference():
    """97x131 (a 7x9 grid after padding to 112x144): timm's blocks with the dense N x N relative
    offsets of the real 7x9 grid (its own int(sqrt(N)) would be wrong) and the position
    embedding resized bicubically, on the zero-padded image."""
    ref = randomized_timm('convit_tiny')
    ours = from_timm(ref, 'tiny')
    dense = randomized_timm('convit_tiny', img_size=(112, 144))
    state = ref.state_dict()
    grid = state['pos_embed'].reshape(1, 14, 14, -1).permute(0, 3, 1, 2)
    state['pos_embed'] = F.interpolate(grid, size=(7, 9), mode='bicubic',
                                       align_corners=False).flatten(2).transpose(1, 2)
    dense.load_state_dict(state)
    for block in dense.blocks[:10]:
        block.attn.rel_indices = relative_position_features(7, 9)[None]
    x = torch.randn(1, 3, 97, 131)
    with torch.no_grad():
        final, inter = dense.forward_intermediates(F.pad(x, (0, 13, 0, 15)),
                                                   indices=[2, 5, 8, 11])
        expected = inter[:3] + [final[:, 1:].transpose(1, 2).reshape(1, -1, 7, 9)]
        for a, b in zip(ours(x), expected):
            assert a.shape == b.shape == (1, 192, 7, 9)
            assert (a - b).abs().max() <= 1e-4


def test_position_embedding_is_resized_bicubically_from_the_pretraining_grid():
    backbone = ConViT('tiny')
    pos = backbone.stages[0].pos_embed
    assert backbone.position_embedding((14, 14)) is pos
    expected = F.interpolate(pos.reshape(1, 14, 14, -1).permute(0, 3, 1, 2), size=(5, 23),
                             mode='bicubic', align_corners=False)
    torch.testing.assert_close(backbone.position_embedding((5, 23)),
                               expected.flatten(2).transpose(1, 2))


def test_class_token_joins_after_the_gpsa_blocks():
    """Blocks 1-10 are GPSA on the patch grid alone: the class token changes only stage 4
    (blocks 10-12), and it is held there."""
    backbone = ConViT('tiny').eval()
    assert [b.use_gpsa for s in backbone.stages for b in s.blocks] == [True] * 10 + [False] * 2
    assert [s.cls_token is not None for s in backbone.stages] == [False, False, False, True]
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        before = backbone(x)
        backbone.stages[3].cls_token.add_(1.)
        after = backbone(x)
    assert all(torch.equal(a, b) for a, b in zip(before[:3], after[:3]))
    assert not torch.allclose(before[3], after[3])


def test_bad_arguments_are_clear_errors():
    arch = dict(ConViT.arch_zoo['tiny'])
    with pytest.raises(ValueError, match='multiple of 4'):
        ConViT(dict(arch, depth=6))
    with pytest.raises(ValueError, match='local_layers'):
        ConViT(dict(arch, local_layers=13))
    with pytest.raises(KeyError, match='lacks'):
        ConViT(dict(embed_dims=192, depth=12, num_heads=4))
