"""Hyena ViT: the official key layout, the official block layouts, the implicit filter and the
position embedding on non-square grids (parity with the official code: see the module docstring)."""
import argparse
import re

import pytest
import torch
import torch.nn.functional as F

from plugins.backbones.hyena_vit import HyenaViT
from plugins.mixers.global_attention import GlobalSelfAttention
from plugins.mixers.hyena import HyenaMixer2d
from plugins.utils.checkpoint import load_pretrained
from plugins.utils.converters import get_converter

from .contract import check_official_layout_loads

SMALL = dict(embed_dims=32, depths=[1, 2, 1, 2], num_heads=2, layout='hyena2dattn')


def small(**kw):
    return HyenaViT(SMALL, filter_order=8, **kw)


def official_state_dict(backbone):
    """The same weights under the official HyenaND DeiT's keys (``blocks.i`` over all blocks,
    ``patch_embed``, ``pos_embed``, ``norm``) plus its classifier ``head``."""
    out, index = {}, 0
    for g, stage in enumerate(backbone.stages):
        for name, value in stage.state_dict().items():
            m = re.match(r'^blocks\.(\d+)\.(.*)$', name)
            if m:
                name = f'blocks.{index + int(m.group(1))}.{m.group(2)}'
            out[name] = value.clone()
        index += len(stage.blocks)
    dim = backbone.stage_channels[-1]
    out.update({'head.weight': torch.randn(1000, dim), 'head.bias': torch.zeros(1000)})
    return out


def test_official_key_layout_loads_through_the_converter(tmp_path):
    official = official_state_dict(small(out_indices=(3, )))
    assert {'patch_embed.proj.weight', 'pos_embed', 'norm.weight', 'norm.bias'} <= set(official)
    assert 'blocks.5.attn.proj.weight' in official                     # attention, last block
    assert 'blocks.0.attn.filter_fn.implicit_filter.6.weight' in official
    assert 'blocks.2.attn.filter_fn.modulation.Xdeltas' in official
    check_official_layout_loads(lambda **kw: small(out_indices=(3, ), **kw),
                                official_state_dict, tmp_path)


def test_official_training_checkpoint_reports_only_the_classifier(tmp_path):
    """main.py of the official code saves ``model`` beside its argparse ``args``."""
    path = tmp_path / 'checkpoint.pth'
    torch.save(dict(model=official_state_dict(small()), args=argparse.Namespace(method='hyena2d'),
                    epoch=3), path)
    report = load_pretrained(small(), str(path), convert=small().convert_checkpoint)
    assert sorted(report['unexpected']) == ['head.bias', 'head.weight']
    assert report['missing'] == [] and report['mismatched'] == []


def test_converter_splits_the_official_blocks_into_four_equal_groups_by_default():
    state = {f'blocks.{i}.norm1.weight': torch.ones(1) for i in range(12)}
    keys = list(get_converter('hyena_vit')(state))
    assert keys[:4] == ['stages.0.blocks.0.norm1.weight', 'stages.0.blocks.1.norm1.weight',
                        'stages.0.blocks.2.norm1.weight', 'stages.1.blocks.0.norm1.weight']
    assert keys[-1] == 'stages.3.blocks.2.norm1.weight'
    with pytest.raises(ValueError, match='pass depths'):
        get_converter('hyena_vit')({f'blocks.{i}.norm1.weight': torch.ones(1) for i in range(6)})


@pytest.mark.parametrize('layout,hyena', [
    ('hyena2d', [1] * 12),
    ('hyena2dattn', [1] * 7 + [0] * 5),
    ('attnhyena2d', [0] * 7 + [1] * 5),
    ('onebyone', [1, 0] * 6)])
