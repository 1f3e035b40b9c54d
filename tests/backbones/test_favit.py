"""FaViT: presets, the backbone contract, and loading the official release's key layout."""
import re

import pytest
import torch

from plugins.backbones.favit import FaViT
from plugins.backbones.reference import count_params_like_the_source, reference_numbers
from plugins.utils.checkpoint import load_pretrained
from plugins.utils.converters import get_converter

from .contract import check_official_layout_loads


def _meta(arch):
    with torch.device('meta'):
        return FaViT(arch)


@pytest.mark.parametrize('arch', ['b0', 'b1'])
def test_parameter_count_matches_the_paper_table(arch):
    """B0 / B1 are within 1% of the paper's rounded table (B2 / B3 are not: reference.yaml)."""
    ref = reference_numbers('FaViT', arch)
    count = count_params_like_the_source(_meta(arch), 'FaViT', arch)
    assert abs(count - ref['paper_params_m']) / ref['paper_params_m'] < 0.01


def official_state_dict(backbone, head=False):
    """The same weights under the official keys (``patch_embed{i}``, ``block{i}.{j}``,
    ``norm{i}``, ``mlp.dwconv.dwconv``; ``head`` for the ImageNet model)."""
    inverse = [
        (r'^stages\.(\d)\.patch_embed\.', lambda m: f'patch_embed{int(m.group(1)) + 1}.'),
        (r'^stages\.(\d)\.blocks\.(\d+)\.', lambda m: f'block{int(m.group(1)) + 1}.{m.group(2)}.'),
        (r'^stages\.(\d)\.norm\.', lambda m: f'norm{int(m.group(1)) + 1}.'),
        (r'\.mlp\.dwconv\.', lambda m: '.mlp.dwconv.dwconv.'),
    ]
    out = {}
    for key, value in backbone.state_dict().items():
        for pattern, repl in inverse:
            key = re.sub(pattern, repl, key)
        out[key] = value.clone()
    if head:
        dim = backbone.stage_channels[-1]
        out.update({'head.weight': torch.randn(1000, dim), 'head.bias': torch.zeros(1000)})
    return out


def test_official_key_layout_loads_through_the_converter(tmp_path):
    official = official_state_dict(FaViT('b0'))
    assert 'patch_embed1.proj.weight' in official and 'norm4.bias' in official
    assert 'block3.5.attn.single_heads.1.weight' in official
    assert 'block1.0.mlp.dwconv.dwconv.weight' in official and 'block4.1.attn.kv_g.bias' in official
    check_official_layout_loads(lambda **kw: FaViT('b0', **kw), official_state_dict, tmp_path)


def test_imagenet_checkpoint_reports_only_the_classifier(tmp_path):
    path = tmp_path / 'favit_b0.pth'
    torch.save(dict(model=official_state_dict(FaViT('b0'), head=True)), path)
    report = load_pretrained(FaViT('b0'), str(path), convert=get_converter('favit'))
    assert sorted(report['unexpected']) == ['head.bias', 'head.weight']
    assert report['missing'] == []


def test_bad_arguments_are_clear_errors():
    base = FaViT.arch_zoo['b0']
    with pytest.raises(ValueError, match='one value per stage'):
        FaViT(dict(base, depths=[2, 2, 6]))
    with pytest.raises(ValueError, match='sum\\(mul\\)'):
        FaViT(dict(base, embed_dims=[40, 64, 128, 256]))
