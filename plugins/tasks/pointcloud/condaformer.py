"""ConDaFormer: a sparse U-Net of disassembled-window transformer blocks for point clouds.

Duan et al., "ConDaFormer: Disassembled Transformer with Local Structure Enhancement for 3D Point
Cloud Understanding", NeurIPS 2023, arXiv 2312.11112 (official code: LHDuan/ConDaFormer, in the
PointTransformerV2 ``pcr`` codebase).

Stem (submanifold 3x3x3 conv, BN, LeakyReLU, residual sparse block) on the voxelised cloud, then
per stage a grid pooling (LN, linear, max over ``2^i`` voxels) and ConDaFormer blocks (LN,
disassembled window attention with LSE, LN, MLP); the decoder unpools by 3-NN interpolation plus a
projected skip connection. Window and quantisation sizes are in units of each stage's voxel, so
windows grow with depth. Plain PyTorch: runs on CPU and GPU without spconv or custom kernels.
"""
from typing import Dict, Optional, Union

import torch
import torch.nn as nn
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule

from plugins.registry import MODELS
from plugins.utils.checkpoint import PretrainedFromRelease
from .attention import DisassembledWindowAttention
from .reference import condaformer_presets
from .sparse import (PointBatchNorm1d, SparseVoxels, SubMConv3d, grid_pool, knn_interpolate,
                     pack_keys)


class SparseBasicBlock(nn.Module):
    """Residual block of two submanifold 3x3x3 convs with BN and LeakyReLU(0.2) (the stem's)."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.conv1 = SubMConv3d(in_channels, channels, 3)
        self.norm1 = PointBatchNorm1d(channels)
        self.conv2 = SubMConv3d(channels, channels, 3)
        self.norm2 = PointBatchNorm1d(channels)
        self.act = nn.LeakyReLU(0.2)
        if in_channels != channels:
            self.proj_conv = SubMConv3d(in_channels, channels, 1)
            self.proj_norm = PointBatchNorm1d(channels)
        else:
            self.proj_conv = None

    def forward(self, x: torch.Tensor, voxels: SparseVoxels) -> torch.Tensor:
        identity = x if self.proj_conv is None else self.proj_norm(self.proj_conv(x, voxels))
        out = self.act(self.norm1(self.conv1(x, voxels)))
        out = self.norm2(self.conv2(out, voxels))
        return self.act(out + identity)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class ConDaFormerBlock(nn.Module):
    """``x + DropPath(Attn(LN(x)))``, then ``x + DropPath(MLP(LN(x)))`` (per-point drop path)."""

    def __init__(self, dim: int, head_dim: int, window_size: float, quant_size: float,
                 shift: bool, drop_path: float = 0., mlp_ratio: float = 4.0,
                 max_elements: int = 1 << 24) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = DisassembledWindowAttention(dim, dim // head_dim, window_size, quant_size,
                                                shift=shift, max_elements=max_elements)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, voxels: SparseVoxels, xyz: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), voxels, xyz))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class GridPool(nn.Module):
    """LN, linear, then max over the points of each ``stride``-voxel (official ``Grid_Pool``)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.norm = nn.LayerNorm(in_channels, eps=1e-6)
        self.linear = nn.Linear(in_channels, out_channels, bias=False)

    def forward(self, x: torch.Tensor, voxels: SparseVoxels):
        return grid_pool(self.linear(self.norm(x)), voxels, self.stride)


