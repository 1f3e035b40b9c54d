"""NAT and DiNAT: presets, the backbone contract (any size, dilation clamped on small maps), the
official key layout, the configs' dilations, and a demo training step.

Parity with the official code (detection/nat.py with NATTEN's pre-0.20 semantics, the same
weights through the converter; 224x288 NAT, 224 DiNAT classification, 448x480 segmentation and
800x832 detection dilations): max abs diff <= 6e-6 on every output stage of every preset.
"""
import re

import pytest
import torch
from mmengine.config import Config
from torch.nn.modules.batchnorm import _BatchNorm

from plugins.backbones.nat import NAT, DiNAT, dinat_dilations
from plugins.utils.checkpoint import load_pretrained
from plugins.utils.converters import get_converter

from .contract import (ROOT, check_official_layout_loads, check_output_shapes)


def test_detection_size_with_the_detection_dilations():
    check_output_shapes(DiNAT('mini', dilations='detection'), (800, 1216))


def test_small_map_clamp_clamps_the_dilation():
    """At 64x64 the stride-4 map is 16x16: the detection dilation 28 (7 x 28 = 196 > 16) runs as
    16 // 7 = 2; the smaller maps run undilated."""
    torch.manual_seed(0)
    detection = DiNAT('mini', dilations='detection', small_map='clamp').eval()
    clamped = DiNAT('mini', dilations=[[1, 2, 1], [1] * 4, [1] * 6, [1] * 5],
                    small_map='clamp').eval()
    clamped.load_state_dict(detection.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(detection(x), clamped(x)):
            torch.testing.assert_close(a, b)


def test_small_maps_are_padded_as_the_official_releases_by_default():
    """The NATTEN of the releases pads maps shorter than kernel x dilation: at 64x64 with the
    detection dilations the features differ from the clamped ones (stage 1: 16 < 7 x 28)."""
    torch.manual_seed(0)
    padded = DiNAT('mini', dilations='detection').eval()
    clamped = DiNAT('mini', dilations='detection', small_map='clamp').eval()
    clamped.load_state_dict(padded.state_dict())
    assert all(b.attn.small_map == 'pad' for s in padded.stages for b in s.blocks)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (padded(x)[0] - clamped(x)[0]).abs().max() > 1e-3


def test_norm_eval_leaves_the_layernorms_training():
    """norm_eval acts on BatchNorm only; NAT normalises with LayerNorm (no running statistics), so
    norm_eval=True changes nothing: every module still trains and the outputs are the same."""
    torch.manual_seed(0)
    plain, norm_eval = NAT('mini'), NAT('mini', norm_eval=True)
    norm_eval.load_state_dict(plain.state_dict())
    plain.train(), norm_eval.train()
    assert not any(isinstance(m, _BatchNorm) for m in norm_eval.modules())
    assert all(m.training for m in norm_eval.modules())
    x = torch.randn(1, 3, 64, 64)
    for a, b in zip(plain(x), norm_eval(x)):
        torch.testing.assert_close(a, b)


def official_state_dict(backbone, detection=True):
    """The same weights under the official key names: the detection / segmentation backbone
    (``norm{i}`` output norms) or, with ``detection=False``, the ImageNet model (``norm``, ``head``)."""
    inverse = [
        (r'^stages\.0\.downsample\.', lambda m: 'patch_embed.'),
        (r'^stages\.(\d)\.downsample\.', lambda m: f'levels.{int(m.group(1)) - 1}.downsample.'),
        (r'^stages\.(\d)\.blocks\.', lambda m: f'levels.{m.group(1)}.blocks.'),
        (r'^stages\.(\d)\.norm\.', lambda m: f'norm{m.group(1)}.'),
    ]
    out = {}
    for key, value in backbone.state_dict().items():
        for pattern, repl in inverse:
            key = re.sub(pattern, repl, key)
        if detection or not re.match(r'norm\d\.', key):
            out[key] = value.clone()
    if not detection:
        dim = backbone.stage_channels[-1]
        out.update({'norm.weight': torch.ones(dim), 'norm.bias': torch.zeros(dim),
                    'head.weight': torch.randn(1000, dim), 'head.bias': torch.zeros(1000)})
    return out


def test_official_key_layout_loads_through_the_converter(tmp_path):
    def make(**kw):
        model = DiNAT('mini', **kw)
        with torch.no_grad():  # distinct relative position biases, so a transposed one shows
            for m in model.modules():
                if getattr(m, 'rpb', None) is not None:
                    m.rpb.normal_(std=1.)
        return model
    torch.manual_seed(0)
    official = official_state_dict(make())
    assert official['levels.2.blocks.5.attn.rpb'].shape == (8, 13, 13)
    for key in ('patch_embed.proj.1.weight', 'patch_embed.norm.bias',
                'levels.0.downsample.reduction.weight', 'levels.3.blocks.4.mlp.fc2.weight',
                'levels.1.blocks.0.attn.qkv.weight', 'norm3.weight'):
        assert key in official, key
    check_official_layout_loads(make, official_state_dict, tmp_path)


def test_imagenet_checkpoint_reports_head_and_output_norms(tmp_path):
    official = official_state_dict(NAT('mini'), detection=False)
    path = tmp_path / 'nat_mini.pth'
    torch.save(official, path)  # the release stores the bare state dict
    report = load_pretrained(NAT('mini'), str(path), convert=get_converter('nat'))
    assert sorted(report['unexpected']) == ['head.bias', 'head.weight', 'norm.bias',
                                           'norm.weight']
    assert sorted(report['missing']) == sorted(f'stages.{i}.norm.{p}' for i in range(4)
                                               for p in ('weight', 'bias'))


# The per-layer dilations of the official DiNAT-Tiny configs, as they are written there
# (detection/configs/dinat/mask_rcnn_dinat_tiny_3x_coco.py,
# segmentation/configs/dinat/upernet_dinat_tiny_512x512_160k_ade20k.py).
OFFICIAL_TINY_DILATIONS = {
    'detection': [[1, 28, 1], [1, 7, 1, 14], [1, 3, 1, 5, 1, 7] * 3, [1, 3, 1, 3, 1]],
    'segmentation': [[1, 16, 1], [1, 4, 1, 8], [1, 2, 1, 3, 1, 4] * 3, [1, 2, 1, 2, 1]],
}


@pytest.mark.parametrize('config,setting', [
    ('configs/_base_/models/mask-rcnn_dinat-t_fpn.py', 'detection'),
    ('configs/_base_/models/retinanet_dinat-t_fpn.py', 'detection'),
    ('configs/_base_/models/upernet_dinat-t.py', 'segmentation'),
])
def test_configs_use_the_official_dilations(config, setting):
    backbone = Config.fromfile(f'{ROOT}/{config}').model.backbone
    depths = NAT.arch_zoo[backbone.arch]['depths']
    assert dinat_dilations(backbone.dilations, depths) == OFFICIAL_TINY_DILATIONS[setting]


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match='one value per layer'):
        DiNAT('mini', dilations=[[1, 2], [1], [1], [1]])
    with pytest.raises(ValueError, match='not one of'):
        DiNAT('mini', dilations='imagenet')


@pytest.mark.parametrize('arch,gammas', [('mini', 0), ('tiny', 0), ('small', 0), ('base', 60)])
def test_dinat_layer_scales_are_those_of_the_official_presets(arch, gammas):
    """The official dinat_small has no layer scale (NAT-Small and DiNAT-Base do): a release
    holds no ``gamma`` for it, and 1e-5 layer scales would nearly skip every block."""
    with torch.device('meta'):
        names = [n for n, _ in DiNAT(arch).named_parameters() if 'gamma' in n]
    assert len(names) == gammas
