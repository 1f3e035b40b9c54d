"""RazorAttention's trade-off on a demo-trained model: what compression saves (time, memory) and
what it costs (mIoU).

A small segmenter, a MixerFormer (``plugins/backbones/mixerformer.py``, one or two blocks per
stage) with ``GlobalSelfAttention`` in every block and a light head over its four stages, is
trained on the generated ADE20K-layout demo set (``plugins.datasets``: six scene classes,
128 x 128 images), then compressed with :func:`plugins.mixers.razor.compress_model`
(heads scored on calibration images from the training split) at several retrieval ratios, and
each version is evaluated on the validation split with mmseg's ``IoUMetric`` arithmetic (mIoU over
the six classes; label 0 ignored, as ``reduce_zero_label`` does). Time and peak memory of the whole
model's inference are measured with the mixer benchmark's clock and profiler
(``benchmarks/mixers.py``), batch 1, one thread, at 128, 256 and 512 pixels (1024, 4096 and 16384
tokens in the first stage).

Usage:
    python -m benchmarks.razor_tradeoff [--iters 600] [--ratios 0,0.15,0.25,0.5,1] [--window 7]

Prints a markdown table (the numbers of ``docs/razor.md``). Not part of the tests.
"""
import argparse
import copy
import os
import sys
import tempfile

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.mixers import peak_memory, time_call  # noqa: E402
from plugins.datasets.segmentation_demo import (ADE_IDS, SCENE_CLASSES,  # noqa: E402
                                                make_ade20k_demo)
from plugins.backbones.mixerformer import MixerFormer  # noqa: E402
from plugins.mixers.global_attention import GlobalSelfAttention  # noqa: E402
from plugins.mixers.razor import RazorAttention, compress_model  # noqa: E402

MEAN = np.array([123.675, 116.28, 103.53], np.float32)
STD = np.array([58.395, 57.12, 57.375], np.float32)


ARCH = dict(depths=[1, 1, 2, 1], embed_dims=[32, 64, 128, 256])  # heads: dim // 32 = 1, 2, 4, 8


class DemoSegmenter(nn.Module):
    """MixerFormer with ``GlobalSelfAttention`` in every block (19 heads over 5 blocks), the four
    stage outputs projected to 64 channels, up-sampled to stride 4 and summed, a 1x1 classifier,
    bilinear up-sampling to the image."""

    def __init__(self, num_classes=len(SCENE_CLASSES), width=64):
        super().__init__()
        self.backbone = MixerFormer(ARCH, mixers=dict(type='GlobalSelfAttention'))
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in ARCH['embed_dims'])
        self.classifier = nn.Sequential(nn.GroupNorm(1, width), nn.GELU(),
                                        nn.Conv2d(width, num_classes, 1))

    def forward(self, img):
        feats = self.backbone(img)
        size = feats[0].shape[-2:]
        y = sum(F.interpolate(lat(f), size=size, mode='bilinear', align_corners=False)
                for lat, f in zip(self.lateral, feats))
        return F.interpolate(self.classifier(y), size=img.shape[-2:], mode='bilinear',
                             align_corners=False)


def load_split(root, split):
    """Images ``(N, 3, H, W)`` normalised, labels ``(N, H, W)`` in 0..5, 255 = ignore."""
    lut = np.full(256, 255, np.uint8)
    for i, name in enumerate(SCENE_CLASSES):
        lut[ADE_IDS[name]] = i
    names = sorted(os.listdir(os.path.join(root, 'images', split)))
    imgs, labels = [], []
    for name in names:
        img = cv2.imread(os.path.join(root, 'images', split, name))[:, :, ::-1].astype(np.float32)
        ann = cv2.imread(os.path.join(root, 'annotations', split, name[:-4] + '.png'),
                         cv2.IMREAD_GRAYSCALE)
        imgs.append(((img - MEAN) / STD).transpose(2, 0, 1))
        labels.append(lut[ann])
    return torch.from_numpy(np.stack(imgs)), torch.from_numpy(np.stack(labels)).long()


