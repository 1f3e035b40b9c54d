"""Mamba-YOLO: the official checkpoint layout (Ultralytics ``model.N.`` keys) through the
converters, and the architecture's own mechanisms (Vision Clue Merge on odd sizes, the
ODSSBlock's SS2D).

The official state dict is written here from the official modules' parameter names and shapes
(``ultralytics/nn/modules/mamba_yolo.py``: VSSBlock, XSSBlock, SS2D, LSBlock, RGBlock, SimpleStem,
VisionClueMerge; Ultralytics' Conv, SPPF, Detect, DFL), not renamed from the toolkit's modules; the
key counts are those of the official models as built (T: 528, L: 806 tensors).
"""
import math

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope

from plugins.backbones.mamba_yolo import MambaYOLO, VisionClueMerge
from plugins.utils.checkpoint import load_pretrained
from plugins.utils.converters import get_converter

from .contract import ROOT

# preset -> (widths of layers 0-8, ODSSBlocks per stage, SS2D per XSSBlock)
OFFICIAL = {'t': ([32, 64, 128, 256], [1, 1, 3, 1], 1),
            'l': ([96, 192, 384, 576], [2, 2, 6, 2], 2)}


def bn(prefix, c):
    return {f'{prefix}.weight': (c, ), f'{prefix}.bias': (c, ), f'{prefix}.running_mean': (c, ),
            f'{prefix}.running_var': (c, ), f'{prefix}.num_batches_tracked': ()}


