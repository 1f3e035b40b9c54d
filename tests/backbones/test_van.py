"""VAN: presets, the backbone contract, and loading the official release's key layout."""
import math
import re

import pytest
import torch

from plugins.backbones.van import VAN
from plugins.utils.checkpoint import load_pretrained
from plugins.utils.converters import get_converter
from plugins.backbones.reference import count_params_like_the_source, reference_numbers


def num_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize('arch', ['b0', 'b1', 'b2', 'b3'])
def test_parameter_count_matches_the_official_release(arch):
    ref = reference_numbers('VAN', arch)
    count = count_params_like_the_source(VAN(arch), 'VAN', arch)
    assert abs(count - ref['params_m']) / ref['params_m'] < 0.01


@pytest.mark.parametrize('size', [(97, 131), (64, 64), (33, 250)])
def test_any_input_size_gives_ceil_of_stride(size):
    backbone = VAN('b0').eval()
    outs = backbone(torch.randn(1, 3, *size))
    assert [o.shape[1] for o in outs] == backbone.out_channels == [32, 64, 160, 256]
    assert backbone.strides == [4, 8, 16, 32]
    for out, stride in zip(outs, backbone.strides):
        assert out.shape[2:] == (math.ceil(size[0] / stride), math.ceil(size[1] / stride))


def test_out_indices_select_stages():
    backbone = VAN('b0', out_indices=(1, 3))
    outs = backbone(torch.randn(1, 3, 64, 64))
    assert len(outs) == 2 and backbone.out_channels == [64, 256] and backbone.strides == [8, 32]


def test_gradients_reach_every_parameter():
    backbone = VAN('b0', drop_path_rate=0.1)
    sum(o.mean() for o in backbone(torch.randn(2, 3, 65, 47))).backward()
    assert all(p.grad is not None for p in backbone.parameters())


def test_frozen_stages_have_no_gradient_and_stay_in_eval():
    backbone = VAN('b0', frozen_stages=2)
    backbone.train()
    for i, stage in enumerate(backbone.stages):
        frozen = i < 2
        assert all(p.requires_grad != frozen for p in stage.parameters())
        assert all(m.training != frozen for m in stage.modules())


def test_norm_eval_keeps_batchnorm_statistics():
    backbone = VAN('b0', norm_eval=True).train()
    bn = backbone.stages[0].blocks[0].norm1
    before = bn.running_mean.clone()
    backbone(torch.randn(2, 3, 64, 64) * 5 + 3)
    assert not bn.training and torch.equal(bn.running_mean, before)


def test_with_cp_gives_the_same_output_and_gradients():
    torch.manual_seed(0)
    plain = VAN('b0')
    ckpt = VAN('b0', with_cp=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    for model in (plain, ckpt):
        model.train()
        sum(o.sum() for o in model(x)).backward()
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5, msg=name)


def official_state_dict(backbone):
    """The state dict of the same weights under the official VAN-Classification key names."""
    inverse = [
        (r'^stages\.(\d)\.patch_embed\.', lambda m: f'patch_embed{int(m.group(1)) + 1}.'),
        (r'^stages\.(\d)\.blocks\.(\d+)\.', lambda m: f'block{int(m.group(1)) + 1}.{m.group(2)}.'),
        (r'^stages\.(\d)\.norm\.', lambda m: f'norm{int(m.group(1)) + 1}.'),
        (r'\.lka\.dw_conv\.', lambda m: '.spatial_gating_unit.conv0.'),
        (r'\.lka\.dw_dilated_conv\.', lambda m: '.spatial_gating_unit.conv_spatial.'),
        (r'\.lka\.pw_conv\.', lambda m: '.spatial_gating_unit.conv1.'),
        (r'\.mlp\.dwconv\.', lambda m: '.mlp.dwconv.dwconv.'),
    ]
    out = {}
    for key, value in backbone.state_dict().items():
        for pattern, repl in inverse:
            key = re.sub(pattern, repl, key)
        out[key] = value.clone()
    out['head.weight'] = torch.randn(1000, 256)
    out['head.bias'] = torch.randn(1000)
    return out


def test_official_key_layout_loads_through_the_converter(tmp_path):
    source = VAN('b0').eval()
    official = official_state_dict(source)
    assert 'block1.0.attn.spatial_gating_unit.conv_spatial.weight' in official
    assert 'block1.0.mlp.dwconv.dwconv.weight' in official and 'norm4.weight' in official
    path = tmp_path / 'van_tiny_754.pth.tar'
    torch.save(dict(state_dict=official, epoch=310), path)
    target = VAN('b0', init_cfg=dict(type='Pretrained', checkpoint=str(path))).eval()
    target.init_weights()
    x = torch.randn(1, 3, 64, 80)
    for a, b in zip(source(x), target(x)):
        assert torch.equal(a, b)


def test_load_report_names_missing_and_unused_keys(tmp_path):
    official = official_state_dict(VAN('b0'))
    del official['norm4.weight']
    path = tmp_path / 'partial.pth'
    torch.save(official, path)
    report = load_pretrained(VAN('b0'), str(path), convert=get_converter('van'))
    assert report['missing'] == ['stages.3.norm.weight']
    assert sorted(report['unexpected']) == ['head.bias', 'head.weight']


def test_converter_is_idempotent_on_toolkit_keys():
    state = VAN('b0').state_dict()
    assert list(get_converter('van')(state)) == list(state)


def test_bad_input_is_a_clear_error():
    backbone = VAN('b0')
    with pytest.raises(ValueError, match='3 input channels but got 1'):
        backbone(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match='smaller than its coarsest output stride 32'):
        backbone(torch.randn(1, 3, 16, 64))
    with pytest.raises(KeyError, match='no preset'):
        VAN('b9')
    with pytest.raises(ValueError, match='out_indices'):
        VAN('b0', out_indices=(4, ))
