"""A ResNet that takes plug-in blocks at every depth, from any library's config.

mmdet's and mmseg's ResNets accept ``plugins=`` only in Bottleneck (ResNet-50 and deeper; their
BasicBlock asserts ``plugins is None``), and mmpose's ResNet has no ``plugins`` argument at all.
``PluginResNet`` is mmdet's ResNet (same arguments, same parameter names, so torchvision and
OpenMMLab ResNet checkpoints load as they are) whose BasicBlock takes plug-ins too. Registered in
the root registry, it works unprefixed from mmdet, mmseg and mmpose configs::

    backbone=dict(type='PluginResNet', depth=18, out_indices=(3,),
                  plugins=[dict(cfg=dict(type='ECABlock'), position='after_conv2')])

Positions in BasicBlock: 'after_conv1' (after conv1-bn-relu) and 'after_conv2' (after the last
conv-bn, before the residual sum); 'after_conv3' is accepted as "after the last conv" so a config
written for ResNet-50 works unchanged at depth 18/34.
"""
from mmcv.cnn import build_plugin_layer
from mmdet.models.backbones.resnet import BasicBlock, Bottleneck, ResNet

from ..registry import MODELS

POSITIONS = ('after_conv1', 'after_conv2', 'after_conv3')


class PluginBasicBlock(BasicBlock):
    """mmdet's BasicBlock plus plug-ins after conv1 and after conv2."""

    def __init__(self, inplanes, planes, *args, plugins=None, **kwargs):
        super().__init__(inplanes, planes, *args, plugins=None, **kwargs)
        self.after_conv1_plugins, self.after_conv2_plugins = [], []
        for plugin in plugins or []:
            position = plugin['position']
            if position not in POSITIONS:
                raise ValueError(f'plugin position must be one of {POSITIONS}, got {position!r}')
            target = 'after_conv1' if position == 'after_conv1' else 'after_conv2'
            names = getattr(self, f'{target}_plugins')
            name, layer = build_plugin_layer(plugin['cfg'], in_channels=planes,
                                             postfix=plugin.get('postfix', ''))
            name = f'{target}_{name}'
            if hasattr(self, name):
                raise ValueError(f'two plug-ins named {name!r} at {position}: give one a '
                                 f"'postfix'")
            self.add_module(name, layer)
            names.append(name)

    def _plugins(self, x, names):
        for name in names:
            x = getattr(self, name)(x)
        return x

    def forward(self, x):

        def residual(x):
            out = self.relu(self.norm1(self.conv1(x)))
            out = self._plugins(out, self.after_conv1_plugins)
            out = self._plugins(self.norm2(self.conv2(out)), self.after_conv2_plugins)
            identity = x if self.downsample is None else self.downsample(x)
            return out + identity

        if self.with_cp and x.requires_grad:
            import torch.utils.checkpoint as cp
            out = cp.checkpoint(residual, x, use_reentrant=False)
        else:
            out = residual(x)
        return self.relu(out)


class PluginBottleneck(Bottleneck):
    """mmdet's Bottleneck, where every plug-in at a position sees the previous one's output."""

    def forward_plugin(self, x, plugin_names):
        for name in plugin_names:
            x = getattr(self, name)(x)
        return x


@MODELS.register_module()
class PluginResNet(ResNet):
    """mmdet's ResNet (depth 18, 34, 50, 101, 152) with plug-ins in every block type."""
    arch_settings = {
        18: (PluginBasicBlock, (2, 2, 2, 2)),
        34: (PluginBasicBlock, (3, 4, 6, 3)),
        50: (PluginBottleneck, (3, 4, 6, 3)),
        101: (PluginBottleneck, (3, 4, 23, 3)),
        152: (PluginBottleneck, (3, 8, 36, 3)),
    }

    def __init__(self, depth, *args, **kwargs):
        if depth not in self.arch_settings:
            raise KeyError(f'PluginResNet depth must be one of {sorted(self.arch_settings)}, '
                           f'got {depth}')
        super().__init__(depth, *args, **kwargs)

    @property
    def out_channels(self):
        """Channels of each returned map, in ``out_indices`` order."""
        expansion = self.block.expansion
        return [self.base_channels * 2**i * expansion for i in self.out_indices]

    @property
    def strides_of_outputs(self):
        return [4 * 2**i for i in self.out_indices]
