"""Every preset's official release layout loads into the toolkit's preset: built independently.

``tests/data/official_keys/<arch>.json.gz`` records, for every preset, the key names and shapes of
the state dict of the official model (built from the official repository named in the file, at
the commit named there; HaloNet from timm), and how the release wraps its weights: the copies its
training code saves and the one its evaluation loads. They are facts read off the official code,
not made from the toolkit's models, so a preset built unlike the official one (DiNAT-Small's layer
scales) shows here as keys that are missing, unused or of other shapes.
"""
import argparse
import functools
import gzip
import json
import os
import os.path as osp

import pytest
import torch

from plugins.registry import MODELS
from plugins.utils.checkpoint import compare_state, guess_preset

DATA = osp.join(osp.dirname(__file__), 'data', 'official_keys')
ARCHITECTURES = ('VAN', 'BiFormer', 'NAT', 'DiNAT', 'HaloNet', 'FaViT', 'DaViT', 'L2ViT',
                 'InLinePVT', 'InLineSwin', 'STViT', 'SGFormer', 'MixerFormer', 'CATANet',
                 'DLGSANet', 'ConViT', 'TNT', 'PyramidTNT', 'HyenaViT', 'RaftMLP')


@functools.lru_cache()
def manifest(arch: str) -> dict:
    with gzip.open(osp.join(DATA, f'{arch.lower()}.json.gz'), 'rt') as f:
        return json.load(f)


def presets(arch: str) -> list:
    return list(manifest(arch)['presets'])


def build(arch: str, preset: str, **kwargs):
    """The toolkit's module of a recorded preset (SR presets name the scale: 'x2', 'tiny-x3')."""
    cls = MODELS.get(arch)
    if arch == 'CATANet':
        return cls(upscale=int(preset[1:]), **kwargs)
    if arch == 'DLGSANet':
        name, scale = preset.split('-x')
        return cls(name, upscale=int(scale), **kwargs)
    return cls(preset, **kwargs)


def official_tensors(arch: str, preset: str, make=torch.empty) -> dict:
    """The recorded state dict, as tensors of the recorded shapes and dtypes made by ``make``;
    the names of one tensor (``tied``: HyenaND's filter activation shared by its layers) hold one
    tensor, as in the official state dict."""
    record = manifest(arch)['presets'][preset]
    out = {}
    for key, shape, *dtype in record['keys']:
        out[key] = make(shape, dtype=getattr(torch, dtype[0]) if dtype else torch.float32)
    for first, *others in record.get('tied', []):
        out.update((k, out[first]) for k in others)
    return out


HEAD = {'head.weight', 'head.bias'}
FINAL_NORM = {'norm.weight', 'norm.bias'}
BATCH_NORM = {'norm.weight', 'norm.bias', 'norm.running_mean', 'norm.running_var',
              'norm.num_batches_tracked'}
#: What each release holds beside the toolkit's module: the classifier (its final norm included
#: where it normalises the pooled or last map, which the official detection / segmentation
#: backbones do not load either).
BESIDE = dict(VAN=HEAD, FaViT=HEAD, InLinePVT=HEAD, SGFormer=HEAD, BiFormer=HEAD | BATCH_NORM,
              NAT=HEAD | FINAL_NORM, DiNAT=HEAD | FINAL_NORM, L2ViT=HEAD | FINAL_NORM,
              InLineSwin=HEAD | FINAL_NORM, MixerFormer=HEAD | FINAL_NORM,
              DaViT=HEAD | {'norms.weight', 'norms.bias'},
              HaloNet={'head.fc.weight', 'head.fc.bias'},
              STViT=HEAD | BATCH_NORM | {'proj.weight', 'proj.bias'},
              CATANet=set(), DLGSANet=set(), ConViT=HEAD, TNT=HEAD, PyramidTNT=HEAD,
              HyenaViT=HEAD,
              RaftMLP={'heads.0.1.weight', 'heads.0.1.bias', 'classifier.weight',
                       'classifier.bias'})
