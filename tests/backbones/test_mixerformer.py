"""MixerFormer: PoolFormer's presets and release, every registered mixer in it, mixers by config."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from plugins.backbones.mixerformer import MixerFormer, registered_mixers
from plugins.backbones.reference import reference_numbers
from plugins.mixers.neighborhood import NeighborhoodAttention2d
from plugins.mixers.pooling import PoolingMixer
from plugins.mixers.window import ShiftedWindowAttention
from plugins.utils.checkpoint import load_pretrained
from plugins.utils.converters import get_converter
from tools.analysis.mixer_status import SMALL_ARCH, check_mixer
from plugins.utils.tools import build_runner
from tests.demo_step import demo_step_config, unformatted_config_text
from .contract import ROOT, check_official_layout_loads, check_output_shapes

# sail-sg/poolformer models/poolformer.py: poolformer_{s12,s24,s36,m36,m48} (layers, embed_dims)
POOLFORMER = {
    's12': ([2, 2, 6, 2], [64, 128, 320, 512]),
    's24': ([4, 4, 12, 4], [64, 128, 320, 512]),
    's36': ([6, 6, 18, 6], [64, 128, 320, 512]),
    'm36': ([6, 6, 18, 6], [96, 192, 384, 768]),
    'm48': ([8, 8, 24, 8], [96, 192, 384, 768]),
}


def num_params(module):
    return sum(p.numel() for p in module.parameters())


def official_poolformer_state_dict(layers, dims, fork_feat=False, device=None):
    """The tensors of sail-sg/poolformer's ``PoolFormer`` under their official names, with random
    values (written from the official ``__init__``: ``patch_embed`` 7x7/4, ``network`` = stage
    blocks at even indices and 3x3/2 ``PatchEmbed`` down-samplings at odd ones, MLP ratio 4; then
    ``norm`` + ``head`` (ImageNet) or ``norm0/2/4/6`` (``fork_feat``, the dense backbones))."""
    state = {}

    def put(key, *shape):
        state[key] = (torch.empty(*shape, device='meta') if device == 'meta'
                      else torch.randn(*shape) * 0.2)

    put('patch_embed.proj.weight', dims[0], 3, 7, 7)
    put('patch_embed.proj.bias', dims[0])
    index = 0
    for i, (depth, dim) in enumerate(zip(layers, dims)):
        for j in range(depth):
            p = f'network.{index}.{j}.'
            for norm in ('norm1', 'norm2'):
                put(p + norm + '.weight', dim)
                put(p + norm + '.bias', dim)
            put(p + 'mlp.fc1.weight', 4 * dim, dim, 1, 1)
            put(p + 'mlp.fc1.bias', 4 * dim)
            put(p + 'mlp.fc2.weight', dim, 4 * dim, 1, 1)
            put(p + 'mlp.fc2.bias', dim)
            put(p + 'layer_scale_1', dim)
            put(p + 'layer_scale_2', dim)
        if i + 1 < len(layers):
            put(f'network.{index + 1}.proj.weight', dims[i + 1], dim, 3, 3)
            put(f'network.{index + 1}.proj.bias', dims[i + 1])
        index += 2
    if fork_feat:
        for i, dim in enumerate(dims):
            put(f'norm{2 * i}.weight', dim)
            put(f'norm{2 * i}.bias', dim)
    else:
        put('norm.weight', dims[-1])
        put('norm.bias', dims[-1])
        put('head.weight', 1000, dims[-1])
        put('head.bias', 1000)
    return state


def poolformer_features(state, layers, x):
    """PoolFormer's dense-prediction forward (``fork_feat``) written from the paper's equations
    with the official tensors: GroupNorm(1), ``AvgPool3x3(x) - x``, 1x1-conv MLP, layer scale."""
    gn = lambda t, key: F.group_norm(t, 1, state[key + '.weight'], state[key + '.bias'])  # noqa
    x = F.conv2d(x, state['patch_embed.proj.weight'], state['patch_embed.proj.bias'], 4, 2)
    outs = []
    for i, depth in enumerate(layers):
        if i:
            p = f'network.{2 * i - 1}.proj.'
            x = F.conv2d(x, state[p + 'weight'], state[p + 'bias'], 2, 1)
        for j in range(depth):
            p = f'network.{2 * i}.{j}.'
            y = gn(x, p + 'norm1')
            y = F.avg_pool2d(y, 3, 1, 1, count_include_pad=False) - y
            x = x + state[p + 'layer_scale_1'].view(-1, 1, 1) * y
            y = F.conv2d(gn(x, p + 'norm2'), state[p + 'mlp.fc1.weight'], state[p + 'mlp.fc1.bias'])
            y = F.conv2d(F.gelu(y), state[p + 'mlp.fc2.weight'], state[p + 'mlp.fc2.bias'])
            x = x + state[p + 'layer_scale_2'].view(-1, 1, 1) * y
        outs.append(gn(x, f'norm{2 * i}'))
    return outs


# ---- PoolFormer: presets, counts, release -----------------------------------------------------
@pytest.mark.parametrize('arch', sorted(POOLFORMER))
def test_parameter_counts_equal_poolformer(arch):
    layers, dims = POOLFORMER[arch]
    official = official_poolformer_state_dict(layers, dims, device='meta')
    official_feat = official_poolformer_state_dict(layers, dims, fork_feat=True, device='meta')
    with torch.device('meta'):
        classifier_like = MixerFormer(arch, out_indices=(3, ))  # + a 1000-class linear head
        dense = MixerFormer(arch)
    head = 1000 * dims[-1] + 1000
    assert num_params(classifier_like) + head == sum(v.numel() for v in official.values())
    assert num_params(dense) == sum(v.numel() for v in official_feat.values())
    ref = reference_numbers('MixerFormer', arch)
    assert num_params(classifier_like) + head == ref['official_params']
    assert round(ref['official_params'] / 1e6, 1) == ref['params_m']


def test_official_dense_release_gives_poolformers_features(tmp_path):
    layers, dims = [1, 2, 1, 1], [16, 32, 48, 64]
    arch = dict(depths=layers, embed_dims=dims)
    official = official_poolformer_state_dict(layers, dims, fork_feat=True)
    path = tmp_path / 'poolformer_feat.pth'
    torch.save(dict(state_dict=official), path)
    model = MixerFormer(arch, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        for ours, ref in zip(model.eval()(x), poolformer_features(official, layers, x)):
            torch.testing.assert_close(ours, ref)


def test_official_imagenet_release_loads_all_but_the_classifier(tmp_path):
    layers, dims = POOLFORMER['s12']
    path = tmp_path / 'poolformer_s12.pth.tar'
    torch.save(dict(model=official_poolformer_state_dict(layers, dims)), path)
    report = load_pretrained(MixerFormer('s12'), str(path), convert=get_converter('mixerformer'))
    assert sorted(report['unexpected']) == ['head.bias', 'head.weight', 'norm.bias', 'norm.weight']
    assert sorted(report['missing']) == sorted(f'stages.{i}.norm.{n}' for i in range(4)
                                               for n in ('weight', 'bias'))
    assert not report['mismatched']


def test_toolkit_checkpoint_round_trips(tmp_path):
    def make(**kwargs):
        return MixerFormer(dict(depths=[1, 1, 1, 1], embed_dims=[16, 32, 48, 64]), **kwargs)
    check_official_layout_loads(make, lambda m: m.state_dict(), tmp_path)


def test_presets_have_poolformers_layer_scale_and_heads_of_dim_32():
    with torch.device('meta'):
        s12, m36 = MixerFormer('s12'), MixerFormer('m36')
    assert s12.arch_settings['layer_scale_init'] == 1e-5
    assert m36.arch_settings['layer_scale_init'] == 1e-6
    assert s12.arch_settings['num_heads'] == [2, 4, 10, 16]
    assert m36.arch_settings['num_heads'] == [3, 6, 12, 24]
    assert isinstance(s12.stages[2].blocks[5].token_mixer, PoolingMixer)


# ---- every registered mixer ----------------------------------------------------------------
@pytest.mark.parametrize('name', sorted(registered_mixers()))
def test_registered_mixer_runs_in_mixerformer(name):
    """97x131 train forward + backward (every mixer parameter gets a gradient) and 192x320
    inference, outputs of ceil(H / stride): the check behind docs/mixer-status.json."""
    result = check_mixer(name)
    assert result['status'] == 'pass', result['reason']


def test_registry_discovery_finds_the_toolkit_mixers():
    mixers = registered_mixers()
    assert {'PoolingMixer', 'NeighborhoodAttention2d', 'BiLevelRoutingAttention'} <= set(mixers)
    assert 'MixerFormer' not in mixers and 'ECABlock' not in mixers


def test_mask_rcnn_demo_step_trains_the_mixer_and_logs_its_auxiliary_loss(demo_root, tmp_path):
    """One Mask R-CNN iteration of a demo config through its runner, the mixer swapped to routing
    attention by cfg-options (narrow stages: the demo configs' own step runs in
    test_demo_configs.py): every mixer parameter gets a gradient, and the commitment loss (added
    by the configs' AuxiliaryLossHook) is in the logged losses."""
    config = 'configs/mixerformer/mask-rcnn_mixerformer-s12-pooling_fpn_demo-coco.py'
    cfg = demo_step_config(config, demo_root, tmp_path, cfg_options={
        'model.backbone.mixers.type': 'RoutingAttention',
        'model.backbone.arch': dict(SMALL_ARCH, _delete_=True),
        'model.neck.in_channels': SMALL_ARCH['embed_dims']})
    with unformatted_config_text():
        runner = build_runner(cfg)
        mixer_params = {n: p for n, p in runner.model.backbone.named_parameters()
                        if '.token_mixer.' in n}
        reached = set()
        for name, param in mixer_params.items():
            param.register_post_accumulate_grad_hook(lambda p, name=name: reached.add(name))
        runner.train()
    assert mixer_params and reached == set(mixer_params)
    assert runner.message_hub.get_scalar('train/loss_commitment').current() > 0


# ---- mixers by config ------------------------------------------------------------------------
def test_one_mixer_per_stage_and_a_cycle_within_a_stage():
    window = [dict(type='ShiftedWindowAttention', window_size=4),
              dict(type='ShiftedWindowAttention', window_size=4, shift_size=2)]
    model = MixerFormer(dict(depths=[1, 1, 3, 1], embed_dims=[16, 32, 48, 64]), mixers=[
        dict(type='PoolingMixer', pool_size=5), dict(type='NeighborhoodAttention2d',
                                                     kernel_size=5),
        window, dict(type='GlobalSelfAttention')])
    mixers = [[b.token_mixer for b in stage.blocks] for stage in model.stages]
    assert mixers[0][0].pool_size == 5
    assert isinstance(mixers[1][0], NeighborhoodAttention2d) and mixers[1][0].num_heads == 1
    assert [m.shift_size for m in mixers[2]] == [(0, 0), (2, 2), (0, 0)]
    assert all(isinstance(m, ShiftedWindowAttention) for m in mixers[2])
    check_output_shapes(model, (45, 70))


def test_heads_come_from_the_arch_unless_the_mixer_config_sets_them():
    arch = dict(depths=[1, 1, 1, 1], embed_dims=[32, 64, 96, 128])
    model = MixerFormer(arch, mixers=dict(type='GlobalSelfAttention'))
    assert [s.blocks[0].token_mixer.num_heads for s in model.stages] == [1, 2, 3, 4]
    model = MixerFormer(arch, mixers=dict(type='GlobalSelfAttention', num_heads=8))
    assert [s.blocks[0].token_mixer.num_heads for s in model.stages] == [8, 8, 8, 8]


def test_swapping_the_mixer_by_cfg_options():
    cfg = Config.fromfile(osp.join(ROOT, 'configs/mixerformer/'
                                         'mask-rcnn_mixerformer-s12-pooling_fpn_1x_coco.py'))
    cfg.merge_from_dict({'model.backbone.mixers.type': 'HaloAttention',
                         'model.backbone.mixers.block_size': 4})
    backbone_cfg = dict(cfg.model.backbone, init_cfg=None)
    with torch.device('meta'):
        from plugins.registry import MODELS
        backbone = MODELS.build(backbone_cfg)
    mixer = backbone.stages[3].blocks[1].token_mixer
    assert type(mixer).__name__ == 'HaloAttention' and mixer.block_size == 4


# ---- particular to MixerFormer (the contract: tests/backbones/test_contract.py) ---------------
def test_bad_configs_are_clear_errors():
    with pytest.raises(KeyError, match='nearest'):
        MixerFormer(SMALL_ARCH, mixers=dict(type='NeighbourhoodAttention2d'))
    with pytest.raises(ValueError, match='list of 4 entries'):
        MixerFormer(SMALL_ARCH, mixers=[dict(type='PoolingMixer')] * 3)
    with pytest.raises(ValueError, match='must not set dim'):
        MixerFormer(SMALL_ARCH, mixers=dict(type='PoolingMixer', dim=8))
    with pytest.raises(ValueError, match='stage 0 block 0: building mixer'):
        MixerFormer(SMALL_ARCH, mixers=dict(type='GlobalSelfAttention', num_heads=5))
    with pytest.raises(TypeError, match='stage 0 block 0'):
        MixerFormer(SMALL_ARCH, mixers=dict(type='PoolingMixer', window=3))
    with pytest.raises(ValueError, match='one value per stage'):
        MixerFormer(dict(depths=[1, 1], embed_dims=[16, 32, 48]))


def test_a_mixer_that_changes_the_shape_is_refused():
    model = MixerFormer(SMALL_ARCH)
    model.stages[0].blocks[0].token_mixer = torch.nn.Conv2d(16, 16, 3)  # no padding
    with pytest.raises(ValueError, match='a mixer must keep'):
        model(torch.randn(1, 3, 64, 64))
