"""The SR model on mmengine: data preprocessor, pixel loss, tiled inference, predictions.

``SRModel(generator=dict(type='CATANet', upscale=2), pixel_loss=dict(type='PixelL1Loss'))``
trains any registered SR network with mmengine's Runner (``tools/train.py``); EMA of the weights
is mmengine's ``EMAHook`` in the config (``custom_hooks``), swapped in for validation and test.
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.model import BaseDataPreprocessor, BaseModel
from mmengine.structures import BaseDataElement

from plugins.registry import MODELS
from .tiling import tiled_inference


@MODELS.register_module()
class SRDataPreprocessor(BaseDataPreprocessor):
    """Stack the LR images and map [0, 255] to the network's range: ``(x - mean) / std``.

    The default (mean 0, std 255) gives [0, 1], the range CATANet and DLGSANet work in (DLGSANet
    subtracts its RGB mean inside the network, as its official code does).
    """

    def __init__(self, mean: Sequence[float] = (0., 0., 0.),
                 std: Sequence[float] = (255., 255., 255.), non_blocking: bool = False):
        super().__init__(non_blocking)
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1),
                             persistent=False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(-1, 1, 1),
                             persistent=False)

    def normalize(self, img: torch.Tensor) -> torch.Tensor:
        return (img.float() - self.mean) / self.std

    def denormalize(self, img: torch.Tensor) -> torch.Tensor:
        return img * self.std + self.mean

    def stack(self, images: Union[torch.Tensor, List[torch.Tensor]], what: str) -> torch.Tensor:
        if torch.is_tensor(images):
            return images
        shapes = {tuple(i.shape) for i in images}
        if len(shapes) > 1:
            raise ValueError(f'{what} of one batch differ in size {sorted(shapes)}: use '
                             f'batch_size=1 for whole-image evaluation, or crop in training')
        return torch.stack(images)

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        inputs = self.normalize(self.stack(data['inputs'], 'LR images'))
        return dict(inputs=inputs, data_samples=data.get('data_samples'))


@MODELS.register_module()
class SRModel(BaseModel):
    """Single-image super-resolution: a generator network and a pixel loss.

    Args:
        generator: config of the SR network (``forward(lr) -> sr``, attribute ``upscale``).
        pixel_loss: config of the loss between SR and HR (normalized like the inputs).
        data_preprocessor: default :class:`SRDataPreprocessor` (to [0, 1]).
        test_cfg: ``dict(tile=None, tile_overlap=16, tile_blend='average')``: LR tile size for
            tiled inference (``None``: whole images) and how overlapping tiles are combined.
    """

    def __init__(self,
                 generator: dict,
                 pixel_loss: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor or dict(type='SRDataPreprocessor'),
                         init_cfg=init_cfg)
        self.generator = MODELS.build(generator)
        self.pixel_loss = MODELS.build(pixel_loss or dict(type='PixelL1Loss'))
        self.train_cfg = dict(train_cfg or {})
        self.test_cfg = dict(dict(tile=None, tile_overlap=16, tile_blend='average'),
                             **(test_cfg or {}))
        self.scale = int(getattr(self.generator, 'upscale'))

    def forward(self, inputs: torch.Tensor, data_samples: Optional[List] = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.generator(inputs)
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")

    def _gt(self, data_samples) -> torch.Tensor:
        gts = [s.gt_img for s in data_samples]
        return self.data_preprocessor.normalize(
            self.data_preprocessor.stack(gts, 'HR images').to(self.data_preprocessor.mean.device))

    def loss(self, inputs: torch.Tensor, data_samples) -> Dict[str, torch.Tensor]:
        pred = self.generator(inputs)
        return dict(loss_pix=self.pixel_loss(pred, self._gt(data_samples)))

    def infer(self, inputs: torch.Tensor) -> torch.Tensor:
        """The SR output of normalized LR images, tile by tile when ``test_cfg.tile`` is set."""
        tile = self.test_cfg.get('tile')
        if not tile:
            return self.generator(inputs)
        return tiled_inference(self.generator, inputs, self.scale, int(tile),
                               int(self.test_cfg.get('tile_overlap', 16)),
                               self.test_cfg.get('tile_blend', 'average'))

    def predict(self, inputs: torch.Tensor, data_samples=None) -> List[BaseDataElement]:
        """Data samples with ``pred_img``: (3, H, W) float in [0, 255] (not yet rounded)."""
        pred = self.data_preprocessor.denormalize(self.infer(inputs)).clamp(0, 255)
        if data_samples is None:
            data_samples = [BaseDataElement() for _ in range(pred.shape[0])]
        for sample, img in zip(data_samples, pred):
            if 'gt_img' in sample:
                img = img[:, :sample.gt_img.shape[-2], :sample.gt_img.shape[-1]]
            sample.pred_img = img.detach().cpu()
            if 'scale' not in sample:
                sample.set_metainfo(dict(scale=self.scale))
            if 'gt_img' in sample:
                sample.gt_img = sample.gt_img.cpu()
        return data_samples
