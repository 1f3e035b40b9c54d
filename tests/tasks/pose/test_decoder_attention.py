"""The group decoder exchanges information only where Group Pose allows (Sec. 3.2).

Perturb one query (person 0, keypoint type 1) and see which outputs of each sub-layer change:
within-instance attention reaches only person 0's K + 1 queries, across-instance attention only
the type-1 queries of all people, and cross-attention + FFN only the perturbed query itself.
"""
import pytest
import torch

from plugins.tasks.pose.decoder import GroupPoseDecoder, GroupPoseDecoderLayer, point_sine_embedding

B, N, P, C = 2, 4, 6, 32           # P = K + 1 (K = 5 keypoints)


@pytest.fixture
def layer():
    torch.manual_seed(0)
    return GroupPoseDecoderLayer(embed_dims=C, num_heads=4, feedforward_channels=64,
                                 num_levels=2, num_points=2).eval()


def memory_inputs():
    shapes = torch.tensor([[8, 8], [4, 4]])
    return dict(memory=torch.randn(B, 80, C), memory_mask=torch.zeros(B, 80, dtype=torch.bool),
                spatial_shapes=shapes, level_start_index=torch.tensor([0, 64]),
                valid_ratios=torch.ones(B, 2, 2))


def changed(fn, query):
    perturbed = query.clone()
    perturbed[:, 0, 1] += torch.randn(C)
    with torch.no_grad():
        diff = (fn(perturbed) - fn(query)).abs().amax(dim=(0, 3))           # (N, P)
    return diff > 1e-6


def test_within_instance_attention_stays_inside_one_person(layer):
    query, pos = torch.randn(B, N, P, C), torch.randn(B, N, P, C)
    mask = changed(lambda q: layer.within_instance_attention(q, pos), query)
    expected = torch.zeros(N, P, dtype=torch.bool)
    expected[0, :] = True
    assert torch.equal(mask, expected)


def test_across_instance_attention_stays_inside_one_keypoint_type(layer):
    query = torch.randn(B, N, P, C)
    mask = changed(layer.across_instance_attention, query)
    expected = torch.zeros(N, P, dtype=torch.bool)
    expected[:, 1] = True
    assert torch.equal(mask, expected)


def test_cross_attention_and_ffn_are_per_query(layer):
    query, pos = torch.randn(B, N, P, C), torch.randn(B, N, P, C)
    ref = torch.rand(B, N, P, 2)
    mem = memory_inputs()

    def rest(q):
        out = layer.cross_attention(q, pos, ref, mem['memory'], mem['memory_mask'],
                                    mem['spatial_shapes'], mem['level_start_index'],
                                    mem['valid_ratios'])
        return layer.ffn_norm(layer.ffn(out))

    mask = changed(rest, query)
    expected = torch.zeros(N, P, dtype=torch.bool)
    expected[0, 1] = True
    assert torch.equal(mask, expected)


def test_a_full_layer_is_within_then_across(layer):
    """Within first, across second: one perturbed query reaches every query in one layer, and
    the output equals the composition of the sub-layers in the paper's order."""
    query, pos, ref = torch.randn(B, N, P, C), torch.randn(B, N, P, C), torch.rand(B, N, P, 2)
    mem = memory_inputs()
    with torch.no_grad():
        full = layer(query, pos, ref, **mem)
        q = layer.across_instance_attention(layer.within_instance_attention(query, pos))
        q = layer.cross_attention(q, pos, ref, *mem.values())
        manual = layer.ffn_norm(layer.ffn(q))
    assert torch.allclose(full, manual, atol=1e-6)
    assert changed(lambda q: layer(q, pos, ref, **mem), query).all()


def test_decoder_refines_keypoints_and_starts_from_the_reference_points():
    torch.manual_seed(0)
    decoder = GroupPoseDecoder(num_layers=3, num_keypoints=P - 1,
                               layer_cfg=dict(embed_dims=C, num_heads=4, feedforward_channels=64,
                                              num_levels=2, num_points=2))
    ref = torch.rand(B, N, P - 1, 2) * 0.8 + 0.1
    hidden, keypoints = decoder(torch.randn(B, N, P, C), ref, *memory_inputs().values())
    assert len(hidden) == len(keypoints) == 3
    assert hidden[0].shape == (B, N, P, C) and keypoints[0].shape == (B, N, P - 1, 2)
    # the offset heads start at zero: every layer's first prediction is the reference
    for kpts in keypoints:
        assert torch.allclose(kpts, ref, atol=1e-5)


def test_point_sine_embedding_separates_x_and_y():
    pts = torch.tensor([[0.2, 0.7]])
    emb = point_sine_embedding(pts, 16)
    swapped = point_sine_embedding(pts.flip(-1), 16)
    assert emb.shape == (1, 16)
    assert torch.allclose(emb[:, :8], swapped[:, 8:]) and torch.allclose(emb[:, 8:],
                                                                          swapped[:, :8])
