"""FLOPs as the papers count them (plugins/utils/flops.py)."""
import torch
import torch.nn as nn

from plugins.backbones.nat import NAT
from plugins.backbones.reference import reference_numbers
from plugins.mixers.neighborhood import NeighborhoodAttention2d
from plugins.utils.flops import count_flops


def test_neighborhood_attention_counts_k_by_k_keys_per_query():
    x = torch.rand(1, 32, 20, 5)  # W shorter than the kernel
    clamped = NeighborhoodAttention2d(32, 2, kernel_size=7, small_map='clamp').eval()
    linears = 20 * 5 * (32 * 96 + 32 * 32)  # qkv and proj
    assert count_flops(clamped, (x, )) == linears + 2 * 20 * 5 * (7 * 5) * 32  # 5 keys that way
    padded = NeighborhoodAttention2d(32, 2, kernel_size=7).eval()  # qkv on the padded 20 x 7
    linears = 20 * 7 * 32 * 96 + 20 * 5 * 32 * 32
    assert count_flops(padded, (x, )) == linears + 2 * 20 * 5 * (7 * 7) * 32


def test_scaled_dot_product_attention_counts_both_products():
    from plugins.mixers.global_attention import GlobalSelfAttention
    x = torch.rand(1, 32, 6, 7)
    n = 6 * 7
    linears = n * 32 * 96 + n * 32 * 32
    assert count_flops(GlobalSelfAttention(32, 2).eval(), (x, )) == linears + 2 * n * n * 32


def test_nat_mini_matches_the_paper():
    ref = reference_numbers('NAT', 'mini')['flops_g']  # 2.7
    flops = count_flops(NAT('mini').eval(), (torch.rand(1, 3, 224, 224), )) / 1e9
    assert abs(flops - ref) / ref < 0.01, flops


def test_models_without_corrections_count_as_the_analyser_does():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 6 * 6, 4))
    assert count_flops(model, (torch.rand(1, 3, 8, 8), )) == 8 * 27 * 36 + 288 * 4


def test_get_flops_tool_counts_a_config_backbone_like_the_paper():
    from tools.analysis.get_flops import count
    params, flops = count('configs/nat/mask-rcnn_nat-t_fpn_1x_coco.py', (224, 224),
                          backbone_only=True)
    ref = reference_numbers('NAT', 'tiny')['flops_g']  # 4.3, the classification model
    assert abs(flops / 1e9 - ref) / ref < 0.01 and 27e6 < params < 28e6
