"""The Group Pose decoder: N instance queries and N x K keypoint queries, refined layer by layer.

Group Pose (Liu et al., ICCV 2023, arXiv 2308.07313, Sec. 3.2) replaces the single self-attention
of a DETR decoder layer over all N (K + 1) queries by two group-wise self-attentions:

1. within-instance: the K + 1 queries of one person (its instance query and its K keypoint
   queries) attend to each other; people do not exchange information here;
2. across-instance: the N queries of one type (all instance queries, or all "left wrist" queries)
   attend to each other; queries of different types do not exchange information here;

then deformable cross-attention to the encoder memory (each keypoint query samples around its own
keypoint, the instance query around the mean of its person's keypoints) and an FFN, each with a
residual connection and post-LayerNorm. After each layer an MLP predicts keypoint offsets in
inverse-sigmoid space; the refined keypoints are the next layer's reference points (detached), and
a layer's prediction is formed from the previous layer's undetached refinement, so each layer's
loss also reaches the previous layer's offsets (the paper's code does the same).

Positional queries: a sine embedding of each keypoint's reference point through a 2-layer MLP;
instance queries carry none, and the across-instance attention uses none. The official code
(``models/grouppose/transformer_deformable.py``) adds it to the keypoint queries *in place*
before the within-instance attention and again before the cross-attention, so it also enters the
within-instance values and both residual streams; that is the default here
(``pos_in_content=True``), since the released checkpoints were trained with it. With
``pos_in_content=False`` it is added to the attention queries and keys only, as the paper's
equations read.

Reference points are refined in inverse-sigmoid space with the official ``inverse_sigmoid``
(inputs clamped to ``[eps, 1 - eps]``, ``eps = 1e-3``).
"""
import copy
import math
from typing import List, Tuple

import torch
import torch.nn as nn
from mmcv.cnn.bricks.transformer import FFN
from mmcv.ops import MultiScaleDeformableAttention
from mmengine.model import BaseModule, ModuleList

from plugins.registry import MODELS