def test_blocks_follow_the_official_layouts(layout, hyena):
    """The official ``--method`` (``d = depth // 2``), and ``--directional_mode seq``: even blocks
    flip, odd blocks do not."""
    backbone = HyenaViT(dict(embed_dims=24, depths=[3, 3, 3, 3], num_heads=2, layout=layout),
                        filter_order=4)
    mixers = [b.attn for s in backbone.stages for b in s.blocks]
    assert [int(isinstance(m, HyenaMixer2d)) for m in mixers] == hyena
    assert all(isinstance(m, GlobalSelfAttention) for m, h in zip(mixers, hyena) if not h)
    for i, m in enumerate(mixers):
        if isinstance(m, HyenaMixer2d):
            assert m.directional_mode == ('seq' if i % 2 == 0 else 'standard')
            assert m.l_max == 14 and m.filter_fn.filter_mode == '2d'


def direct_filter(filt, H, W):
    """The joint 2-D implicit filter at every (i, j) of an H x W grid, evaluated point by point:
    each axis's positional features linearly interpolated at ``i (l_max - 1) / (H - 1)`` (the
    ends stay at the ends), times the decay ``exp(-t_i |dx|) exp(-t_j |dy|)``, ``t_i = i / (H-1)``.
    """
    z = filt.pos_emb.z[0]                                                   # l_max e
    l_max = z.shape[0]

    def features(i, n):
        p = i * (l_max - 1) / (n - 1) if n > 1 else 0.
        lo = min(int(p), l_max - 2)
        return z[lo] * (1 - (p - lo)) + z[lo + 1] * (p - lo), (i / (n - 1) if n > 1 else 0.)

    dx, dy = filt.modulation.Xdeltas.abs().view(-1), filt.modulation.Ydeltas.abs().view(-1)
    out = torch.empty(H, W, dx.numel())
    for i in range(H):
        zi, ti = features(i, H)
        for j in range(W):
            zj, tj = features(j, W)
            h = filt.implicit_filter(torch.cat([zi, zj])[None])[0]
            out[i, j] = h * torch.exp(-ti * dx) * torch.exp(-tj * dy)
    return out


@pytest.mark.parametrize('size', [(7, 9), (14, 14), (3, 20)])
def test_implicit_filter_is_evaluated_on_the_actual_grid(size):
    block = small().stages[0].blocks[0]
    with torch.no_grad():
        for p in block.attn.filter_fn.parameters():
            p.normal_()
        torch.testing.assert_close(block.attn.filter_fn(*size), direct_filter(
            block.attn.filter_fn, *size), rtol=1e-5, atol=1e-5)


def test_position_embedding_is_the_pretraining_grid_resized_bicubically():
    backbone = small()
    pos = backbone.stages[0].pos_embed
    grid = pos.reshape(1, 14, 14, -1).permute(0, 3, 1, 2)
    assert torch.equal(backbone.position_embedding(14, 14), grid)
    torch.testing.assert_close(backbone.position_embedding(7, 9),
                               F.interpolate(grid, (7, 9), mode='bicubic', align_corners=False))


def test_input_is_padded_to_patch_multiples_and_the_maps_cropped():
    backbone = small(out_indices=(3, )).eval()
    x = torch.randn(1, 3, 50, 70)
    with torch.no_grad():
        out = backbone(x)[0]
        padded = backbone(F.pad(x, (0, 10, 0, 14)))[0]
    assert out.shape[2:] == (4, 5)
    torch.testing.assert_close(out, padded[..., :4, :5])


def test_final_norm_only_on_the_last_group_when_it_is_returned():
    assert isinstance(small(out_indices=(3, )).stages[3].norm, torch.nn.LayerNorm)
    assert isinstance(small(out_indices=(1, 2)).stages[3].norm, torch.nn.Identity)
    assert all(isinstance(s.norm, torch.nn.Identity) for s in small().stages[:3])


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match='layout must be one of'):
        HyenaViT(dict(SMALL, layout='hybrid'))
    with pytest.raises(ValueError, match='four groups'):
        HyenaViT(dict(SMALL, depths=[6, 6]))
    with pytest.raises(ValueError, match='multiple of patch_size'):
        small(pretrain_img_size=200)
