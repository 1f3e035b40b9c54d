"""Point cloud semantic segmentation: ConDaFormer in plain PyTorch, on mmengine.

Importing this package registers, in mmengine's root registries:

- MODELS: ``ConDaFormer``, ``PointCloudSegmentor``, ``PointCloudDataPreprocessor``,
  ``PointSegHead``, ``PointCrossEntropyLoss``;
- DATASETS: ``S3DISPointDataset``, ``ScanNetPointDataset``;
- TRANSFORMS: ``LoadPointCloudFromFile``, ``PointCenterShift``, ``PointPositiveShift``,
  ``PointRandomDropout``, ``PointRandomRotate``, ``PointRandomScale``, ``PointRandomFlip``,
  ``PointRandomJitter``, ``PointElasticDistortion``, ``PointChromaticAutoContrast``,
  ``PointChromaticTranslation``, ``PointChromaticJitter``, ``PointRandomColorDrop``,
  ``PointNormalizeColor``, ``PointSphereCrop``, ``PointShuffle``, ``PointGridSample``,
  ``PointTestTimeAug``, ``PackPointCloudInputs``;
- METRICS: ``PointCloudIoUMetric``; HOOKS: ``PointCloudVisualizationHook``.
"""
from . import sparse, attention, condaformer, model, transforms, datasets, metrics, hooks  # noqa
from ..._autoimport import import_submodules

import_submodules(__name__, __path__)
