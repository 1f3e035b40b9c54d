"""S3DIS and ScanNet v2 in the processed layouts of the public point cloud codebases.

PointTransformerV2 (``pcr``, what ConDaFormer's official code reads)::

    data/s3dis/Area_1/office_1.pth ...        dict(coord, color, semantic_gt)
    data/scannet/{train,val,test}/scene0000_00.pth   dict(coord, color, normal, semantic_gt20)

Pointcept (v1.5+)::

    data/s3dis/Area_1/office_1/{coord,color,segment}.npy
    data/scannet/{train,val,test}/scene0000_00/{coord,color,normal,segment20}.npy

Both are found automatically; ``LoadPointCloudFromFile`` (first in the pipeline) reads either.
"""
import glob
import os.path as osp
from typing import List, Sequence, Union

from mmengine.dataset import BaseDataset

from plugins.registry import DATASETS


class PointCloudSegDataset(BaseDataset):
    """Scenes under ``data_root/<split>/``, one ``.pth`` file or one folder of ``.npy`` each.

    Args:
        split: a folder name or a list of them (S3DIS areas, ScanNet splits).
        loop: list the scenes this many times (one "epoch" of a small set).
        label_keys: label names to look for in a scene, first found wins.
    """
    LABEL_KEYS = ('segment',)

    def __init__(self, data_root: str = '', split: Union[str, Sequence[str]] = 'train',
                 pipeline=(), test_mode: bool = False, loop: int = 1, metainfo=None,
                 label_keys: Sequence[str] = None, **kwargs) -> None:
        self.split = [split] if isinstance(split, str) else list(split)
        self.loop = 1 if test_mode else int(loop)
        self.label_keys = tuple(label_keys or self.LABEL_KEYS)
        kwargs.setdefault('serialize_data', False)
        super().__init__(data_root=data_root, pipeline=list(pipeline), test_mode=test_mode,
                         metainfo=metainfo, **kwargs)

    def load_data_list(self) -> List[dict]:
        scenes = []
        for split in self.split:
            folder = osp.join(self.data_root, split)
            files = sorted(glob.glob(osp.join(folder, '*.pth')))
            dirs = sorted(p for p in glob.glob(osp.join(folder, '*'))
                          if osp.isdir(p) and osp.exists(osp.join(p, 'coord.npy')))
            scenes += files + dirs
        if not scenes:
            raise FileNotFoundError(
                f'{type(self).__name__}: no scene (*.pth file or folder with coord.npy) under '
                f'{[osp.join(self.data_root, s) for s in self.split]}; see docs/pointcloud.md for '
                f'the expected layout')
        infos = [dict(path=p, name=osp.splitext(osp.basename(p))[0], label_keys=self.label_keys)
                 for p in scenes]
        return infos * self.loop


@DATASETS.register_module()
class S3DISPointDataset(PointCloudSegDataset):
    """Stanford 3D indoor spaces, 13 classes; Area 5 is the usual validation area."""
    METAINFO = dict(
        classes=('ceiling', 'floor', 'wall', 'beam', 'column', 'window', 'door', 'table',
                 'chair', 'sofa', 'bookcase', 'board', 'clutter'),
        palette=[(0, 255, 0), (0, 0, 255), (0, 255, 255), (255, 255, 0), (255, 0, 255),
                 (100, 100, 255), (200, 200, 100), (170, 120, 200), (255, 0, 0),
                 (200, 100, 100), (10, 200, 100), (200, 200, 200), (50, 50, 50)])
    LABEL_KEYS = ('semantic_gt', 'segment')

    def __init__(self, split=('Area_1', 'Area_2', 'Area_3', 'Area_4', 'Area_6'), **kwargs):
        super().__init__(split=split, **kwargs)


@DATASETS.register_module()
class ScanNetPointDataset(PointCloudSegDataset):
    """ScanNet v2, the 20 benchmark classes (labels ``semantic_gt20`` / ``segment20``)."""
    METAINFO = dict(
        classes=('wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table', 'door', 'window',
                 'bookshelf', 'picture', 'counter', 'desk', 'curtain', 'refridgerator',
                 'shower curtain', 'toilet', 'sink', 'bathtub', 'otherfurniture'),
        palette=[(174, 199, 232), (152, 223, 138), (31, 119, 180), (255, 187, 120),
                 (188, 189, 34), (140, 86, 75), (255, 152, 150), (214, 39, 40), (197, 176, 213),
                 (148, 103, 189), (196, 156, 148), (23, 190, 207), (247, 182, 210),
                 (219, 219, 141), (255, 127, 14), (158, 218, 229), (44, 160, 44),
                 (112, 128, 144), (227, 119, 194), (82, 84, 163)])
    LABEL_KEYS = ('semantic_gt20', 'segment20', 'segment')
