"""An official Group Pose checkpoint gives the official predictions.

The state dict is laid out as the official model's (Michel-liu/GroupPose: key names and shapes as
``models/grouppose/{grouppose,transformer,transformer_deformable}.py`` and the torchvision ResNet
with frozen BN define them), filled with random, non-trivial weights, and loaded into the
toolkit's ``GroupPoseEstimator`` through the ``grouppose`` converter. A compact reference of the
official computation (below: two-stage selection with padding tokens, the decoder step with the
in-place position embedding, the two-logit post-processing) runs on the same encoder memory; the
decoder's hidden states, keypoints and the final people must agree.
"""
import functools
import math
import os.path as osp
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from plugins.utils.converters import CONVERTERS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
D, HEADS, LEVELS, POINTS, FFN, ENC, DEC, QUERIES, SELECT, K = 256, 8, 4, 4, 512, 1, 2, 20, 10, 17


def official_layout(in_channels=(512, 1024, 2048)) -> OrderedDict:
    """Key -> shape of the official GroupPose model (ResNet-50, 4 levels, two-stage)."""
    sd = OrderedDict()

    def lin(name, i, o):
        sd[name + '.weight'], sd[name + '.bias'] = (o, i), (o, )

    def norm(name, c, buffers=False):
        sd[name + '.weight'], sd[name + '.bias'] = (c, ), (c, )
        if buffers:  # torchvision ResNet's FrozenBatchNorm2d: no num_batches_tracked
            sd[name + '.running_mean'], sd[name + '.running_var'] = (c, ), (c, )

    def mlp(name, i, h, o, n):
        dims = [i] + [h] * (n - 1) + [o]
        for j in range(n):
            lin(f'{name}.layers.{j}', dims[j], dims[j + 1])

    def msda(name):
        lin(name + '.sampling_offsets', D, HEADS * LEVELS * POINTS * 2)
        lin(name + '.attention_weights', D, HEADS * LEVELS * POINTS)
        lin(name + '.value_proj', D, D)
        lin(name + '.output_proj', D, D)

    def mha(name):
        sd[name + '.in_proj_weight'], sd[name + '.in_proj_bias'] = (3 * D, D), (3 * D, )
        lin(name + '.out_proj', D, D)

    body = 'backbone.0.body'
    sd[f'{body}.conv1.weight'] = (64, 3, 7, 7)
    norm(f'{body}.bn1', 64, True)
    cin = 64
    for stage, (width, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3))):
        for b in range(blocks):
            p = f'{body}.layer{stage + 1}.{b}'
            for j, (i, o, k) in enumerate(((cin, width, 1), (width, width, 3),
                                           (width, 4 * width, 1))):
                sd[f'{p}.conv{j + 1}.weight'] = (o, i, k, k)
                norm(f'{p}.bn{j + 1}', o, True)
            if b == 0:
                sd[f'{p}.downsample.0.weight'] = (4 * width, cin, 1, 1)
                norm(f'{p}.downsample.1', 4 * width, True)
            cin = 4 * width
    for level, c in enumerate(in_channels):
        lin(f'input_proj.{level}.0', 1, D)
        sd[f'input_proj.{level}.0.weight'] = (D, c, 1, 1)
        norm(f'input_proj.{level}.1', D)
    lin('input_proj.3.0', 1, D)
    sd['input_proj.3.0.weight'] = (D, in_channels[-1], 3, 3)
    norm('input_proj.3.1', D)
    t = 'transformer'
    sd[f'{t}.level_embed'] = (LEVELS, D)
    for i in range(ENC):
        p = f'{t}.encoder.layers.{i}'
        msda(p + '.self_attn')
        norm(p + '.norm1', D)
        lin(p + '.linear1', D, FFN)
        lin(p + '.linear2', FFN, D)
        norm(p + '.norm2', D)
    for i in range(DEC):
        p = f'{t}.decoder.layers.{i}'
        mha(p + '.within_attn')
        norm(p + '.within_norm', D)
        mha(p + '.across_attn')
        norm(p + '.across_norm', D)
        msda(p + '.cross_attn')
        norm(p + '.norm1', D)
        lin(p + '.linear1', D, FFN)
        lin(p + '.linear2', FFN, D)
        norm(p + '.norm2', D)
    mlp(f'{t}.decoder.half_pose_ref_point_head', D, D, D, 2)
    sd[f'{t}.keypoint_embedding.weight'] = (K, D)
    sd[f'{t}.instance_embedding.weight'] = (1, D)
    lin(f'{t}.enc_output', D, D)
    norm(f'{t}.enc_output_norm', D)
    lin(f'{t}.enc_out_class_embed', D, 2)
    mlp(f'{t}.enc_pose_embed', D, 2 * D, 2 * K, 4)
    for i in range(DEC):
        for prefix in ('', f'{t}.decoder.'):      # the decoder holds the same modules
            lin(f'{prefix}class_embed.{i}', D, 2)
            mlp(f'{prefix}pose_embed.{i}', D, D, 2, 3)
    return sd


