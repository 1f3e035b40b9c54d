"""DaViT: presets, the backbone contract, the official and timm key layouts, and parity with timm."""
import re

import pytest
import torch

from benchmarks.peers import import_timm
from plugins.backbones.davit import DaViT
from plugins.utils.checkpoint import load_pretrained
from plugins.utils.converters import get_converter

from .contract import (check_gradients_reach_every_parameter, check_official_layout_loads)

timm = import_timm()
needs_timm = pytest.mark.skipif(timm is None, reason='timm is not installed')


def test_every_stage_alternates_spatial_and_channel_attention():
    backbone = DaViT('small')
    assert [len(s.blocks) for s in backbone.stages] == [1, 1, 9, 1]
    for stage in backbone.stages:
        for spatial, channel in stage.blocks:
            assert type(spatial.attn).__name__ == 'ShiftedWindowAttention'
            assert spatial.attn.relative_position_bias_table is None
            assert spatial.attn.shift_size == (0, 0)
            assert type(channel.attn).__name__ == 'ChannelGroupAttention'


def test_out_norm_false_returns_the_raw_stage_outputs():
    torch.manual_seed(0)
    normed = DaViT('tiny').eval()
    raw = DaViT('tiny', out_norm=False).eval()
    raw.load_state_dict(normed.state_dict(), strict=False)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for stage, a, b in zip(normed.stages, normed(x), raw(x)):
            torch.testing.assert_close(stage.norm(b), a)


def test_output_norms_exist_only_for_returned_stages():
    """As the official ``norm{i} for i in out_indices``: no parameter without a gradient (DDP)."""
    backbone = DaViT('tiny', out_indices=(1, 2, 3))
    assert isinstance(backbone.stages[0].norm, torch.nn.Identity)
    assert all(isinstance(s.norm, torch.nn.LayerNorm) for s in backbone.stages[1:])
    check_gradients_reach_every_parameter(backbone, size=(64, 64))


def official_state_dict(backbone, detection=True):
    """The same weights under the official key names (the mmdet / mmseg backbone with ``norm{i}``
    when ``detection``, else the ImageNet model with its ``norms`` and ``head``)."""
    inverse = [
        (r'^stages\.(\d)\.downsample\.conv\.', lambda m: f'patch_embeds.{m.group(1)}.proj.'),
        (r'^stages\.(\d)\.downsample\.norm\.', lambda m: f'patch_embeds.{m.group(1)}.norm.'),
        (r'^stages\.(\d)\.blocks\.', lambda m: f'main_blocks.{m.group(1)}.'),
        (r'\.cpe([12])\.', lambda m: f'.cpe.{int(m.group(1)) - 1}.'),
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
        out.update({'norms.weight': torch.ones(dim), 'norms.bias': torch.zeros(dim),
                    'head.weight': torch.randn(1000, dim), 'head.bias': torch.zeros(1000)})
    return out


def timm_state_dict(backbone):
    """The same weights under timm's keys (``stem.*``, ``head.norm``, ``head.fc``)."""
    out = {re.sub(r'^stages\.0\.downsample\.', 'stem.', k): v.clone()
           for k, v in backbone.state_dict().items() if not re.match(r'stages\.\d\.norm\.', k)}
    dim = backbone.stage_channels[-1]
    out.update({'head.norm.weight': torch.ones(dim), 'head.norm.bias': torch.zeros(dim),
                'head.fc.weight': torch.randn(1000, dim), 'head.fc.bias': torch.zeros(1000)})
    return out


def test_official_key_layout_loads_through_the_converter(tmp_path):
    official = official_state_dict(DaViT('tiny'))
    assert 'patch_embeds.0.proj.weight' in official and 'patch_embeds.3.norm.bias' in official
    assert 'main_blocks.2.1.0.cpe.1.proj.weight' in official and 'norm3.weight' in official
    assert 'main_blocks.2.2.1.attn.qkv.bias' in official and 'main_blocks.0.0.1.mlp.fc2.weight' in official
    check_official_layout_loads(lambda **kw: DaViT('tiny', **kw), official_state_dict, tmp_path)


def test_official_imagenet_checkpoint_reports_head_and_output_norms(tmp_path):
    path = tmp_path / 'davit_tiny.pth'
    torch.save(dict(state_dict=official_state_dict(DaViT('tiny'), detection=False)), path)
    report = load_pretrained(DaViT('tiny'), str(path), convert=get_converter('davit'))
    assert sorted(report['unexpected']) == ['head.bias', 'head.weight', 'norms.bias',
                                           'norms.weight']
    assert sorted(report['missing']) == sorted(f'stages.{i}.norm.{p}' for i in range(4)
                                               for p in ('weight', 'bias'))


def test_timm_checkpoint_loads_and_reports_its_classifier(tmp_path):
    source = DaViT('tiny').eval()
    state = timm_state_dict(source)
    assert 'stem.conv.weight' in state and 'stages.1.downsample.conv.weight' in state
    path = tmp_path / 'davit_tiny.msft_in1k.pth'
    torch.save(state, path)
    target = DaViT('tiny')
    report = load_pretrained(target, str(path), convert=get_converter('davit'))
    assert sorted(report['unexpected']) == ['head.fc.bias', 'head.fc.weight', 'head.norm.bias',
                                           'head.norm.weight']
    assert all(re.match(r'stages\.\d\.norm\.', k) for k in report['missing'])
    target.load_state_dict({k: v for k, v in source.state_dict().items() if '.norm.' in k},
                           strict=False)
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        for a, b in zip(source(x), target.eval()(x)):
            assert torch.equal(a, b)


@needs_timm
@pytest.mark.parametrize('size', [(224, 224), (97, 131)])
def test_equals_timm_with_the_same_weights(size):
    """timm's davit_tiny and ours with timm's weights through the converter: every stage within
    1e-4 (measured <= 4.1e-6). LayerNorm affines are random; the position encodings are scaled
    down so that activations keep the magnitude of a trained model (at timm's init they grow to
    hundreds, where 1e-4 is below float32 resolution)."""
    torch.manual_seed(0)
    ref = timm.create_model('davit_tiny').eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if '.cpe' in name:
                p.mul_(0.1)
            elif re.search(r'norm\d?\.(weight|bias)$', name):
                p.copy_(torch.rand(p.shape, generator=g) + (.5 if name.endswith('weight') else -.5))
    ours = DaViT('tiny', out_norm=False).eval()
    report = ours.load_state_dict(get_converter('davit')(ref.state_dict()), strict=False)
    assert report.missing_keys == []
    assert sorted(report.unexpected_keys) == ['head.fc.bias', 'head.fc.weight', 'head.norm.bias',
                                              'head.norm.weight']
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        expected = ref.forward_intermediates(x, intermediates_only=True)
        for a, b in zip(ours(x), expected):
            assert a.shape == b.shape
            assert (a - b).abs().max() <= 1e-4


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match='one entry per stage'):
        DaViT(dict(embed_dims=[96, 192], depths=[1, 1, 1], num_heads=[3, 6]))
    with pytest.raises(ValueError, match='divisible'):
        DaViT(dict(embed_dims=[96, 192, 384, 768], depths=[1, 1, 1, 1], num_heads=[5, 6, 12, 24]))
