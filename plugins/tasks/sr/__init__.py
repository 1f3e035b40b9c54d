"""Single-image super-resolution on mmengine: CATANet, DLGSANet and a mixer-generic trunk.

Importing this package registers, in mmengine's root registries:

- MODELS: ``SRModel``, ``SRDataPreprocessor``, ``CATANet``, ``DLGSANet``, ``MixerSRNet``,
  ``PixelL1Loss``, ``PixelMSELoss``, ``PixelCharbonnierLoss``;
- DATASETS: ``SRFolderDataset``, ``DIV2KDataset``, ``SRBenchmarkDataset``;
- TRANSFORMS: ``LoadSRPair``, ``SRBicubicDegradation``, ``SRPairedRandomCrop``,
  ``SRRandomFlip``, ``SRRandomTranspose``, ``PackSRInputs``;
- METRICS: ``SRPSNR``, ``SRSSIM``; HOOKS: ``SRVisualizationHook``.
"""
from . import imresize, metrics, transforms, datasets, losses, tiling, model, hooks  # noqa: F401
from . import catanet, dlgsanet, mixer_trunk  # noqa: F401