@functools.lru_cache()
def official_weights(seed=0) -> OrderedDict:
    """Random weights of that layout that keep activations in range (He-scaled convs, norms
    near identity) and make every part matter (non-zero offsets, sampling offsets, biases)."""
    g = torch.Generator().manual_seed(seed)
    sd = OrderedDict()
    for name, shape in official_layout().items():
        n = torch.randn(shape, generator=g)
        if name.endswith('running_var'):
            value = 1 + 0.1 * n.abs()
        elif len(shape) == 1 and name.endswith('.weight'):     # BN, GN and LN scales
            value = 1 + 0.1 * n
        elif len(shape) == 4:
            value = n * math.sqrt(2 / (shape[1] * shape[2] * shape[3]))
        elif len(shape) == 2:
            value = n / math.sqrt(shape[1])
        else:
            value = 0.1 * n
        sd[name] = value
    for name in list(sd):
        if name.startswith('transformer.decoder.') and ('class_embed' in name or
                                                         'pose_embed' in name):
            sd[name] = sd[name[len('transformer.decoder.'):]]
    sd['transformer.level_embed'] = torch.randn(LEVELS, D, generator=g)
    for i in range(DEC):     # offsets of a few pixels, not of the whole image
        sd[f'pose_embed.{i}.layers.2.weight'] *= 0.3
    # people (class 1) and class-0 pairs both among the top num_select
    sd[f'class_embed.{DEC - 1}.bias'] += torch.tensor([0.0, 1.5])
    return sd


def grouppose_model(config='grouppose_r50_8xb2-60e_coco.py', official_size=True):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'grouppose', config))
    cfg.model.backbone.init_cfg = None
    init_default_scope('mmpose')
    if not official_size:
        return MODELS.build(cfg.model)
    cfg.model.head.update(feedforward_channels=FFN, num_encoder_layers=ENC,
                          num_decoder_layers=DEC, num_queries=QUERIES,
                          codec=dict(type='GroupPoseLabel', num_keypoints=K, num_select=SELECT))
    return MODELS.build(cfg.model)


# ----------------------------------------------------------------------------- the reference
def inverse_sigmoid(x, eps=1e-3):
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def linear(x, sd, name):
    return F.linear(x, sd[name + '.weight'], sd[name + '.bias'])


def layer_norm(x, sd, name):
    return F.layer_norm(x, (x.shape[-1], ), sd[name + '.weight'], sd[name + '.bias'])


def mlp(x, sd, name, n):
    for j in range(n):
        x = linear(x, sd, f'{name}.layers.{j}')
        x = x.relu() if j < n - 1 else x
    return x