def train(model, imgs, labels, iters, batch=8, lr=2e-3, log=print):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=iters, pct_start=0.1)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for it in range(iters):
        idx = torch.randint(0, len(imgs), (batch,), generator=gen)
        x, y = imgs[idx], labels[idx]
        if torch.rand((), generator=gen) < 0.5:
            x, y = x.flip(-1), y.flip(-1)
        loss = F.cross_entropy(model(x), y, ignore_index=255)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (it + 1) % 100 == 0:
            log(f'  iter {it + 1}: loss {loss.item():.3f}')
    return model.eval()


@torch.no_grad()
def miou(model, imgs, labels, batch=8):
    """mIoU (%) and aAcc (%) with mmseg's ``IoUMetric`` arithmetic over the six classes."""
    from mmseg.evaluation.metrics import IoUMetric
    n = len(SCENE_CLASSES)
    totals = [torch.zeros(n, dtype=torch.float64) for _ in range(4)]
    for s in range(0, len(imgs), batch):
        pred = model(imgs[s:s + batch]).argmax(1)
        for p, y in zip(pred, labels[s:s + batch]):
            for t, a in zip(totals, IoUMetric.intersect_and_union(p, y, n, 255)):
                t += a.double()
    res = IoUMetric.total_area_to_metrics(*totals, metrics=['mIoU'])
    return 100 * float(np.nanmean(res['IoU'])), 100 * float(res['aAcc'])


def cost(model, size):
    """Inference time (ms) and peak tensor memory (MB) of one ``size x size`` image."""
    x = torch.randn(1, 3, size, size)

    def run():
        with torch.no_grad():
            model(x)
    return time_call(run, budget_s=2.0), peak_memory(run)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--iters', type=int, default=600)
    parser.add_argument('--ratios', default='0,0.15,0.25,0.5,1')
    parser.add_argument('--window', type=int, default=7)
    parser.add_argument('--sizes', default='128,256,512')
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as root:
        make_ade20k_demo(root, seed=0)
        train_x, train_y = load_split(root, 'training')
        val_x, val_y = load_split(root, 'validation')
    model = DemoSegmenter()
    heads = sum(m.num_heads for m in model.modules() if isinstance(m, GlobalSelfAttention))
    print(f'training MixerFormer {ARCH} with GlobalSelfAttention ({heads} heads, '
          f'{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters) for {args.iters} '
          f'iters on {len(train_x)} demo images')
    model = train(model, train_x, train_y, args.iters)
    sizes = [int(s) for s in args.sizes.split(',')]
    header = ['model', 'global heads', 'val mIoU', 'aAcc'] + \
        [f'{s}px ms / MB' for s in sizes]
    rows = []

    def report(name, mdl, heads):
        m, acc = miou(mdl, val_x, val_y)
        costs = [cost(mdl, s) for s in sizes]
        rows.append([name, heads, f'{m:.2f}', f'{acc:.2f}'] +
                    [f'{t:.1f} / {mb:.1f}' for t, mb in costs])
        print('| ' + ' | '.join(rows[-1]) + ' |')

    print('| ' + ' | '.join(header) + ' |\n|' + '---|' * len(header))
    report('global attention', model, f'{heads} / {heads}')
    calib = [train_x[i:i + 4] for i in range(0, 16, 4)]
    for ratio in (float(r) for r in args.ratios.split(',')):
        compressed = copy.deepcopy(model)
        chosen = compress_model(compressed, calib, ratio, args.window)
        kept = sum(len(h) for h in chosen.values())
        assert all(not isinstance(m, GlobalSelfAttention) for m in compressed.modules())
        print(f'  ratio {ratio:g}: global heads per block {chosen}')
        report(f'Razor r={ratio:g}, window {args.window}', compressed, f'{kept} / {heads}')
    return rows


if __name__ == '__main__':
    main()