class GridUnpool(nn.Module):
    """Projected coarse features interpolated (3-NN) onto the fine points, plus projected skip."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(in_channels, eps=1e-6),
                                  nn.Linear(in_channels, out_channels))
        self.proj_skip = nn.Sequential(nn.LayerNorm(skip_channels, eps=1e-6),
                                       nn.Linear(skip_channels, out_channels))

    def forward(self, x, coarse: SparseVoxels, skip, fine: SparseVoxels) -> torch.Tensor:
        return self.proj_skip(skip) + knn_interpolate(self.proj(x), coarse, fine)


@MODELS.register_module()
class ConDaFormer(PretrainedFromRelease, BaseModule):
    """ConDaFormer encoder-decoder on a voxelised point cloud; per-voxel features out.

    Args:
        arch: a preset of ``reference.yaml`` (``'scannet'``: ConDaFormer-v1m1, ``'s3dis'``:
            ConDaFormer-small-v1m1, ``'demo'``) or a dict with ``enc_channels``, ``enc_depths``,
            ``dec_channels``, ``dec_depths``, ``window_size``, ``quant_size``, ``voxel_size``.
        in_channels: input feature channels (6: xyz + rgb, 9: + normals).
        base_channels, head_dim, drop_path_rate, mlp_ratio: as the official code.
        max_elements: bound on one batched attention step (memory knob, no effect on results).
        init_cfg: ``dict(type='Pretrained', checkpoint=...)`` takes the backbone out of an
            official checkpoint (or the toolkit's segmentor's); ``strict``, ``copy``, ``prefix``
            as for every release (``plugins.utils.checkpoint.PretrainedFromRelease``).

    ``forward(coord, grid_coord, feat, batch)``: ``coord (N, 3)`` metres, ``grid_coord (N, 3)``
    voxel indices (unique per cloud), ``feat (N, in_channels)``, ``batch (N,)``; returns
    ``(N, out_channels)`` with ``out_channels = dec_channels[-1]``.
    """

    def __init__(self,
                 arch: Union[str, Dict] = 'scannet',
                 in_channels: int = 6,
                 base_channels: int = 48,
                 head_dim: int = 16,
                 drop_path_rate: Optional[float] = None,
                 mlp_ratio: float = 4.0,
                 max_elements: int = 1 << 24,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if isinstance(arch, str):
            presets = condaformer_presets()
            if arch not in presets:
                raise KeyError(f'unknown ConDaFormer arch {arch!r}; presets: {sorted(presets)}')
            arch = presets[arch]['arch']
        arch = dict(arch)
        enc_ch, enc_d = list(arch['enc_channels']), list(arch['enc_depths'])
        dec_ch, dec_d = list(arch['dec_channels']), list(arch['dec_depths'])
        if not (len(enc_ch) == len(enc_d) == len(dec_ch) == len(dec_d)):
            raise ValueError(f'enc_channels, enc_depths, dec_channels, dec_depths need one entry '
                             f'per stage, got {enc_ch}, {enc_d}, {dec_ch}, {dec_d}')
        self.voxel_size = float(arch['voxel_size'])
        self.window_size, self.quant_size = float(arch['window_size']), float(arch['quant_size'])
        self.num_stages = len(enc_ch)
        self.out_channels = dec_ch[-1]
        if drop_path_rate is None:
            drop_path_rate = float(arch.get('drop_path_rate', 0.3))
        block = dict(head_dim=head_dim, window_size=self.window_size,
                     quant_size=self.quant_size, mlp_ratio=mlp_ratio, max_elements=max_elements)

        self.stem_conv = SubMConv3d(in_channels, base_channels, 3)
        self.stem_norm = PointBatchNorm1d(base_channels)
        self.stem_act = nn.LeakyReLU(0.2)
        self.stem_block = SparseBasicBlock(base_channels, base_channels)

        enc_dpr = torch.linspace(0, drop_path_rate, max(sum(enc_d), 1)).tolist()
        dec_dpr = torch.linspace(0, drop_path_rate, max(sum(dec_d), 1)).tolist()
        self.pools, self.encoder = nn.ModuleList(), nn.ModuleList()
        prev, used = base_channels, 0
        for i, (ch, depth) in enumerate(zip(enc_ch, enc_d)):
            self.pools.append(GridPool(prev, ch, stride=2 ** (i + 1)))
            self.encoder.append(nn.ModuleList(
                ConDaFormerBlock(ch, shift=j % 2 == 1, drop_path=enc_dpr[used + j], **block)
                for j in range(depth)))
            prev, used = ch, used + depth
        # decoder: deepest first; skip channels are the encoder's one level up (the stem's last)
        skips = [base_channels] + enc_ch[:-1]
        self.unpools, self.decoder = nn.ModuleList(), nn.ModuleList()
        used = sum(dec_d) - 1
        for i, (ch, depth) in enumerate(zip(dec_ch, dec_d)):
            self.unpools.append(GridUnpool(prev, skips[self.num_stages - 1 - i], ch))
            self.decoder.append(nn.ModuleList(
                ConDaFormerBlock(ch, shift=j % 2 == 1, drop_path=dec_dpr[used - j], **block)
                for j in range(depth)))
            prev, used = ch, used - depth

    def convert_checkpoint(self, state_dict: dict) -> dict:
        """Official (or the toolkit's segmentor) keys -> this backbone's, the head's dropped."""
        from plugins.utils.convert_condaformer import convert_condaformer_backbone
        return convert_condaformer_backbone(state_dict)

    def init_weights(self) -> None:
        if not self.init_from_pretrained_cfg():
            super().init_weights()

    def normalize_coords(self, coord, grid_coord, batch):
        """Per cloud, as the official code: coordinates in voxel units aligned with the grid."""
        num = int(batch.max().item()) + 1 if len(batch) else 0
        idx = batch[:, None].expand(-1, 3)

        def cloud_min(t):
            return t.new_full((num, 3), float('inf') if t.is_floating_point() else
                              torch.iinfo(t.dtype).max).scatter_reduce(0, idx, t, 'amin')[batch]

        grid = grid_coord.long()
        grid = grid - cloud_min(grid)
        xyz = (coord - cloud_min(coord)) / self.voxel_size
        xyz = xyz - cloud_min(xyz - grid.to(xyz.dtype))
        return xyz, grid

    def forward(self, coord: torch.Tensor, grid_coord: torch.Tensor, feat: torch.Tensor,
                batch: torch.Tensor) -> torch.Tensor:
        xyz, grid = self.normalize_coords(coord.float(), grid_coord, batch.long())
        voxels = SparseVoxels(grid, xyz, batch)
        x = self.stem_act(self.stem_norm(self.stem_conv(feat, voxels)))
        x = self.stem_block(x, voxels)
        levels, feats = [voxels], [x]
        for pool, blocks in zip(self.pools, self.encoder):
            x, coarse, _ = pool(x, levels[-1])
            level_xyz = coarse.xyz / coarse.stride
            for blk in blocks:
                x = blk(x, coarse, level_xyz)
            levels.append(coarse)
            feats.append(x)
        for i, (unpool, blocks) in enumerate(zip(self.unpools, self.decoder)):
            fine_level = self.num_stages - 1 - i
            fine = levels[fine_level]
            x = unpool(x, levels[fine_level + 1], feats[fine_level], fine)
            level_xyz = fine.xyz / fine.stride
            for blk in blocks:
                x = blk(x, fine, level_xyz)
        return x


def unique_voxels(grid_coord: torch.Tensor, batch: torch.Tensor):
    """``(keep, inverse)`` if some cloud has two points in one voxel, else ``None``."""
    keys = pack_keys(batch, grid_coord.long() - grid_coord.long().min(0).values)
    uniq, inverse = torch.unique(keys, return_inverse=True)
    if len(uniq) == len(keys):
        return None
    return len(uniq), inverse


__all__ = ['ConDaFormer', 'ConDaFormerBlock', 'GridPool', 'GridUnpool', 'SparseBasicBlock',
           'unique_voxels']
