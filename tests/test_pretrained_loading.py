"""Loading official releases through ``init_cfg=dict(type='Pretrained')``: a file of another preset
is refused (or loaded partially when asked), the right copy of the weights is taken, and the
report counts what it says."""
import logging

import pytest
import torch

from plugins.backbones.nat import NAT
from plugins.backbones.sgformer import SGFormer
from plugins.backbones.van import VAN
from plugins.utils.checkpoint import CheckpointError, compare_state, load_pretrained
from plugins.utils.converters import get_converter

from .backbones.test_van import official_state_dict as van_official


def save(tmp_path, name, **content):
    path = tmp_path / name
    torch.save(content, path)
    return str(path)


def meta(cls, arch, **kwargs):
    with torch.device('meta'):
        return cls(arch, **kwargs)


def test_a_release_of_a_wider_preset_is_refused_with_shapes_and_its_preset(tmp_path):
    """VAN-B2's official file into arch='b0' (it loaded nothing before, logging "-340/400")."""
    path = save(tmp_path, 'van_small.pth.tar', state_dict=van_official(meta(VAN, 'b2')))
    with pytest.raises(CheckpointError) as err:
        load_pretrained(VAN('b0'), path, convert=get_converter('van'))
    msg = str(err.value)
    assert 'tensors have other shapes' in msg and 'file (64, 3, 7, 7) vs model (32, 3, 7, 7)' in msg
    assert "preset 'b2'" in msg and 'strict=False' in msg


@pytest.mark.parametrize('file_arch,model_arch,sign', [('b3', 'b2', 'layers this model does not'),
                                                       ('b2', 'b3', 'It lacks')])
def test_a_release_of_a_deeper_or_shallower_preset_of_the_same_widths_is_refused(
        tmp_path, file_arch, model_arch, sign):
    """VAN-B3 into B2 loaded "624/624, unused 478" before: the extra blocks now refuse it."""
    path = save(tmp_path, 'van.pth', state_dict=van_official(meta(VAN, file_arch)))
    with pytest.raises(CheckpointError, match=sign) as err:
        load_pretrained(VAN(model_arch), path, convert=get_converter('van'))
    assert f"preset {file_arch!r}" in str(err.value)


def test_init_cfg_refuses_it_too_and_strict_false_loads_what_fits(tmp_path):
    path = save(tmp_path, 'van_b3.pth', state_dict=van_official(VAN('b3')))
    with pytest.raises(CheckpointError):
        VAN('b2', init_cfg=dict(type='Pretrained', checkpoint=path)).init_weights()
    model = VAN('b2')
    report = load_pretrained(model, path, convert=get_converter('van'), strict=False)
    assert len(report['loaded']) == len(model.state_dict()) and report['missing'] == []
    assert len(report['extra_blocks']) == len(report['unexpected']) - 2  # all but the classifier
    loose = VAN('b2', init_cfg=dict(type='Pretrained', checkpoint=path, strict=False))
    loose.init_weights()
    released = torch.load(path)['state_dict']['block3.11.mlp.fc1.weight']
    assert torch.equal(loose.state_dict()['stages.2.blocks.11.mlp.fc1.weight'], released)


def test_counts_subtract_a_mismatched_key_once(tmp_path, caplog):
    model = VAN('b0')
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state['stages.0.patch_embed.proj.weight'] = torch.zeros(32, 3, 3, 3)
    path = save(tmp_path, 'one_bad.pth', state_dict=state)
    with caplog.at_level(logging.INFO, logger='loading'):
        report = load_pretrained(model, path, strict=False, logger=logging.getLogger('loading'))
    total = len(model.state_dict())
    assert len(report['loaded']) == total - 1 and report['missing'] == []
    assert [k for k, _, _ in report['mismatched']] == ['stages.0.patch_embed.proj.weight']
    (record, ) = caplog.records
    assert record.levelno == logging.WARNING
    assert f'Loaded {total - 1}/{total}' in record.message and 'Shape mismatches' in record.message


