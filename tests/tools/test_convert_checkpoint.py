"""tools/convert_checkpoint.py on a backbone release and on a whole detector's checkpoint."""
import pytest
import torch

from plugins.backbones.nat import NAT
from tools.convert_checkpoint import main

from ..backbones.test_nat import official_state_dict


def test_a_detector_checkpoint_has_every_backbone_key_converted_and_the_rest_kept(tmp_path,
                                                                                  capsys):
    """An official mmdet checkpoint (backbone keys under ``backbone.``): before, keys that the
    converter's anchored rules did not reach stayed in the official layout."""
    backbone = NAT('mini')
    official = {f'backbone.{k}': v for k, v in official_state_dict(backbone).items()}
    neck = {'neck.lateral_convs.0.conv.weight': torch.randn(256, 64, 1, 1),
            'rpn_head.rpn_cls.bias': torch.randn(3)}
    src, dst = tmp_path / 'mask_rcnn_nat_mini.pth', tmp_path / 'converted.pth'
    torch.save(dict(state_dict={**official, **neck}, meta=dict(epoch=36)), src)
    main(['nat', str(src), str(dst)])
    out = torch.load(dst)['state_dict']
    assert sorted(out) == sorted([f'backbone.{k}' for k in backbone.state_dict()] + list(neck))
    for key, value in backbone.state_dict().items():
        assert torch.equal(out[f'backbone.{key}'], value)
    assert "under 'backbone.' converted with 'nat', 2 others kept" in capsys.readouterr().out


def test_the_prefix_and_the_copy_can_be_given(tmp_path, capsys):
    backbone = NAT('mini')
    ema = {f'model.{k}': v for k, v in official_state_dict(backbone).items()}
    src, dst = tmp_path / 'release.pth', tmp_path / 'converted.pth'
    torch.save(dict(state_dict={'x': torch.zeros(1)}, state_dict_ema=ema), src)
    main(['nat', str(src), str(dst), '--prefix', 'model.', '--copy', 'state_dict_ema'])
    out = torch.load(dst)
    assert sorted(out['state_dict']) == sorted(f'model.{k}' for k in backbone.state_dict())
    assert out['meta']['copy'] == 'state_dict_ema'
    assert "(from its 'state_dict_ema' copy)" in capsys.readouterr().out


def test_a_wrong_prefix_is_a_clear_error(tmp_path, capsys):
    src = tmp_path / 'release.pth'
    torch.save(dict(state_dict=official_state_dict(NAT('mini'))), src)
    with pytest.raises(SystemExit) as exit_:
        main(['nat', str(src), str(tmp_path / 'out.pth'), '--prefix', 'backbone.'])
    assert exit_.value.code == 2
    assert "no key of the checkpoint starts with prefix 'backbone.'" in capsys.readouterr().err


def test_the_copy_taken_is_the_one_the_official_evaluation_loads(tmp_path):
    """SG-Former's release holds state_dict and state_dict_ema; its official evaluation (and
    init_cfg) takes the EMA weights, the tool took state_dict."""
    from plugins.backbones.sgformer import SGFormer
    arch = dict(SGFormer.arch_zoo['s'], depths=[1, 1, 1, 1])
    plain, ema = SGFormer(arch).state_dict(), SGFormer(arch).state_dict()
    src, dst = tmp_path / 'sgformer_s.pth', tmp_path / 'converted.pth'
    torch.save(dict(state_dict=plain, state_dict_ema=ema), src)
    main(['sgformer', str(src), str(dst)])
    out = torch.load(dst)
    key = 'stages.0.patch_embed.conv.0.conv.weight'
    assert out['meta']['copy'] == 'state_dict_ema' and torch.equal(out['state_dict'][key], ema[key])