#: Backbones whose classification model has no per-stage output norms: the toolkit's four (for
#: dense tasks) are not in the release and stay at their initialisation, as in the official
#: detection / segmentation code.
WITHOUT_OUTPUT_NORMS = {'BiFormer', 'NAT', 'DiNAT', 'DaViT', 'L2ViT', 'InLineSwin', 'MixerFormer'}


def expected_missing(arch: str) -> set:
    if arch not in WITHOUT_OUTPUT_NORMS:
        return set()
    return {f'stages.{i}.norm.{w}' for i in range(4) for w in ('weight', 'bias')}


def meta_report(arch: str, model_preset: str, file_preset: str):
    with torch.device('meta'):
        model = build(arch, model_preset)
        state = model.convert_checkpoint(official_tensors(arch, file_preset))
    own = {k: v.shape for k, v in model.state_dict().items()}
    return model, state, compare_state(own, state)


def test_every_architecture_and_preset_has_a_recorded_layout():
    assert sorted(a.lower() for a in ARCHITECTURES) == sorted(
        f[:-len('.json.gz')] for f in os.listdir(DATA) if f.endswith('.json.gz'))
    for arch in ARCHITECTURES:
        record = manifest(arch)
        assert record['architecture'] == arch and record['source']
        assert record['release']['evaluated'] in record['release']['copies'] + [None]


@pytest.mark.parametrize('arch,preset', [(a, p) for a in ARCHITECTURES for p in presets(a)])
def test_the_official_layout_of_every_preset_loads_completely(arch, preset):
    _, _, report = meta_report(arch, preset, preset)
    assert report['mismatched'] == []
    assert report['extra_blocks'] == report['absent_blocks'] == []
    assert set(report['unexpected']) == BESIDE[arch]
    assert set(report['missing']) == expected_missing(arch)


@pytest.mark.parametrize('arch', ARCHITECTURES)
def test_the_official_file_of_another_preset_does_not_fit_and_its_preset_is_named(arch):
    """The largest preset's file into the smallest preset (the SR networks: another scale)."""
    file_preset, model_preset = presets(arch)[-1], presets(arch)[0]
    model, state, report = meta_report(arch, model_preset, file_preset)
    assert report['mismatched'] or report['extra_blocks'] or report['absent_blocks']
    zoo = getattr(type(model), 'arch_zoo', {})
    if file_preset in zoo:
        assert zoo[guess_preset(model, state)] == zoo[file_preset]