def test_a_classifier_and_unread_output_norms_are_reported_not_refused(tmp_path):
    """An ImageNet release (with its head) into a RetinaNet-style NAT that builds no stage-1
    output norm: both sides have keys the other lacks, neither is another preset."""
    source = NAT('mini')
    state = {k: v.clone() for k, v in source.state_dict().items()}
    state.update({'head.weight': torch.randn(1000, 512), 'head.bias': torch.randn(1000)})
    path = save(tmp_path, 'nat_mini.pth', model=state)
    report = load_pretrained(NAT('mini', out_indices=(1, 2, 3)), path)
    assert sorted(report['unexpected']) == ['head.bias', 'head.weight', 'stages.0.norm.bias',
                                            'stages.0.norm.weight']
    assert report['extra_blocks'] == report['absent_blocks'] == []


def test_compare_state_tells_layers_from_keys():
    keys = ['stages.0.blocks.0.w', 'stages.0.blocks.1.w', 'stages.0.norm.w']
    own = {k: (2, ) for k in keys}
    deeper = {k: torch.zeros(2) for k in keys + ['stages.0.blocks.2.w']}
    assert compare_state(own, deeper)['extra_blocks'] == ['stages.0.blocks.2.w']
    shallower = {'stages.0.blocks.0.w': torch.zeros(2), 'stages.0.norm.w': torch.zeros(2)}
    assert compare_state(own, shallower)['absent_blocks'] == ['stages.0.blocks.1.w']
    no_norm = {'stages.0.blocks.0.w': torch.zeros(2), 'stages.0.blocks.1.w': torch.zeros(2)}
    report = compare_state(own, no_norm)
    assert report['missing'] == ['stages.0.norm.w'] and report['absent_blocks'] == []


def test_the_copy_the_official_evaluation_uses_is_taken_and_can_be_chosen(tmp_path):
    """SG-Former's official evaluation loads the EMA weights; a file holding only them loads."""
    arch = dict(SGFormer.arch_zoo['s'], depths=[1, 1, 1, 1])
    plain, ema = SGFormer(arch).state_dict(), SGFormer(arch).state_dict()
    path = save(tmp_path, 'sgformer.pth', state_dict=plain, state_dict_ema=ema)
    model = SGFormer(arch, init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    key = 'stages.0.patch_embed.conv.0.conv.weight'
    assert torch.equal(model.state_dict()[key], ema[key])
    model = SGFormer(arch, init_cfg=dict(type='Pretrained', checkpoint=path, copy='state_dict'))
    model.init_weights()
    assert torch.equal(model.state_dict()[key], plain[key])
    only_ema = save(tmp_path, 'ema_only.pth', state_dict_ema=ema)
    assert load_pretrained(SGFormer(arch), only_ema)['copy'] == 'state_dict_ema'
    with pytest.raises(CheckpointError, match="no copy 'params_ema'.*state_dict_ema"):
        load_pretrained(SGFormer(arch), only_ema, copy='params_ema')


def test_a_file_of_which_no_tensor_is_the_models_is_refused(tmp_path):
    """CATANet's weights into VAN-B0: nothing loaded, logged as "Loaded 0/400" at INFO before."""
    from plugins.tasks.sr.catanet import CATANet
    path = save(tmp_path, 'x2.pth', params=CATANet(upscale=2).state_dict())
    with pytest.raises(CheckpointError, match='none of the .* tensors .* another architecture'):
        load_pretrained(VAN('b0'), path, convert=get_converter('van'))
    report = load_pretrained(VAN('b0'), path, convert=get_converter('van'), strict=False)
    assert report['loaded'] == []


def test_a_detectors_checkpoint_gives_its_backbone_keys_without_a_prefix(tmp_path):
    """Keys under ``backbone.`` (an mmdet checkpoint) loaded nothing without prefix='backbone.'."""
    source = VAN('b0')
    state = {f'backbone.{k}': v for k, v in van_official(source).items()}
    state['neck.lateral_convs.0.conv.weight'] = torch.zeros(256, 32, 1, 1)
    path = save(tmp_path, 'mask_rcnn_van_b0.pth', state_dict=state)
    model = VAN('b0', init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
