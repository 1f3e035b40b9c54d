"""The segmentor, the converter, the pipeline and metric on small clouds."""
import numpy as np
import pytest
import torch
from mmengine.registry import MODELS, TRANSFORMS

from plugins.tasks.pointcloud.reference import condaformer_presets
from plugins.utils.converters import CONVERTERS

TINY = dict(voxel_size=0.1, window_size=4, quant_size=0.5, enc_channels=[24, 48],
            enc_depths=[2, 1], dec_channels=[24, 24], dec_depths=[1, 0])


def tiny_model(num_classes=4):
    return MODELS.build(dict(
        type='PointCloudSegmentor',
        backbone=dict(type='ConDaFormer', arch=TINY, in_channels=6, base_channels=24, head_dim=8),
        head=dict(type='PointSegHead', num_classes=num_classes))).eval()


def cloud(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    coord = torch.rand(n, 3, generator=g) * 2
    return dict(coord=coord, grid_coord=torch.floor(coord / 0.1).long(),
                feat=torch.randn(n, 6, generator=g))


def unique_cloud(n, seed=0):
    c = cloud(n, seed)
    _, first = np.unique(c['grid_coord'].numpy(), axis=0, return_index=True)
    return {k: v[torch.from_numpy(np.sort(first))] for k, v in c.items()}


def logits(model, clouds):
    data = model.data_preprocessor(dict(inputs=clouds), False)
    with torch.no_grad():
        return model(**data, mode='tensor')


def test_permuting_the_input_points_permutes_the_output():
    model = tiny_model()
    c = unique_cloud(300)
    perm = torch.randperm(len(c['coord']))
    out = logits(model, [c])
    out_p = logits(model, [{k: v[perm] for k, v in c.items()}])
    torch.testing.assert_close(out_p, out[perm], atol=1e-4, rtol=1e-4)


def test_one_point_duplicate_points_and_sparse_windows_work_in_train_and_eval():
    model = tiny_model()
    one = cloud(1)
    dup = cloud(50, 3)
    dup = {k: torch.cat([v, v[:10]]) for k, v in dup.items()}  # ten points twice
    far = cloud(4, 4)
    far['coord'] = far['coord'] * 40  # every point alone in its windows
    far['grid_coord'] = torch.floor(far['coord'] / 0.1).long()
    out = logits(model, [one, dup, far])
    assert out.shape == (1 + 60 + 4, 4) and torch.isfinite(out).all()
    n = len(dup['coord'])
    torch.testing.assert_close(out[1 + n - 10:1 + n], out[1:11])  # duplicates agree
    model.train()
    data = model.data_preprocessor(dict(inputs=[one, dup, far]), True)
    from mmengine.structures import BaseDataElement
    samples = [BaseDataElement(gt_labels=torch.randint(0, 4, (len(c['coord']),)))
               for c in (one, dup, far)]
    loss = model(data['inputs'], samples, mode='loss')['loss_ce']
    loss.backward()
    assert torch.isfinite(loss)


def official_state_dict(preset: str, num_classes: int, in_channels: int):
    """Key names and shapes of the official pcr model (ConDaFormer-v1m1 / -small-v1m1)."""
    arch = condaformer_presets()[preset]['arch']
    enc, depth = arch['enc_channels'], arch['enc_depths']
    dec, ddepth = arch['dec_channels'], arch['dec_depths']
    base, head_dim, s = 48, 16, len(enc)
    grid_len = int((arch['window_size'] + 1e-4) / arch['quant_size'])
    sd = {}

    def bn(prefix, c):
        sd.update({f'{prefix}.weight': (c,), f'{prefix}.bias': (c,),
                   f'{prefix}.running_mean': (c,), f'{prefix}.running_var': (c,),
                   f'{prefix}.num_batches_tracked': ()})

    def lin(prefix, cin, cout, bias=True):
        sd[f'{prefix}.weight'] = (cout, cin)
        if bias:
            sd[f'{prefix}.bias'] = (cout,)

    def block(prefix, c):
        h = c // head_dim
        sd.update({f'{prefix}.norm1.weight': (c,), f'{prefix}.norm1.bias': (c,),
                   f'{prefix}.norm2.weight': (c,), f'{prefix}.norm2.bias': (c,)})
        for t in 'qkv':
            sd[f'{prefix}.attn.{t}_table'] = (2 * grid_len - 1, 3, h // 3, head_dim)
        lin(f'{prefix}.attn.qkv', c, 3 * c)
        lin(f'{prefix}.attn.proj', c, c)
        for post in ('', '_post'):
            sd[f'{prefix}.attn.conv_1{post}.0.weight'] = (c // 2, 1, 1, 1, c)
            bn(f'{prefix}.attn.conv_1{post}.1', c // 2)
            sd[f'{prefix}.attn.conv_3{post}.0.weight'] = (c, 3, 3, 3, 1)
            bn(f'{prefix}.attn.conv_3{post}.1', c)
            lin(f'{prefix}.attn.conv_3{post}.3', c, c // 2)
            bn(f'{prefix}.attn.conv_3{post}.4', c // 2)
        lin(f'{prefix}.mlp.fc1', c, 4 * c)
        lin(f'{prefix}.mlp.fc2', 4 * c, c)

    sd['stem.0.weight'] = (base, 3, 3, 3, in_channels)
    bn('stem.1', base)
    for i in (1, 2):
        sd[f'stem.3.conv{i}.weight'] = (base, 3, 3, 3, base)
        bn(f'stem.3.bn{i}', base)
    prev = base
    for i in range(s):
        sd.update({f'pool{i + 1}.norm.weight': (prev,), f'pool{i + 1}.norm.bias': (prev,)})
        lin(f'pool{i + 1}.linear', prev, enc[i], bias=False)
        for j in range(depth[i]):
            block(f'block{i + 1}.{j}', enc[i])
        prev = enc[i]
    skips = [base] + enc[:-1]
    for i in range(s):
        skip = skips[s - 1 - i]
        sd.update({f'unpool{i + 1}.proj.0.weight': (prev,), f'unpool{i + 1}.proj.0.bias': (prev,),
                   f'unpool{i + 1}.proj_skip.0.weight': (skip,),
                   f'unpool{i + 1}.proj_skip.0.bias': (skip,)})
        lin(f'unpool{i + 1}.proj.1', prev, dec[i])
        lin(f'unpool{i + 1}.proj_skip.1', skip, dec[i])
        for j in range(ddepth[i]):
            block(f'block{s + i + 1}.{j}', dec[i])
        prev = dec[i]
    lin('final.0', prev, prev)
    bn('final.1', prev)
    lin('final.3', prev, num_classes)
    return {f'module.{k}': torch.zeros(v, dtype=torch.long if k.endswith('tracked') else
                                       torch.float32) for k, v in sd.items()}


@pytest.mark.parametrize('preset', ['s3dis', 'scannet'])
def test_official_checkpoint_round_trip_loads_every_key(preset, tmp_path):
    ref = condaformer_presets()[preset]
    model = MODELS.build(dict(
        type='PointCloudSegmentor',
        backbone=dict(type='ConDaFormer', arch=preset, in_channels=ref['in_channels']),
        head=dict(type='PointSegHead', num_classes=ref['num_classes'])))
    official = official_state_dict(preset, ref['num_classes'], ref['in_channels'])
    official = {k: torch.randn(v.shape) if v.is_floating_point() else v
                for k, v in official.items()}
    path = tmp_path / 'official.pth'
    torch.save(dict(epoch=1, state_dict=official), path)
    from plugins.utils.checkpoint import load_pretrained
    report = load_pretrained(model, str(path), convert=CONVERTERS['condaformer'])
    assert (report['missing'], report['unexpected'], report['mismatched']) == ([], [], [])
    assert len(report['loaded']) == len(model.state_dict())
    own = model.state_dict()
    assert torch.equal(own['backbone.encoder.0.0.attn.lse_pre.depthwise.weight'],
                       official['module.block1.0.attn.conv_3.0.weight'])
    assert torch.equal(own['head.cls.weight'], official['module.final.3.weight'])
    # converting the toolkit's own keys again changes nothing
    assert list(CONVERTERS['condaformer'](own)) == list(own)


def test_pipeline_grid_sample_test_mode_maps_back_and_metric_counts_all_points():
    rng = np.random.RandomState(0)
    coord = rng.rand(500, 3).astype(np.float32)
    results = dict(coord=coord, color=rng.rand(500, 3).astype(np.float32) * 255,
                   segment=rng.randint(0, 3, 500))
    for t in [dict(type='PointGridSample', voxel_size=0.2, mode='test'),
              dict(type='PointNormalizeColor', mode='unit'), dict(type='PackPointCloudInputs')]:
        results = TRANSFORMS.build(t)(results)
    sample = results['data_samples']
    n_vox = len(results['inputs']['coord'])
    assert n_vox <= 125 and len(sample.inverse) == 500 and len(sample.gt_labels) == 500
    assert (torch.floor(sample.eval_coord / 0.2) ==
            torch.floor(results['inputs']['coord'][sample.inverse] / 0.2)).all()
    from plugins.tasks.pointcloud.metrics import PointCloudIoUMetric
    metric = PointCloudIoUMetric(num_classes=3)
    sample.pred_labels = sample.gt_labels.clone()
    sample.pred_labels[:100] = (sample.pred_labels[:100] + 1) % 3
    metric.process({}, [sample])
    res = metric.compute_metrics(metric.results)
    assert res['OA'] == pytest.approx(0.8)
    assert 0 < res['mIoU'] < res['mAcc'] < 1


@pytest.mark.parametrize('preset', ['scannet', 's3dis', 'demo'])
def test_parameter_counts_match_reference_yaml(preset):
    ref = condaformer_presets()[preset]
    extra = dict(base_channels=24, head_dim=8) if preset == 'demo' else {}
    model = MODELS.build(dict(
        type='PointCloudSegmentor',
        backbone=dict(type='ConDaFormer', arch=preset, in_channels=ref['in_channels'], **extra),
        head=dict(type='PointSegHead', num_classes=ref['num_classes'])))
    assert sum(p.numel() for p in model.parameters()) == ref['params']


def test_grid_coord_follows_points_through_crop_and_shuffle():
    rng = np.random.RandomState(1)
    coord = (rng.rand(3000, 3) * 4).astype(np.float32)
    results = dict(coord=coord, color=rng.rand(3000, 3).astype(np.float32),
                   segment=rng.randint(0, 3, 3000))
    for t in [dict(type='PointGridSample', voxel_size=0.1, mode='train'),
              dict(type='PointSphereCrop', point_max=500), dict(type='PointShuffle')]:
        results = TRANSFORMS.build(t)(results)
    assert len(results['grid_coord']) == len(results['coord']) == 500
    grid = np.floor(results['coord'] / 0.1).astype(np.int64)
    assert (grid - results['grid_coord'] == grid[0] - results['grid_coord'][0]).all()


def test_init_cfg_strict_false_and_copy_reach_the_loader(tmp_path):
    """init_cfg's ``strict`` and ``copy`` were ignored (only ``prefix`` was passed on): S3DIS
    weights could not be fine-tuned on another number of classes, and a named copy was not
    checked."""
    ref = condaformer_presets()['s3dis']
    official = official_state_dict('s3dis', ref['num_classes'], ref['in_channels'])
    path = str(tmp_path / 'model_best.pth')
    torch.save(dict(epoch=1, state_dict=official), path)
    cfg = dict(type='PointCloudSegmentor',
               backbone=dict(type='ConDaFormer', arch='s3dis', in_channels=ref['in_channels']),
               head=dict(type='PointSegHead', num_classes=5))
    from plugins.utils.checkpoint import CheckpointError
    with pytest.raises(CheckpointError, match='other shapes'):
        MODELS.build(dict(cfg, init_cfg=dict(type='Pretrained', checkpoint=path))).init_weights()
    model = MODELS.build(dict(cfg, init_cfg=dict(type='Pretrained', checkpoint=path,
                                                 strict=False)))
    model.init_weights()
    assert torch.equal(model.state_dict()['backbone.stem_conv.weight'],
                       official['module.stem.0.weight'])
    backbone = MODELS.build(dict(cfg['backbone'], init_cfg=dict(
        type='Pretrained', checkpoint=path, copy='state_dict_ema')))
    with pytest.raises(CheckpointError, match="no copy 'state_dict_ema'"):
        backbone.init_weights()


def tta_cloud(n=400, seed=0):
    rng = np.random.RandomState(seed)
    coord = (rng.rand(n, 3) * np.array([2.0, 1.5, 1.0])).astype(np.float32)
    coord[:20] = coord[20:40] + 0.01  # voxels with several points
    return dict(coord=coord, color=rng.rand(n, 3).astype(np.float32),
                segment=rng.randint(0, 4, n))


AUGMENTS = [[], [dict(type='PointRandomRotate', angle=[0.5, 0.5], axis='z', center=[0, 0, 0],
                      p=1), dict(type='PointRandomScale', scale=[0.95, 0.95])]]


def test_test_time_fragments_hold_every_voxel_and_score_every_point():
    cloud = tta_cloud()
    results = TRANSFORMS.build(dict(type='PointTestTimeAug', voxel_size=0.1,
                                    mode='fragments'))(dict(cloud))
    n, views = 400, results['view']
    grid = np.floor(cloud['coord'] / 0.1).astype(np.int64)
    num_voxels = len(np.unique(grid, axis=0))
    counts = np.unique(grid, axis=0, return_counts=True)[1]
    assert views.max() + 1 == counts.max() > 1        # fragment i: the (i mod c)-th point
    for v in range(views.max() + 1):                 # every voxel once in every fragment
        rows = np.nonzero(views == v)[0]
        assert len(np.unique(results['grid_coord'][rows], axis=0)) == len(rows) == num_voxels
    assert np.array_equal(np.unique(results['vote_point']), np.arange(n))
    np.testing.assert_array_equal(results['coord'][results['vote_row']],
                                  cloud['coord'][results['vote_point']])
    assert len(results['segment']) == n and np.array_equal(results['eval_coord'], cloud['coord'])


def test_test_time_augmented_copies_are_voxelised_after_their_transforms():
    cloud = tta_cloud()
    results = TRANSFORMS.build(dict(type='PointTestTimeAug', voxel_size=0.1, augments=AUGMENTS,
                                    mode='first'))(dict(cloud))
    assert results['view'].max() == 1                  # one view per copy in the light mode
    rotated = results['view'][results['vote_row']] == 1
    src = cloud['coord'][results['vote_point'][rotated]]
    got = results['coord'][results['vote_row'][rotated]]
    # x' = -0.95 y, y' = 0.95 x, up to the voxel's first point standing for the others
    np.testing.assert_allclose(got[:, :2], 0.95 * np.stack([-src[:, 1], src[:, 0]], 1),
                               atol=0.1 * np.sqrt(2))
    assert np.array_equal(np.sort(results['vote_point'][rotated]), np.arange(400))


def predict_views(model, results, per_batch):
    packed = TRANSFORMS.build(dict(type='PackPointCloudInputs'))(dict(results))
    model.test_cfg = dict(views_per_batch=per_batch)
    data = model.data_preprocessor(dict(inputs=[packed['inputs']],
                                        data_samples=[packed['data_samples']]))
    with torch.no_grad():
        return model(**data, mode='predict')[0].pred_labels


def test_view_predictions_sum_the_softmax_of_every_view_as_the_official_tester():
    model = tiny_model()
    results = TRANSFORMS.build(dict(type='PointTestTimeAug', voxel_size=0.1, augments=AUGMENTS,
                                    mode='fragments'))(tta_cloud())
    feat = np.concatenate([results['coord'], results['color']], 1)
    score = torch.zeros(400, 4)
    for v in np.unique(results['view']):   # each view alone, as a cloud of its own
        rows = np.nonzero(results['view'] == v)[0]
        one = dict(coord=torch.from_numpy(results['coord'][rows]),
                   grid_coord=torch.from_numpy(results['grid_coord'][rows]),
                   feat=torch.from_numpy(feat[rows]).float())
        prob = logits(model, [one]).softmax(1)
        votes = np.isin(results['vote_row'], rows)
        local = np.searchsorted(rows, results['vote_row'][votes])
        score.index_add_(0, torch.from_numpy(results['vote_point'][votes]),
                         prob[torch.from_numpy(local)])
    want = score.argmax(1)
    assert torch.equal(predict_views(model, results, 1), want)
    assert torch.equal(predict_views(model, results, 3), want)


def test_light_test_mode_gives_every_point_its_voxel_prediction():
    model = tiny_model()
    cloud = tta_cloud()
    light = TRANSFORMS.build(dict(type='PointTestTimeAug', voxel_size=0.1, mode='first'))(
        dict(cloud))
    assert len(light['coord']) == len(np.unique(np.floor(cloud['coord'] / 0.1), axis=0))
    pred = predict_views(model, light, 4)
    one = dict(coord=torch.from_numpy(light['coord']),
               grid_coord=torch.from_numpy(light['grid_coord']),
               feat=torch.from_numpy(np.concatenate([light['coord'], light['color']], 1)))
    per_voxel = logits(model, [one]).argmax(1)
    order = np.argsort(light['vote_point'])
    assert torch.equal(pred, per_voxel[torch.from_numpy(light['vote_row'][order])])
