"""Large Kernel Attention (LKA), from "Visual Attention Network" (Guo et al., arXiv 2202.09741).

A 21x21 receptive field decomposed (Sec. 3.1, Fig. 2) into a 5x5 depth-wise conv, a 7x7
depth-wise conv with dilation 3 and a 1x1 conv; the result multiplies the input (Eq. 1-2):
``Attention = Conv1x1(DW-D-Conv(DW-Conv(F)))``, ``Output = Attention (x) F``.
Linear in tokens: O(HW * C * (25 + 49 + C)).
"""
import torch
import torch.nn as nn

from ..ops.depthwise_conv import dilated_depthwise_conv2d
from ..registry import MODELS
from .base import PluginBlock


@MODELS.register_module()
class LargeKernelAttention(PluginBlock):
    """LKA as a plug-in block: ``x * conv1x1(dwconv7x7_d3(dwconv5x5(x)))``.

    Args:
        in_channels: channels of the input (and output).
        kernel_size: the large kernel approximated (21 in the paper); the decomposition uses a
            ``(2d - 1)`` depth-wise conv and a ``ceil(K / d)`` depth-wise conv of dilation ``d``.
        dilation: ``d`` (3 in the paper).
        identity_init: see :class:`PluginBlock`.
    """
    _abbr_ = 'lka'

    def __init__(self, in_channels: int, kernel_size: int = 21, dilation: int = 3,
                 identity_init: bool = False, init_cfg=None):
        super().__init__(in_channels, identity_init, init_cfg)
        local = 2 * dilation - 1                     # 5 for d = 3
        dilated = -(-kernel_size // dilation)          # 7 for K = 21, d = 3
        if dilated % 2 == 0:
            dilated += 1
        self.dw_conv = nn.Conv2d(in_channels, in_channels, local, padding=local // 2,
                                 groups=in_channels)
        self.dw_dilated_conv = nn.Conv2d(in_channels, in_channels, dilated,
                                         padding=dilation * (dilated // 2), dilation=dilation,
                                         groups=in_channels)
        self.pw_conv = nn.Conv2d(in_channels, in_channels, 1)

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.dw_dilated_conv
        attn = dilated_depthwise_conv2d(self.dw_conv(x), conv.weight, conv.bias, conv.dilation[0])
        return x * self.pw_conv(attn)
