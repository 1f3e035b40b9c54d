"""MambaYOLOPAFPN: the official PAFPN's wiring and widths, any map sizes, clear errors."""
import pytest
import torch
import torch.nn.functional as F

from plugins.backbones.mamba_yolo import MambaYOLO
from plugins.necks.mamba_yolo_pafpn import MambaYOLOPAFPN, upsample_to

WIDTHS = [64, 128, 256]


def test_outputs_have_the_levels_sizes_and_widths_for_odd_inputs():
    backbone = MambaYOLO('t', out_indices=(1, 2, 3)).eval()
    neck = MambaYOLOPAFPN(WIDTHS, WIDTHS).eval()
    with torch.no_grad():
        feats = backbone(torch.randn(1, 3, 97, 131))
        outs = neck(feats)
    assert [tuple(o.shape) for o in outs] == [tuple(f.shape) for f in feats]


def test_upsampling_is_nearest_x2_cropped_to_the_lateral_map():
    x = torch.randn(1, 2, 4, 5)
    even = torch.empty(1, 2, 8, 10)
    assert torch.equal(upsample_to(x, even), F.interpolate(x, scale_factor=2, mode='nearest'))
    assert torch.equal(upsample_to(x, torch.empty(1, 2, 7, 9)),
                       F.interpolate(x, scale_factor=2, mode='nearest')[..., :7, :9])


def test_l_blocks_chain_two_ss2d():
    neck = MambaYOLOPAFPN([192, 384, 576], [192, 384, 576], num_ss2d=2)
    assert all(len(b.ss2d) == 2 for b in [*neck.top_down_blocks, *neck.bottom_up_blocks])
    assert neck.top_down_blocks[0].in_proj[0].in_channels == 576 + 384


def test_wrong_channels_or_levels_are_clear_errors():
    with pytest.raises(ValueError, match='three levels'):
        MambaYOLOPAFPN([32, 64, 128, 256], WIDTHS)
    neck = MambaYOLOPAFPN(WIDTHS, WIDTHS)
    maps = [torch.randn(1, c, s, s) for c, s in zip([64, 128, 128], (8, 4, 2))]
    with pytest.raises(ValueError, match='P5 has 128 channels'):
        neck(maps)
