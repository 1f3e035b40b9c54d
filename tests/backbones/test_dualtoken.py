"""DualToken-ViT (built from the paper; no public code): presets against the paper's FLOPs, the
backbone contract, the position-aware global tokens."""
import pytest
import torch
from mmengine.analysis import get_model_complexity_info

from plugins.backbones.dualtoken import TOKEN_GRID, DualTokenViT
from plugins.backbones.reference import reference_numbers



@pytest.mark.parametrize('arch,params_m', [('t', 6.73), ('s', 11.89)])
def test_flops_are_within_ten_percent_of_the_paper(arch, params_m):
    backbone = DualTokenViT(arch).eval()
    ref = reference_numbers('DualTokenViT', arch)
    flops = get_model_complexity_info(backbone, inputs=(torch.rand(1, 3, 224, 224), ),
                                      show_table=False, show_arch=False)['flops'] / 1e9
    assert abs(flops - ref['flops_g']) / ref['flops_g'] < 0.1, flops
    # the documented count (docs/dualtoken.md, reference.yaml): changes to it are deliberate
    assert abs(sum(p.numel() for p in backbone.parameters()) / 1e6 - params_m) < 0.01


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
    with pytest.raises(ValueError, match='one value per stage'):
        DualTokenViT(dict(base, depths=[2, 6]))
    with pytest.raises(ValueError, match='divisible by num_heads'):
        DualTokenViT(dict(base, num_heads=[3, 4, 8]))
