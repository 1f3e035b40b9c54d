"""Group Pose head for mmpose's ``BottomupPoseEstimator``: encoder, two-stage queries, decoder.

Group Pose (Liu et al., "Group Pose: A Simple Baseline for End-to-End Multi-person Pose
Estimation", ICCV 2023, arXiv 2308.07313). On the multi-scale maps of a neck (e.g. ChannelMapper):

1. a deformable-attention encoder (Deformable DETR's; mmdet's implementation);
2. two-stage query selection (Sec. 3.3): every encoder token is a proposal whose keypoints are an
   MLP's offsets from the token's grid position; the ``num_queries`` top-scoring tokens seed the
   people: their keypoints are the decoder's first reference points, and each person's K keypoint
   queries are a learned per-type keypoint embedding plus the token's (detached) content; the
   instance query is one learned embedding shared by all people;
3. the group decoder (:mod:`.decoder`), which refines the keypoints layer by layer;
4. per decoder layer a class head on the instance queries.

Training: Hungarian matching (class, keypoint L1 and OKS costs) and the losses (focal class,
L1, OKS) on every decoder layer and on the selected encoder proposals; no box supervision.
Inference: the ``num_select`` most confident (query, class) pairs of the person class, keypoint
scores = the person's score.

Defaults reproduce the official code (Michel-liu/GroupPose), so its checkpoints give its
predictions; each choice where it departs from the paper's description has a switch:

- two class logits (``num_classes=2``; COCO's category ids 0 and 1, people being 1): tokens are
  ranked by the larger logit, the never-matched logit 0 adds a focal term of its own, and
  inference keeps the top ``num_select`` of the queries x 2 probabilities, of which those of
  class 0 are dropped (the official evaluation submits them as category 0, which COCO's person
  evaluation ignores); ``num_classes=1``: one person logit;
- encoder tokens in batch padding or on the outer 1 % of the image get zero content and an
  infinite proposal (their keypoints are 1.0) but still compete for the top-k
  (``select_padding=True``); ``False`` never selects them;
- the keypoint queries' position embedding enters the decoder's content
  (``pos_in_content=True``, see :mod:`.decoder`);
- initialisation: Xavier-uniform weights of every transformer matrix (encoder FFN included),
  PyTorch's default ``Linear`` initialisation for the class and keypoint-offset heads (copies of
  one head per decoder layer), class biases at ``p = 0.01``, the last offset layers at zero.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.ops import MultiScaleDeformableAttention
from mmdet.models.layers import DeformableDetrTransformerEncoder, SinePositionalEncoding
from mmengine.dist import all_reduce, get_world_size
from mmengine.model import ModuleList
from mmengine.structures import InstanceData
from mmpose.models.heads.base_head import BaseHead
from mmpose.registry import KEYPOINT_CODECS

from plugins.registry import MODELS
from .decoder import MLP, GroupPoseDecoder

_PRIOR_BIAS = -float(np.log((1 - 0.01) / 0.01))  # class logits start at p = 0.01


def _layer_cfg(embed_dims, num_heads, num_levels, num_points, ffn_channels, dropout):
    return dict(self_attn_cfg=dict(embed_dims=embed_dims, num_heads=num_heads,
                                   num_levels=num_levels, num_points=num_points,
                                   dropout=dropout, batch_first=True),
                ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=ffn_channels,
                             num_fcs=2, ffn_drop=dropout,
                             act_cfg=dict(type='ReLU', inplace=True)))


@MODELS.register_module()
class GroupPoseHead(BaseHead):
    """Group Pose: end-to-end multi-person keypoints from multi-scale features.

    Args:
        num_keypoints: K (17 for COCO, 14 for CrowdPose).
        num_classes: class logits; people are the last class. 2 (official: COCO's category ids
            0 and 1) or 1 (one person logit).
        num_queries: proposals selected from the encoder, i.e. people queries N (paper: 100).
        num_feature_levels: maps given by the neck (paper: 4).
        embed_dims, num_heads, feedforward_channels, num_points, dropout: transformer sizes
            (paper: 256, 8, 2048, 4, 0.0).
        num_encoder_layers, num_decoder_layers: paper: 6 and 6.
        positional_encoding: kwargs of mmdet's ``SinePositionalEncoding`` (paper: temperature 20).
        loss_cls, loss_keypoint, loss_oks: loss configs (paper weights 2, 10, 4).
        matcher: matcher config (paper costs 2, 10, 4).
        encoder_loss_weight: multiplies the losses of the encoder proposals (paper: 1).
        codec: ``GroupPoseLabel`` config: its ``num_select`` people are kept at inference.
        select_padding: padding / border tokens take part in the top-k selection (official).
        pos_in_content: the decoder's position embedding enters the query content (official).
    """

    def __init__(self,
                 num_keypoints: int = 17,
                 num_classes: int = 2,
                 num_queries: int = 100,
                 num_feature_levels: int = 4,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 feedforward_channels: int = 2048,
                 num_points: int = 4,
                 dropout: float = 0.0,
                 num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6,
                 positional_encoding: Optional[dict] = None,
                 loss_cls: dict = dict(type='GroupPoseFocalLoss', loss_weight=2.0),
                 loss_keypoint: dict = dict(type='VisibleKeypointL1Loss', loss_weight=10.0),
                 loss_oks: dict = dict(type='KeypointOKSLoss', loss_weight=4.0),
                 matcher: dict = dict(type='GroupPoseMatcher', cost_class=2.0,
                                      cost_keypoint=10.0, cost_oks=4.0),
                 encoder_loss_weight: float = 1.0,
                 codec: dict = dict(type='GroupPoseLabel', num_select=50),
                 select_padding: bool = True,
                 pos_in_content: bool = True,
                 init_cfg=None):
        super().__init__(init_cfg)
        if num_classes < 1:
            raise ValueError(f'num_classes must be 1 (one person logit) or more (people are the '
                             f'last class; the official code has 2), got {num_classes}')
        self.num_keypoints, self.num_classes = num_keypoints, num_classes
        self.person_label = num_classes - 1
        self.select_padding = select_padding
        self.num_queries, self.num_levels = num_queries, num_feature_levels
        self.embed_dims = embed_dims
        self.encoder_loss_weight = encoder_loss_weight

        pe = dict(num_feats=embed_dims // 2, temperature=20, normalize=True, offset=0.0)
        pe.update(positional_encoding or {})
        self.positional_encoding = SinePositionalEncoding(**pe)
        self.level_embed = nn.Parameter(torch.zeros(num_feature_levels, embed_dims))
        self.encoder = DeformableDetrTransformerEncoder(
            num_layers=num_encoder_layers,
            layer_cfg=_layer_cfg(embed_dims, num_heads, num_feature_levels, num_points,
                                 feedforward_channels, dropout))
        # two-stage proposals
        self.memory_trans_fc = nn.Linear(embed_dims, embed_dims)
        self.memory_trans_norm = nn.LayerNorm(embed_dims)
        self.enc_cls_head = nn.Linear(embed_dims, num_classes)
        self.enc_keypoint_offsets = MLP(embed_dims, 2 * embed_dims, 2 * num_keypoints, 4)
        # query construction
        self.keypoint_embedding = nn.Embedding(num_keypoints, embed_dims)
        self.instance_embedding = nn.Embedding(1, embed_dims)
        self.decoder = GroupPoseDecoder(
            num_layers=num_decoder_layers, num_keypoints=num_keypoints,
            layer_cfg=dict(embed_dims=embed_dims, num_heads=num_heads,
                           feedforward_channels=feedforward_channels, dropout=dropout,
                           num_levels=num_feature_levels, num_points=num_points,
                           pos_in_content=pos_in_content))
        self.cls_heads = ModuleList([nn.Linear(embed_dims, num_classes)
                                     for _ in range(num_decoder_layers)])

        loss_keypoint_oks = dict(loss_oks)
        if loss_keypoint_oks.get('type') == 'KeypointOKSLoss':
            loss_keypoint_oks.setdefault('num_keypoints', num_keypoints)
        matcher = dict(matcher)
        matcher.setdefault('num_keypoints', num_keypoints)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_keypoint = MODELS.build(loss_keypoint)
        self.loss_oks = MODELS.build(loss_keypoint_oks)
        self.matcher = MODELS.build(matcher)
        codec = dict(codec)
        codec.setdefault('num_keypoints', num_keypoints)
        self.codec = KEYPOINT_CODECS.build(codec)
        self._reset_parameters()

    def _reset_parameters(self):
        """The official initialisation (``Transformer._reset_parameters`` and ``GroupPose``):
        Xavier-uniform for every matrix of the transformer, deformable attention's own scheme,
        a normal level embedding; the class and offset heads keep PyTorch's default ``Linear``
        initialisation, one head copied to every decoder layer (and, for the class head, to the
        encoder), class biases at ``p = 0.01`` and the last offset layers at zero."""
        heads = ('cls_heads.', 'enc_cls_head.', 'enc_keypoint_offsets.',
                 'decoder.keypoint_offsets.')
        for name, p in self.named_parameters():
            if p.dim() > 1 and not name.startswith(heads):
                nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MultiScaleDeformableAttention):
                m.init_weights()
        nn.init.normal_(self.level_embed)
        for layers in (self.cls_heads, self.decoder.keypoint_offsets):
            for m in layers[0].modules():
                if isinstance(m, nn.Linear):
                    m.reset_parameters()
        nn.init.constant_(self.cls_heads[0].bias, _PRIOR_BIAS)
        self.decoder.keypoint_offsets[0].zero_last()
        for layers in (self.cls_heads, self.decoder.keypoint_offsets):
            for m in layers[1:]:
                m.load_state_dict(layers[0].state_dict())
        self.enc_cls_head.load_state_dict(self.cls_heads[0].state_dict())
        for m in self.enc_keypoint_offsets.layers:
            m.reset_parameters()
        self.enc_keypoint_offsets.zero_last()

    def init_weights(self):
        super().init_weights()
        self._reset_parameters()

    # ------------------------------------------------------------------ forward
    def _padding_masks(self, feats, batch_data_samples) -> List[torch.Tensor]:
        """Per level (B, h, w), True where a map position lies in batch padding."""
        b = feats[0].shape[0]
        device = feats[0].device
        metas = [s.metainfo for s in batch_data_samples] if batch_data_samples else []
        if not metas or 'batch_input_shape' not in metas[0]:
            return [torch.zeros(b, *f.shape[-2:], dtype=torch.bool, device=device)
                    for f in feats]
        pad_h, pad_w = metas[0]['batch_input_shape']
        mask = torch.ones(b, pad_h, pad_w, device=device)
        for i, meta in enumerate(metas):
            h, w = meta['img_shape'][:2]
            mask[i, :h, :w] = 0
        return [F.interpolate(mask[None], size=f.shape[-2:]).to(torch.bool)[0] for f in feats]

    @staticmethod
    def _valid_ratios(mask: torch.Tensor) -> torch.Tensor:
        """(B, 2): the unpadded fraction of width and height of one level."""
        _, h, w = mask.shape
        valid_h = (~mask[:, :, 0]).sum(1).float() / h
        valid_w = (~mask[:, 0, :]).sum(1).float() / w
        return torch.stack([valid_w, valid_h], -1)

    @staticmethod
    def _proposals(mask_flat, spatial_shapes) -> Tuple[torch.Tensor, torch.Tensor]:
        """Each token's grid centre in inverse-sigmoid space, normalised by its image's valid
        size: (B, S, 2), ``+inf`` where it is not a usable proposal (padding, or the outermost
        1 % of the image); and that usability: (B, S) (official
        ``gen_encoder_output_proposals``)."""
        b = mask_flat.shape[0]
        centres, start = [], 0
        for h, w in spatial_shapes.tolist():
            m = mask_flat[:, start:start + h * w].view(b, h, w)
            valid_h = (~m[:, :, 0]).sum(1)
            valid_w = (~m[:, 0, :]).sum(1)
            gy, gx = torch.meshgrid(torch.arange(h, device=m.device, dtype=torch.float32),
                                    torch.arange(w, device=m.device, dtype=torch.float32),
                                    indexing='ij')
            grid = torch.stack([gx, gy], -1)[None] + 0.5                       # 1 h w 2
            scale = torch.stack([valid_w, valid_h], -1).view(b, 1, 1, 2)
            centres.append((grid / scale).view(b, -1, 2))
            start += h * w
        centres = torch.cat(centres, 1)
        valid = ((centres > 0.01) & (centres < 0.99)).all(-1) & ~mask_flat
        logits = torch.log(centres / (1 - centres)).masked_fill(~valid[..., None], float('inf'))
        return logits, valid

    def forward(self, feats: Sequence[torch.Tensor],
                batch_data_samples: Optional[list] = None) -> Dict[str, list]:
        """Returns ``cls`` and ``keypoints``: per decoder layer (B, N, C) logits and (B, N, K, 2)
        normalised keypoints; ``enc_cls`` / ``enc_keypoints``: the selected encoder proposals."""
        feats = list(feats)[-self.num_levels:]
        if len(feats) != self.num_levels:
            raise ValueError(f'GroupPoseHead(num_feature_levels={self.num_levels}) got '
                             f'{len(feats)} feature maps; set the neck\'s num_outs to match')
        masks = self._padding_masks(feats, batch_data_samples)
        srcs, poss, mask_flat, shapes = [], [], [], []
        for lvl, (feat, mask) in enumerate(zip(feats, masks)):
            pos = self.positional_encoding(mask) + self.level_embed[lvl].view(1, -1, 1, 1)
            shapes.append(feat.shape[-2:])
            srcs.append(feat.flatten(2).transpose(1, 2))                       # b (h w) c
            poss.append(pos.flatten(2).transpose(1, 2).to(feat.dtype))
            mask_flat.append(mask.flatten(1))
        src, pos, mask_flat = torch.cat(srcs, 1), torch.cat(poss, 1), torch.cat(mask_flat, 1)
        spatial_shapes = torch.as_tensor(shapes, dtype=torch.long, device=src.device)
        level_start_index = torch.cat((spatial_shapes.new_zeros((1, )),
                                       spatial_shapes.prod(1).cumsum(0)[:-1]))
        valid_ratios = torch.stack([self._valid_ratios(m) for m in masks], 1)  # b L 2

        memory = self.encoder(query=src, query_pos=pos, key_padding_mask=mask_flat,
                              spatial_shapes=spatial_shapes, level_start_index=level_start_index,
                              valid_ratios=valid_ratios)

        # two-stage: score every token, keep the top num_queries as people
        proposals, valid = self._proposals(mask_flat, spatial_shapes)
        out_memory = memory.masked_fill(~valid[..., None], 0.)
        out_memory = self.memory_trans_norm(self.memory_trans_fc(out_memory))
        enc_logits = self.enc_cls_head(out_memory)                             # b S C
        scores = enc_logits.max(-1)[0]
        if not self.select_padding:
            scores = scores.masked_fill(~valid, float('-inf'))
        num_queries = min(self.num_queries, scores.shape[1])
        topk = scores.topk(num_queries, dim=1)[1]                              # b N
        b = src.shape[0]
        sel_memory = torch.gather(out_memory, 1, topk[..., None].expand(-1, -1, self.embed_dims))
        sel_proposals = torch.gather(proposals, 1, topk[..., None].expand(-1, -1, 2))
        offsets = self.enc_keypoint_offsets(sel_memory).view(b, num_queries, self.num_keypoints,
                                                             2)
        # a padding token's proposal is +inf: its keypoints are 1.0 (as the official code)
        enc_keypoints = (offsets + sel_proposals[:, :, None]).sigmoid()
        enc_cls = torch.gather(enc_logits, 1, topk[..., None].expand(-1, -1, self.num_classes))

        # queries: instance query (shared embedding) + K keypoint queries per person
        content = sel_memory.detach()[:, :, None]                               # b N 1 c
        keypoint_queries = self.keypoint_embedding.weight[None, None] + content  # b N K c
        instance_queries = self.instance_embedding.weight[None, None].expand(
            b, num_queries, 1, -1)
        query = torch.cat([instance_queries, keypoint_queries], 2)             # b N (K+1) c
        hidden, keypoints = self.decoder(query, enc_keypoints.detach(), memory, mask_flat,
                                         spatial_shapes, level_start_index, valid_ratios)
        cls = [head(h[:, :, 0]) for head, h in zip(self.cls_heads, hidden)]
        return dict(cls=cls, keypoints=keypoints, enc_cls=enc_cls, enc_keypoints=enc_keypoints)

    # ------------------------------------------------------------------ training
    def _targets(self, batch_data_samples) -> List[dict]:
        targets = []
        for sample in batch_data_samples:
            labels = sample.get('gt_instance_labels', None)
            if labels is None or 'keypoint_labels' not in labels:
                raise KeyError('GroupPoseHead needs gt_instance_labels.keypoint_labels: put '
                               "GenerateTarget(encoder=dict(type='GroupPoseLabel')) in the "
                               'training pipeline before PackPoseInputs')
            kpts = labels.keypoint_labels.float().reshape(-1, self.num_keypoints, 2)
            targets.append(dict(
                labels=torch.full((len(kpts), ), self.person_label, dtype=torch.long,
                                  device=kpts.device),
                keypoints=kpts,
                visible=labels.keypoint_weights.float().reshape(-1, self.num_keypoints),
                areas=labels.areas.float().reshape(-1)))
        return targets

    def _layer_losses(self, logits, keypoints, targets, avg_factor) -> Dict[str, torch.Tensor]:
        """Match one layer's predictions, then the three losses."""
        cls_targets = torch.zeros_like(logits)
        pred_kpts, gt_kpts, gt_vis, gt_areas = [], [], [], []
        for i, tgt in enumerate(targets):
            tgt = {k: v.to(logits.device) for k, v in tgt.items()}
            rows, cols = self.matcher(logits[i], keypoints[i], tgt['labels'], tgt['keypoints'],
                                      tgt['visible'], tgt['areas'])
            cls_targets[i, rows, tgt['labels'][cols]] = 1
            pred_kpts.append(keypoints[i, rows])
            gt_kpts.append(tgt['keypoints'][cols])
            gt_vis.append(tgt['visible'][cols])
            gt_areas.append(tgt['areas'][cols])
        pred_kpts, gt_kpts = torch.cat(pred_kpts), torch.cat(gt_kpts)
        gt_vis, gt_areas = torch.cat(gt_vis), torch.cat(gt_areas)
        return dict(
            loss_cls=self.loss_cls(logits, cls_targets, avg_factor=avg_factor),
            loss_kpt=self.loss_keypoint(pred_kpts, gt_kpts, gt_vis, avg_factor=avg_factor),
            loss_oks=self.loss_oks(pred_kpts, gt_kpts, gt_vis, gt_areas, avg_factor=avg_factor))

    def loss(self, feats, batch_data_samples, train_cfg: dict = {}) -> dict:
        out = self.forward(feats, batch_data_samples)
        targets = self._targets(batch_data_samples)
        num = torch.tensor(float(sum(len(t['labels']) for t in targets)),
                           device=out['cls'][0].device)
        if get_world_size() > 1:
            all_reduce(num, op='mean')
        avg_factor = max(num.item(), 1.0)
        losses = {}
        last = len(out['cls']) - 1
        for i, (logits, kpts) in enumerate(zip(out['cls'], out['keypoints'])):
            prefix = '' if i == last else f'd{i}.'
            for k, v in self._layer_losses(logits, kpts, targets, avg_factor).items():
                losses[prefix + k] = v
        enc = self._layer_losses(out['enc_cls'], out['enc_keypoints'], targets, avg_factor)
        for k, v in enc.items():
            losses['enc.' + k] = v * self.encoder_loss_weight
        return losses

    # ------------------------------------------------------------------ inference
    def predict(self, feats, batch_data_samples, test_cfg: dict = {}) -> List[InstanceData]:
        if test_cfg.get('flip_test', False) or test_cfg.get('multiscale_test', False):
            raise NotImplementedError('GroupPoseHead predicts single-scale, without flip test '
                                      '(as the paper evaluates); set flip_test=False')
        out = self.forward(feats, batch_data_samples)
        scores = out['cls'][-1].sigmoid().float().cpu().numpy()                # b N C
        keypoints = out['keypoints'][-1].float().cpu().numpy()                 # b N K 2
        preds = []
        for sample, s, k in zip(batch_data_samples, scores, keypoints):
            kpts, inst_scores = self.codec.decode(s, k, sample.metainfo['img_shape'])
            preds.append(InstanceData(
                keypoints=kpts,
                keypoint_scores=np.repeat(inst_scores[:, None], self.num_keypoints, 1),
                bbox_scores=inst_scores))
        return preds
