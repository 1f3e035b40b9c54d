"""VAN: presets, the backbone contract, and loading the official release's key layout."""
import re

import torch

from plugins.backbones.van import VAN
from plugins.utils.checkpoint import load_pretrained
from plugins.utils.converters import get_converter


def num_params(module):
    return sum(p.numel() for p in module.parameters())


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