#: (official key, toolkit key, rows of the official tensor) per architecture, read off the two
#: codes by hand: where a released tensor must arrive, independently of the converter.
PLACES = dict(
    VAN=[('block3.4.attn.spatial_gating_unit.conv_spatial.weight',
          'stages.2.blocks.4.attn.lka.dw_dilated_conv.weight', None),
         ('norm2.weight', 'stages.1.norm.weight', None)],
    BiFormer=[('stages.2.3.attn.qkv.qkv.weight', 'stages.2.blocks.3.attn.qkv.qkv.weight', None),
              ('stages.2.3.mlp.3.weight', 'stages.2.blocks.3.mlp.fc2.weight', None),
              ('downsample_layers.1.1.running_var', 'stages.1.downsample.1.running_var', None)],
    NAT=[('levels.2.blocks.5.attn.rpb', 'stages.2.blocks.5.attn.rpb', None),
         ('levels.1.downsample.reduction.weight', 'stages.2.downsample.reduction.weight', None)],
    DiNAT=[('levels.2.blocks.5.attn.rpb', 'stages.2.blocks.5.attn.rpb', None),
           ('patch_embed.proj.1.weight', 'stages.0.downsample.proj.1.weight', None)],
    HaloNet=[('stages.3.0.self_attn.pos_embed.height_rel',
              'stages.3.blocks.0.self_attn.pos_embed.height_rel', None),
             ('stem.conv2.bn.running_mean', 'stages.0.stem.conv2.bn.running_mean', None)],
    FaViT=[('block2.1.attn.single_heads.1.weight', 'stages.1.blocks.1.attn.single_heads.1.weight',
            None),
           ('block2.1.mlp.dwconv.dwconv.weight', 'stages.1.blocks.1.mlp.dwconv.weight', None)],
    DaViT=[('main_blocks.2.1.0.cpe.1.proj.weight', 'stages.2.blocks.1.0.cpe2.proj.weight', None),
           ('patch_embeds.2.norm.weight', 'stages.2.downsample.norm.weight', None)],
    L2ViT=[('stages.2.1.local_mp.conv1.weight', 'stages.2.blocks.1.attn.lcm.conv1.weight', None),
           ('stages.2.1.norm3.weight', 'stages.2.blocks.1.attn.lcm_norm.weight', None),
           ('downsample_layers.0.proj.proj.4.running_mean',
            'stages.0.downsample.proj.4.running_mean', None)],
    InLinePVT=[('block2.1.attn.kv.weight', 'stages.1.blocks.1.attn.kv.weight', None),
               ('pos_embed3', 'stages.2.pos_embed', None)],
    InLineSwin=[('layers.1.blocks.0.attn.qkv.weight', 'stages.1.blocks.0.attn.q.weight',
                 slice(0, 192)),
                ('layers.1.blocks.0.attn.qkv.weight', 'stages.1.blocks.0.attn.kv.weight',
                 slice(192, 576)),
                ('layers.0.downsample.reduction.weight', 'stages.1.downsample.reduction.weight',
                 None)],
    STViT=[('layers.2.blocks.1.attn.stoken_refine.qkv.weight',
            'stages.2.blocks.1.attn.stoken_refine.qkv.weight', None),
           ('layers.2.blocks.1.mlp2.conv.conv.weight', 'stages.2.blocks.1.mlp.conv.conv.weight',
            None),
           ('layers.1.downsample.proj.0.weight', 'stages.2.downsample.proj.0.weight', None)],
    SGFormer=[('pos_embed', 'stages.0.pos_embed', None),
              ('patch_embed2.conv2.bn.weight', 'stages.1.patch_embed.conv2.norm.weight', None),
              ('block2.1.attn.f2.weight', 'stages.1.blocks.1.attn.f2.weight', None)],
    MixerFormer=[('network.4.1.mlp.fc1.weight', 'stages.2.blocks.1.mlp.fc1.weight', None),
                 ('network.3.proj.weight', 'stages.2.patch_embed.proj.weight', None)],
    CATANet=[('blocks.3.0.means', 'blocks.3.tab.centers', None),
             ('blocks.3.1.layer.0.fn.to_q.weight', 'blocks.3.lrsa.to_q.weight', None),
             ('mid_convs.3.weight', 'blocks.3.conv.weight', None)],
    DLGSANet=[('deep_feature_extraction.1.body.0.IDynamicDWConv.conv.conv2.0.weight',
               'groups.1.layers.0.mhdlsa.dynamic.to_kernel.weight', None),
              ('deep_feature_extraction.1.body.1.restormer_attn.temperature',
               'groups.1.layers.1.attn.temperature', None),
              ('overlap_embed.0.proj.weight', 'conv_first.weight', None)],
    ConViT=[('blocks.4.attn.pos_proj.weight', 'stages.1.blocks.1.attn.pos_proj.weight', None),
            ('blocks.10.attn.qkv.weight', 'stages.3.blocks.1.attn.qkv.weight', None),
            ('cls_token', 'stages.3.cls_token', None)],
    TNT=[('blocks.7.inner_attn.qk.weight', 'stages.2.blocks.1.inner_attn.qk.weight', None),
         ('blocks.11.proj.weight', 'stages.3.blocks.2.proj.weight', None),
         ('inner_pos', 'stages.0.embed.inner_pos', None)],
    PyramidTNT=[('word_merges.0.conv.0.weight', 'stages.1.word_merge.conv.weight', None),
                ('stages.1.relative_pos', 'stages.1.relative_pos', None),
                ('stages.1.blocks.0.inner_attn.kv.weight', 'stages.1.blocks.0.inner_attn.kv.weight',
                 None)],
    HyenaViT=[('blocks.1.attn.filter_fn.implicit_filter.6.weight',
               'stages.0.blocks.1.attn.filter_fn.implicit_filter.6.weight', None),
              ('blocks.8.attn.qkv.weight', 'stages.2.blocks.2.attn.qkv.weight', None),
              ('norm.weight', 'stages.3.norm.weight', None)],
    RaftMLP=[('levels.1.fn.2.1.fn.0.weight', 'stages.1.blocks.0.vertical.fc1.weight', None),
             ('levels.3.fn.3.5.fn.3.weight', 'stages.3.blocks.1.channel.mlp.fc2.weight', None),
             ('levels.0.fn.0.fc.weight', 'stages.0.embed.fc.weight', None)],
)
#: the preset whose release is saved and loaded with values (default: the first recorded); the
#: HyenaViT hybrid, the smallest, has both kinds of mixer
SMALLEST = dict(DLGSANet='tiny-x2', HyenaViT='tiny-hybrid')


