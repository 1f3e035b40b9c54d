"""Each benchmark peer of the part-2 mixers (timm, or a re-run of the official formulation, or
the sequential scan) computes the same numbers as the toolkit's mixer with the same weights."""
import pytest
import torch

from benchmarks.mixer_cases import (channel_group, factorization, gated_positional, hyena,
                                    linear_attention, state_space, super_token)

CASES = [c for mod in (channel_group, gated_positional, linear_attention, super_token,
                       factorization, hyena, state_space) for c in mod.CASES
         if c.build_peer is not None]


@pytest.mark.parametrize('case', CASES, ids=[c.name for c in CASES])
def test_peer_computes_the_same_function(case):
    torch.manual_seed(0)
    ours = case.build(64, 2).eval()
    peer = case.build_peer(ours)
    x = torch.randn(1, 64, 28, 20)
    with torch.no_grad():
        torch.testing.assert_close(peer(x), ours(x), rtol=1e-4, atol=1e-5)