class MLP(nn.Module):
    """Linear layers with ReLU between them."""

    def __init__(self, in_dims: int, hidden_dims: int, out_dims: int, num_layers: int):
        super().__init__()
        dims = [in_dims] + [hidden_dims] * (num_layers - 1) + [out_dims]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = x.relu()
        return x

    def zero_last(self) -> 'MLP':
        """Start as the zero function (offset heads start by trusting the reference points)."""
        nn.init.zeros_(self.layers[-1].weight)
        nn.init.zeros_(self.layers[-1].bias)
        return self


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """``log(x / (1 - x))`` with ``x`` clamped to ``[eps, 1 - eps]`` (the official ``eps``; mmdet's
    is 1e-5, which moves refined keypoints near the image border)."""
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def point_sine_embedding(points: torch.Tensor, embed_dims: int = 256,
                         temperature: float = 10000.) -> torch.Tensor:
    """Sine embedding of normalised 2-D points: (..., 2) -> (..., embed_dims), ``[y-part, x-part]``,
    each part ``embed_dims / 2`` channels of interleaved sin / cos at geometric frequencies."""
    num_feats = embed_dims // 2
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=points.device)
    dim_t = temperature ** (2 * (dim_t // 2) / num_feats)
    scaled = points.float()[..., None] * (2 * math.pi) / dim_t             # (..., 2, F)
    emb = torch.stack((scaled[..., 0::2].sin(), scaled[..., 1::2].cos()), -1).flatten(-2)
    return torch.cat((emb[..., 1, :], emb[..., 0, :]), -1).to(points.dtype)


class GroupPoseDecoderLayer(BaseModule):
    """Within-instance SA, across-instance SA, deformable cross-attention, FFN (post-norm).

    Args:
        pos_in_content: add the position embedding to the queries themselves before the
            within-instance and the cross-attention (official code; it then also reaches the
            values and the residual streams), or only to the attention queries and keys (False,
            the paper's equations).
    """

    def __init__(self, embed_dims: int = 256, num_heads: int = 8,
                 feedforward_channels: int = 2048, dropout: float = 0.0, num_levels: int = 4,
                 num_points: int = 4, pos_in_content: bool = True, init_cfg=None):
        super().__init__(init_cfg)
        self.pos_in_content = pos_in_content
        self.within_attn = nn.MultiheadAttention(embed_dims, num_heads, dropout=dropout,
                                                 batch_first=True)
        self.within_norm = nn.LayerNorm(embed_dims)
        self.across_attn = nn.MultiheadAttention(embed_dims, num_heads, dropout=dropout,
                                                 batch_first=True)
        self.across_norm = nn.LayerNorm(embed_dims)
        self.cross_attn = MultiScaleDeformableAttention(
            embed_dims=embed_dims, num_heads=num_heads, num_levels=num_levels,
            num_points=num_points, dropout=dropout, batch_first=True)
        self.cross_norm = nn.LayerNorm(embed_dims)
        self.ffn = FFN(embed_dims=embed_dims, feedforward_channels=feedforward_channels,
                       num_fcs=2, ffn_drop=dropout, act_cfg=dict(type='ReLU', inplace=True))
        self.ffn_norm = nn.LayerNorm(embed_dims)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, query_pos: torch.Tensor, ref_points: torch.Tensor,
                memory: torch.Tensor, memory_mask: torch.Tensor, spatial_shapes: torch.Tensor,
                level_start_index: torch.Tensor, valid_ratios: torch.Tensor) -> torch.Tensor:
        """Args:
            query, query_pos: (B, N, K + 1, C); index 0 of dim 2 is the instance query.
            ref_points: (B, N, K + 1, 2) normalised reference points.
            memory: (B, S, C); memory_mask: (B, S), True at padding.
            spatial_shapes: (L, 2); level_start_index: (L,); valid_ratios: (B, L, 2).
        """
        query = self.within_instance_attention(query, query_pos)
        query = self.across_instance_attention(query)
        query = self.cross_attention(query, query_pos, ref_points, memory, memory_mask,
                                     spatial_shapes, level_start_index, valid_ratios)
        return self.ffn_norm(self.ffn(query))          # the residual is inside mmcv's FFN

    def within_instance_attention(self, query: torch.Tensor,
                                  query_pos: torch.Tensor) -> torch.Tensor:
        """Self-attention among the K + 1 queries of each person (people kept apart)."""
        b, n, p, c = query.shape
        if self.pos_in_content:
            query = query + query_pos
        value = query.reshape(b * n, p, c)                                  # b n p c -> (b n) p c
        qk = value if self.pos_in_content else (query + query_pos).reshape(b * n, p, c)
        out = self.within_attn(qk, qk, value, need_weights=False)[0]
        return self.within_norm(value + self.dropout(out)).reshape(b, n, p, c)

    def across_instance_attention(self, query: torch.Tensor) -> torch.Tensor:
        """Self-attention among the N queries of each type (types kept apart)."""
        b, n, p, c = query.shape
        value = query.transpose(1, 2).reshape(b * p, n, c)                  # b n p c -> (b p) n c
        out = self.across_attn(value, value, value, need_weights=False)[0]
        out = self.across_norm(value + self.dropout(out))
        return out.reshape(b, p, n, c).transpose(1, 2)

    def cross_attention(self, query, query_pos, ref_points, memory, memory_mask, spatial_shapes,
                        level_start_index, valid_ratios) -> torch.Tensor:
        """Deformable attention to the memory, each query around its own reference point."""
        b, n, p, c = query.shape
        if self.pos_in_content:
            query, query_pos = query + query_pos, None
        else:
            query_pos = query_pos.reshape(b, n * p, c)
        flat = query.reshape(b, n * p, c)                                   # b n p c -> b (n p) c
        ref = ref_points.reshape(b, n * p, 1, 2) * valid_ratios[:, None]    # b (n p) L 2
        out = self.cross_attn(query=flat, value=memory, identity=flat, query_pos=query_pos,
                              key_padding_mask=memory_mask, reference_points=ref,
                              spatial_shapes=spatial_shapes, level_start_index=level_start_index)
        return self.cross_norm(out).reshape(b, n, p, c)


@MODELS.register_module()
class GroupPoseDecoder(BaseModule):
    """Stack of :class:`GroupPoseDecoderLayer` with layer-by-layer keypoint refinement.

    Args:
        num_layers: decoder layers (paper: 6).
        num_keypoints: K.
        layer_cfg: kwargs of :class:`GroupPoseDecoderLayer` (embed_dims, num_heads,
            feedforward_channels, dropout, num_levels, num_points, pos_in_content).

    ``keypoint_offsets[i]``: layer ``i``'s MLP of keypoint offsets (official ``pose_embed``; the
    name holds no ``keypoint_head``, which mmpose's estimator renames in files without version
    metadata).
    """

    def __init__(self, num_layers: int = 6, num_keypoints: int = 17, layer_cfg: dict = None,
                 init_cfg=None):
        super().__init__(init_cfg)
        layer_cfg = dict(layer_cfg or {})
        self.layers = ModuleList([GroupPoseDecoderLayer(**copy.deepcopy(layer_cfg))
                                  for _ in range(num_layers)])
        self.embed_dims = embed_dims = self.layers[0].within_norm.normalized_shape[0]
        self.num_layers, self.num_keypoints = num_layers, num_keypoints
        self.ref_point_head = MLP(embed_dims, embed_dims, embed_dims, 2)
        self.keypoint_offsets = ModuleList(
            [MLP(embed_dims, embed_dims, 2, 3).zero_last() for _ in range(num_layers)])

    def forward(self, query: torch.Tensor, ref_keypoints: torch.Tensor, memory: torch.Tensor,
                memory_mask: torch.Tensor, spatial_shapes: torch.Tensor,
                level_start_index: torch.Tensor, valid_ratios: torch.Tensor
                ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Args:
            query: (B, N, K + 1, C) instance + keypoint content queries.
            ref_keypoints: (B, N, K, 2) initial keypoints (normalised, detached).
        Returns:
            per layer: hidden states (B, N, K + 1, C) and keypoints (B, N, K, 2) in [0, 1].

        With ``pos_in_content`` (official), the hidden state and keypoints returned for a layer
        other than the last are those the official model's per-layer heads read after its
        decoder has run: by then the next layer has added its position embedding to that hidden
        state in place (keypoint queries). The refinement itself uses the state before that, so
        only the intermediate predictions (the auxiliary losses) see it; the last layer's (the
        prediction) is untouched.
        """
        official_in_place = self.layers[0].pos_in_content
        hidden, keypoints, pred_refs = [], [], []
        ref = ref_keypoints.detach()
        ref_for_pred = ref
        for i, (layer, keypoint_offsets) in enumerate(zip(self.layers, self.keypoint_offsets)):
            # the instance query's point is the mean of its person's keypoints
            points = torch.cat([ref.mean(2, keepdim=True), ref], 2)            # b n (k+1) 2
            pos = self.ref_point_head(
                point_sine_embedding(points * valid_ratios[:, None, None, 0], self.embed_dims))
            pos = torch.cat([torch.zeros_like(pos[:, :, :1]), pos[:, :, 1:]], 2)
            if official_in_place and i > 0:
                hidden[-1] = hidden[-1] + pos
                delta = self.keypoint_offsets[i - 1](hidden[-1][:, :, 1:])
                keypoints[-1] = (inverse_sigmoid(pred_refs[-1]) + delta).sigmoid()
            query = layer(query, pos, points, memory, memory_mask, spatial_shapes,
                          level_start_index, valid_ratios)
            delta = keypoint_offsets(query[:, :, 1:])
            keypoints.append((inverse_sigmoid(ref_for_pred) + delta).sigmoid())
            hidden.append(query)
            pred_refs.append(ref_for_pred)
            ref_for_pred = (inverse_sigmoid(ref) + delta).sigmoid()
            ref = ref_for_pred.detach()
        return hidden, keypoints
