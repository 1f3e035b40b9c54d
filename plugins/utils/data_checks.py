"""Checks of the data a tool is about to read, so that bad data surfaces as a clear error.

- :func:`check_data_paths` (config only, before anything is built): the ``data_root``, the
  annotation file and the image / label folders of each data set exist.
- :func:`build_checked_dataloaders` (the tools call it right after building the runner): builds
  the data sets, turns a ``KeyError`` raised while an annotation file is read into a message that
  names the file and the missing key, refuses a data set left empty by its filters (an
  iteration-based loop would otherwise wait forever for a first batch), and makes every error
  raised while a sample loads name the sample's files (:class:`NameSampleErrors`).
"""
import logging
import os.path as osp
import re
from contextlib import contextmanager

from mmengine.logging import print_log

from .config_checks import ConfigError


class DataError(ValueError):
    """A data set that cannot be used as it is: what is wrong with it and how to fix it."""


DEMO_HINT = ' or generate the demo data sets with `python tools/make_demo_data.py`'


def _datasets(dataset_cfg, where):
    """``(where, cfg)`` of a data set config and of the data sets a wrapper holds."""
    if not isinstance(dataset_cfg, dict):
        return
    yield where, dataset_cfg
    if isinstance(dataset_cfg.get('dataset'), dict):
        yield from _datasets(dataset_cfg['dataset'], f'{where}.dataset')
    for i, inner in enumerate(dataset_cfg.get('datasets') or []):
        yield from _datasets(inner, f'{where}.datasets[{i}]')


def _missing(path: str) -> bool:
    return '://' not in path and not osp.exists(path)


def check_data_paths(cfg, splits=('train', )) -> None:
    """Raise ConfigError when a data set of ``<split>_dataloader`` names a path that is missing."""
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not isinstance(loader, dict):
            continue
        for where, dataset in _datasets(loader.get('dataset'), f'{split}_dataloader.dataset'):
            root = dataset.get('data_root') or ''
            hint = DEMO_HINT if 'demo' in str(root) else ''
            if root and _missing(root):
                raise ConfigError(f'{where}.data_root: {root!r} does not exist. Point data_root at '
                                  f'your copy of the data set{hint}.')
            ann_file = dataset.get('ann_file') or ''
            path = ann_file if osp.isabs(ann_file) or not root else osp.join(root, ann_file)
            if ann_file and _missing(path):
                raise ConfigError(f'{where}.ann_file: the annotation file {path!r} does not exist '
                                  f'(data_root {root!r} + ann_file {ann_file!r}). Check both, '
                                  f'or point data_root at your copy of the data set{hint}.')
            for key, prefix in (dataset.get('data_prefix') or {}).items():
                path = prefix if osp.isabs(prefix) or not root else osp.join(root, prefix)
                if isinstance(prefix, str) and prefix and _missing(path):
                    raise ConfigError(f'{where}.data_prefix.{key}: the folder {path!r} does not '
                                      f'exist (data_root {root!r} + {prefix!r}).')


@contextmanager
def explain_data_errors(where: str, dataset_cfg):
    """Re-raise the errors of building a data set from bad annotations as a DataError: a
    ``KeyError`` (a missing key; the message names the file and the key) and mmengine's error on
    a data set with no sample left (it cannot serialise an empty list)."""
    cfg = dataset_cfg or {}
    try:
        yield
    except KeyError as err:
        text = str(err.args[0]) if err.args else ''
        if ' is not in the ' in text and ' registry' in text:  # an unknown type: not ours
            raise
        match = re.search(r"'([^']*)'\W*$", text)
        key = match.group(1) if match else text
        ann_file, root = cfg.get('ann_file') or '', cfg.get('data_root') or ''
        source = (f'the annotation file {osp.join(root, ann_file) if root else ann_file!r}'
                  if ann_file else 'its annotations')
        raise DataError(f'{where} ({cfg.get("type")}): {source} lacks the key {key!r} where the '
                        f'data set reads it. For the COCO format, images need id, file_name, '
                        f'height, width; annotations need id, image_id, category_id, bbox, area, '
                        f'iscrowd (and segmentation for masks, keypoints and num_keypoints for '
                        f'pose); categories need id and name.') from None
    except ValueError as err:
        if 'need at least one array to concatenate' not in str(err):
            raise
        classes = (cfg.get('metainfo') or {}).get('classes')
        raise DataError(empty_message(where, cfg.get('type'), cfg, classes)) from None