def _random(shape, dtype):
    if dtype.is_floating_point:
        return torch.randn(shape, dtype=dtype)
    return torch.zeros(shape, dtype=dtype)


def save_as_released(path, arch: str, preset: str) -> dict:
    """The recorded preset with random values, saved in the copies its training code writes.
    A second copy differs from the evaluated one where it matters (the ``PLACES`` tensors), so
    loading the wrong copy shows; it shares the other tensors (a file of one copy's size)."""
    release = manifest(arch)['release']
    state = official_tensors(arch, preset, make=_random)
    if not release['copies']:
        torch.save(state, path)
        return state
    content = dict(epoch=299, args=argparse.Namespace(model=preset))
    for copy in release['copies']:
        other = dict(state)
        if copy != release['evaluated']:
            other.update((k, -state[k]) for k, _, _ in PLACES[arch])
        content[copy] = other
    torch.save(content, path)
    return state


@pytest.mark.parametrize('arch', ARCHITECTURES)
def test_the_released_tensors_arrive_where_they_belong(arch, tmp_path):
    """One small preset per architecture through ``init_cfg=dict(type='Pretrained')``."""
    preset = SMALLEST.get(arch, presets(arch)[0])
    path = str(tmp_path / 'release.pth')
    released = save_as_released(path, arch, preset)
    with torch.device('meta'):
        model = build(arch, preset, init_cfg=dict(type='Pretrained', checkpoint=path))
    model.to_empty(device='cpu')
    model.init_weights()
    loaded = model.state_dict()
    for official, ours, rows in PLACES[arch]:
        value = released[official] if rows is None else released[official][rows]
        assert torch.equal(loaded[ours], value), (official, ours)
    converted = model.convert_checkpoint(released)
    for key, value in loaded.items():
        if key not in expected_missing(arch):
            assert torch.equal(value, converted[key]), key
    own = model.state_dict(keep_vars=True)
    for group in manifest(arch)['presets'][preset].get('tied', []):  # one tensor in ours too
        ours = [k for k, v in converted.items() if any(v is released[g] for g in group)]
        assert len({id(own[k]) for k in ours}) == 1, ours


def recorded_release(arch: str, preset: str):
    if arch in ('CATANet', 'DLGSANet'):
        from plugins.tasks.sr.reference import sr_presets
        return sr_presets(arch)[preset].get('release')
    from plugins.backbones.reference import load_reference
    return load_reference()[arch]['presets'][preset].get('release')


@pytest.mark.parametrize('arch', ARCHITECTURES)
def test_reference_yaml_names_the_copy_the_official_evaluation_loads(arch):
    """``reference.yaml``'s ``copy`` of every release agrees with the official code's."""
    evaluated = manifest(arch)['release']['evaluated']
    releases = [recorded_release(arch, p) for p in presets(arch)]
    assert all(r['copy'] == evaluated for r in releases if r)
