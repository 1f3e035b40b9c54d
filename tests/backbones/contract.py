"""The backbone contract of DESIGN.md as reusable checks: ``test_contract.py`` runs them for every
architecture of reference.yaml; the architecture files use the official-layout check."""
import math
import os.path as osp

import torch
from torch.nn.modules.batchnorm import _BatchNorm

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def check_output_shapes(backbone, size, channels=None, batch=1):
    with torch.no_grad():
        outs = backbone.eval()(torch.randn(batch, backbone.in_channels, *size))
    assert len(outs) == len(backbone.out_indices)
    assert [o.shape[1] for o in outs] == backbone.out_channels
    if channels is not None:
        assert backbone.out_channels == channels
    for out, stride in zip(outs, backbone.strides):
        assert tuple(out.shape[2:]) == (math.ceil(size[0] / stride), math.ceil(size[1] / stride))
        assert torch.isfinite(out).all()


def check_gradients_reach_every_parameter(backbone, size=(65, 47)):
    backbone.train()
    sum(o.mean() for o in backbone(torch.randn(2, backbone.in_channels, *size))).backward()
    missing = [n for n, p in backbone.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing


def check_frozen_stages(backbone, frozen, size=(64, 64)):
    backbone.train()
    for i, stage in enumerate(backbone.stages):
        is_frozen = i < frozen
        assert all(p.requires_grad != is_frozen for p in stage.parameters())
        assert all(m.training != is_frozen for m in stage.modules())
    sum(o.sum() for o in backbone(torch.randn(1, backbone.in_channels, *size))).backward()
    for i, stage in enumerate(backbone.stages):
        assert all((p.grad is None) == (i < frozen) for p in stage.parameters())


def check_norm_eval(backbone, size=(64, 64)):
    backbone.train()
    bns = [m for m in backbone.modules() if isinstance(m, _BatchNorm)]
    assert bns, 'the backbone has no BatchNorm to keep in eval'
    before = [bn.running_mean.clone() for bn in bns]
    backbone(torch.randn(2, backbone.in_channels, *size) * 5 + 3)
    assert all(not bn.training for bn in bns)
    assert all(torch.equal(bn.running_mean, b) for bn, b in zip(bns, before))


def check_with_cp(make, size=(64, 64)):
    torch.manual_seed(0)
    plain, ckpt = make(with_cp=False), make(with_cp=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, plain.in_channels, *size)
    outs = []
    for model in (plain, ckpt):
        model.train()
        torch.manual_seed(1)
        out = model(x)
        sum(o.sum() for o in out).backward()
        outs.append(out)
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b)
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5, msg=name)


def check_official_layout_loads(make, official_state_dict, tmp_path, size=(64, 80)):
    """Weights saved under the official key names load through ``init_cfg`` and give the same
    features; returns the loading report of the target (for further checks)."""
    source = make().eval()
    official = official_state_dict(source)
    path = tmp_path / 'official.pth'
    torch.save(dict(model=official), path)
    target = make(init_cfg=dict(type='Pretrained', checkpoint=str(path))).eval()
    target.init_weights()
    target.eval()
    x = torch.randn(1, source.in_channels, *size)
    with torch.no_grad():
        for a, b in zip(source(x), target(x)):
            assert torch.equal(a, b)

