"""The catalogue of bad input and the exact message each one gives: docs/troubleshooting.md.

    python tools/analysis/troubleshooting.py [--out docs/troubleshooting.md]

Each case below reproduces one mistake in a scratch folder, in-process, through the same checks
and loaders the tools use, and returns the message a user gets. The table of the doc is made
from these cases, and tests/tools/test_troubleshooting.py runs every case and checks that its
row of the doc is still exactly what the case produces: the doc cannot drift from the code.
"""
import argparse
import copy
import functools
import json
import logging
import os
import os.path as osp
import sys
import tempfile
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import plugins  # noqa: E402,F401
from plugins.utils.tools import load_config  # noqa: E402

SEG_DEMO = osp.join(ROOT, 'configs/van/fpn_van-b0_demo-ade20k.py')
DET_DEMO = osp.join(ROOT, 'configs/van/retinanet_van-b0_fpn_demo-coco.py')
CWD = '<cwd>'


@dataclass
class Case:
    """One bad input: what it is, when it shows, how to fix it, and its reproduction."""
    bad_input: str
    when: str
    fix: str
    run: Callable[[str], str]  # scratch folder -> the message the user gets
    expect: Tuple[str, ...]  # what the message must name


# ---- helpers: the tools' own code paths, in-process --------------------------------------------
@functools.lru_cache(maxsize=None)
def _config(path):
    return load_config(path)


def config(path):
    """A fresh copy of a config, as tools/train.py loads it."""
    return copy.deepcopy(_config(path))


def message_of(fn) -> str:
    """The message of the error ``fn()`` raises (what the tools print after ``error:``)."""
    try:
        fn()
    except Exception as err:  # noqa: BLE001
        return str(err)
    raise AssertionError('the bad input raised no error')


def logged_by(fn, level=logging.INFO) -> str:
    """The lines ``fn()`` logs through mmengine's logger at ``level`` or above."""
    from mmengine.logging import MMLogger
    records = []
    handler = logging.Handler(level)
    handler.emit = lambda record: records.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        fn()
    finally:
        logger.removeHandler(handler)
    return ' '.join(records)


def checked_dataset(dataset_cfg, where='train_dataloader.dataset', scope='mmseg'):
    """Build a data set as the tools do (build_checked_dataloaders without a runner)."""
    from mmengine.registry import DATASETS, DefaultScope
    from plugins.utils.data_checks import (check_not_empty, explain_data_errors,
                                           name_sample_errors)
    with DefaultScope.overwrite_default_scope(scope):
        with explain_data_errors(where, dataset_cfg):
            dataset = DATASETS.build(dataset_cfg)
    check_not_empty(dataset, where, dataset_cfg)
    name_sample_errors(dataset, where)
    return dataset


def ade20k(root):
    """A tiny ADE20K-layout set under ``<root>/data/ade20k``; its training data set config."""
    from plugins.datasets.segmentation_demo import make_ade20k_demo
    data = osp.join(root, 'data', 'ade20k')
    make_ade20k_demo(data, seed=0, num_train=2, num_val=1, size=(64, 64))
    cfg = config(SEG_DEMO).train_dataloader.dataset
    cfg.data_root = data
    return data, cfg


def coco(root, edit=None):
    """A tiny COCO-format set under ``<root>/data/coco``; ``edit(json_dict)`` changes its train
    annotations. Returns the config with data_root pointing there."""
    from plugins.datasets.detection_demo import make_coco_demo
    data = osp.join(root, 'data', 'coco') + '/'
    make_coco_demo(data, seed=0, num_train=2, num_val=1)
    if edit is not None:
        path = osp.join(data, 'annotations', 'instances_train2017.json')
        with open(path) as f:
            content = json.load(f)
        edit(content)
        with open(path, 'w') as f:
            json.dump(content, f)
    cfg = config(DET_DEMO)
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = data
    return cfg


def image_file(root, name, image):
    path = osp.join(root, 'data', name)
    os.makedirs(osp.dirname(path), exist_ok=True)
    cv2.imwrite(path, image)
    return path


# ---- the cases ---------------------------------------------------------------------------------
def corrupt_image(root):
    data, cfg = ade20k(root)
    with open(osp.join(data, 'images', 'training', 'ADE_train_00000001.jpg'), 'wb') as f:
        f.write(b'these bytes are not a JPEG image')
    return message_of(lambda: checked_dataset(cfg)[1])


