"""SR data sets in the layouts people have on disk.

- :class:`SRFolderDataset`: an HR folder and, optionally, an LR folder whose files are named from
  the HR names by a template (``0001.png`` -> ``0001x2.png``). Without an LR folder the LR images
  are made on the fly by MATLAB-style bicubic degradation (see ``SRBicubicDegradation``).
- :class:`DIV2KDataset`: ``DIV2K_train_HR/0001.png`` + ``DIV2K_train_LR_bicubic/X2/0001x2.png``
  (``split='valid'`` for 0801-0900).
- :class:`SRBenchmarkDataset`: Set5, Set14, B100, Urban100, Manga109 as BasicSR distributes them,
  ``<set>/HR/*.png`` + ``<set>/LR_bicubic/X{scale}/*x{scale}.png`` (Manga109's
  ``*_LRBI_x{scale}.png`` too); HR only is fine.
"""
import os
import os.path as osp
from typing import List, Optional, Sequence

from mmengine.dataset import BaseDataset

from plugins.registry import DATASETS

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.ppm', '.webp')


def list_images(folder: str) -> List[str]:
    if not osp.isdir(folder):
        raise FileNotFoundError(f'image folder {folder!r} does not exist')
    return sorted(f for f in os.listdir(folder) if f.lower().endswith(IMG_EXTENSIONS))


@DATASETS.register_module()
class SRFolderDataset(BaseDataset):
    """HR images, and LR images when an LR folder is given.

    Args:
        scale: the upscaling factor (2, 3, 4).
        data_root: root of the set; the folders are relative to it.
        gt_folder: folder of the HR images.
        lq_folder: folder of the LR images (``{scale}`` is filled in); ``None``: LR made on the fly.
        filename_tmpl: LR file stem from the HR stem, e.g. ``'{}x{scale}'``; several may be given
            (the first that exists is used).
        dataset_name: name reported next to the metrics (default: the last folder of data_root).
        repeat: how many times the list is repeated per epoch (BasicSR's dataset_enlarge_ratio).
    """

    def __init__(self,
                 scale: int,
                 data_root: str = '',
                 gt_folder: str = 'HR',
                 lq_folder: Optional[str] = None,
                 filename_tmpl: Sequence[str] = ('{}x{scale}', '{}_LRBI_x{scale}', '{}'),
                 dataset_name: Optional[str] = None,
                 repeat: int = 1,
                 **kwargs) -> None:
        self.scale = int(scale)
        self.gt_folder = gt_folder
        self.lq_folder = lq_folder
        self.filename_tmpl = [filename_tmpl] if isinstance(filename_tmpl, str) else list(
            filename_tmpl)
        self.dataset_name = dataset_name or osp.basename(osp.normpath(data_root)) or 'images'
        self.repeat = int(repeat)
        super().__init__(data_root=data_root, **kwargs)

    def _folder(self, folder: str) -> str:
        folder = folder.format(scale=self.scale)
        return folder if osp.isabs(folder) else osp.join(self.data_root, folder)

    def _find_lq(self, lq_dir: str, stem: str, lq_files: dict) -> str:
        for tmpl in self.filename_tmpl:
            name = tmpl.format(stem, scale=self.scale)
            if name in lq_files:
                return osp.join(lq_dir, lq_files[name])
        tried = [t.format(stem, scale=self.scale) for t in self.filename_tmpl]
        raise FileNotFoundError(f'no LR image for {stem!r} in {lq_dir!r} (tried {tried} with '
                                f'any of {IMG_EXTENSIONS})')

    def load_data_list(self) -> List[dict]:
        gt_dir = self._folder(self.gt_folder)
        lq_dir = self._folder(self.lq_folder) if self.lq_folder else None
        lq_files = ({osp.splitext(f)[0]: f for f in list_images(lq_dir)} if lq_dir else {})
        data_list = []
        for name in list_images(gt_dir):
            stem = osp.splitext(name)[0]
            data_list.append(dict(
                gt_path=osp.join(gt_dir, name),
                lq_path=self._find_lq(lq_dir, stem, lq_files) if lq_dir else None,
                img_name=stem, dataset_name=self.dataset_name, scale=self.scale))
        if not data_list:
            raise FileNotFoundError(f'no images in {gt_dir!r}')
        return data_list * self.repeat


@DATASETS.register_module()
class DIV2KDataset(SRFolderDataset):
    """DIV2K as distributed: ``DIV2K_{split}_HR`` and ``DIV2K_{split}_LR_bicubic/X{scale}``.

    ``lq_folder=None`` with ``on_the_fly=True`` makes LR patches from HR instead.
    """

    def __init__(self, scale: int, split: str = 'train', on_the_fly: bool = False, **kwargs):
        if split not in ('train', 'valid'):
            raise ValueError(f"split must be 'train' or 'valid', got {split!r}")
        kwargs.setdefault('gt_folder', f'DIV2K_{split}_HR')
        kwargs.setdefault('lq_folder', None if on_the_fly else
                          f'DIV2K_{split}_LR_bicubic/X{{scale}}')
        kwargs.setdefault('dataset_name', 'DIV2K' if split == 'train' else 'DIV2K-valid')
        super().__init__(scale, **kwargs)


@DATASETS.register_module()
class SRBenchmarkDataset(SRFolderDataset):
    """Benchmark sets ``<set>/HR`` + ``<set>/LR_bicubic/X{scale}``, one or several.

    Args:
        data_root: the set's folder, or with ``sets`` the folder that holds the sets.
        sets: e.g. ``['Set5', 'Set14', 'Urban100']``: one data set whose samples carry their
            set's name, so that the metrics report each set and the mean.

    When a set has no LR folder, its LR images are made from HR on the fly (same bicubic).
    """
    LQ_FOLDER = 'LR_bicubic/X{scale}'

    def __init__(self, scale: int, data_root: str = '', sets: Optional[Sequence[str]] = None,
                 **kwargs):
        self.sets = list(sets) if sets else None
        self._explicit_lq = 'lq_folder' in kwargs
        super().__init__(scale, data_root=data_root, **kwargs)

    def _load_one(self, root: str, name: str) -> List[dict]:
        self.data_root, self.dataset_name = root, name
        if not self._explicit_lq:
            exists = osp.isdir(osp.join(root, self.LQ_FOLDER.format(scale=self.scale)))
            self.lq_folder = self.LQ_FOLDER if exists else None
        return super().load_data_list()

    def load_data_list(self) -> List[dict]:
        if not self.sets:
            return self._load_one(self.data_root, self.dataset_name)
        parent, data_list = self.data_root, []
        for name in self.sets:
            data_list += self._load_one(osp.join(parent, name), name)
        self.data_root = parent
        return data_list
