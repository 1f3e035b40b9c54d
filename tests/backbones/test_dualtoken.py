"""DualToken-ViT (built from the paper; no public code): presets against the paper's FLOPs, the
backbone contract, the position-aware global tokens."""
import pytest
import torch
from mmengine.analysis import get_model_complexity_info

from plugins.backbones.dualtoken import TOKEN_GRID, DualTokenViT
from plugins.backbones.reference import reference_numbers

from .contract import (check_frozen_stages, check_gradients_reach_every_parameter,
                       check_norm_eval, check_output_shapes, check_with_cp, run_demo_train_step)


@pytest.mark.parametrize('arch,params_m', [('t', 6.73), ('s', 11.89)])
def test_flops_are_within_ten_percent_of_the_paper(arch, params_m):
    backbone = DualTokenViT(arch).eval()
    ref = reference_numbers('DualTokenViT', arch)
    flops = get_model_complexity_info(backbone, inputs=(torch.rand(1, 3, 224, 224), ),
                                      show_table=False, show_arch=False)['flops'] / 1e9
    assert abs(flops - ref['flops_g']) / ref['flops_g'] < 0.1, flops
    # the documented count (docs/dualtoken.md, reference.yaml): changes to it are deliberate
    assert abs(sum(p.numel() for p in backbone.parameters()) / 1e6 - params_m) < 0.01


@pytest.mark.parametrize('size', [(97, 131), (64, 64), (33, 250), (32, 32)])
def test_any_input_size_gives_ceil_of_stride(size):
    backbone = DualTokenViT('t')
    check_output_shapes(backbone, size, channels=[48, 96, 192])
    assert backbone.strides == [8, 16, 32]


def test_detection_size():
    check_output_shapes(DualTokenViT('t', out_indices=(0, 2)), (800, 1216))


def test_gradients_reach_every_parameter():
    check_gradients_reach_every_parameter(DualTokenViT('t', drop_path_rate=0.1))


def test_frozen_stages_have_no_gradient_and_stay_in_eval():
    backbone = DualTokenViT('t', frozen_stages=1)
    check_frozen_stages(backbone, 1)
    assert not backbone.stages[0].global_tokens.requires_grad


def test_norm_eval_keeps_batchnorm_statistics():
    check_norm_eval(DualTokenViT('t', norm_eval=True))


def test_with_cp_gives_the_same_output_and_gradients():
    check_with_cp(lambda **kw: DualTokenViT('t', **kw))


def test_global_tokens_are_interpolated_to_the_stride_32_grid():
    backbone = DualTokenViT('t')
    assert backbone.global_tokens((TOKEN_GRID, TOKEN_GRID)) is backbone.stages[0].global_tokens
    assert backbone.global_tokens((25, 38)).shape == (1, 25, 38, 48)


def test_global_tokens_give_every_location_a_global_receptive_field():
    """The stride-8 output at the bottom-right corner depends on the top-left input pixels (far
    beyond the reach of the stem and the two 7x7 conv encoders of stage 1) through the global
    aggregation and broadcast."""
    torch.manual_seed(0)
    backbone = DualTokenViT('t', out_indices=(0, )).eval()
    backbone.init_weights()
    x = torch.randn(1, 3, 224, 224)
    y = x.clone()
    y[..., :16, :16] += 3
    with torch.no_grad():
        a, b = backbone(x)[0], backbone(y)[0]
    assert (a[..., -1, -1] - b[..., -1, -1]).abs().max() > 1e-4
    backbone.stages[0].blocks[0].ptm.broadcast.proj.weight.data.zero_()
    backbone.stages[0].blocks[1].ptm.broadcast.proj.weight.data.zero_()
    with torch.no_grad():
        a, b = backbone(x)[0], backbone(y)[0]
    torch.testing.assert_close(a[..., -1, -1], b[..., -1, -1])  # without the broadcast: local


def test_bad_arguments_are_clear_errors():
    base = DualTokenViT.arch_zoo['s']
    with pytest.raises(KeyError, match='no preset'):
        DualTokenViT('b')
    with pytest.raises(ValueError, match='one value per stage'):
        DualTokenViT(dict(base, depths=[2, 6]))
    with pytest.raises(ValueError, match='divisible by num_heads'):
        DualTokenViT(dict(base, num_heads=[3, 4, 8]))
    with pytest.raises(ValueError, match='smaller than its coarsest output stride 32'):
        DualTokenViT('t')(torch.randn(1, 3, 16, 64))


@pytest.mark.slow
@pytest.mark.parametrize('config,task', [
    ('configs/dualtoken/mask-rcnn_dualtoken-s_fpn_demo-coco.py', 'det'),
    ('configs/dualtoken/retinanet_dualtoken-s_fpn_demo-coco.py', 'det'),
    ('configs/dualtoken/upernet_dualtoken-s_demo-ade20k.py', 'seg'),
])
def test_demo_config_trains_one_step(config, task, demo_data, tmp_path):
    run_demo_train_step(config, demo_data, tmp_path, task)