def conv(prefix, cin, cout, k, bias=True, groups=1):
    out = {f'{prefix}.weight': (cout, cin // groups, k, k)}
    if bias:
        out[f'{prefix}.bias'] = (cout, )
    return out


def yolo_conv(prefix, cin, cout, k):     # Ultralytics Conv: conv (no bias) + bn
    return {**conv(f'{prefix}.conv', cin, cout, k, bias=False), **bn(f'{prefix}.bn', cout)}


def ss2d(prefix, d):                      # SS2D(d_model=d, d_state=16, ssm_ratio=2)
    inner, rank = 2 * d, math.ceil(d / 16)
    return {**conv(f'{prefix}.in_proj', d, 2 * inner, 1, bias=False),
            **conv(f'{prefix}.conv2d', inner, inner, 3, groups=inner),
            f'{prefix}.x_proj_weight': (4, rank + 32, inner),
            f'{prefix}.dt_projs_weight': (4, inner, rank), f'{prefix}.dt_projs_bias': (4, inner),
            f'{prefix}.A_logs': (4 * inner, 16), f'{prefix}.Ds': (4 * inner, ),
            f'{prefix}.out_norm.weight': (inner, ), f'{prefix}.out_norm.bias': (inner, ),
            **conv(f'{prefix}.out_proj', inner, d, 1, bias=False)}


def ls_rg_norms(prefix, d):               # LSBlock, LayerNorm2d x 2, RGBlock(mlp_ratio 4)
    hidden = int(2 * 4 * d / 3)
    return {**conv(f'{prefix}.lsblock.fc1', d, d, 3, groups=d), **bn(f'{prefix}.lsblock.norm', d),
            **conv(f'{prefix}.lsblock.fc2', d, d, 1), **conv(f'{prefix}.lsblock.fc3', d, d, 1),
            f'{prefix}.norm.norm.weight': (d, ), f'{prefix}.norm.norm.bias': (d, ),
            f'{prefix}.norm2.norm.weight': (d, ), f'{prefix}.norm2.norm.bias': (d, ),
            **conv(f'{prefix}.mlp.fc1', d, 2 * hidden, 1),
            **conv(f'{prefix}.mlp.dwconv', hidden, hidden, 3, groups=hidden),
            **conv(f'{prefix}.mlp.fc2', hidden, d, 1)}


def vss_block(prefix, d):
    return {**conv(f'{prefix}.proj_conv.0', d, d, 1), **bn(f'{prefix}.proj_conv.1', d),
            **ss2d(f'{prefix}.op', d), **ls_rg_norms(prefix, d)}


def xss_block(prefix, cin, d, n):
    out = {**conv(f'{prefix}.in_proj.0', cin, d, 1, bias=False), **bn(f'{prefix}.in_proj.1', d),
           **ls_rg_norms(prefix, d)}
    for j in range(n):
        out.update(ss2d(f'{prefix}.ss2d.{j}', d))
    return out


def official_shapes(preset, num_classes=80):
    """{official key: shape} of the whole Mamba-YOLO detector of ``preset``."""
    (c2, c3, c4, c5), depths, n = OFFICIAL[preset]
    s = {**conv('model.0.conv.0', 3, c2 // 2, 3, bias=False), **bn('model.0.conv.1', c2 // 2),
         **conv('model.0.conv.3', c2 // 2, c2, 3, bias=False), **bn('model.0.conv.4', c2)}
    for layer, width, depth in zip((1, 3, 5, 7), (c2, c3, c4, c5), depths):
        for j in range(depth):
            s.update(vss_block(f'model.{layer}.{j}' if depth > 1 else f'model.{layer}', width))
    for layer, cin, cout in ((2, c2, c3), (4, c3, c4), (6, c4, c5)):
        s.update({**conv(f'model.{layer}.pw_linear.0', 4 * cin, cout, 1),
                  **bn(f'model.{layer}.pw_linear.1', cout)})
    s.update({**yolo_conv('model.8.cv1', c5, c5 // 2, 1),
              **yolo_conv('model.8.cv2', 2 * c5, c5, 1)})
    s.update(xss_block('model.11', c5 + c4, c4, n))
    s.update(xss_block('model.14', c4 + c3, c3, n))
    s.update(yolo_conv('model.15', c3, c3, 3))
    s.update(xss_block('model.17', c3 + c4, c4, n))
    s.update(yolo_conv('model.18', c4, c4, 3))
    s.update(xss_block('model.20', c4 + c5, c5, n))
    box, cls = max(16, c3 // 4, 64), max(c3, min(num_classes, 100))
    for i, c in enumerate((c3, c4, c5)):
        for branch, width, out in (('cv2', box, 64), ('cv3', cls, num_classes)):
            s.update({**yolo_conv(f'model.21.{branch}.{i}.0', c, width, 3),
                      **yolo_conv(f'model.21.{branch}.{i}.1', width, width, 3),
                      **conv(f'model.21.{branch}.{i}.2', width, out, 1)})
    s['model.21.dfl.conv.weight'] = (1, 16, 1, 1)
    return s


def random_tensor(key, shape):
    if key.endswith('num_batches_tracked'):
        return torch.randint(0, 100, shape)
    if key.endswith('running_var'):
        return torch.rand(shape) + 0.5
    if key.endswith('dfl.conv.weight'):
        return torch.arange(16.).view(shape)
    return torch.randn(shape) * 0.1


def official_state_dict(preset):
    torch.manual_seed(0)
    return {k: random_tensor(k, shape) for k, shape in official_shapes(preset).items()}


def build_detector(preset):
    cfg = Config.fromfile(f'{ROOT}/configs/mamba_yolo/mamba-yolo-{preset}_pafpn_8xb64-300e_coco.py')
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(cfg.model)


@pytest.mark.parametrize('preset,num_keys', [('t', 528), ('l', 806)])
def test_official_detector_layout_converts_onto_every_tensor(preset, num_keys):
    official = official_state_dict(preset)
    assert len(official) == num_keys
    converted = get_converter('mamba_yolo_detector')(official)
    with torch.device('meta'):
        own = build_detector(preset).state_dict()
    assert set(converted) == set(own)        # everything but the constant DFL weights
    assert all(converted[k].shape == own[k].shape for k in own)
    last = OFFICIAL[preset][1][2] - 1                          # the last block of stage 3
    assert torch.equal(converted[f'backbone.stages.2.blocks.{last}.op.A_logs'],
                       official[f'model.5.{last}.op.A_logs'])
    assert torch.equal(converted['neck.bottom_up_blocks.1.norm2.weight'],
                       official['model.20.norm2.norm.weight'])
    assert torch.equal(converted['bbox_head.cls_branches.2.2.bias'],
                       official['model.21.cv3.2.2.bias'])
    assert get_converter('mamba_yolo_detector')(converted) == converted   # toolkit keys pass


def test_official_checkpoint_loads_into_the_backbone_and_reports_the_rest(tmp_path):
    official = official_state_dict('t')
    path = tmp_path / 'mamba-yolo-t.pt'
    torch.save(dict(model=official), path)
    backbone = MambaYOLO('t', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    backbone.init_weights()
    state = backbone.state_dict()
    assert torch.equal(state['stages.3.sppf.cv2.bn.running_var'],
                       official['model.8.cv2.bn.running_var'])
    assert torch.equal(state['stages.0.blocks.0.norm.weight'], official['model.1.norm.norm.weight'])
    report = load_pretrained(MambaYOLO('t'), str(path), convert=get_converter('mamba_yolo'))
    assert report['missing'] == [] and report['mismatched'] == []
    assert {k.split('.')[1] for k in report['unexpected']} == {'11', '14', '15', '17', '18', '20',
                                                               '21'}


def test_detector_round_trip_gives_the_same_predictions(tmp_path):
    """Official layout -> converted file -> ``load_from``-style loading: the model computes with
    the official tensors (same logits as loading the converted dict directly)."""
    converted = get_converter('mamba_yolo_detector')(official_state_dict('t'))
    path = tmp_path / 'converted.pth'
    torch.save(dict(state_dict=converted), path)
    a, b = build_detector('t').eval(), build_detector('t').eval()
    a.load_state_dict(converted)
    report = load_pretrained(b, str(path))
    assert (report['missing'], report['unexpected'], report['mismatched']) == ([], [], [])
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        for ya, yb in zip(a._forward(x)[0], b._forward(x)[0]):
            assert torch.equal(ya, yb)


def test_vision_clue_merge_keeps_every_pixel_of_odd_maps():
    merge = VisionClueMerge(1, 4)
    x = torch.arange(1., 16.).view(1, 1, 3, 5)
    captured = {}
    merge.pw_linear.register_forward_pre_hook(lambda m, a: captured.setdefault('x', a[0]))
    merge(x)
    phases = captured['x']
    assert phases.shape == (1, 4, 2, 3)
    assert sorted(phases[phases != 0].tolist()) == list(range(1, 16))   # the rest: padding
    assert phases[0, 1, 0, 0] == x[0, 0, 1, 0] and phases[0, 2, 0, 0] == x[0, 0, 0, 1]


def test_blocks_use_the_official_simple_ssm_initialisation():
    op = MambaYOLO('t').stages[0].blocks[0].op
    assert torch.equal(op.A_logs, torch.zeros_like(op.A_logs))
    assert torch.equal(op.Ds, torch.ones_like(op.Ds))
    assert op.d_state == 16 and op.d_inner == 2 * op.dim and isinstance(op.act, torch.nn.GELU)


def test_bad_arch_is_a_clear_error():
    with pytest.raises(ValueError, match='four stages'):
        MambaYOLO(dict(widths=[32, 64, 128], depths=[1, 1, 1]))