def truncated_jpeg(root):
    data, cfg = ade20k(root)
    path = osp.join(data, 'images', 'training', 'ADE_train_00000001.jpg')
    with open(path, 'rb') as f:
        content = f.read()
    with open(path, 'wb') as f:
        f.write(content[:len(content) // 2])
    dataset = checked_dataset(cfg)
    return logged_by(lambda: dataset[1], logging.WARNING)


def corrupt_label_map(root):
    data, cfg = ade20k(root)
    path = osp.join(data, 'annotations', 'training', 'ADE_train_00000001.png')
    with open(path, 'rb') as f:
        content = f.read()
    with open(path, 'wb') as f:
        f.write(content[:len(content) // 2])
    return message_of(lambda: checked_dataset(cfg)[1])


def missing_label_map(root):
    data, cfg = ade20k(root)
    os.remove(osp.join(data, 'annotations', 'training', 'ADE_train_00000001.png'))
    return message_of(lambda: checked_dataset(cfg)[1])


def missing_annotation_file(root):
    from plugins.utils.data_checks import check_data_paths
    cfg = coco(root)
    os.remove(osp.join(cfg.train_dataloader.dataset.data_root, 'annotations',
                       'instances_train2017.json'))
    return message_of(lambda: check_data_paths(cfg, ('train', )))


def missing_data_root(root):
    from plugins.utils.data_checks import check_data_paths
    cfg = config(SEG_DEMO)
    cfg.train_dataloader.dataset.data_root = osp.join(root, 'data', 'ade20k')
    return message_of(lambda: check_data_paths(cfg, ('train', )))


def annotation_lacks_key(root):
    def drop_bbox(content):
        for ann in content['annotations']:
            del ann['bbox']
    cfg = coco(root, drop_bbox)
    return message_of(lambda: checked_dataset(cfg.train_dataloader.dataset, scope='mmdet'))


def empty_after_filtering(root):
    cfg = coco(root)
    cfg.train_dataloader.dataset.metainfo = dict(classes=('cat', 'dog'))
    return message_of(lambda: checked_dataset(cfg.train_dataloader.dataset, scope='mmdet'))


def loaded_image(root, name, image):
    from mmcv.transforms import LoadImageFromFile
    path = image_file(root, name, image)
    loaded = LoadImageFromFile()(dict(img_path=path))['img']
    return f'(none: read as a {"x".join(map(str, loaded.shape))} colour image)'


def grayscale_image_file(root):
    return loaded_image(root, 'ade20k/images/training/gray.jpg',
                        np.full((64, 48), 128, np.uint8))


def rgba_image_file(root):
    return loaded_image(root, 'ade20k/images/training/rgba.png',
                        np.full((64, 48, 4), 128, np.uint8))


def backbone_input(channels):
    from plugins.backbones.van import VAN
    return lambda root: message_of(lambda: VAN('b0')(torch.rand(1, channels, 64, 64)))


def image_smaller_than_the_coarsest_stride(root):
    from plugins.backbones.van import VAN
    return message_of(lambda: VAN('b0')(torch.rand(1, 3, 24, 24)))


def checked_config(**backbone_or_neck):
    """Change the seg demo config's model and run the tools' config checks."""
    def run(root):
        from plugins.utils.config_checks import check_model_config
        cfg = config(SEG_DEMO)
        for key, value in backbone_or_neck.items():
            part, name = key.split('__')
            cfg.model[part][name] = value
        return message_of(lambda: check_model_config(cfg))
    return run


def missing_checkpoint(root):
    from plugins.utils.checkpoint import check_checkpoint_path
    path = 'work_dirs/fpn_van-b0_demo-ade20k/iter_300.pth'
    return message_of(lambda: check_checkpoint_path(path))


def not_a_checkpoint(root):
    from plugins.utils.checkpoint import check_checkpoint_path
    path = osp.join(root, 'data', 'notes.pth')
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write('these are not weights')
    return message_of(lambda: check_checkpoint_path(path))


def whole_module_checkpoint(root):
    from plugins.utils.checkpoint import load_checkpoint_file
    path = osp.join(root, 'data', 'model.pth')
    os.makedirs(osp.dirname(path), exist_ok=True)
    torch.save(torch.nn.Linear(2, 2), path)
    return message_of(lambda: load_checkpoint_file(path))


def checkpoint_of_another_preset(root):
    from plugins.backbones.van import VAN
    path = osp.join(root, 'data', 'van_b0.pth')
    os.makedirs(osp.dirname(path), exist_ok=True)
    torch.save(dict(state_dict=VAN('b0').state_dict()), path)
    model = VAN('b1', init_cfg=dict(type='Pretrained', checkpoint=path))
    try:
        return logged_by(model.init_weights)
    except Exception as err:  # noqa: BLE001 (a loader that refuses it)
        return str(err)


def non_finite_loss(root):
    from mmengine.logging import MessageHub
    from plugins.utils.fault_tolerance import FiniteLossHook
    hub = MessageHub.get_instance('troubleshooting-nan')
    hub.update_info('last_ckpt', 'work_dirs/fpn_van-b0_demo-ade20k/iter_200.pth')
    runner = SimpleNamespace(iter=236, epoch=0, message_hub=hub)
    outputs = {'loss': torch.tensor(float('nan')), 'decode.loss_ce': torch.tensor(float('nan')),
               'decode.acc_seg': torch.tensor(41.5)}
    return message_of(lambda: FiniteLossHook().after_train_iter(runner, 236, None, outputs))


CASES = {
    'corrupt-image': Case(
        'an image file of the data set is corrupt (not decodable)', 'training / testing, when '
        'the sample loads', 'replace the file, or remove it (and its label) from the data set',
        corrupt_image, ('ADE_train_00000001.jpg', 'failed to load image')),
    'truncated-jpeg': Case(
        'a JPEG file is truncated (a cut-off download)', 'when the sample loads (a warning; the '
        'image decodes with grey rows)', 'replace the file', truncated_jpeg,
        ('ADE_train_00000001.jpg', 'truncated')),
    'corrupt-label-map': Case(
        'a label map (PNG) is truncated or corrupt', 'when the sample loads',
        'replace the label map', corrupt_label_map, ('ADE_train_00000001.png', )),
    'missing-label-map': Case(
        'an image has no label map beside it (ADE20K layout)', 'when the sample loads',
        'add the label map, or remove the image', missing_label_map,
        ('ADE_train_00000001.png', 'No such file')),
    'missing-annotation-file': Case(
        'the annotation file is missing (COCO format)', 'before the model is built',
        'fix data_root / ann_file, or generate the demo data', missing_annotation_file,
        ('instances_train2017.json', 'does not exist')),
    'missing-data-root': Case(
        'the data folder does not exist', 'before the model is built',
        'point data_root at the data set, or generate the demo data', missing_data_root,
        ('data_root', 'does not exist')),
    'annotation-lacks-key': Case(
        'an annotation file lacks a required key (here: bbox)', 'when the data set is built',
        'write the missing fields into the annotation file', annotation_lacks_key,
        ("'bbox'", 'instances_train2017.json')),
    'empty-after-filtering': Case(
        'the data set is empty after filtering (here: metainfo classes that the annotations do '
        'not use)', 'when the data set is built', 'make metainfo.classes match the category '
        'names of the annotations; loosen filter_cfg', empty_after_filtering,
        ('has no samples', "('cat', 'dog')")),
    'grayscale-image-file': Case(
        'a grayscale image file in the data set', 'when the sample loads',
        'nothing to do: LoadImageFromFile (color_type="color") reads it as 3 channels',
        grayscale_image_file, ('x3', )),
    'rgba-image-file': Case(
        'an RGBA image file (PNG with alpha) in the data set', 'when the sample loads',
        'nothing to do: the alpha channel is dropped on reading', rgba_image_file, ('x3', )),
    'grayscale-tensor': Case(
        'a grayscale (1-channel) batch given to a backbone built for 3 channels', 'forward pass',
        'set in_channels=1, or repeat the channel', backbone_input(1),
        ('in_channels=1', 'built for 3')),
    'rgba-tensor': Case(
        'an RGBA (4-channel) batch given to a backbone built for 3 channels', 'forward pass',
        'drop the alpha channel, or set in_channels=4', backbone_input(4),
        ('in_channels=4', 'built for 3')),
    'image-smaller-than-stride': Case(
        'an image smaller than the coarsest output stride', 'forward pass',
        'resize or pad the images', image_smaller_than_the_coarsest_stride, ('32x32', )),
    'unknown-type': Case(
        'an unknown `type` (here: VANN)', 'before the model is built', 'use a registered name',
        checked_config(backbone__type='VANN'), ("'VANN'", "'VAN'")),
    'misspelt-argument': Case(
        'a misspelt backbone argument (here: drop_path_rat)', 'before the model is built',
        'use the argument it names', checked_config(backbone__drop_path_rat=0.2),
        ("'drop_path_rat'", "'drop_path_rate'")),
    'channel-mismatch': Case(
        "the neck's in_channels disagree with the backbone's outputs", 'before the model is '
        'built', 'set in_channels to the channels named', checked_config(
            neck__in_channels=[64, 128, 320, 512]), ('[64, 128, 320, 512]', '[32, 64, 160, 256]')),
    'missing-checkpoint': Case(
        'a checkpoint path that does not exist', 'before the model is built (test.py, load_from, '
        '--resume CKPT)', 'check the path', missing_checkpoint, ('does not exist', )),
    'not-a-checkpoint': Case(
        'a file that is not a checkpoint', 'before the model is built', 'pass the .pth file '
        'written by torch.save', not_a_checkpoint, ('is not a PyTorch checkpoint', )),
    'whole-module-checkpoint': Case(
        'a checkpoint holding pickled objects, e.g. `torch.save(model)`', 'when the checkpoint '
        'loads', 'save model.state_dict() instead', whole_module_checkpoint,
        ('torch.nn.modules.linear.Linear', )),
    'checkpoint-of-another-preset': Case(
        'a pretrained checkpoint of another preset (here: VAN-B0 weights for VAN-B1)',
        'when the weights load', 'use the checkpoint of the preset the config builds',
        checkpoint_of_another_preset, ('van_b0.pth', )),
    'non-finite-loss': Case(
        'a loss that becomes NaN or infinite (learning rate too high, broken sample)',
        'training stops at that iteration', 'lower the learning rate, clip gradients, check the '
        'data; then resume with --resume', non_finite_loss, ('iteration 237', 'decode.loss_ce')),
}


def reproduce(name: str) -> str:
    """Run one case in a scratch folder; its message with the folder and cwd made generic."""
    with tempfile.TemporaryDirectory() as root:
        message = CASES[name].run(root)
        message = message.replace(root + os.sep, '').replace(root, '.')
    return ' '.join(message.replace(os.getcwd(), CWD).split())


def table_row(name: str, message: str) -> str:
    case = CASES[name]
    cells = (case.bad_input, case.when, f'``{message}``', case.fix)
    return '| ' + ' | '.join(c.replace('|', '\\|') for c in cells) + ' |'


HEADER = """# Troubleshooting: bad input and what you see

Each row is one mistake and the exact message the toolkit gives for it. The table is generated by
`python tools/analysis/troubleshooting.py --out docs/troubleshooting.md` from the cases in that
file, and every row is a test (`tests/tools/test_troubleshooting.py` reproduces the mistake and
checks that the row still says what the code does). The tools (`tools/train.py`,
`tools/test.py`) print these messages after `error:` and exit with status 2; paths are shown
relative to the folder holding `data/`, and `<cwd>` stands for the current directory.

| bad input | when | message | fix |
|---|---|---|---|
"""

FOOTER = """
## Faults the tools survive

`tools/train.py` adds three hooks to every run (`plugins/utils/fault_tolerance.py`); each is
tested end to end in `tests/tools/test_faults.py`:

- **Checkpoints are written atomically** (`AtomicCheckpointHook` in place of mmengine's
  `CheckpointHook`, same arguments): to `<name>.part`, synced, renamed into place, and only then
  is `last_checkpoint` updated and an outdated checkpoint deleted. A process killed while saving,
  or a full disk, never corrupts or removes the last good checkpoint (a full disk stops training
  with `could not write checkpoint ...; nothing was replaced: the last good checkpoint ... is
  kept`).
- **`--resume` without a path** takes the checkpoint `last_checkpoint` names if it is complete,
  else the newest complete one, and says which (`resume: continuing from ...`, and
  `resume: passed over ...` for each file it skipped).
- **Resumed runs continue the same random streams** (`RandomStateHook`): with
  `randomness=dict(seed=0, deterministic=True)` the losses after a `--resume` equal those of an
  uninterrupted run.
- **A NaN or infinite loss stops training** (`FiniteLossHook`) before that iteration is saved
  (the message is in the table above).
"""


def render() -> str:
    return HEADER + '\n'.join(table_row(n, reproduce(n)) for n in CASES) + '\n' + FOOTER


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', help='write the markdown here (default: print it)')
    args = parser.parse_args(argv)
    text = render()
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text)
    else:
        print(text)


if __name__ == '__main__':
    main()
