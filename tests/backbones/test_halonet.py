"""HaloNet: presets, the backbone contract, timm's key layout, and parity with timm."""
import re

import pytest
import torch

from benchmarks.peers import import_timm
from plugins.backbones.halonet import HaloNet
from plugins.utils.checkpoint import load_pretrained
from plugins.utils.converters import get_converter

from .contract import check_official_layout_loads

timm = import_timm()
needs_timm = pytest.mark.skipif(timm is None, reason='timm is not installed')


def test_residual_branches_start_at_zero():
    """timm's zero_init_last: from scratch, each block starts as its shortcut."""
    backbone = HaloNet('halonet26t')
    backbone.init_weights()
    last = [m.conv3_1x1.bn.weight for s in backbone.stages for m in s.blocks]
    assert last and all(torch.count_nonzero(w) == 0 for w in last)


def timm_state_dict(backbone, head=True):
    """The same weights under timm's keys (``stem.*``, ``stages.i.j.*``, ``head.fc``)."""
    inverse = [(r'^stages\.0\.stem\.', lambda m: 'stem.'),
               (r'^stages\.(\d)\.blocks\.(\d+)\.', lambda m: f'stages.{m.group(1)}.{m.group(2)}.')]
    out = {}
    for key, value in backbone.state_dict().items():
        for pattern, repl in inverse:
            key = re.sub(pattern, repl, key)
        out[key] = value.clone()
    if head:
        out.update({'head.fc.weight': torch.randn(1000, 2048), 'head.fc.bias': torch.zeros(1000)})
    return out


def test_timm_key_layout_loads_through_the_converter(tmp_path):
    official = timm_state_dict(HaloNet('halonet26t'))
    assert 'stem.conv3.bn.running_var' in official
    assert 'stages.3.0.self_attn.pos_embed.height_rel' in official
    assert 'stages.2.1.post_attn.weight' in official and 'stages.1.0.shortcut.conv.weight' in official
    check_official_layout_loads(lambda **kw: HaloNet('halonet26t', **kw),
                                lambda m: timm_state_dict(m, head=False), tmp_path)


def test_imagenet_checkpoint_reports_only_the_classifier(tmp_path):
    path = tmp_path / 'halonet26t_a1h_256.pth'
    torch.save(timm_state_dict(HaloNet('halonet26t')), path)
    report = load_pretrained(HaloNet('halonet26t'), str(path), convert=get_converter('halonet'))
    assert sorted(report['unexpected']) == ['head.fc.bias', 'head.fc.weight']
    assert report['missing'] == []


def _randomize_batchnorm(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            for t, lo, hi in ((m.running_mean, -.5, .5), (m.running_var, .5, 2.),
                              (m.weight.data, .5, 1.5), (m.bias.data, -.2, .2)):
                t.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)


@needs_timm
@pytest.mark.parametrize('arch', ['halonet26t', 'halonet50ts'])
def test_equals_timm_with_the_same_weights(arch):
    """timm's model (its size constraint: 256x256) and ours with timm's weights: every stage
    output within 1e-4 (measured: bit-identical)."""
    torch.manual_seed(0)
    ref = timm.create_model(arch).eval()
    _randomize_batchnorm(ref)
    ours = HaloNet(arch).eval()
    report = ours.load_state_dict(get_converter('halonet')(ref.state_dict()), strict=False)
    assert report.missing_keys == [] and report.unexpected_keys == ['head.fc.weight',
                                                                    'head.fc.bias']
    assert sum(p.numel() for p in ref.parameters()) == \
        sum(p.numel() for p in ours.parameters()) + 2048 * 1000 + 1000
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        expected = ref.forward_intermediates(x, indices=[1, 2, 3, 4], intermediates_only=True)
        outs = ours(x)
    for out, exp in zip(outs, expected):
        assert out.shape == exp.shape
        assert (out - exp).abs().max() <= 1e-4


def test_bad_arguments_are_clear_errors():
    base = HaloNet.arch_zoo['halonet26t']
    with pytest.raises(ValueError, match='"b" \\(bottleneck\\) and "a"'):
        HaloNet(dict(base, layouts=['bb', 'bx', 'ba', 'aa']))
    with pytest.raises(ValueError, match='one layout'):
        HaloNet(dict(base, layouts=['bb', 'bb', 'ba']))