def mha(x, sd, name):
    """nn.MultiheadAttention with q = k = v = x, sequence-first (L, N, E)."""
    return F.multi_head_attention_forward(
        x, x, x, D, HEADS, sd[name + '.in_proj_weight'], sd[name + '.in_proj_bias'], None, None,
        False, 0.0, sd[name + '.out_proj.weight'], sd[name + '.out_proj.bias'], training=False,
        need_weights=False)[0]


def msdeform_attn(query, ref, memory, mask, shapes, sd, name):
    """Official MSDeformAttn.forward with 2-d reference points (N, Lq, levels, 2)."""
    n, lq, _ = query.shape
    value = linear(memory, sd, name + '.value_proj').masked_fill(mask[..., None], 0.)
    value = value.view(n, -1, HEADS, D // HEADS)
    offsets = linear(query, sd, name + '.sampling_offsets').view(n, lq, HEADS, LEVELS, POINTS, 2)
    weights = linear(query, sd, name + '.attention_weights').view(n, lq, HEADS, LEVELS * POINTS)
    weights = weights.softmax(-1).view(n, lq, HEADS, LEVELS, POINTS)
    normalizer = torch.stack([shapes[:, 1], shapes[:, 0]], -1)
    loc = ref[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
    out = multi_scale_deformable_attn_pytorch(value, shapes, loc, weights)
    return linear(out, sd, name + '.output_proj')


def sine_embed(points):
    """Official gen_sineembed_for_position for (M, P, 2) points: [y-part, x-part], 128 each."""
    dim_t = torch.arange(128, dtype=torch.float32)
    dim_t = 10000 ** (2 * (dim_t // 2) / 128)
    x = points[..., 0, None] * 2 * math.pi / dim_t
    y = points[..., 1, None] * 2 * math.pi / dim_t
    x = torch.stack((x[..., 0::2].sin(), x[..., 1::2].cos()), -1).flatten(-2)
    y = torch.stack((y[..., 0::2].sin(), y[..., 1::2].cos()), -1).flatten(-2)
    return torch.cat((y, x), -1)


def proposals(mask, shapes):
    """Official gen_encoder_output_proposals: (B, S, 4) in inverse-sigmoid space, inf where
    unusable, and the usable mask."""
    out, start = [], 0
    b = mask.shape[0]
    for lvl, (h, w) in enumerate(shapes.tolist()):
        m = mask[:, start:start + h * w].view(b, h, w)
        valid_h, valid_w = (~m[:, :, 0]).sum(1), (~m[:, 0, :]).sum(1)
        gy, gx = torch.meshgrid(torch.linspace(0, h - 1, h), torch.linspace(0, w - 1, w),
                                indexing='ij')
        grid = (torch.stack([gx, gy], -1)[None] + 0.5) / torch.stack(
            [valid_w, valid_h], -1).view(b, 1, 1, 2)
        wh = torch.ones_like(grid) * 0.05 * 2.0 ** lvl
        out.append(torch.cat([grid, wh], -1).view(b, -1, 4))
        start += h * w
    prop = torch.cat(out, 1)
    valid = ((prop > 0.01) & (prop < 0.99)).all(-1, keepdim=True)
    prop = torch.log(prop / (1 - prop)).masked_fill(mask[..., None], float('inf'))
    return prop.masked_fill(~valid, float('inf')), valid[..., 0] & ~mask


def official_decoder_step(tgt, ref, memory, mask, shapes, valid_ratios, sd, i):
    """One official decoder layer: in-place position embedding (it reaches the within-instance
    values and both residual streams), group attentions, deformable cross-attention, FFN."""
    b, n, p, _ = tgt.shape
    ref_in = ref[:, :, :, None] * valid_ratios[:, None, None]             # b n p L 2
    pos = mlp(sine_embed(ref_in[..., 0, :].reshape(b * n, p, 2)), sd,
              'transformer.decoder.half_pose_ref_point_head', 2).view(b, n, p, D)
    layer = f'transformer.decoder.layers.{i}'
    t = tgt
    t[:, :, 1:] += pos[:, :, 1:]      # in place, as the official code: the caller's tensor too
    x = t.reshape(b * n, p, D).transpose(0, 1)
    t = layer_norm(t + mha(x, sd, layer + '.within_attn').transpose(0, 1).view(b, n, p, D), sd,
                   layer + '.within_norm')
    x = t.permute(1, 0, 2, 3).reshape(n, b * p, D)
    t = layer_norm(t + mha(x, sd, layer + '.across_attn').view(n, b, p, D).permute(1, 0, 2, 3),
                   sd, layer + '.across_norm')
    t = t.clone()
    t[:, :, 1:] += pos[:, :, 1:]                                            # again, in place
    out = msdeform_attn(t.reshape(b, n * p, D), ref_in.reshape(b, n * p, LEVELS, 2), memory,
                        mask, shapes, sd, layer + '.cross_attn').view(b, n, p, D)
    t = layer_norm(t + out, sd, layer + '.norm1')
    ffn = linear(linear(t, sd, layer + '.linear1').relu(), sd, layer + '.linear2')
    return layer_norm(t + ffn, sd, layer + '.norm2')


def official_predictions(sd, memory, mask, shapes, valid_ratios, sizes):
    """Two-stage selection, decoder, heads and PostProcess of the official code."""
    b = memory.shape[0]
    prop, usable = proposals(mask, shapes)
    out_mem = memory.masked_fill(~usable[..., None], 0.)
    out_mem = layer_norm(linear(out_mem, sd, 'transformer.enc_output'), sd,
                         'transformer.enc_output_norm')
    enc_logits = linear(out_mem, sd, 'transformer.enc_out_class_embed')
    topk = enc_logits.max(-1)[0].topk(QUERIES, dim=1)[1]
    delta = mlp(out_mem, sd, 'transformer.enc_pose_embed', 4).view(b, -1, K, 2)
    kpts = (delta + prop[..., None, :2]).sigmoid()
    pose = torch.cat([kpts.mean(2, keepdim=True), kpts], 2)
    ref = torch.gather(pose, 1, topk[..., None, None].expand(-1, -1, K + 1, 2))
    content = torch.gather(out_mem, 1, topk[..., None].expand(-1, -1, D))
    tgt = torch.cat([sd['transformer.instance_embedding.weight'][None, None].expand(
        b, QUERIES, 1, D), sd['transformer.keypoint_embedding.weight'][None, None] +
        content[:, :, None]], 2)
    hidden, refs = [], []
    for i in range(DEC):                                                   # TransformerDecoder
        refs.append(ref)
        tgt = official_decoder_step(tgt, ref, memory, mask, shapes, valid_ratios, sd, i)
        hidden.append(tgt)
        delta = mlp(tgt[:, :, 1:], sd, f'pose_embed.{i}', 3)
        kp = (inverse_sigmoid(ref[:, :, 1:]) + delta).sigmoid()
        ref = torch.cat([kp.mean(2, keepdim=True), kp], 2)
    # GroupPose.forward: per-layer heads on the hidden states, read after the decoder has run
    # (a layer's state then holds the next layer's in-place position embedding)
    keypoints = [(inverse_sigmoid(r[:, :, 1:]) + mlp(h[:, :, 1:], sd, f'pose_embed.{i}', 3)
                  ).sigmoid() for i, (h, r) in enumerate(zip(hidden, refs))]
    logits = [linear(h[:, :, 0], sd, f'class_embed.{i}') for i, h in enumerate(hidden)]
    people = []
    prob = logits[-1].sigmoid().view(b, -1)
    for j, (h, w) in enumerate(sizes):                                     # PostProcess
        scores, idx = prob[j].topk(SELECT)
        keep = idx % 2 == 1                                                 # category 1 only
        px = keypoints[-1][j, idx[keep] // 2] * torch.tensor([w, h], dtype=torch.float32)
        people.append((px, scores[keep]))
    return dict(hidden=hidden, keypoints=keypoints, people=people, topk=topk, usable=usable)


# ----------------------------------------------------------------------------- the test
def run_both(model, sd, images):
    from mmpose.structures import PoseDataSample
    captured = {}
    hooks = [model.head.encoder.register_forward_hook(
        lambda m, args, kwargs, out: captured.update(kwargs, memory=out), with_kwargs=True),
        model.head.decoder.register_forward_hook(
            lambda m, args, out: captured.update(hidden=out[0], keypoints=out[1]))]
    samples = []
    for img in images:
        h, w = img.shape[-2:]
        samples.append(PoseDataSample(metainfo=dict(
            img_shape=(h, w), ori_shape=(h, w), input_size=(w, h),
            input_center=np.array([w / 2, h / 2]), input_scale=np.array([w, h]))))
    with torch.no_grad():
        preds = model.test_step(dict(inputs=images, data_samples=samples))
        ref = official_predictions(
            sd, captured['memory'], captured['key_padding_mask'], captured['spatial_shapes'],
            captured['valid_ratios'], [img.shape[-2:] for img in images])
    for hook in hooks:
        hook.remove()
    return captured, preds, ref


@pytest.fixture(scope='module')
def official_model():
    model = grouppose_model().eval()
    model.load_state_dict(official_weights(), strict=True)  # every official key finds its place
    return model


@pytest.mark.parametrize('shapes', [[(128, 128)], [(64, 256), (64, 160)]],
                         ids=['square', 'wide-padded-batch'])
def test_official_checkpoint_gives_the_official_decoder_outputs_and_people(shapes,
                                                                          official_model):
    g = torch.Generator().manual_seed(1)
    images = [torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
              for h, w in shapes]
    ours, preds, ref = run_both(official_model, official_weights(), images)
    if len(images) > 1:   # padding tokens (zero content, keypoints at 1.0) compete for top-k
        assert (~torch.gather(ref['usable'], 1, ref['topk'])).any()
    for got, want in zip(ours['hidden'], ref['hidden']):
        torch.testing.assert_close(got, want, atol=2e-4, rtol=1e-4)
    for got, want in zip(ours['keypoints'], ref['keypoints']):
        torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)
    assert (ref['keypoints'][1] - ref['keypoints'][0]).abs().max() > 1e-3   # layers refine
    counts = [len(px) for px, _ in ref['people']]
    assert 0 < sum(counts) < SELECT * len(images)     # people kept, class-0 pairs dropped
    for pred, (px, scores) in zip(preds, ref['people']):
        people = pred.pred_instances
        assert len(people.keypoints) == len(px)
        np.testing.assert_allclose(people.keypoints, px.numpy(), atol=2e-3)
        np.testing.assert_allclose(people.keypoint_scores[:, 0], scores.numpy(), atol=1e-5)


def test_converter_maps_every_official_key_once_and_drops_the_decoder_copies(official_model):
    sd = official_weights()
    converted = CONVERTERS['grouppose'](sd)
    own = official_model.state_dict()
    bn_counters = {k for k in own if k.endswith('num_batches_tracked')}
    assert set(converted) == set(own) - bn_counters
    copies = [k for k in sd if k.startswith(('transformer.decoder.class_embed',
                                             'transformer.decoder.pose_embed'))]
    assert len(converted) == len(sd) - len(copies)
    assert torch.equal(converted['head.decoder.keypoint_offsets.1.layers.2.weight'],
                       sd['pose_embed.1.layers.2.weight'])
    assert torch.equal(converted['neck.extra_convs.0.conv.weight'], sd['input_proj.3.0.weight'])
    assert list(CONVERTERS['grouppose'](own)) == list(own)     # toolkit keys pass through


def test_mmpose_key_rename_no_longer_drops_head_tensors(tmp_path):
    """mmpose's BasePoseEstimator renames keys holding 'keypoint_head' to 'head' when a file
    has no version metadata (a converted or hand-made file); no toolkit key holds it, and the
    names of earlier versions (also as mmpose renames them) load into the current ones."""
    from mmengine.runner.checkpoint import load_checkpoint
    model = grouppose_model('grouppose_r18_demo-coco.py', official_size=False)
    own = model.state_dict()
    current = OrderedDict(own)
    model._load_state_dict_pre_hook(current, '', {})    # mmpose's rename, no version metadata
    assert list(current) == list(own)                    # the current names are left alone
    legacy = OrderedDict()
    for key, value in own.items():      # the names of the earlier toolkit version
        key = key.replace('head.enc_keypoint_offsets.', 'head.enc_keypoint_head.')
        key = key.replace('head.decoder.keypoint_offsets.', 'head.decoder.keypoint_heads.')
        legacy[key] = value + 1 if value.is_floating_point() else value
    num_layers = len(model.head.decoder.layers)
    assert len([k for k in legacy if 'keypoint_head' in k]) == 4 * 2 + 3 * num_layers * 2
    renamed = OrderedDict(legacy)
    model._load_state_dict_pre_hook(renamed, '', {})
    assert 'head.enc_head.layers.0.weight' in renamed        # what used to be lost
    assert 'head.decoder.heads.0.layers.0.weight' in renamed
    path = tmp_path / 'no_metadata.pth'
    torch.save(dict(state_dict=OrderedDict(legacy)), path)   # no _metadata: mmpose renames
    fresh = grouppose_model('grouppose_r18_demo-coco.py', official_size=False)
    load_checkpoint(fresh, str(path), map_location='cpu', strict=True)
    loaded = fresh.state_dict()
    for key in ('head.enc_keypoint_offsets.layers.3.weight',
                'head.decoder.keypoint_offsets.1.layers.0.bias'):
        torch.testing.assert_close(loaded[key], own[key] + 1)


def test_init_cfg_and_the_convert_tool_take_the_official_file(tmp_path):
    import sys
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    from convert_checkpoint import main as convert_main
    src, dst = tmp_path / 'official.pth', tmp_path / 'converted.pth'
    torch.save(dict(model=official_weights(), epoch=59), src)     # the official file layout
    convert_main(['grouppose', str(src), str(dst)])
    converted = torch.load(dst, weights_only=True)['state_dict']
    assert 'head.decoder.keypoint_offsets.0.layers.0.weight' in converted
    model = grouppose_model()
    model.init_cfg = dict(type='Pretrained', checkpoint=str(src))
    model.init_weights()                                   # load_pretrained + the converter
    own = model.state_dict()
    assert set(converted) == {k for k in own if not k.endswith('num_batches_tracked')}
    assert all(torch.equal(own[k], v) for k, v in converted.items())


def test_paper_clean_options_change_the_decoder_and_never_select_padding(official_model):
    head = official_model.head
    g = torch.Generator().manual_seed(1)
    images = [torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
              for h, w in [(64, 256), (64, 160)]]
    with torch.no_grad():   # what a padding token's (zeroed) content becomes
        padding = head.memory_trans_norm(head.memory_trans_fc(torch.zeros(D)))
    selected = []
    hook = head.enc_keypoint_offsets.register_forward_hook(
        lambda m, args, out: selected.append(
            ((args[0] - padding).abs().amax(-1) < 1e-6).any().item()))
    try:
        official, _, _ = run_both(official_model, official_weights(), images)
        head.select_padding = False
        for layer in head.decoder.layers:
            layer.pos_in_content = False
        clean, _, _ = run_both(official_model, official_weights(), images)
    finally:
        hook.remove()
        head.select_padding = True
        for layer in head.decoder.layers:
            layer.pos_in_content = True
    assert selected == [True, False]       # padding selected officially, never when masked
    assert (official['hidden'][-1] - clean['hidden'][-1]).abs().max() > 1e-2