def empty_message(where: str, type_name, dataset_cfg, classes) -> str:
    details = [f'{k}={dataset_cfg[k]!r}' for k in ('data_root', 'ann_file', 'filter_cfg')
               if dataset_cfg.get(k)]
    return (f'{where} ({type_name}) has no samples'
            f'{" (" + ", ".join(details) + ")" if details else ""}. Check that the paths hold the '
            f'data set, that the classes of metainfo ({classes}) are the names the annotations '
            f'use, and that filter_cfg does not drop every image.')


def check_not_empty(dataset, where: str, dataset_cfg=None) -> None:
    """Raise DataError when ``dataset`` has no sample (for instance, all filtered out)."""
    if len(dataset) == 0:
        classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
        raise DataError(empty_message(where, type(dataset).__name__, dataset_cfg or {}, classes))


JPEG_END = b'\xff\xd9'  # the end-of-image marker


def jpeg_is_truncated(path: str) -> bool:
    """Whether a JPEG file lacks its end-of-image marker near its end (a cut-off download).

    OpenCV decodes such a file without an error, the missing rows grey; a few bytes of padding
    after the marker are allowed.
    """
    with open(path, 'rb') as f:
        f.seek(0, 2)
        f.seek(max(f.tell() - 32, 0))
        return JPEG_END not in f.read()


class NameSampleErrors:
    """Wraps a data set's pipeline: an error while a sample loads names the sample's files, and a
    truncated JPEG (which decodes without an error) is reported once, as a warning."""
    PATH_KEYS = ('img_path', 'seg_map_path', 'lq_path', 'gt_path', 'path')

    def __init__(self, pipeline, where: str):
        self.pipeline, self.where = pipeline, where
        self._warned = set()

    def _files(self, results) -> str:
        files = [str(results[k]) for k in self.PATH_KEYS
                 if isinstance(results, dict) and isinstance(results.get(k), str)]
        return ', '.join(files) or f'sample {results.get("sample_idx", "?")}'

    def _check_jpeg(self, results) -> None:
        path = results.get('img_path') if isinstance(results, dict) else None
        if (isinstance(path, str) and path.lower().endswith(('.jpg', '.jpeg'))
                and path not in self._warned and osp.isfile(path) and jpeg_is_truncated(path)):
            self._warned.add(path)
            print_log(f'{self.where}: {path} is truncated (its JPEG data stops before the '
                      f'end-of-image marker); it decodes with its last rows grey. Replace the '
                      f'file or remove it from the data set.', logger='current',
                      level=logging.WARNING)

    def __call__(self, results):
        self._check_jpeg(results)
        try:
            return self.pipeline(results)
        except Exception as err:  # noqa: BLE001 (re-raised with the sample named)
            raise DataError(f'{self.where}: loading {self._files(results)} failed: '
                            f'{type(err).__name__}: {err}') from err


def name_sample_errors(dataset, where: str) -> None:
    """Wrap the pipeline of ``dataset`` (and of the data sets a wrapper holds)."""
    pipeline = getattr(dataset, 'pipeline', None)
    if callable(pipeline) and not isinstance(pipeline, NameSampleErrors):
        dataset.pipeline = NameSampleErrors(pipeline, where)
    inner = getattr(dataset, 'dataset', None)
    if inner is not None:
        name_sample_errors(inner, where)
    for inner in getattr(dataset, 'datasets', None) or []:
        name_sample_errors(inner, where)


def build_checked_dataloaders(runner, splits=('train', )) -> None:
    """Build ``runner.<split>_dataloader`` for each split now, with the errors above."""
    for split in splits:
        dataset_cfg = (runner.cfg.get(f'{split}_dataloader') or {}).get('dataset')
        if dataset_cfg is None or (split == 'val' and runner.val_loop is None):
            continue
        where = f'{split}_dataloader.dataset'
        with explain_data_errors(where, dataset_cfg):
            loader = getattr(runner, f'{split}_dataloader')
        if loader is not None:
            check_not_empty(loader.dataset, where, dataset_cfg)
            name_sample_errors(loader.dataset, where)
