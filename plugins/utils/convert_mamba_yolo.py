"""Key converters for the official Mamba-YOLO code (HZAI-ZJNU/Mamba-YOLO, Ultralytics layout).

An Ultralytics model is one ``nn.Sequential`` named ``model``: its state dict has keys
``model.<layer>.<...>`` with the layers of ``Mamba-YOLO-{T,B,L}.yaml``: 0 SimpleStem, 1 / 3 / 5 / 7
VSSBlocks (one block: ``model.1.proj_conv...``; several: ``model.5.0.proj_conv...``), 2 / 4 / 6
VisionClueMerge, 8 SPPF; 11 / 14 / 17 / 20 the neck's XSSBlocks, 15 / 18 its stride-2 convs,
21 the Detect head (``cv2``: box branches, ``cv3``: class branches, ``dfl``: the constant
integral weights 0..15). Ultralytics' ``.pt`` files pickle the whole model; its state dict is
``torch.load(f, weights_only=False)['ema' or 'model'].float().state_dict()``, taken where
Ultralytics is installed, then saved with ``torch.save``.
"""
import re
from collections import OrderedDict

from .converters import register_converter

_BLOCK_LAYERS = {1: 0, 3: 1, 5: 2, 7: 3}     # layer -> stage of its ODSSBlocks
_MERGE_LAYERS = {2: 1, 4: 2, 6: 3}           # layer -> stage opened by its Vision Clue Merge
_NECK_LAYERS = {11: 'top_down_blocks.0', 14: 'top_down_blocks.1', 15: 'downsamples.0',
                17: 'bottom_up_blocks.0', 18: 'downsamples.1', 20: 'bottom_up_blocks.1'}
_HEAD_LAYER = 21
_LAYER_KEY = re.compile(r'^model\.(\d+)\.(.*)$')


def _block_norms(rest: str) -> str:
    """The official LayerNorm2d wraps an ``nn.LayerNorm`` as ``.norm``: ``norm.norm.weight``."""
    return re.sub(r'^norm(2?)\.norm\.', r'norm\1.', rest)


def _backbone_key(layer: int, rest: str):
    """The toolkit key (``stages...``) of an official backbone key, or None past layer 8."""
    if layer == 0:
        return f'stages.0.downsample.{rest}'
    if layer in _MERGE_LAYERS:
        return f'stages.{_MERGE_LAYERS[layer]}.downsample.{rest}'
    if layer in _BLOCK_LAYERS:
        match = re.match(r'^(\d+)\.(.*)$', rest)   # several blocks: an nn.Sequential
        index, rest = (match.group(1), match.group(2)) if match else ('0', rest)
        return f'stages.{_BLOCK_LAYERS[layer]}.blocks.{index}.{_block_norms(rest)}'
    if layer == 8:
        return f'stages.3.sppf.{rest}'
    return None


def _detector_key(layer: int, rest: str):
    """The toolkit detector key of an official key; None for the constant DFL weights."""
    backbone = _backbone_key(layer, rest)
    if backbone is not None:
        return f'backbone.{backbone}'
    if layer in _NECK_LAYERS:
        return f'neck.{_NECK_LAYERS[layer]}.{_block_norms(rest)}'
    if layer == _HEAD_LAYER:
        if rest.startswith('dfl.'):
            return None
        rest = re.sub(r'^cv2\.', 'box_branches.', re.sub(r'^cv3\.', 'cls_branches.', rest))
        return f'bbox_head.{rest}'
    raise KeyError(f'model.{layer}: not a layer of the Mamba-YOLO YAMLs (0-8, 11, 14, 15, 17, 18, '
                   f'20, 21)')


@register_converter('mamba_yolo')
def convert_mamba_yolo(state_dict: dict) -> dict:
    """Official keys of layers 0-8 (``model.0.conv.0``, ``model.5.2.op.A_logs``,
    ``model.8.cv1.conv``) -> the :class:`~plugins.backbones.mamba_yolo.MambaYOLO` backbone's
    (``stages.0.downsample.conv.0``, ``stages.2.blocks.2.op.A_logs``, ``stages.3.sppf.cv1.conv``).
    Neck and head keys keep their names (a backbone reports them as unused); toolkit keys pass
    through."""
    out = OrderedDict()
    for key, value in state_dict.items():
        match = _LAYER_KEY.match(key)
        new = _backbone_key(int(match.group(1)), match.group(2)) if match else None
        out[new or key] = value
    return out


@register_converter('mamba_yolo_detector')
def convert_mamba_yolo_detector(state_dict: dict) -> dict:
    """A whole official detector -> the toolkit's (``backbone.``: MambaYOLO, ``neck.``:
    MambaYOLOPAFPN, ``bbox_head.``: YOLOv8Head with ``cv2`` -> ``box_branches``, ``cv3`` ->
    ``cls_branches``); the DFL's constant ``arange(16)`` weights are dropped (the head holds
    them as a buffer). For ``load_from`` of a Mamba-YOLO detector config; toolkit keys pass
    through."""
    out = OrderedDict()
    for key, value in state_dict.items():
        match = _LAYER_KEY.match(key)
        if not match:
            out[key] = value
            continue
        new = _detector_key(int(match.group(1)), match.group(2))
        if new is not None:
            out[new] = value
    return out
